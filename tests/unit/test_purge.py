"""`onestack down [--purge]` and the server lock, against the fake drivers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onestack.agent.host import build_hypervisor, build_network, build_storage
from onestack.agent.purge import HostPurge
from onestack.agent.reconciler import Agent
from onestack.cli import server_lock
from onestack.cli.main import app
from onestack.common.config import load_config
from tests.unit.test_agent import Control, image, instance  # noqa: F401 (a fixture)

FAKE = """[host]
hypervisor_driver = "fake"
storage_driver = "fake"
network_driver = "fake"
name_prefix = "tq"
"""


@pytest.fixture
def state(tmp_path: Path, image: bytes) -> Path:  # noqa: F811
    """A state directory whose host has one guest, its disk, its network and port."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "onestack.toml").write_text(FAKE)
    (state / "onestack.db").touch()
    config = load_config(state, environ={})
    control = Control(image)
    d = instance(image)
    control.instances[d.uuid] = d
    agent = Agent("host-1", control, build_hypervisor(config), build_storage(config),
                  build_network(config), poll_interval=0.05)
    agent.run_once(wait=True)
    assert d.vm_state == "active"
    return state


def test_purge_removes_every_host_object(state: Path) -> None:
    host = HostPurge(load_config(state, environ={}))
    before = host.inventory()
    assert before.guests and before.disks and before.networks and before.ports
    assert host.purge() == []
    assert HostPurge(load_config(state, environ={})).inventory().empty()
    assert not (state / "disks").exists()


def test_server_lock(tmp_path: Path) -> None:
    config = load_config(tmp_path / "s", environ={"ONESTACK_HOST_NAME_PREFIX": "ab"})
    assert server_lock.running(config.state_dir) is None
    fd = server_lock.hold(config.state_dir, config.host)
    try:
        assert server_lock.running(config.state_dir) == os.getpid()
        with pytest.raises(server_lock.ServerRunning, match=str(os.getpid())):
            server_lock.hold(config.state_dir, config.host)
        assert (config.state_dir / server_lock.LOCK_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        os.close(fd)
    assert server_lock.running(config.state_dir) is None
    # What the objects were made with outlives the server.
    assert server_lock.recorded_host(config.state_dir)["name_prefix"] == "ab"


def test_down_lists_refuses_while_running_then_purges(state: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["down", "--state-dir", str(state)])
    assert listed.exit_code == 0, listed.output
    assert "guests: 11111111-2222-3333-4444-555555555555" in listed.output
    assert "--purge" in listed.output
    config = load_config(state, environ={})
    # `up` ran with another prefix from its environment: down uses the recorded one.
    config.host.name_prefix = "tq"
    fd = server_lock.hold(state, config.host)
    try:
        refused = runner.invoke(app, ["down", "--purge", "--state-dir", str(state)],
                                env={"ONESTACK_HOST_NAME_PREFIX": "zz"})
        assert refused.exit_code == 1
        assert f"(PID {os.getpid()}) is running" in refused.output
        assert not HostPurge(config).inventory().empty()
    finally:
        os.close(fd)
    purged = runner.invoke(app, ["down", "--purge", "--state-dir", str(state)],
                           env={"ONESTACK_HOST_NAME_PREFIX": "zz"})
    assert purged.exit_code == 0, purged.output
    assert "'tq'" in purged.output
    assert HostPurge(config).inventory().empty()
    assert (state / "onestack.toml").exists()  # the cloud's own state stays


def test_down_needs_a_state_dir(tmp_path: Path) -> None:
    """Objects are found by prefix: a directory that is no cloud's is refused, not
    purged with the default prefix."""
    for path in (tmp_path / "none", tmp_path):
        result = CliRunner().invoke(app, ["down", "--purge", "--state-dir", str(path)])
        assert result.exit_code == 1 and "No OneStack state" in result.output

"""A host run by ``onestack agent`` in a process of its own, for an ``onestack up``
without an agent of its own: the commands an operator types, over the HTTP host
transport (fake drivers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ONESTACK,
    SERVER_ENV,
    Server,
    ServerError,
    _die_with_parent,
    clean_env,
    pick_port,
)

HOST = "e2e-remote"


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Server]:
    """``onestack up`` with no agent of its own: every guest runs on a remote host."""
    server = Server(state_dir=tmp_path / "state", port=0, log_path=tmp_path / "server.log")
    server.env = {"ONESTACK_HOST_AGENT": "false"}
    for _ in range(5):   # another port if the one picked was taken meanwhile
        server.port = pick_port()
        try:
            server.start()
            break
        except ServerError as exc:
            if "address already in use" not in str(exc).lower():
                raise
    else:
        pytest.fail("could not start onestack up on a free port")
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def remote_agent(server: Server, base: Path) -> Iterator[subprocess.Popen[bytes]]:
    credential = base / "agent.cred"
    env = clean_env(**SERVER_ENV)
    subprocess.run([ONESTACK, "admin", "host-credential", "create", HOST, "--output",
                    str(credential), "--state-dir", str(server.state_dir)], env=env,
                   check=True, capture_output=True, timeout=60)
    assert credential.stat().st_mode & 0o077 == 0
    listen = f"127.0.0.1:{pick_port({server.port})}"
    with open(base / "agent.log", "ab") as log:
        proc = subprocess.Popen(
            [ONESTACK, "agent", "--server", server.url, "--host-name", HOST,
             "--credential", str(credential), "--state-dir", str(base / "agent-state"),
             "--listen", listen], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=_die_with_parent)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(15)


def wait(predicate: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_remote_host_runs_servers(controller: Server, tmp_path: Path) -> None:
    token = controller.password_token()
    api = httpx.Client(base_url=controller.url, timeout=30, headers={
        "X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"})

    def call(method: str, path: str, status: int, **kw: Any) -> Any:
        r = api.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    with remote_agent(controller, tmp_path) as agent:
        def registered() -> bool:
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()
            services = call("GET", "/compute/v2.1/os-services", 200)["services"]
            return any(s["host"] == HOST and s["state"] == "up" for s in services)
        wait(registered, what="the remote host's nova-compute")

        image = call("POST", "/image/v2/images", 201, json={
            "name": "img", "disk_format": "raw", "container_format": "bare",
            "visibility": "public"})["id"]
        call("PUT", f"/image/v2/images/{image}/file", 204, content=b"\0" * 65536,
             headers={"Content-Type": "application/octet-stream"})
        net = call("POST", "/network/v2.0/networks", 201,
                   json={"network": {"name": "n"}})["network"]["id"]
        call("POST", "/network/v2.0/subnets", 201, json={"subnet": {
            "network_id": net, "ip_version": 4, "cidr": "10.9.0.0/24"}})
        sid = call("POST", "/compute/v2.1/servers", 202, json={"server": {
            "name": "vm", "imageRef": image, "flavorRef": "1",
            "networks": [{"uuid": net}]}})["server"]["id"]

        def active() -> dict[str, Any] | None:
            body = call("GET", f"/compute/v2.1/servers/{sid}", 200)["server"]
            assert body["status"] != "ERROR", body
            return body if body["status"] == "ACTIVE" else None
        body = wait(active, what="ACTIVE")
        assert body["OS-EXT-SRV-ATTR:host"] == HOST
        output = call("POST", f"/compute/v2.1/servers/{sid}/action", 200,
                      json={"os-getConsoleOutput": {}})["output"]
        assert f"boot 1 of {sid}" in output
        # Keystone tokens open nothing under /hostlink, the admin's neither
        r = api.post("/hostlink/v1/desired-state", json={"host": HOST})
        assert r.status_code == 401, r.text

        call("DELETE", f"/compute/v2.1/servers/{sid}", 204)
        wait(lambda: api.get(f"/compute/v2.1/servers/{sid}").status_code == 404,
             what="the server gone")

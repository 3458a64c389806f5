"""What a cloud leaves on its host after a clean stop, and after `onestack down --purge`.

Guests and the DHCP of networks in use outlive the server on purpose (a restart adopts
them). A network deleted from the cloud does not: a clean stop removes it even when the
agent had no pass since the delete. `onestack down --purge` then removes everything
the state directory owns (guests, disks, namespaces, links, QEMU and dnsmasq), by the
prefix the objects were made with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.services.image.testimage import build_test_image
from tests.host.harness import HOST_ENV, ONESTACK, NetnsHost, namespaces, netns_host, openstack

pytestmark = [
    pytest.mark.root, pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None, reason="needs QEMU and dnsmasq"),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsHost]:
    image = build_test_image()  # before entering the host's namespace (no way out)
    # A long poll: the agent runs a pass only when compute wakes it (a network delete
    # does not), so the stop itself has to remove the deleted network.
    with netns_host(tmp_path_factory.mktemp("leftovers"), ONESTACK_HOST_ACCEL="tcg",
                    ONESTACK_HOST_POLL_INTERVAL="30") as h:
        h.image = image  # type: ignore[attr-defined]
        yield h


def down(host: NetnsHost, *args: str) -> subprocess.CompletedProcess[str]:
    """`onestack down` on the host's state dir, from the host's namespace. Its
    environment names another prefix: the one the objects were made with (recorded by
    `onestack up`) must win."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ONESTACK_"))}
    env.update(HOST_ENV, ONESTACK_HOST_NAME_PREFIX="zq9", COLUMNS="400")
    return subprocess.run([ONESTACK, "down", *args, "--state-dir", str(host.state_dir)],
                          env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def dhcp_pid(host: NetnsHost, network_id: str) -> int | None:
    return next((pid for pidfile, pid in host.pidfile_processes().items()
                 if pidfile.parent.name == network_id), None)


def our_daemons(host: NetnsHost) -> list[str]:
    """QEMU and dnsmasq processes whose command line names this host's prefix or state
    directory."""
    marks = (f"guest={host.prefix}", f"--interface={host.prefix}", str(host.state_dir))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        name = argv[0].rsplit("/", 1)[-1]
        if (name.startswith("qemu-system") or name == "dnsmasq") \
                and any(m in arg for m in marks for arg in argv):
            found.append(f"{entry.name} {' '.join(argv)[:100]}")
    return found


def ours(host: NetnsHost) -> list[str]:
    return [n for n in namespaces() if n.startswith(host.prefix) and n != host.ns]


def test_stop_removes_deleted_network_then_purge_removes_everything(host: NetnsHost) -> None:
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(host.image), "--public", "testimg",  # type: ignore
              json_output=False)
    nets = {}
    for n, name in enumerate(("keep", "gone")):
        nets[name] = openstack(host, "network", "create", name)["id"]
        openstack(host, "subnet", "create", "--network", name, "--subnet-range",
                  f"10.3{n}.0.0/24", f"{name}-v4", json_output=False)
    for vm, net in (("vm1", "keep"), ("vm2", "gone")):
        openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
                  "--network", net, "--wait", vm, json_output=False, timeout=300)
    vm1 = openstack(host, "server", "show", "vm1")["id"]
    qemu1 = next(pid for pidfile, pid in host.pidfile_processes().items()
                 if pidfile.parent.name == vm1)
    keep_dhcp, gone_dhcp = dhcp_pid(host, nets["keep"]), dhcp_pid(host, nets["gone"])
    assert keep_dhcp and gone_dhcp
    openstack(host, "server", "delete", "--wait", "vm2", json_output=False, timeout=180)
    gone_ns = f"{host.prefix}qdhcp-{nets['gone']}"
    assert gone_ns in namespaces()  # unused, kept a while for the next server
    openstack(host, "network", "delete", "gone", json_output=False)

    refused = down(host, "--purge")
    assert refused.returncode == 1 and "is running" in refused.stderr, refused.stderr

    host.stop()  # SIGTERM: a clean shutdown
    log = host.log_path.read_text()
    assert f"network {nets['gone']}: removed from this host (deleted)" in log, host.log_tail()
    assert gone_ns not in namespaces()
    assert not any(nets["gone"][:6] in link for link in host.links())
    assert not Path(f"/proc/{gone_dhcp}/cmdline").read_bytes()  # gone (or a zombie)
    # The live guest and its network's DHCP outlive the server, as designed.
    assert Path(f"/proc/{qemu1}/cmdline").read_bytes()
    assert dhcp_pid(host, nets["keep"]) == keep_dhcp
    assert f"{host.prefix}qdhcp-{nets['keep']}" in namespaces()

    listed = down(host)
    assert listed.returncode == 0, listed.stderr
    assert vm1 in listed.stderr and nets["keep"] in listed.stderr

    purged = down(host, "--purge")
    assert purged.returncode == 0, purged.stderr + purged.stdout
    assert ours(host) == []
    assert host.links() == []
    assert our_daemons(host) == []
    assert host.pidfile_processes() == {}
    assert not (host.state_dir / "disks").exists()
    assert not (host.state_dir / "instances" / vm1).exists()
    assert (host.state_dir / "onestack.db").exists()  # the cloud's own state stays

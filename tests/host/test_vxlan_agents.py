"""VXLAN end to end with two real agents: ``onestack up`` (no agent of its own) in one
namespace, two ``onestack agent`` processes in two others (fake hypervisor and storage,
the Linux L2 and DHCP drivers), joined by a bridge carrying 192.0.2.0/24. A server on
each host puts the network on both; each host's tunnel address is found on its own (the
route towards the server), reported, and handed to the other as its peer; the two
hosts' DHCP namespaces then reach each other through the tunnel. No QEMU.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers.network.l2.linux import kernel_has_vxlan
from tests.host.harness import NetnsHost, openstack, run, wait_for

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed"),
    pytest.mark.skipif(shutil.which("ping") is None, reason="iputils-ping not installed"),
    pytest.mark.skipif(not kernel_has_vxlan(), reason="the kernel has no vxlan"),
]

ONESTACK = str(Path(sys.executable).parent / "onestack")
SERVER_IP = "192.0.2.254"
AGENT_ENV = {
    "ONESTACK_HOST_HYPERVISOR_DRIVER": "fake",
    "ONESTACK_HOST_STORAGE_DRIVER": "fake",
    "ONESTACK_HOST_NETWORK_DRIVER": "linux",
    "ONESTACK_HOST_L3_DRIVER": "fake",
    "ONESTACK_HOST_FIREWALL_DRIVER": "fake",
    "ONESTACK_HOST_POLL_INTERVAL": "1.0",
}


def host_ns(server: NetnsHost, n: int) -> str:
    return f"{server.prefix}h{n}"


def agent_prefix(server: NetnsHost, n: int) -> str:
    return f"{server.prefix}{'ab'[n - 1]}"


@contextlib.contextmanager
def agents(server: NetnsHost) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two hosts, ``vx-host-1`` at 192.0.2.1 and ``vx-host-2`` at .2, each running
    ``onestack agent`` against the server at 192.0.2.254."""
    p = server.prefix
    run("ip", "link", "add", f"{p}sw", "type", "bridge")
    run("ip", "addr", "add", f"{SERVER_IP}/24", "dev", f"{p}sw")
    run("ip", "link", "set", f"{p}sw", "up")
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ONESTACK_"))}
    env.update(AGENT_ENV)
    try:
        for n in (1, 2):
            ns = host_ns(server, n)
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "link", "add", f"{p}s{n}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            run("ip", "link", "set", f"{p}s{n}", "master", f"{p}sw", "up")
            run("ip", "-n", ns, "addr", "add", f"192.0.2.{n}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            credential = server.base / f"host-{n}.cred"
            run(ONESTACK, "admin", "host-credential", "create", f"vx-host-{n}", "--output",
                str(credential), "--state-dir", str(server.state_dir))
            state = server.base / f"h{n}"
            with open(server.base / f"agent-{n}.log", "ab") as log:
                procs.append(subprocess.Popen(
                    ["ip", "netns", "exec", ns, ONESTACK, "agent", "--server",
                     f"http://{SERVER_IP}:5000", "--host-name", f"vx-host-{n}",
                     "--credential", str(credential), "--state-dir", str(state),
                     "--listen", f"192.0.2.{n}:5050"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env={**env, "ONESTACK_HOST_NAME_PREFIX": agent_prefix(server, n)},
                    start_new_session=True))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        # dnsmasq daemons of the agents (pidfiles under their state dirs), by PID
        for n in (1, 2):
            for pidfile in (server.base / f"h{n}").rglob("pid"):
                with contextlib.suppress(OSError, ValueError):
                    pid = int(pidfile.read_text().split()[0])
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if str(pidfile.parent).encode() in cmdline:
                        os.kill(pid, signal.SIGKILL)
        run("ip", "link", "del", f"{p}sw", check=False)


def link_json(ns: str, *args: str) -> Any:
    out = run("ip", "netns", "exec", ns, *args).stdout.strip()
    return json.loads(out) if out else []


def test_two_agents_tunnel_a_network(tmp_path: Path) -> None:
    server = NetnsHost(tmp_path, env={"ONESTACK_HOST_AGENT": "false",
                                      "ONESTACK_SERVER_HOST": "0.0.0.0"})
    try:
        server.create()
        server.start()
        with agents(server) as procs:
            def both_up() -> bool:
                for n, proc in enumerate(procs, 1):
                    assert proc.poll() is None, (server.base / f"agent-{n}.log").read_text()
                hosts = openstack(server, "hypervisor", "list", "--long")
                return {h["Host IP"] for h in hosts} >= {"192.0.2.1", "192.0.2.2"}
            wait_for(both_up, 60, what="both hosts registered with their tunnel address")
            image = tmp_path / "img.raw"
            image.write_bytes(b"\0" * 65536)
            openstack(server, "image", "create", "--file", str(image), "--disk-format",
                      "raw", "--public", "img")
            net = openstack(server, "network", "create", "vxnet")
            assert net["provider:network_type"] == "vxlan" and net["mtu"] == 1450
            openstack(server, "subnet", "create", "--network", "vxnet", "--subnet-range",
                      "10.77.0.0/24", "vxsub")
            for n in (1, 2):
                openstack(server, "server", "create", "--image", "img", "--flavor", "1",
                          "--network", "vxnet", "--availability-zone",
                          f"nova:vx-host-{n}", f"vm{n}")
            for n in (1, 2):
                wait_for(lambda n=n: openstack(server, "server", "show", f"vm{n}")["status"]
                         == "ACTIVE", 60, what=f"vm{n} ACTIVE")
            vxlan = {n: f"{agent_prefix(server, n)}vx-{net['id']}"[:15] for n in (1, 2)}

            def tunnelled(n: int, peer: str) -> bool:
                fdb = link_json(host_ns(server, n), "bridge", "-j", "fdb", "show", "dev",
                                vxlan[n]) if vxlan[n] in {
                    link["ifname"] for link in link_json(host_ns(server, n), "ip", "-j",
                                                         "link", "show")} else []
                return [e.get("dst") for e in fdb
                        if e["mac"] == "00:00:00:00:00:00"] == [peer]
            wait_for(lambda: tunnelled(1, "192.0.2.2"), 30, what="host 1 floods to host 2")
            wait_for(lambda: tunnelled(2, "192.0.2.1"), 30, what="host 2 floods to host 1")
            [link] = link_json(host_ns(server, 1), "ip", "-d", "-j", "link", "show",
                               vxlan[1])
            data = link["linkinfo"]["info_data"]
            assert (data["id"], data["local"], data["port"]) == (
                net["provider:segmentation_id"], "192.0.2.1", 4789)
            assert link["mtu"] == 1450
            # The two hosts' DHCP ports (one per host, each in its own qdhcp-
            # namespace) reach each other through the tunnel.
            ports = openstack(server, "port", "list", "--network", "vxnet",
                              "--device-owner", "network:dhcp", "--long")
            ips = sorted(p["Fixed IP Addresses"][0]["ip_address"] for p in ports)
            assert len(ips) == 2
            # The agent made its DHCP namespace inside ``ip netns exec``'s own mount
            # namespace: reach it from there.
            inside = ["nsenter", "-t", str(procs[0].pid), "-m", "--", "ip", "netns", "exec",
                      f"{agent_prefix(server, 1)}qdhcp-{net['id']}"]
            own = run(*inside, "ip", "-j", "addr", "show").stdout
            [other] = [ip for ip in ips if f'"{ip}"' not in own]
            assert any(run(*inside, "ping", "-n", "-c", "1", "-W", "1", other,
                           check=False).returncode == 0 for _ in range(5))
            # Host 2's DHCP port has a unicast entry on host 1 (l2population's).
            [mac2] = [p["MAC Address"] for p in ports
                      if p["Fixed IP Addresses"][0]["ip_address"] == other]
            fdb = link_json(host_ns(server, 1), "bridge", "-j", "fdb", "show", "dev",
                            vxlan[1])
            assert {"mac": mac2, "dst": "192.0.2.2"} in [
                {"mac": e["mac"], "dst": e.get("dst")} for e in fdb]
            assert all(p.poll() is None for p in procs)
    finally:
        server.cleanup()

"""VXLAN between two hosts: the Linux L2 driver against the real kernel.

Two namespaces play two hosts, joined by a veth pair that carries their tunnel
addresses (192.0.2.1 and 192.0.2.2, a documentation range). In each, the driver (called
directly, the test's thread switched into the namespace) makes the same networks with
the other host as peer; guests are namespaces plugged into a bridge by a veth and ping
each other across the tunnel. Everything carries a random 4-character prefix and is
removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkSpec, SubnetSpec
from onestack.drivers.network.l2.linux import LinuxL2, flood_entries, kernel_has_vxlan

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("ping") is None, reason="iputils-ping not installed"),
    pytest.mark.skipif(not kernel_has_vxlan(), reason="the kernel has no vxlan"),
]

TUNNEL = {1: "192.0.2.1", 2: "192.0.2.2"}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr}")
    return proc


@dataclass
class Lab:
    prefix: str
    drivers: dict[int, LinuxL2]

    def host_ns(self, n: int) -> str:
        return f"{self.prefix}h{n}"

    @contextlib.contextmanager
    def on(self, n: int) -> Iterator[LinuxL2]:
        """Host ``n``'s driver with the calling thread inside its namespace."""
        with netns.inside(netns.namespace_path(self.host_ns(n))):
            yield self.drivers[n]

    def guest(self, n: int, spec: NetworkSpec, name: str, address: str) -> str:
        """A guest namespace on host ``n``'s bridge of ``spec`` with ``address``/24."""
        ns = f"{self.prefix}{name}"
        sh("ip", "netns", "add", ns)
        outside = f"{self.prefix}{name}"
        host = self.host_ns(n)
        bridge = self.drivers[n].bridge_name(spec.id)
        sh("ip", "-n", host, "link", "add", outside, "mtu", str(spec.mtu), "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", host, "link", "set", outside, "master", bridge, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "mtu", str(spec.mtu), "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        return ns

    def ping(self, ns: str, address: str, size: int = 56, count: int = 2) -> bool:
        """Whether ``address`` answers from ``ns`` (``size`` bytes of payload, never
        fragmented)."""
        proc = sh("ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-W", "1",
                  "-i", "0.2", "-M", "do", "-s", str(size), address, check=False)
        return proc.returncode == 0

    def reaches(self, ns: str, address: str, size: int = 56) -> bool:
        """``ping`` with a few tries (ARP and the first flood may take a moment)."""
        return any(self.ping(ns, address, size) for _ in range(3))


def network(vni: int, peers: list[str], mtu: int = 1450) -> NetworkSpec:
    return NetworkSpec(id=str(uuid.uuid4()), mtu=mtu, network_type="vxlan",
                       segmentation_id=vni, peers=peers,
                       subnets=[SubnetSpec(id=str(uuid.uuid4()), cidr="10.0.0.0/24",
                                           ip_version=4, gateway_ip=None,
                                           enable_dhcp=False)])


def vxlan_link(lab: Lab, n: int, spec: NetworkSpec) -> dict[str, Any] | None:
    with lab.on(n) as driver:
        return netns.links().get(driver.names.vxlan(spec.id))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    prefix = "x" + secrets.token_hex(2)[:3]
    lab = Lab(prefix, {n: LinuxL2(name_prefix=prefix, tunnel_ip=TUNNEL[n]) for n in (1, 2)})
    try:
        for n in (1, 2):
            sh("ip", "netns", "add", lab.host_ns(n))
            sh("ip", "-n", lab.host_ns(n), "link", "set", "lo", "up")
        # The "wire" between the two hosts, carrying their tunnel addresses.
        sh("ip", "-n", lab.host_ns(1), "link", "add", f"{prefix}u1", "type", "veth",
           "peer", "name", f"{prefix}u2", "netns", lab.host_ns(2))
        for n in (1, 2):
            sh("ip", "-n", lab.host_ns(n), "addr", "add", f"{TUNNEL[n]}/24", "dev",
               f"{prefix}u{n}")
            sh("ip", "-n", lab.host_ns(n), "link", "set", f"{prefix}u{n}", "up")
        yield lab
    finally:
        for n in (1, 2):
            if netns.namespace_path(lab.host_ns(n)).exists():
                with lab.on(n) as driver, contextlib.suppress(Exception):
                    driver.cleanup()
        for name in netns.namespaces():
            if name.startswith(prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="module")
def two_networks(lab: Lab) -> tuple[NetworkSpec, NetworkSpec]:
    """Network A (VNI 1001) and B (VNI 1002) on both hosts, each with a guest on each
    host: A's at 10.0.0.1 (host 1) and .2 (host 2), B's at .3 (host 1) and .4 (host 2)."""
    a, b = network(1001, []), network(1002, [])
    for n, peer in ((1, 2), (2, 1)):
        with lab.on(n) as driver:
            for spec in (a, b):
                driver.ensure_network(replace(spec, peers=[TUNNEL[peer]]))
    lab.guest(1, a, "a1", "10.0.0.1")
    lab.guest(2, a, "a2", "10.0.0.2")
    lab.guest(1, b, "b1", "10.0.0.3")
    lab.guest(2, b, "b2", "10.0.0.4")
    return a, b


def test_the_vxlan_device(lab: Lab, two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    a, _ = two_networks
    link = vxlan_link(lab, 1, a)
    assert link is not None
    data = link["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["port"], data["learning"]) == \
        (1001, "192.0.2.1", 4789, False)
    assert link["mtu"] == 1450
    assert link["master"] == lab.drivers[1].bridge_name(a.id)
    assert link["ifalias"] == a.id
    assert len(lab.drivers[1].names.vxlan(a.id)) <= 15
    with lab.on(1) as driver:
        assert flood_entries(driver.names.vxlan(a.id)) == ["192.0.2.2"]
        assert driver.vxlan_peers(a.id) == ["192.0.2.2"]


def test_guests_on_two_hosts_reach_each_other(
        lab: Lab, two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    assert lab.reaches(f"{lab.prefix}a1", "10.0.0.2")
    assert lab.reaches(f"{lab.prefix}a2", "10.0.0.1")
    assert lab.reaches(f"{lab.prefix}b1", "10.0.0.4")
    # The network's MTU crosses whole (1450 - 20 IP - 8 ICMP), one byte more does not.
    assert lab.ping(f"{lab.prefix}a1", "10.0.0.2", size=1422)
    assert not lab.ping(f"{lab.prefix}a1", "10.0.0.2", size=1423, count=1)


def test_another_vni_is_isolated(lab: Lab,
                                 two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    # Same subnet, other VNI: A's guest on host 1 never reaches B's guest on host 2.
    assert not lab.ping(f"{lab.prefix}a1", "10.0.0.4")
    assert not lab.ping(f"{lab.prefix}b2", "10.0.0.2")


def test_peers_follow_the_spec(lab: Lab,
                               two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    a, _ = two_networks
    guest = f"{lab.prefix}a1"
    assert lab.reaches(guest, "10.0.0.2")
    with lab.on(1) as driver:
        driver.ensure_network(replace(a, peers=[TUNNEL[1]]))  # only itself: no peer
        # The last peer gone, the device goes (a lone host opens no UDP port).
        assert driver.names.vxlan(a.id) not in netns.links()
        assert driver.vxlan_peers(a.id) == []
    assert not lab.ping(guest, "10.0.0.2")
    with lab.on(1) as driver:
        # Level-triggered and idempotent: the peer back (twice, with a stray address,
        # this host's own and a duplicate), exactly one flood entry.
        driver.ensure_network(replace(a, peers=[TUNNEL[2]]))
        before = netns.links()[driver.names.vxlan(a.id)]["ifindex"]
        for _ in range(2):
            driver.ensure_network(replace(a, peers=[TUNNEL[2], "192.0.2.2", TUNNEL[1],
                                                    "not-an-address", "::1"]))
        assert driver.vxlan_peers(a.id) == ["192.0.2.2"]
        assert netns.links()[driver.names.vxlan(a.id)]["ifindex"] == before
        # A stale peer (a host gone) is removed, the live one kept.
        driver.ensure_network(replace(a, peers=["192.0.2.2", "192.0.2.9"]))
        assert driver.vxlan_peers(a.id) == ["192.0.2.2", "192.0.2.9"]
        driver.ensure_network(replace(a, peers=["192.0.2.2"]))
        assert driver.vxlan_peers(a.id) == ["192.0.2.2"]
    assert lab.reaches(guest, "10.0.0.2")


def test_unicast_entries(lab: Lab, two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    a, _ = two_networks
    ns2 = f"{lab.prefix}a2"
    mac2 = netns.ip_json("link", "show", "eth0", namespace=ns2)[0]["address"]
    guest = f"{lab.prefix}a1"
    with lab.on(1) as driver:
        # a2's MAC goes to host 2 alone; a MAC on an unknown host is not kept.
        driver.ensure_network(replace(a, peers=[TUNNEL[2]], remote_macs={
            mac2: TUNNEL[2], "fa:16:3e:00:00:99": "192.0.2.9"}))
        assert driver.vxlan_unicast(a.id) == {mac2: {"192.0.2.2"}}
    assert lab.reaches(guest, "10.0.0.2")
    with lab.on(1) as driver:
        # Pointed at a host that is not there, a2 is unreachable although the
        # flooding list still has host 2 (the entry wins over flooding)...
        driver.ensure_network(replace(a, peers=[TUNNEL[2], "192.0.2.9"],
                                      remote_macs={mac2: "192.0.2.9"}))
        assert driver.vxlan_unicast(a.id) == {mac2: {"192.0.2.9"}}
    assert not lab.ping(guest, "10.0.0.2")
    with lab.on(1) as driver:
        # ... and without entries, flooding reaches it again; stale entries went.
        driver.ensure_network(replace(a, peers=[TUNNEL[2]]))
        assert driver.vxlan_unicast(a.id) == {}
        assert driver.vxlan_peers(a.id) == ["192.0.2.2"]
    assert lab.reaches(guest, "10.0.0.2")


def test_a_changed_vni_replaces_the_device(lab: Lab) -> None:
    spec = network(1010, [TUNNEL[2]])
    with lab.on(1) as driver:
        driver.ensure_network(spec)
        name = driver.names.vxlan(spec.id)
        driver.ensure_network(replace(spec, segmentation_id=1011))
        assert netns.links()[name]["linkinfo"]["info_data"]["id"] == 1011
        assert driver.vxlan_peers(spec.id) == ["192.0.2.2"]
        # No longer VXLAN (or no tunnel address): no device; the bridge stays.
        driver.ensure_network(replace(spec, network_type="flat", segmentation_id=None))
        assert name not in netns.links()
        assert driver.bridge_name(spec.id) in netns.links()
        without = LinuxL2(name_prefix=lab.prefix, tunnel_ip="127.0.0.1")
        assert without.tunnel_ip == ""
        without.ensure_network(spec)
        assert name not in netns.links()
        driver.ensure_network(replace(spec, peers=[]))
        assert name not in netns.links()
        driver.ensure_network(spec)
        assert name in netns.links()
        driver.delete_network(spec.id)
        assert name not in netns.links()
        assert driver.bridge_name(spec.id) not in netns.links()


def test_cleanup_removes_the_vxlan_devices(
        lab: Lab, two_networks: tuple[NetworkSpec, NetworkSpec]) -> None:
    assert LinuxL2.capabilities["vxlan_networks"] is True
    with lab.on(2) as driver:
        names = [driver.names.vxlan(s.id) for s in two_networks]
        assert all(n in netns.links() for n in names)
        driver.cleanup()
        links = netns.links()
        assert not [n for n in links if n.startswith(lab.prefix + "vx-")
                    or n.startswith(lab.prefix + "brq")]
        # The guests' veths are left (not ours), detached; the wire is untouched.
        assert f"{lab.prefix}u2" in links
    assert not lab.ping(f"{lab.prefix}a1", "10.0.0.2", count=1)

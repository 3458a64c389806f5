"""The Linux firewall driver against the real kernel: security groups between guests on
one bridge (remote group, prefix, ports), statefulness, anti-spoofing and allowed address
pairs, port security off, and removal.

The "host" is a namespace of its own (``<prefix>host``) with br_netfilter on; guests are
namespaces joined to the bridge by veths whose bridge end carries the port's tap name
(what the rules match with ``physdev``) and whose guest end the port's MAC. Everything
carries a random prefix and is removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from onestack.drivers import network
from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkSpec
from onestack.drivers.network.firewall.base import (
    AddressPair,
    PortRules,
    SecurityGroupRule,
)
from onestack.drivers.network.host import HostNetwork
from onestack.drivers.network.names import Names
from tests.host.test_network_l3 import fetch, serving
from tests.host.test_network_linux import random_mac, sh

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("iptables-restore") is None,
                       reason="iptables not installed"),
    pytest.mark.skipif(not Path("/proc/sys/net/bridge").exists(),
                       reason="br_netfilter not loaded"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
]

EGRESS = SecurityGroupRule("egress", "IPv4")
FROM_GROUP = SecurityGroupRule("ingress", "IPv4", remote_group_id="sg-1")


@dataclass
class Guest:
    ns: str
    ip: str
    port: PortRules


@dataclass
class Lab:
    prefix: str
    driver: HostNetwork
    network_id: str

    def guest(self, name: str, ip: str, groups: list[str]) -> Guest:
        port_id, mac = str(uuid.uuid4()), random_mac()
        ns, tap, inner = (f"{self.prefix}{name}", Names(self.prefix).tap(port_id),
                          f"{self.prefix}i{name}")
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", tap, "type", "veth", "peer", "name", inner, "netns", ns)
        sh("ip", "-n", ns, "link", "set", inner, "address", mac, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", inner)
        sh("ip", "link", "set", tap, "master", Names(self.prefix).bridge(self.network_id),
           "up")
        return Guest(ns, ip, PortRules(port_id=port_id, network_id=self.network_id,
                                       mac=mac, ips=[ip], security_group_ids=groups,
                                       rules=[EGRESS]))


@pytest.fixture
def lab() -> Iterator[Lab]:
    prefix = "o" + secrets.token_hex(2)[:3]
    state_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    host_ns = f"{prefix}host"
    sh("ip", "netns", "add", host_ns)
    try:
        with netns.inside(netns.namespace_path(host_ns)):
            sh("ip", "link", "set", "lo", "up")
            driver = network.load("linux", firewall="linux", state_dir=state_dir,
                                  name_prefix=prefix)
            lab = Lab(prefix, driver, str(uuid.uuid4()))
            try:
                driver.ensure_network(NetworkSpec(id=lab.network_id, mtu=1500, subnets=[]))
                yield lab
            finally:
                with contextlib.suppress(Exception):
                    driver.cleanup()
    finally:
        for name in netns.namespaces():
            if name.startswith(prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_security_groups_between_guests(lab: Lab) -> None:
    a = lab.guest("a", "10.73.0.5", ["sg-1"])
    b = lab.guest("b", "10.73.0.6", ["sg-1"])
    c = lab.guest("c", "10.73.0.7", ["sg-2"])
    a.port.rules.append(FROM_GROUP)
    b.port.rules.append(FROM_GROUP)
    members = {"sg-1": [a.ip, b.ip]}
    fw = lab.driver.firewall
    fw.apply([a.port, b.port, c.port], members)
    fw.apply([a.port, b.port, c.port], members)  # idempotent
    assert fw.list_ports() == sorted(g.port.port_id[:11] for g in (a, b, c))

    with serving(b.ns):
        assert fetch(a.ns, b.ip) == a.ip  # same group: allowed, replies pass (stateful)
        assert fetch(c.ns, b.ip) is None  # another group: dropped
        # A rule for c's address lets it in.
        b.port.rules.append(SecurityGroupRule("ingress", "IPv4", "tcp", 8080, 8080,
                                              f"{c.ip}/32"))
        fw.apply([a.port, b.port, c.port], members)
        assert fetch(c.ns, b.ip) == c.ip
        # c takes another address: anti-spoofing drops what it sends from it...
        b.port.rules.append(SecurityGroupRule("ingress", "IPv4", "tcp", 8080, 8080,
                                              "10.73.0.0/24"))
        fw.apply([a.port, b.port, c.port], members)
        sh("ip", "-n", c.ns, "addr", "flush", "dev", f"{lab.prefix}ic")
        sh("ip", "-n", c.ns, "addr", "add", "10.73.0.99/24", "dev", f"{lab.prefix}ic")
        assert fetch(c.ns, b.ip) is None
        # ... until it is an allowed address pair of the port.
        c.port.allowed_address_pairs.append(AddressPair("10.73.0.99"))
        fw.apply([a.port, b.port, c.port], members)
        # (c's neighbour entry for b failed meanwhile, its ARP being dropped: a retry
        # may be needed on a busy machine.)
        assert any(fetch(c.ns, b.ip) == "10.73.0.99" for _ in range(3))

    with serving(c.ns):
        assert fetch(a.ns, "10.73.0.99") is None  # c allows no ingress
        fw.apply([a.port, b.port, replace(c.port, port_security_enabled=False)], members)
        assert fetch(a.ns, "10.73.0.99") == a.ip  # port security off: not filtered
        fw.apply([], {})
        assert fw.list_ports() == []
        assert fetch(a.ns, "10.73.0.99") == a.ip

    fw.cleanup()
    assert f"-j {lab.prefix}sg-chain" not in netns.run(["iptables", "-S", "FORWARD"])


def _neighbour(ns: str, ip: str) -> str:
    return sh("ip", "-n", ns, "neigh", "show", ip)


def test_mac_and_arp_spoofing_stop_at_the_bridge(lab: Lab) -> None:
    """iptables sees neither ARP nor what the bridge learns: a port that claims
    another address in ARP, or sends from another MAC, is stopped before the bridge
    (the nft bridge table), and port security off lets it through."""
    a = lab.guest("a", "10.73.0.5", ["sg-1"])
    b = lab.guest("b", "10.73.0.6", ["sg-1"])
    a.port.rules.append(FROM_GROUP)
    b.port.rules.append(FROM_GROUP)
    members = {"sg-1": [a.ip, b.ip]}
    fw = lab.driver.firewall
    fw.apply([a.port, b.port], members)
    ib = f"{lab.prefix}ib"
    sh("ip", "-n", b.ns, "addr", "add", "10.73.0.50/24", "dev", ib)

    def arping(source: str) -> None:
        sh("ip", "netns", "exec", b.ns, "busybox", "arping", "-c", "2", "-w", "2", "-I", ib,
           "-s", source, a.ip, check=False)

    # Claiming its own address in ARP works (a learns b); another address does not.
    arping(b.ip)
    assert b.port.mac in _neighbour(a.ns, b.ip)
    arping("10.73.0.50")
    assert b.port.mac not in _neighbour(a.ns, "10.73.0.50")

    # b takes a's MAC: the bridge must not learn a's MAC on b's port.
    tap_b = Names(lab.prefix).tap(b.port.port_id)
    sh("ip", "-n", b.ns, "link", "set", ib, "address", a.port.mac)
    sh("ip", "netns", "exec", b.ns, "ping", "-c", "2", "-W", "1", "-b", "10.73.0.255",
       check=False)
    assert a.port.mac not in sh("bridge", "fdb", "show", "brport", tap_b)
    sh("ip", "-n", b.ns, "link", "set", ib, "address", b.port.mac)

    # Port security off on b: both get through.
    fw.apply([a.port, replace(b.port, port_security_enabled=False)], members)
    arping("10.73.0.50")
    assert b.port.mac in _neighbour(a.ns, "10.73.0.50")
    sh("ip", "-n", b.ns, "link", "set", ib, "address", a.port.mac)
    sh("ip", "netns", "exec", b.ns, "ping", "-c", "2", "-W", "1", "-b", "10.73.0.255",
       check=False)
    assert a.port.mac in sh("bridge", "fdb", "show", "brport", tap_b)
    fw.cleanup()
    assert f"{lab.prefix}sg-l2" not in sh("nft", "list", "tables", "bridge")


def _ping6(ns: str, address: str, source: str | None = None) -> bool:
    argv = ["ip", "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "2"]
    if source:
        argv += ["-I", source]
    return subprocess.run([*argv, address], capture_output=True).returncode == 0


def test_ipv6_rules_remote_groups_and_anti_spoofing(lab: Lab) -> None:
    guests = {}
    for name, v4, v6, group in (("a", "10.73.0.5", "fd00:73::5", "sg-1"),
                                ("b", "10.73.0.6", "fd00:73::6", "sg-1"),
                                ("c", "10.73.0.7", "fd00:73::7", "sg-2")):
        g = lab.guest(name, v4, [group])
        sh("ip", "-n", g.ns, "addr", "add", f"{v6}/64", "dev", f"{lab.prefix}i{name}",
           "nodad")
        g.port.ips.append(v6)
        g.port.rules.append(SecurityGroupRule("egress", "IPv6"))
        guests[name] = g
    a, b, c = guests["a"], guests["b"], guests["c"]
    # b lets ICMPv6 in from its group's members ("icmp" in an IPv6 rule: ICMPv6).
    b.port.rules.append(SecurityGroupRule("ingress", "IPv6", "icmp",
                                          remote_group_id="sg-1"))
    members = {"sg-1": ["10.73.0.5", "fd00:73::5", "10.73.0.6", "fd00:73::6"]}
    lab.driver.firewall.apply([a.port, b.port, c.port], members)
    assert _ping6(a.ns, "fd00:73::6")  # a member: allowed, neighbour discovery works
    assert not _ping6(c.ns, "fd00:73::6")  # another group: dropped
    # a sends from an address that is not its own: dropped before b sees it.
    sh("ip", "-n", a.ns, "addr", "add", "fd00:73::99/64", "dev", f"{lab.prefix}ia", "nodad")
    members["sg-1"].append("fd00:73::99")  # even were it a member
    lab.driver.firewall.apply([a.port, b.port, c.port], members)
    assert not _ping6(a.ns, "fd00:73::6", source="fd00:73::99")
    assert _ping6(a.ns, "fd00:73::6", source="fd00:73::5")

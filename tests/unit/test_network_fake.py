"""The fake network drivers (L2, DHCP, L3, firewall) put together as the host's network,
the loader by kind, and the link names the fakes share with the Linux drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.drivers import network
from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)
from onestack.drivers.network.dhcp.fake import FakeDhcp
from onestack.drivers.network.firewall.base import (
    AddressPair,
    PortRules,
    SecurityGroupRule,
)
from onestack.drivers.network.firewall.fake import FakeFirewall
from onestack.drivers.network.firewall.noop import NoopFirewall
from onestack.drivers.network.host import HostNetwork
from onestack.drivers.network.l2.fake import FakeL2
from onestack.drivers.network.l3.base import FloatingIp, Route, RouterPort, RouterSpec
from onestack.drivers.network.l3.fake import FakeL3
from onestack.drivers.network.l3.noop import NoopL3
from onestack.drivers.network.names import Names, check_id

NET = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
PORT = "9e8d7c6b-5a49-4838-a7b6-c5d4e3f2a1b0"


def spec(hosts: list[DhcpHost] | None = None) -> NetworkSpec:
    return NetworkSpec(
        id=NET, mtu=1450,
        subnets=[SubnetSpec(id="s1", cidr="10.0.0.0/24", ip_version=4,
                            gateway_ip="10.0.0.1", enable_dhcp=True,
                            host_routes=[{"destination": "10.1.0.0/16",
                                          "nexthop": "10.0.0.9"}])],
        dhcp_mac="fa:16:3e:00:00:02", dhcp_ips=["10.0.0.2"],
        hosts=[DhcpHost(PORT, "fa:16:3e:00:00:05", ["10.0.0.5"], "vm")]
        if hosts is None else hosts)


def port() -> PortSpec:
    return PortSpec(id=PORT, network_id=NET, mac="fa:16:3e:00:00:05", mtu=1450)


def fake(state_dir: Path | None = None) -> HostNetwork:
    return network.load("fake", state_dir=state_dir)


def test_loaded_by_name(tmp_path: Path) -> None:
    driver = network.load("fake", state_dir=tmp_path, name_prefix="h1", unknown="ignored")
    assert isinstance(driver.l2, FakeL2) and isinstance(driver.dhcp, FakeDhcp)
    assert isinstance(driver.l3, FakeL3) and isinstance(driver.firewall, FakeFirewall)
    assert driver.metadata_socket(NET) is None
    assert driver.l2.bridge_name(NET) == Names("h1").bridge(NET) == "h1brq3f2a1b4c-5"


def test_one_kind_overrides_the_shorthand(tmp_path: Path) -> None:
    driver = network.load("fake", l3="noop", firewall="noop", state_dir=tmp_path)
    assert driver.drivers() == {"l2": "fake", "dhcp": "fake", "l3": "noop",
                                "firewall": "noop"}
    assert isinstance(driver.l3, NoopL3) and isinstance(driver.firewall, NoopFirewall)
    assert network.load("linux", state_dir=tmp_path).drivers() == {
        "l2": "linux", "dhcp": "linux", "l3": network.SHORTHANDS["linux"]["l3"],
        "firewall": "linux"}
    with pytest.raises(ValueError, match="unknown network driver 'nope'"):
        network.load("nope")
    with pytest.raises(ValueError, match="unknown l3 network driver 'nope'"):
        network.load("fake", l3="nope")
    with pytest.raises(ValueError, match="unknown network driver kind"):
        network.load_kind("l4", "fake")


def test_capabilities_declared_per_kind_and_merged(tmp_path: Path) -> None:
    caps = network.load("fake", l3="noop", firewall="noop").capabilities
    assert caps["dhcpv4"] and not caps["metadata_service"]  # the fake serves no socket
    assert caps["routers"] is False and caps["security_groups"] is False
    # Names never collide between kinds (the merge would hide one), and every backend of
    # a kind declares the same names.
    per_kind = {}
    for kind, drivers in network.DRIVERS.items():
        names = {frozenset(network.load_kind(kind, name, state_dir=tmp_path).capabilities)
                 for name in drivers}
        assert len(names) == 1, kind
        per_kind[kind] = next(iter(names))
    kinds = list(per_kind.values())
    for i, one in enumerate(kinds):
        for other in kinds[i + 1:]:
            assert not one & other


def test_networks_ports_and_hosts() -> None:
    driver = fake()
    with pytest.raises(NetworkDriverError, match="no bridge"):
        driver.plug_port(port())
    driver.ensure_network(spec())
    driver.ensure_network(spec())
    assert driver.list_networks() == [NET]
    assert [h.mac for h in driver.dhcp.hosts(NET)] == ["fa:16:3e:00:00:05"]
    tap = driver.plug_port(port())
    assert tap == "tap9e8d7c6b-5a" == driver.tap_name(PORT)
    assert driver.list_ports() == [PORT]

    driver.ensure_network(spec(hosts=[]))
    assert driver.dhcp.hosts(NET) == []
    driver.unplug_port(PORT)
    driver.unplug_port(PORT)
    driver.delete_network(NET)
    driver.delete_network(NET)
    assert driver.list_networks() == [] and driver.list_ports() == []
    assert driver.dhcp.hosts(NET) == []
    assert driver.l2.record.calls[:3] == [("plug_port", PORT), ("ensure_network", NET),
                                          ("ensure_network", NET)]
    assert driver.dhcp.record.calls[:2] == [("ensure_dhcp", NET), ("ensure_dhcp", NET)]


def test_network_without_dhcp_port_has_a_bridge_only() -> None:
    driver = fake()
    driver.ensure_network(spec())
    driver.ensure_network(NetworkSpec(id=NET, mtu=1450, subnets=[]))
    assert driver.l2.list_networks() == [NET] and driver.dhcp.list_networks() == []
    assert driver.list_networks() == [NET]


def test_persisted_across_instances(tmp_path: Path) -> None:
    first = fake(tmp_path)
    first.ensure_network(spec())
    first.plug_port(port())
    first.l3.ensure_router(router())
    first.firewall.apply([rules()], {})
    second = fake(tmp_path)
    assert second.l2.networks[NET] == spec() == second.dhcp.networks[NET]
    assert second.l2.ports == {PORT: port()}
    assert second.l3.routers == {ROUTER: router()}
    assert second.firewall.ports == {PORT: rules()}
    second.cleanup()
    third = fake(tmp_path)
    assert third.list_networks() == [] and third.l3.list_routers() == []
    assert third.firewall.list_ports() == []


def test_invalid_specs_are_refused_as_by_linux() -> None:
    driver = fake()
    bad_mac = spec(hosts=[DhcpHost(PORT, "not-a-mac", ["10.0.0.5"])])
    with pytest.raises(NetworkDriverError, match="MAC"):
        driver.ensure_network(bad_mac)
    bad_id = NetworkSpec(id="../etc", mtu=1500, subnets=[])
    with pytest.raises(NetworkDriverError, match="invalid network id"):
        driver.ensure_network(bad_id)
    assert driver.list_networks() == []  # refused before the bridge was made


def test_fail_next() -> None:
    driver = fake()
    driver.l2.record.fail_next("ensure_network", "bridge exploded")
    with pytest.raises(NetworkDriverError, match="bridge exploded"):
        driver.ensure_network(spec())
    driver.ensure_network(spec())  # only the next call fails
    assert driver.list_networks() == [NET]
    with pytest.raises(ValueError):
        driver.l2.record.fail_next("no_such_method")
    driver.l3.record.fail_next("ensure_router")
    with pytest.raises(NetworkDriverError, match="injected"):
        driver.l3.ensure_router(router())


ROUTER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
EXT = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"


def router(**changes: object) -> RouterSpec:
    spec = RouterSpec(
        id=ROUTER,
        interfaces=[RouterPort("qr-port-1", NET, "fa:16:3e:00:00:01", ["10.0.0.1/24"])],
        gateway=RouterPort("qg-port-1", EXT, "fa:16:3e:00:01:01", ["203.0.113.10/24"]),
        external_gateways=["203.0.113.1"],
        routes=[Route("10.1.0.0/16", "10.0.0.9")],
        floating_ips=[FloatingIp("203.0.113.20", "10.0.0.5")])
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def rules(**changes: object) -> PortRules:
    value = PortRules(
        port_id=PORT, network_id=NET, mac="fa:16:3e:00:00:05", ips=["10.0.0.5"],
        rules=[SecurityGroupRule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),
               SecurityGroupRule("ingress", "IPv4", None, remote_group_id="sg-1"),
               SecurityGroupRule("egress", "IPv6")],
        security_group_ids=["sg-1"],
        allowed_address_pairs=[AddressPair("10.0.0.100/32")])
    for key, val in changes.items():
        setattr(value, key, val)
    return value


def test_fake_routers() -> None:
    driver = fake()
    driver.l3.ensure_router(router())
    driver.l3.ensure_router(router())
    assert driver.l3.list_routers() == [ROUTER]
    driver.l3.ensure_router(router(floating_ips=[]))
    assert driver.l3.routers[ROUTER].floating_ips == []
    driver.l3.remove_router(ROUTER)
    driver.l3.remove_router(ROUTER)
    assert driver.l3.list_routers() == []


@pytest.mark.parametrize("changes, message", [
    ({"id": "a b"}, "invalid router id"),
    ({"gateway": None}, "needs a gateway port"),
    ({"routes": [Route("10.1.0.0/16", "fd00::1")]}, "another IP version"),
    ({"floating_ips": [FloatingIp("2001:db8::5", "10.0.0.5")]}, "IPv4 only"),
    ({"floating_ips": [FloatingIp("203.0.113.20", "10.0.0.5"),
                       FloatingIp("203.0.113.21", "10.0.0.5")]}, "two floating IPs"),
    ({"interfaces": [RouterPort("p", NET, "fa:16:3e:00:00:01", ["10.0.0.1"])]},
     "no prefix length"),
])
def test_fake_routers_refuse_what_linux_refuses(changes: dict[str, object],
                                                message: str) -> None:
    driver = fake()
    with pytest.raises(NetworkDriverError, match=message):
        driver.l3.ensure_router(router(**changes))
    assert driver.l3.list_routers() == []


def test_noop_l3_refuses_routers() -> None:
    with pytest.raises(NetworkDriverError, match="runs no routers"):
        NoopL3().ensure_router(router())
    assert NoopL3().list_routers() == []


def test_fake_firewall_replaces_the_whole_set() -> None:
    driver = fake()
    driver.firewall.apply([rules()], {"sg-1": ["10.0.0.5", "10.0.0.6"]})
    assert driver.firewall.list_ports() == [PORT]
    assert driver.firewall.group_members == {"sg-1": ["10.0.0.5", "10.0.0.6"]}
    driver.firewall.apply([], {})
    assert driver.firewall.list_ports() == []


@pytest.mark.parametrize("changes, message", [
    ({"rules": [SecurityGroupRule("sideways")]}, "direction"),
    ({"rules": [SecurityGroupRule("ingress", "IPv5")]}, "ethertype"),
    ({"rules": [SecurityGroupRule("ingress", "IPv4", "tcp", 80, 22)]}, "port range"),
    ({"rules": [SecurityGroupRule("ingress", "IPv4", "icmp", 300)]}, "ICMP"),
    ({"rules": [SecurityGroupRule("ingress", "IPv6", remote_ip_prefix="10.0.0.0/8")]},
     "is not IPv6"),
    ({"rules": [SecurityGroupRule("ingress", remote_ip_prefix="10.0.0.0/8",
                                  remote_group_id="sg-1")]}, "not both"),
    ({"mac": "zz"}, "MAC"),
])
def test_firewalls_refuse_bad_rule_sets(changes: dict[str, object], message: str) -> None:
    for firewall in (FakeFirewall(), NoopFirewall()):
        with pytest.raises(NetworkDriverError, match=message):
            firewall.apply([rules(**changes)], {})


def test_names_fit_in_ifnamsiz() -> None:
    plain = Names()
    assert plain.bridge(NET) == "brq3f2a1b4c-5d"
    assert plain.tap(PORT) == "tap9e8d7c6b-5a"
    assert plain.dhcp_namespace(NET) == f"qdhcp-{NET}"
    prefixed = Names("o1a2")
    assert prefixed.bridge(NET) == "o1a2brq3f2a1b4c"
    assert prefixed.dhcp_bridge_end(NET) == "o1a2dh-3f2a1b4c"
    assert prefixed.dhcp_namespace_end(NET) == "o1a2ns-3f2a1b4c"
    assert prefixed.dhcp_namespace(NET) == f"o1a2qdhcp-{NET}"
    for name in (prefixed.bridge(NET), prefixed.tap(PORT), prefixed.dhcp_bridge_end(NET)):
        assert len(name) <= 15
    assert prefixed.link_id("tap", prefixed.tap(PORT)) == PORT[:8]
    assert prefixed.link_id("tap", plain.tap(PORT)) is None
    assert prefixed.namespace_network(f"o1a2qdhcp-{NET}") == NET
    assert plain.namespace_network(f"o1a2qdhcp-{NET}") is None


def test_names_refuse_bad_prefixes_and_ids() -> None:
    with pytest.raises(ValueError, match="too long"):
        Names("toolong")
    with pytest.raises(ValueError):
        Names("a/b")
    with pytest.raises(ValueError):
        check_id("port", "a b")
    assert check_id("port", PORT) == PORT


def test_cleanup_tries_every_kind_and_reports_together() -> None:
    driver = fake()
    driver.ensure_network(spec())
    driver.l3.ensure_router(router())
    driver.dhcp.record.fail_next("cleanup", "dnsmasq would not die")
    with pytest.raises(NetworkDriverError, match="dhcp: dnsmasq would not die"):
        driver.cleanup()
    assert driver.l3.list_routers() == [] and driver.l2.list_networks() == []
    for kind in ("l3", "firewall", "dhcp", "l2"):
        assert ("cleanup", "") in getattr(driver, kind).record.calls, kind

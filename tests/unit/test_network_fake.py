"""The fake network driver, and the link names it shares with the Linux driver."""

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
from onestack.drivers.network.fake import FakeNetwork
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


def test_loaded_by_name(tmp_path: Path) -> None:
    driver = network.load("fake", state_dir=tmp_path, name_prefix="h1", unknown="ignored")
    assert isinstance(driver, FakeNetwork)
    assert driver.metadata_socket(NET) is None


def test_networks_ports_and_hosts() -> None:
    driver = FakeNetwork()
    with pytest.raises(NetworkDriverError, match="no bridge"):
        driver.plug_port(port())
    driver.ensure_network(spec())
    driver.ensure_network(spec())
    assert driver.list_networks() == [NET]
    assert [h.mac for h in driver.hosts(NET)] == ["fa:16:3e:00:00:05"]
    tap = driver.plug_port(port())
    assert tap == "tap9e8d7c6b-5a" == driver.tap_name(PORT)
    assert driver.list_ports() == [PORT]

    driver.ensure_network(spec(hosts=[]))
    assert driver.hosts(NET) == []
    driver.unplug_port(PORT)
    driver.unplug_port(PORT)
    driver.delete_network(NET)
    driver.delete_network(NET)
    assert driver.list_networks() == [] and driver.list_ports() == []
    assert driver.hosts(NET) == []
    assert driver.calls[:3] == [("plug_port", PORT), ("ensure_network", NET),
                                ("ensure_network", NET)]


def test_persisted_across_instances(tmp_path: Path) -> None:
    first = FakeNetwork(tmp_path)
    first.ensure_network(spec())
    first.plug_port(port())
    second = FakeNetwork(tmp_path)
    assert second.networks[NET] == spec()
    assert second.ports == {PORT: port()}
    second.cleanup()
    assert FakeNetwork(tmp_path).list_networks() == []


def test_invalid_specs_are_refused_as_by_linux() -> None:
    driver = FakeNetwork()
    bad_mac = spec(hosts=[DhcpHost(PORT, "not-a-mac", ["10.0.0.5"])])
    with pytest.raises(NetworkDriverError, match="MAC"):
        driver.ensure_network(bad_mac)
    bad_id = NetworkSpec(id="../etc", mtu=1500, subnets=[])
    with pytest.raises(NetworkDriverError, match="invalid network id"):
        driver.ensure_network(bad_id)
    assert driver.list_networks() == []


def test_fail_next() -> None:
    driver = FakeNetwork()
    driver.fail_next("ensure_network", "bridge exploded")
    with pytest.raises(NetworkDriverError, match="bridge exploded"):
        driver.ensure_network(spec())
    driver.ensure_network(spec())  # only the next call fails
    assert driver.list_networks() == [NET]
    with pytest.raises(ValueError):
        driver.fail_next("no_such_method")


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

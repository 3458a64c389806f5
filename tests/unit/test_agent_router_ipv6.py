"""The agent's translation of routers for routed IPv6 and metadata (no root needed):
which legs advertise which prefixes, which answer metadata, the host's IPv6 gateway
address on the external bridge."""

from __future__ import annotations

from onestack.agent.reconciler import _network_spec, _router_spec
from onestack.hostlink import types as wire

TENANT = "11111111-1111-4111-8111-111111111111"
QUIET = "22222222-2222-4222-8222-222222222222"
PUBLIC = "33333333-3333-4333-8333-333333333333"


def networks() -> dict[str, wire.NetworkSpec]:
    return {
        TENANT: wire.NetworkSpec(id=TENANT, mtu=1450, subnets=[
            wire.SubnetSpec(id="s4", cidr="10.0.0.0/24", ip_version=4,
                            gateway_ip="10.0.0.1", enable_dhcp=True),
            wire.SubnetSpec(id="s6", cidr="2001:db8:8000::/64", ip_version=6,
                            gateway_ip="2001:db8:8000::1", enable_dhcp=True,
                            ipv6_ra_mode="slaac", ipv6_address_mode="slaac"),
            wire.SubnetSpec(id="st", cidr="2001:db8:8000:1::/64", ip_version=6,
                            gateway_ip="2001:db8:8000:1::1", enable_dhcp=True,
                            ipv6_address_mode="dhcpv6-stateless",
                            dns_nameservers=["2001:db8::53", "192.0.2.53"])]),
        QUIET: wire.NetworkSpec(id=QUIET, mtu=1450, subnets=[
            wire.SubnetSpec(id="q4", cidr="10.1.0.0/24", ip_version=4,
                            gateway_ip="10.1.0.1", enable_dhcp=False)]),
        PUBLIC: wire.NetworkSpec(id=PUBLIC, mtu=1500, external=True, subnets=[
            wire.SubnetSpec(id="p4", cidr="203.0.113.0/24", ip_version=4,
                            gateway_ip="203.0.113.1", enable_dhcp=False),
            wire.SubnetSpec(id="p6", cidr="2001:db8::/64", ip_version=6,
                            gateway_ip="2001:db8::1", enable_dhcp=False)]),
    }


def router() -> wire.RouterSpec:
    return wire.RouterSpec(
        id="44444444-4444-4444-8444-444444444444",
        interfaces=[
            wire.RouterPort("a", TENANT, "fa:16:3e:00:00:01", ["10.0.0.1"], ["s4"]),
            wire.RouterPort("b", TENANT, "fa:16:3e:00:00:02",
                            ["2001:db8:8000::1", "2001:db8:8000:1::1"], ["s6", "st"]),
            wire.RouterPort("c", QUIET, "fa:16:3e:00:00:03", ["10.1.0.1"], ["q4"])],
        gateway=wire.RouterPort("g", PUBLIC, "fa:16:3e:00:00:04",
                                ["203.0.113.10", "2001:db8::10"], ["p4", "p6"]))


def test_legs_advertise_their_ipv6_prefixes_and_quiet_networks_get_metadata() -> None:
    spec = _router_spec(router(), networks(), host_ipv6_routes=True)
    a, b, c = spec.interfaces
    assert a.advertise == [] and b.addresses == ["2001:db8:8000::1/64",
                                                 "2001:db8:8000:1::1/64"]
    assert [(x.prefix, x.mode, x.dns_nameservers) for x in b.advertise] == [
        ("2001:db8:8000::/64", "slaac", []),
        ("2001:db8:8000:1::/64", "dhcpv6-stateless", ["2001:db8::53"])]
    # The tenant network has IPv4 DHCP (its namespace answers metadata); the quiet one
    # has none: its leg redirects metadata to the router's socket.
    assert (a.metadata, b.metadata, c.metadata) == (False, False, True)
    assert spec.external_gateways == ["203.0.113.1", "2001:db8::1"]
    assert spec.host_ipv6_routes is True
    assert _router_spec(router(), networks()).host_ipv6_routes is False


def test_the_host_holds_both_external_gateways() -> None:
    spec = _network_spec(networks()[PUBLIC], external_gateway_on_host=True)
    assert spec.host_addresses == ["203.0.113.1/24", "2001:db8::1/64"]
    assert _network_spec(networks()[PUBLIC]).host_addresses == []
    assert _network_spec(networks()[TENANT], external_gateway_on_host=True
                         ).host_addresses == []

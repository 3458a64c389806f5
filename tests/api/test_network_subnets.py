"""/v2.0/subnets: IPv4 and IPv6, gateways, allocation pools, DNS servers, host routes,
IPv6 modes, validation errors with Neutron's types, policy, in process."""

from __future__ import annotations

import pytest

from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    post,
    put,
    subnet,
    tenant,
)


@pytest.fixture
def net(cloud):
    return network(cloud, name="subnets")


def bad_subnet(cloud, net_id, status, type_=None, *words, token="admin", **attrs):
    attrs.setdefault("ip_version", 4)
    r = cloud.request("POST", f"{V2}/subnets", token=token,
                      json={"subnet": {"network_id": net_id, **attrs}})
    return neutron_error(r, status, type_, *words)


def test_ipv4_defaults_and_lifecycle(cloud, net):
    sub = subnet(cloud, net["id"], "10.1.0.0/24", name="v4")
    assert sub["ip_version"] == 4 and sub["cidr"] == "10.1.0.0/24"
    assert sub["gateway_ip"] == "10.1.0.1" and sub["enable_dhcp"] is True
    assert sub["allocation_pools"] == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    assert sub["dns_nameservers"] == [] and sub["host_routes"] == []
    assert sub["ipv6_ra_mode"] is None and sub["ipv6_address_mode"] is None
    assert sub["subnetpool_id"] is None and sub["network_id"] == net["id"]
    assert sub["project_id"] == cloud.admin_project_id
    assert get(cloud, f"subnets/{sub['id']}")["subnet"] == sub
    assert ids(get(cloud, f"subnets?network_id={net['id']}"), "subnets") == [sub["id"]]

    r = put(cloud, f"subnets/{sub['id']}", "subnet", name="renamed",
            dns_nameservers=["192.0.2.53", "192.0.2.54"],
            host_routes=[{"destination": "192.168.0.0/16", "nexthop": "10.1.0.254"}],
            enable_dhcp=False)
    assert r.status_code == 200, r.text
    updated = r.json()["subnet"]
    assert updated["name"] == "renamed" and updated["enable_dhcp"] is False
    assert updated["dns_nameservers"] == ["192.0.2.53", "192.0.2.54"]
    assert updated["host_routes"] == [{"destination": "192.168.0.0/16",
                                       "nexthop": "10.1.0.254"}]
    assert updated["revision_number"] > sub["revision_number"]
    assert delete(cloud, f"subnets/{sub['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert get(cloud, f"networks/{net['id']}")["network"]["subnets"] == []


def test_gateway_and_pools(cloud, net):
    sub = subnet(cloud, net["id"], "10.2.0.0/24", gateway_ip="10.2.0.254")
    assert sub["allocation_pools"] == [{"start": "10.2.0.1", "end": "10.2.0.253"}]
    mid = subnet(cloud, net["id"], "10.3.0.0/24", gateway_ip="10.3.0.100")
    assert mid["allocation_pools"] == [{"start": "10.3.0.1", "end": "10.3.0.99"},
                                       {"start": "10.3.0.101", "end": "10.3.0.254"}]
    none = subnet(cloud, net["id"], "10.4.0.0/24", gateway_ip=None)
    assert none["gateway_ip"] is None
    assert none["allocation_pools"] == [{"start": "10.4.0.1", "end": "10.4.0.254"}]
    pools = [{"start": "10.5.0.100", "end": "10.5.0.110"},
             {"start": "10.5.0.10", "end": "10.5.0.20"}]
    given = subnet(cloud, net["id"], "10.5.0.0/24", allocation_pools=pools)
    assert given["allocation_pools"] == pools


@pytest.mark.parametrize("attrs,status,type_", [
    ({"cidr": "10.9.0.5/24"}, 400, "HTTPBadRequest"),
    ({"cidr": "banana"}, 400, "HTTPBadRequest"),
    ({"cidr": "2001:db8::/64"}, 400, "InvalidInput"),  # ip_version 4
    ({"cidr": "10.9.0.0/24", "ip_version": 5}, 400, None),
    ({"cidr": "10.9.0.0/24", "gateway_ip": "10.8.0.1"}, 400, "InvalidInput"),
    ({"cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.0"}, 400, "InvalidInput"),
    ({"cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.255"}, 400, "InvalidInput"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.20", "end": "10.9.0.10"}]},
     400, "InvalidAllocationPool"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.2", "end": "x"}]},
     400, "InvalidAllocationPool"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.2", "end": "10.9.1.5"}]},
     400, "OutOfBoundsAllocationPool"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.0", "end": "10.9.0.5"}]},
     400, "OutOfBoundsAllocationPool"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.2", "end": "10.9.0.255"}]},
     400, "OutOfBoundsAllocationPool"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.2", "end": "10.9.0.50"},
                                                  {"start": "10.9.0.40", "end": "10.9.0.60"}]},
     409, "OverlappingAllocationPools"),
    ({"cidr": "10.9.0.0/24", "allocation_pools": [{"start": "10.9.0.1", "end": "10.9.0.50"}]},
     409, "GatewayConflictWithAllocationPools"),
    ({"cidr": "10.9.0.0/24", "dns_nameservers": ["1.1.1.1", "1.1.1.1"]}, 400, None),
    ({"cidr": "10.9.0.0/24", "dns_nameservers": ["dns.example"]}, 400, None),
    ({"cidr": "10.9.0.0/24", "dns_nameservers": [f"10.0.0.{i}" for i in range(6)]}, 400,
     "DNSNameServersExhausted"),
    ({"cidr": "10.9.0.0/24", "host_routes": [{"destination": "x", "nexthop": "10.9.0.9"}]},
     400, None),
    ({"cidr": "10.9.0.0/24", "host_routes": [{"destination": "2001:db8::/64",
                                              "nexthop": "10.9.0.9"}]}, 400, "InvalidInput"),
    ({"cidr": "10.9.0.0/24", "host_routes": [
        {"destination": f"172.16.{i}.0/24", "nexthop": "10.9.0.9"} for i in range(21)]},
     400, "HostRoutesExhausted"),
    ({"cidr": "10.9.0.0/24", "ipv6_ra_mode": "slaac"}, 400, "InvalidInput"),
    ({"cidr": "10.9.0.0/24", "subnetpool_id": "pool"}, 404, "SubnetPoolNotFound"),
    ({"ip_version": 4}, 400, "InvalidInput"),
])
def test_validation(cloud, net, attrs, status, type_):
    bad_subnet(cloud, net["id"], status, type_, **attrs)


def test_overlapping_subnets_on_one_network(cloud, net):
    subnet(cloud, net["id"], "10.6.0.0/16")
    bad_subnet(cloud, net["id"], 400, "InvalidInput", "overlaps", cidr="10.6.5.0/24")
    other = network(cloud, name="other")
    subnet(cloud, other["id"], "10.6.5.0/24")  # fine on another network


def test_unknown_network(cloud):
    bad_subnet(cloud, "ghost", 404, "NetworkNotFound", cidr="10.0.0.0/24")


def test_ipv6_slaac(cloud, net):
    sub = subnet(cloud, net["id"], "2001:db8:1::/64", ipv6_ra_mode="slaac",
                 ipv6_address_mode="slaac")
    assert sub["ip_version"] == 6 and sub["gateway_ip"] == "2001:db8:1::1"
    assert sub["allocation_pools"] == [{"start": "2001:db8:1::2",
                                        "end": "2001:db8:1:0:ffff:ffff:ffff:ffff"}]
    assert (sub["ipv6_ra_mode"], sub["ipv6_address_mode"]) == ("slaac", "slaac")


@pytest.mark.parametrize("ra,addr,ok", [
    ("slaac", "slaac", True),
    ("dhcpv6-stateless", "dhcpv6-stateless", True),
    ("dhcpv6-stateful", "dhcpv6-stateful", True),
    (None, "slaac", True),
    ("slaac", None, True),
    (None, "dhcpv6-stateless", True),
    ("slaac", "dhcpv6-stateful", False),
    ("dhcpv6-stateless", "slaac", False),
    ("bogus", None, False),
])
def test_ipv6_mode_combinations(cloud, net, ra, addr, ok):
    attrs = {k: v for k, v in (("ipv6_ra_mode", ra), ("ipv6_address_mode", addr)) if v}
    if ok:
        sub = subnet(cloud, net["id"], "2001:db8:2::/64", **attrs)
        assert (sub["ipv6_ra_mode"], sub["ipv6_address_mode"]) == (ra, addr)
    else:
        bad_subnet(cloud, net["id"], 400, None, cidr="2001:db8:2::/64", ip_version=6,
                   **attrs)


def test_ipv6_slaac_needs_a_64(cloud, net):
    bad_subnet(cloud, net["id"], 400, "InvalidInput", "/64", cidr="2001:db8:3::/80",
               ip_version=6, ipv6_address_mode="slaac")
    bad_subnet(cloud, net["id"], 400, "InvalidInput", cidr="2001:db8:3::/64", ip_version=6,
               ipv6_address_mode="slaac", enable_dhcp=False)
    stateful = subnet(cloud, net["id"], "2001:db8:3::/80", ipv6_address_mode="dhcpv6-stateful")
    assert stateful["cidr"] == "2001:db8:3::/80"


def test_update_checks(cloud, net):
    sub = subnet(cloud, net["id"], "10.7.0.0/24",
                 allocation_pools=[{"start": "10.7.0.10", "end": "10.7.0.20"}])
    path = f"subnets/{sub['id']}"
    neutron_error(put(cloud, path, "subnet", cidr="10.8.0.0/24"), 400, None, "read-only")
    neutron_error(put(cloud, path, "subnet", ipv6_ra_mode="slaac"), 400)
    neutron_error(put(cloud, path, "subnet", gateway_ip="10.7.0.15"), 409,
                  "GatewayConflictWithAllocationPools")
    r = put(cloud, path, "subnet", gateway_ip="10.7.0.254",
            allocation_pools=[{"start": "10.7.0.2", "end": "10.7.0.200"}])
    assert r.status_code == 200, r.text
    assert r.json()["subnet"]["gateway_ip"] == "10.7.0.254"
    assert r.json()["subnet"]["allocation_pools"] == [{"start": "10.7.0.2",
                                                       "end": "10.7.0.200"}]
    r = put(cloud, path, "subnet", gateway_ip=None)
    assert r.status_code == 200 and r.json()["subnet"]["gateway_ip"] is None
    neutron_error(put(cloud, path, "subnet", name=None), 400)


def test_delete_in_use(cloud, net):
    sub = subnet(cloud, net["id"], "10.10.0.0/24")
    p = port(cloud, net["id"])
    neutron_error(delete(cloud, f"subnets/{sub['id']}"), 409, "SubnetInUse")
    assert delete(cloud, f"ports/{p['id']}").status_code == 204
    # a DHCP port's address goes with the subnet
    dhcp = port(cloud, net["id"], device_owner="network:dhcp")
    assert delete(cloud, f"subnets/{sub['id']}").status_code == 204
    assert get(cloud, f"ports/{dhcp['id']}")["port"]["fixed_ips"] == []


def test_slaac_subnet_delete_takes_its_addresses(cloud, net):
    v4 = subnet(cloud, net["id"], "10.11.0.0/24")
    v6 = subnet(cloud, net["id"], "2001:db8:11::/64", ipv6_ra_mode="slaac",
                ipv6_address_mode="slaac")
    p = port(cloud, net["id"])
    assert {ip["subnet_id"] for ip in p["fixed_ips"]} == {v4["id"], v6["id"]}
    assert delete(cloud, f"subnets/{v6['id']}").status_code == 204
    assert [ip["subnet_id"] for ip in get(cloud, f"ports/{p['id']}")["port"]["fixed_ips"]] \
        == [v4["id"]]


def test_policy_and_visibility(cloud):
    one, two = tenant(cloud, "sub-one"), tenant(cloud, "sub-two")
    mine = network(cloud, one.token)
    sub = subnet(cloud, mine["id"], "10.12.0.0/24", token=one.token)
    assert sub["project_id"] == one.project_id
    # invisible network: 404; visible but not theirs (shared, external): 403
    bad_subnet(cloud, mine["id"], 404, "NetworkNotFound", token=two.token, cidr="10.1.0.0/24")
    shared = network(cloud, shared=True)
    shared_sub = subnet(cloud, shared["id"], "10.13.0.0/24")
    bad_subnet(cloud, shared["id"], 403, "PolicyNotAuthorized", token=two.token,
               cidr="10.14.0.0/24")
    seen = ids(get(cloud, "subnets", token=two.token), "subnets")
    public = get(cloud, "subnets?name=public-subnet")["subnets"][0]
    assert shared_sub["id"] in seen and public["id"] in seen and sub["id"] not in seen
    neutron_error(cloud.request("GET", f"{V2}/subnets/{sub['id']}", token=two.token), 404,
                  "SubnetNotFound")
    neutron_error(put(cloud, f"subnets/{shared_sub['id']}", "subnet", token=two.token,
                      name="x"), 403, "PolicyNotAuthorized")
    neutron_error(delete(cloud, f"subnets/{public['id']}", token=two.token), 403)
    assert delete(cloud, f"subnets/{sub['id']}", token=one.token).status_code == 204


def test_create_for_another_project_needs_admin(cloud):
    user = tenant(cloud, "sub-three")
    mine = network(cloud, user.token)
    r = cloud.request("POST", f"{V2}/subnets", token=user.token, json={"subnet": {
        "network_id": mine["id"], "cidr": "10.0.0.0/24", "ip_version": 4,
        "tenant_id": cloud.admin_project_id}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    r = cloud.request("POST", f"{V2}/subnets", json={"subnet": {
        "network_id": mine["id"], "cidr": "10.0.0.0/24", "ip_version": 4,
        "project_id": user.project_id, "tenant_id": cloud.admin_project_id}})
    neutron_error(r, 400)
    sub = post(cloud, "subnets", "subnet", network_id=mine["id"], cidr="10.0.0.0/24",
               ip_version=4, project_id=user.project_id)
    assert sub["tenant_id"] == user.project_id


def test_tiny_subnets(cloud, net):
    p31 = subnet(cloud, net["id"], "10.15.0.0/30")
    assert p31["gateway_ip"] == "10.15.0.1"
    assert p31["allocation_pools"] == [{"start": "10.15.0.2", "end": "10.15.0.2"}]
    p32 = subnet(cloud, net["id"], "10.16.0.0/32", gateway_ip=None)
    assert p32["allocation_pools"] == []

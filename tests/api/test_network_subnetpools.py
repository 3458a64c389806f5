"""/v2.0/subnetpools and subnets allocated from pools: the default IPv6 pool made at
bootstrap, explicit pools, prefix lengths, exhaustion, overlap, quotas, policy, and the
external network's IPv6 subnet, in process."""

from __future__ import annotations

import ipaddress

import pytest

from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    post,
    put,
    subnet,
    tenant,
)


def pool(cloud, token="admin", status=201, **attrs):
    return post(cloud, "subnetpools", "subnetpool", token, status=status, **attrs)


def bad_pool(cloud, status, type_=None, *words, token="admin", **attrs):
    r = cloud.request("POST", f"{V2}/subnetpools", token=token, json={"subnetpool": attrs})
    return neutron_error(r, status, type_, *words)


def pooled_subnet(cloud, net_id, token="admin", **attrs):
    attrs.setdefault("ip_version", 4)
    return post(cloud, "subnets", "subnet", token, network_id=net_id, **attrs)


def bad_subnet(cloud, net_id, status, type_=None, *words, token="admin", **attrs):
    attrs.setdefault("ip_version", 4)
    r = cloud.request("POST", f"{V2}/subnets", token=token,
                      json={"subnet": {"network_id": net_id, **attrs}})
    return neutron_error(r, status, type_, *words)


@pytest.fixture
def net(cloud):
    return network(cloud, name="pooled")


def test_extensions_listed(cloud):
    aliases = {e["alias"] for e in get(cloud, "extensions")["extensions"]}
    assert {"subnet_allocation", "default-subnetpools"} <= aliases
    assert get(cloud, "extensions/subnet_allocation")["extension"]["name"] == \
        "Subnet Allocation"


def test_default_ipv6_pool_made_at_bootstrap(cloud):
    pools = get(cloud, "subnetpools?is_default=true&ip_version=6")["subnetpools"]
    assert len(pools) == 1
    default = pools[0]
    assert default["prefixes"] == ["2001:db8:8000::/33"]
    assert default["ip_version"] == 6 and default["shared"] is True
    assert default["default_prefixlen"] == 64 and default["max_prefixlen"] == 64
    assert default["min_prefixlen"] == 48 and default["address_scope_id"] is None
    assert default["name"] == "shared-default-subnetpool-v6"
    # Every project sees the shared pool.
    alpha = tenant(cloud, "alpha")
    assert default["id"] in ids(get(cloud, "subnetpools", token=alpha.token), "subnetpools")


def test_external_network_has_an_ipv6_subnet(cloud):
    public = get(cloud, "networks?name=public")["networks"][0]
    subnets = get(cloud, f"subnets?network_id={public['id']}")["subnets"]
    v6 = [s for s in subnets if s["ip_version"] == 6]
    assert [s["cidr"] for s in v6] == ["2001:db8::/64"]
    assert v6[0]["gateway_ip"] == "2001:db8::1" and v6[0]["enable_dhcp"] is False
    # A router's gateway port gets an address on both external subnets.
    router = post(cloud, "routers", "router", name="r6",
                  external_gateway_info={"network_id": public["id"]})
    fixed = router["external_gateway_info"]["external_fixed_ips"]
    versions = sorted(ipaddress.ip_address(f["ip_address"]).version for f in fixed)
    assert versions == [4, 6]


def test_bootstrap_gives_an_existing_install_the_ipv6_subnet(cloud):
    """An install from before IPv6: the external network without its IPv6 subnet and a
    router with its gateway on it. Bootstrap (each ``onestack up``) adds the subnet and
    the router's address on it, and is idempotent."""
    public = get(cloud, "networks?name=public")["networks"][0]
    v6 = [s for s in get(cloud, f"subnets?network_id={public['id']}")["subnets"]
          if s["ip_version"] == 6][0]
    router = post(cloud, "routers", "router", name="old",
                  external_gateway_info={"network_id": public["id"]})
    # Back to the old state: the router loses its IPv6 address, the subnet goes.
    net = cloud.services.network
    from onestack.db.models import IPAllocation, Subnet
    with net.db.session() as session:
        session.query(IPAllocation).filter_by(subnet_id=v6["id"]).delete()
        session.delete(session.get(Subnet, v6["id"]))
    net.bootstrap(cloud.admin_project_id)
    net.bootstrap(cloud.admin_project_id)
    subnets = get(cloud, f"subnets?network_id={public['id']}")["subnets"]
    assert sorted(s["cidr"] for s in subnets if s["ip_version"] == 6) == ["2001:db8::/64"]
    fixed = get(cloud, f"routers/{router['id']}")["router"]["external_gateway_info"][
        "external_fixed_ips"]
    assert any(ipaddress.ip_address(f["ip_address"]) in ipaddress.ip_network(
        "2001:db8::/64") for f in fixed), fixed
    assert len(get(cloud, "subnetpools?is_default=true&ip_version=6")["subnetpools"]) == 1


def test_use_default_subnetpool_takes_successive_64s(cloud, net):
    first = pooled_subnet(cloud, net["id"], ip_version=6, use_default_subnetpool=True,
                          ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    default = get(cloud, "subnetpools?is_default=true&ip_version=6")["subnetpools"][0]
    assert first["subnetpool_id"] == default["id"]
    assert first["cidr"] == "2001:db8:8000::/64"
    assert first["gateway_ip"] == "2001:db8:8000::1"
    other = network(cloud, name="pooled2")
    second = pooled_subnet(cloud, other["id"], ip_version=6, use_default_subnetpool=True)
    assert second["cidr"] == "2001:db8:8000:1::/64"
    # A freed prefix is handed out again, first.
    assert delete(cloud, f"subnets/{first['id']}").status_code == 204
    third = pooled_subnet(cloud, net["id"], ip_version=6, use_default_subnetpool=True)
    assert third["cidr"] == "2001:db8:8000::/64"
    # The pool cannot go while subnets hold prefixes of it.
    r = cloud.request("DELETE", f"{V2}/subnetpools/{default['id']}")
    neutron_error(r, 409, "SubnetPoolInUse")


def test_default_ipv4_pool_and_none(cloud, net):
    # onestack up makes a default IPv4 pool too (auto-allocated networks use it) ...
    [v4] = get(cloud, "subnetpools?is_default=true&ip_version=4")["subnetpools"]
    assert (v4["prefixes"], v4["default_prefixlen"], v4["shared"]) == (
        ["172.30.0.0/16"], 24, True)
    assert (v4["min_prefixlen"], v4["max_prefixlen"]) == (20, 30)
    assert v4["name"] == "shared-default-subnetpool-v4"
    first = pooled_subnet(cloud, net["id"], use_default_subnetpool=True)
    assert (first["cidr"], first["subnetpool_id"]) == ("172.30.0.0/24", v4["id"])
    assert delete(cloud, f"subnets/{first['id']}").status_code == 204
    # ... and without a default IPv4 pool the request is refused
    assert put(cloud, f"subnetpools/{v4['id']}", "subnetpool",
               is_default=False).status_code == 200
    bad_subnet(cloud, net["id"], 400, None, "No default subnetpool found for IPv4",
               use_default_subnetpool=True)


def test_pool_lifecycle_and_allocation(cloud, net):
    p = pool(cloud, name="p4", prefixes=["10.10.0.0/24", "10.10.1.0/24"],
             default_prefixlen=26, min_prefixlen=24, max_prefixlen=28)
    assert p["prefixes"] == ["10.10.0.0/23"]  # merged
    assert p["ip_version"] == 4 and p["is_default"] is False and p["shared"] is False
    assert p["default_quota"] is None and p["tags"] == []
    assert get(cloud, f"subnetpools/{p['id']}")["subnetpool"] == p

    a = pooled_subnet(cloud, net["id"], subnetpool_id=p["id"])
    assert a["cidr"] == "10.10.0.0/26" and a["subnetpool_id"] == p["id"]
    b = pooled_subnet(cloud, network(cloud)["id"], subnetpool_id=p["id"], prefixlen=24)
    assert b["cidr"] == "10.10.1.0/24"  # the first /24 is partly taken
    c = pooled_subnet(cloud, network(cloud)["id"], subnetpool_id=p["id"], prefixlen="28")
    assert c["cidr"] == "10.10.0.64/28"
    d = pooled_subnet(cloud, network(cloud)["id"], subnetpool_id=p["id"],
                      cidr="10.10.0.128/25")
    assert d["cidr"] == "10.10.0.128/25"

    # A taken or foreign CIDR, lengths out of bounds, exhaustion.
    bad_subnet(cloud, network(cloud)["id"], 409, "SubnetAllocationError",
               "Cannot allocate requested subnet", subnetpool_id=p["id"],
               cidr="10.10.0.0/27")
    bad_subnet(cloud, network(cloud)["id"], 409, "SubnetAllocationError",
               subnetpool_id=p["id"], cidr="192.168.0.0/26")
    bad_subnet(cloud, network(cloud)["id"], 400, "MinPrefixSubnetAllocationError",
               subnetpool_id=p["id"], prefixlen=23)
    bad_subnet(cloud, network(cloud)["id"], 400, "MaxPrefixSubnetAllocationError",
               subnetpool_id=p["id"], prefixlen=29)
    bad_subnet(cloud, network(cloud)["id"], 409, "SubnetAllocationError",
               "Insufficient prefix space", subnetpool_id=p["id"], prefixlen=24)
    bad_subnet(cloud, network(cloud)["id"], 400, None, "Cannot allocate IPv6 subnet",
               subnetpool_id=p["id"], ip_version=6)
    # A network's subnets of one version come from one pool.
    bad_subnet(cloud, net["id"], 400, "NetworkSubnetPoolAffinityError", cidr="10.99.0.0/24")

    # Prefixes can be added, not taken away; the bounds are checked again.
    r = put(cloud, f"subnetpools/{p['id']}", "subnetpool",
            prefixes=["10.10.0.0/23", "10.20.0.0/24"], name="grown")
    assert r.status_code == 200, r.text
    grown = r.json()["subnetpool"]
    assert grown["prefixes"] == ["10.10.0.0/23", "10.20.0.0/24"] and grown["name"] == "grown"
    assert grown["revision_number"] > p["revision_number"]
    e = pooled_subnet(cloud, network(cloud)["id"], subnetpool_id=p["id"], prefixlen=24)
    assert e["cidr"] == "10.20.0.0/24"
    r = put(cloud, f"subnetpools/{p['id']}", "subnetpool", prefixes=["10.20.0.0/24"])
    neutron_error(r, 400, "IllegalSubnetPoolPrefixUpdate")
    r = put(cloud, f"subnetpools/{p['id']}", "subnetpool", default_prefixlen=30)
    neutron_error(r, 400, "IllegalSubnetPoolPrefixBounds")

    for s in (a, b, c, d, e):
        assert delete(cloud, f"subnets/{s['id']}").status_code == 204
    assert delete(cloud, f"subnetpools/{p['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/subnetpools/{p['id']}"), 404,
                  "SubnetPoolNotFound")


def test_bad_pools(cloud):
    bad_pool(cloud, 400, "PrefixVersionMismatch", prefixes=["10.0.0.0/8", "fd00::/48"])
    bad_pool(cloud, 400, None, prefixes=["not-a-cidr"])
    bad_pool(cloud, 400, None, prefixes=[])
    bad_pool(cloud, 400, "IllegalSubnetPoolPrefixBounds", prefixes=["10.0.0.0/16"],
             min_prefixlen=24, max_prefixlen=20)
    bad_pool(cloud, 400, "IllegalSubnetPoolPrefixBounds", prefixes=["10.0.0.0/16"],
             default_prefixlen=33)
    bad_pool(cloud, 400, None, prefixes=["10.0.0.0/16"], address_scope_id="x")
    bad_pool(cloud, 400, None, prefixes=["10.0.0.0/16"], bogus=1)
    # One default per IP version.
    bad_pool(cloud, 400, "InvalidInput", "default subnetpool", prefixes=["fd00::/48"],
             is_default=True)


def test_default_quota(cloud, net):
    p = pool(cloud, prefixes=["10.40.0.0/16"], default_prefixlen=24, default_quota=300)
    pooled_subnet(cloud, net["id"], subnetpool_id=p["id"])
    bad_subnet(cloud, network(cloud)["id"], 409, "SubnetPoolQuotaExceeded",
               subnetpool_id=p["id"])


def test_policy_and_visibility(cloud):
    alpha, beta = tenant(cloud, "alpha"), tenant(cloud, "beta")
    own = pool(cloud, token=alpha.token, prefixes=["10.50.0.0/16"], default_prefixlen=24)
    assert own["project_id"] == alpha.project_id
    # Members make neither shared nor default pools.
    r = cloud.request("POST", f"{V2}/subnetpools", token=alpha.token,
                      json={"subnetpool": {"prefixes": ["10.51.0.0/16"], "shared": True}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    r = cloud.request("POST", f"{V2}/subnetpools", token=alpha.token,
                      json={"subnetpool": {"prefixes": ["10.51.0.0/16"], "is_default": True}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    # Another project neither sees nor uses it.
    assert own["id"] not in ids(get(cloud, "subnetpools", token=beta.token), "subnetpools")
    neutron_error(cloud.request("GET", f"{V2}/subnetpools/{own['id']}", token=beta.token),
                  404, "SubnetPoolNotFound")
    beta_net = network(cloud, token=beta.token)
    bad_subnet(cloud, beta_net["id"], 404, "SubnetPoolNotFound", token=beta.token,
               subnetpool_id=own["id"])
    # The owner uses it; the shared default pool serves every project.
    alpha_net = network(cloud, token=alpha.token)
    mine = pooled_subnet(cloud, alpha_net["id"], token=alpha.token, subnetpool_id=own["id"])
    assert mine["cidr"] == "10.50.0.0/24" and mine["project_id"] == alpha.project_id
    v6 = pooled_subnet(cloud, beta_net["id"], token=beta.token, ip_version=6,
                       use_default_subnetpool=True)
    assert v6["cidr"].startswith("2001:db8:8")
    r = cloud.request("PUT", f"{V2}/subnetpools/{own['id']}", token=beta.token,
                      json={"subnetpool": {"name": "x"}})
    neutron_error(r, 404, "SubnetPoolNotFound")
    r = cloud.request("PUT", f"{V2}/subnetpools/{own['id']}", token=alpha.token,
                      json={"subnetpool": {"is_default": True}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    # The shared pool is the admin's: a member cannot change it.
    default = get(cloud, "subnetpools?is_default=true&ip_version=6")["subnetpools"][0]
    r = cloud.request("PUT", f"{V2}/subnetpools/{default['id']}", token=alpha.token,
                      json={"subnetpool": {"name": "mine"}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    r = cloud.request("PUT", f"{V2}/subnetpools/{own['id']}", token=alpha.token,
                      json={"subnetpool": {"shared": True}})
    neutron_error(r, 400)


def test_tags_filters_and_plain_subnets_unchanged(cloud):
    p = pool(cloud, name="tagged", prefixes=["10.60.0.0/16"], tags=["blue"])
    assert p["tags"] == ["blue"]
    assert ids(get(cloud, "subnetpools?tags=blue"), "subnetpools") == [p["id"]]
    assert ids(get(cloud, "subnetpools?name=tagged"), "subnetpools") == [p["id"]]
    assert cloud.request("PUT", f"{V2}/subnetpools/{p['id']}/tags/red").status_code == 201
    assert get(cloud, f"subnetpools/{p['id']}")["subnetpool"]["tags"] == ["blue", "red"]
    plain = subnet(cloud, network(cloud)["id"], "10.61.0.0/24")
    assert plain["subnetpool_id"] is None

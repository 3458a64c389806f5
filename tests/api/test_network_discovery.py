"""Extensions and service providers as Tempest reads them; subnets of external
networks (the subnet-external-network extension)."""

from __future__ import annotations

from tests.api.network_helpers import V2, get, ids, network, neutron_error, subnet, tenant


def test_extensions_listed_and_shown_alike(cloud):
    listed = get(cloud, "extensions")["extensions"]
    aliases = [e["alias"] for e in listed]
    assert {"service-type", "subnet-external-network", "router", "external-net"} <= set(
        aliases)
    # not implemented, so not advertised (clients and Tempest go by this list)
    assert not {"metering", "dvr", "l3-ha"} & set(aliases)
    for ext in listed:
        assert get(cloud, f"extensions/{ext['alias']}")["extension"] == ext


def test_service_providers_is_an_empty_list(cloud):
    alpha = tenant(cloud, "sp-alpha", role="reader")
    assert get(cloud, "service-providers", token=alpha.token) == {"service_providers": []}
    r = cloud.request("GET", f"{V2}/service-providers", token=None)
    assert r.status_code == 401


def test_subnets_of_external_networks(cloud):
    ext = network(cloud, name="ext", **{"router:external": True})
    ext_sub = subnet(cloud, ext["id"], cidr="198.51.100.0/24", enable_dhcp=False)
    assert ext_sub["router:external"] is True
    own = tenant(cloud, "sen-member")
    net = network(cloud, token=own.token, name="own")
    own_sub = subnet(cloud, net["id"], cidr="10.9.0.0/24", token=own.token)
    assert own_sub["router:external"] is False

    # a member sees the external network and its subnets, flagged as external
    listed = get(cloud, f"subnets?network_id={ext['id']}", token=own.token)["subnets"]
    assert [s["id"] for s in listed] == [ext_sub["id"]]
    assert listed[0]["router:external"] is True
    assert ext["id"] in ids(get(cloud, "networks?router:external=true", token=own.token),
                            "networks")
    # and can filter subnets on it
    external = ids(get(cloud, "subnets?router:external=true", token=own.token), "subnets")
    assert ext_sub["id"] in external and own_sub["id"] not in external
    internal = ids(get(cloud, "subnets?router:external=false", token=own.token), "subnets")
    assert own_sub["id"] in internal and ext_sub["id"] not in internal
    neutron_error(cloud.request("GET", f"{V2}/subnets?router:external=maybe",
                                token=own.token), 400)


def test_deleting_an_external_network_deletes_its_idle_floating_ips(cloud):
    ext = network(cloud, name="ext-del", **{"router:external": True})
    sub = subnet(cloud, ext["id"], cidr="192.0.2.0/24", enable_dhcp=False)
    r = cloud.request("POST", f"{V2}/floatingips", token="admin",
                      json={"floatingip": {"floating_network_id": ext["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]
    assert cloud.request("DELETE", f"{V2}/networks/{ext['id']}",
                         token="admin").status_code == 204
    assert fip["id"] not in ids(get(cloud, "floatingips"), "floatingips")
    assert sub["id"] not in ids(get(cloud, "subnets"), "subnets")
    assert get(cloud, f"ports?network_id={ext['id']}")["ports"] == []


def test_an_external_network_in_use_by_a_router_is_not_deleted(cloud):
    ext = network(cloud, name="ext-gw", **{"router:external": True})
    subnet(cloud, ext["id"], cidr="192.0.2.0/24", enable_dhcp=False)
    r = cloud.request("POST", f"{V2}/routers", token="admin",
                      json={"router": {"name": "gw",
                                       "external_gateway_info": {"network_id": ext["id"]}}})
    assert r.status_code == 201, r.text
    neutron_error(cloud.request("DELETE", f"{V2}/networks/{ext['id']}", token="admin"),
                  409, "NetworkInUse")

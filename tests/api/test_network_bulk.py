"""Bulk create (``{"networks": [...]}``, ``{"subnets": [...]}``, ``{"ports": [...]}``):
every item is made, in order, or none is."""

from __future__ import annotations

from tests.api.network_helpers import V2, get, ids, network, neutron_error


def bulk(cloud, collection: str, items: list, token: str | None = "admin"):
    return cloud.request("POST", f"{V2}/{collection}", token=token, json={collection: items})


def test_bulk_networks_subnets_ports(cloud):
    r = bulk(cloud, "networks", [{"name": "bulk-a"}, {"name": "bulk-b"}])
    assert r.status_code == 201, r.text
    nets = r.json()["networks"]
    assert [n["name"] for n in nets] == ["bulk-a", "bulk-b"]
    listed = ids(get(cloud, "networks"), "networks")
    assert all(n["id"] in listed for n in nets)

    r = bulk(cloud, "subnets", [
        {"network_id": nets[0]["id"], "cidr": "10.1.0.0/24", "ip_version": 4},
        {"network_id": nets[1]["id"], "cidr": "10.2.0.0/24", "ip_version": 4}])
    assert r.status_code == 201, r.text
    subs = r.json()["subnets"]
    assert [s["cidr"] for s in subs] == ["10.1.0.0/24", "10.2.0.0/24"]
    assert [s["network_id"] for s in subs] == [nets[0]["id"], nets[1]["id"]]

    r = cloud.request("POST", f"{V2}/ports?fields=id&fields=network_id", token="admin",
                      json={"ports": [{"network_id": nets[0]["id"], "name": "p1"},
                                      {"network_id": nets[1]["id"], "name": "p2"}]})
    assert r.status_code == 201, r.text
    ports = r.json()["ports"]
    assert [set(p) for p in ports] == [{"id", "network_id"}] * 2
    assert [p["network_id"] for p in ports] == [nets[0]["id"], nets[1]["id"]]


def test_bulk_is_all_or_nothing(cloud):
    before = ids(get(cloud, "networks"), "networks")
    # the second item is invalid: the first is not left behind
    r = bulk(cloud, "networks", [{"name": "kept-not"}, {"name": "x", "bogus": 1}])
    neutron_error(r, 400)
    assert ids(get(cloud, "networks"), "networks") == before

    net = network(cloud, name="one")
    r = bulk(cloud, "subnets", [
        {"network_id": net["id"], "cidr": "10.3.0.0/24", "ip_version": 4},
        {"network_id": "no-such-network", "cidr": "10.4.0.0/24", "ip_version": 4}])
    neutron_error(r, 404, "NetworkNotFound")
    assert get(cloud, f"networks/{net['id']}")["network"]["subnets"] == []

    r = bulk(cloud, "ports", [{"network_id": net["id"]},
                              {"network_id": net["id"], "mac_address": "nonsense"}])
    neutron_error(r, 400)
    assert get(cloud, f"ports?network_id={net['id']}")["ports"] == []


def test_bulk_body_must_be_a_list_of_objects(cloud):
    neutron_error(bulk(cloud, "networks", []), 400)
    neutron_error(bulk(cloud, "networks", ["net"]), 400)
    neutron_error(cloud.request("POST", f"{V2}/networks", token="admin",
                                json={"networks": {"name": "x"}}), 400)

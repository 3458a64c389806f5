"""/v2.0/routers: gateways, interfaces, overlaps, static routes, in-use and policy, in
process."""

from __future__ import annotations

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


def public(cloud) -> dict:
    nets = get(cloud, "networks?name=public")["networks"]
    assert len(nets) == 1 and nets[0]["router:external"] is True
    return nets[0]


def router(cloud, token: str | None = "admin", **attrs):
    attrs.setdefault("name", "r1")
    return post(cloud, "routers", "router", token, **attrs)


def add_interface(cloud, router_id: str, token: str | None = "admin", **body):
    return cloud.request("PUT", f"{V2}/routers/{router_id}/add_router_interface",
                         token=token, json=body)


def remove_interface(cloud, router_id: str, token: str | None = "admin", **body):
    return cloud.request("PUT", f"{V2}/routers/{router_id}/remove_router_interface",
                         token=token, json=body)


def test_lifecycle(cloud):
    r = router(cloud, name="edge", description="the edge", tags=["t"])
    assert (r["name"], r["description"], r["admin_state_up"], r["status"], r["tags"]) == (
        "edge", "the edge", True, "ACTIVE", ["t"])
    assert r["external_gateway_info"] is None and r["routes"] == []
    assert r["project_id"] == r["tenant_id"] == cloud.admin_project_id
    assert get(cloud, f"routers/{r['id']}")["router"] == r
    assert r["id"] in ids(get(cloud, "routers"), "routers")
    assert ids(get(cloud, "routers?name=edge"), "routers") == [r["id"]]
    resp = put(cloud, f"routers/{r['id']}", "router", name="edge2", admin_state_up=False)
    assert resp.status_code == 200, resp.text
    updated = resp.json()["router"]
    assert (updated["name"], updated["admin_state_up"]) == ("edge2", False)
    assert updated["revision_number"] > r["revision_number"]
    assert delete(cloud, f"routers/{r['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/routers/{r['id']}"), 404, "RouterNotFound")
    neutron_error(delete(cloud, f"routers/{r['id']}"), 404, "RouterNotFound")


def test_gateway(cloud):
    pub = public(cloud)
    r = router(cloud, external_gateway_info={"network_id": pub["id"]})
    gw = r["external_gateway_info"]
    assert gw["network_id"] == pub["id"] and gw["enable_snat"] is True
    [fixed] = [f for f in gw["external_fixed_ips"] if "." in f["ip_address"]]
    assert fixed["subnet_id"] == pub["subnets"][0] and fixed["ip_address"].startswith("203.0.113.")
    # the gateway port is the cloud's, on the external network
    gw_ports = get(cloud, f"ports?device_id={r['id']}&device_owner=network:router_gateway")
    [gw_port] = gw_ports["ports"]
    assert gw_port["network_id"] == pub["id"] and gw_port["project_id"] == ""
    assert gw_port["security_groups"] == []
    # the external network cannot go away under it
    neutron_error(delete(cloud, f"networks/{pub['id']}"), 409, "NetworkInUse")
    # nor can its port be deleted directly
    neutron_error(delete(cloud, f"ports/{gw_port['id']}"), 409, "L3PortInUse")
    # SNAT off (admin), then a fixed gateway address
    resp = put(cloud, f"routers/{r['id']}", "router", external_gateway_info={
        "network_id": pub["id"], "enable_snat": False})
    assert resp.json()["router"]["external_gateway_info"]["enable_snat"] is False
    resp = put(cloud, f"routers/{r['id']}", "router", external_gateway_info={
        "network_id": pub["id"], "external_fixed_ips": [{"ip_address": "203.0.113.200"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["external_gateway_info"]["external_fixed_ips"][0][
        "ip_address"] == "203.0.113.200"
    # cleared: the port (and its address) is gone
    resp = put(cloud, f"routers/{r['id']}", "router", external_gateway_info=None)
    assert resp.json()["router"]["external_gateway_info"] is None
    assert get(cloud, f"ports?device_id={r['id']}")["ports"] == []
    # deleting a router with a gateway releases it too
    resp = put(cloud, f"routers/{r['id']}", "router",
               external_gateway_info={"network_id": pub["id"]})
    assert resp.status_code == 200, resp.text
    assert delete(cloud, f"routers/{r['id']}").status_code == 204
    assert get(cloud, f"ports?device_id={r['id']}")["ports"] == []


def test_gateway_must_be_external(cloud):
    net = network(cloud)
    subnet(cloud, net["id"])
    r = cloud.request("POST", f"{V2}/routers", json={"router": {
        "external_gateway_info": {"network_id": net["id"]}}})
    neutron_error(r, 400, "BadRequest", "not an external network")
    r = cloud.request("POST", f"{V2}/routers", json={"router": {
        "external_gateway_info": {"network_id": "nope"}}})
    neutron_error(r, 404, "NetworkNotFound")
    r = cloud.request("POST", f"{V2}/routers", json={"router": {
        "external_gateway_info": {"network_id": 5}}})
    neutron_error(r, 404)
    r = cloud.request("POST", f"{V2}/routers", json={"router": {
        "external_gateway_info": "public"}})
    neutron_error(r, 400)


def test_gateway_attributes_need_admin(cloud):
    t = tenant(cloud, "alpha")
    pub = public(cloud)
    # a project sees the external network and may use it as a gateway ...
    r = router(cloud, t.token, external_gateway_info={"network_id": pub["id"]})
    assert r["external_gateway_info"]["network_id"] == pub["id"]
    # ... but not turn SNAT off or pick its address
    resp = put(cloud, f"routers/{r['id']}", "router", t.token, external_gateway_info={
        "network_id": pub["id"], "enable_snat": False})
    neutron_error(resp, 403, "PolicyNotAuthorized")
    resp = put(cloud, f"routers/{r['id']}", "router", t.token, external_gateway_info={
        "network_id": pub["id"], "external_fixed_ips": [{"ip_address": "203.0.113.9"}]})
    neutron_error(resp, 403, "PolicyNotAuthorized")


def test_interfaces_by_subnet(cloud):
    net = network(cloud)
    sub = subnet(cloud, net["id"], "10.0.0.0/24")
    r = router(cloud)
    resp = add_interface(cloud, r["id"], subnet_id=sub["id"])
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert set(info) == {"id", "tenant_id", "project_id", "port_id", "network_id",
                         "subnet_id", "subnet_ids"}
    assert (info["id"], info["network_id"], info["subnet_id"], info["subnet_ids"]) == (
        r["id"], net["id"], sub["id"], [sub["id"]])
    p = get(cloud, f"ports/{info['port_id']}")["port"]
    assert p["device_owner"] == "network:router_interface" and p["device_id"] == r["id"]
    assert p["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.1"}]
    # the same subnet twice, and an overlapping one, are refused
    neutron_error(add_interface(cloud, r["id"], subnet_id=sub["id"]), 400, "BadRequest",
                  "already has a port")
    other = network(cloud, name="other")
    overlapping = subnet(cloud, other["id"], "10.0.0.0/16")
    neutron_error(add_interface(cloud, r["id"], subnet_id=overlapping["id"]), 400,
                  "BadRequest", "overlaps")
    # a non-overlapping one on another network is fine
    far = subnet(cloud, other["id"], "10.9.0.0/24", name="far")
    assert add_interface(cloud, r["id"], subnet_id=far["id"]).status_code == 200
    # in use: the router, the subnet, the interface port
    neutron_error(delete(cloud, f"routers/{r['id']}"), 409, "RouterInUse")
    neutron_error(delete(cloud, f"subnets/{sub['id']}"), 409, "SubnetInUse")
    neutron_error(delete(cloud, f"ports/{info['port_id']}"), 409, "L3PortInUse")
    # removal by subnet returns the same body and deletes the port
    resp = remove_interface(cloud, r["id"], subnet_id=sub["id"])
    assert resp.status_code == 200, resp.text
    assert resp.json() == info
    neutron_error(cloud.request("GET", f"{V2}/ports/{info['port_id']}"), 404, "PortNotFound")
    neutron_error(remove_interface(cloud, r["id"], subnet_id=sub["id"]), 404,
                  "RouterInterfaceNotFoundForSubnet")
    assert remove_interface(cloud, r["id"], subnet_id=far["id"]).status_code == 200
    assert delete(cloud, f"routers/{r['id']}").status_code == 204
    assert delete(cloud, f"subnets/{sub['id']}").status_code == 204


def test_interface_needs_a_gateway_ip(cloud):
    net = network(cloud)
    sub = subnet(cloud, net["id"], gateway_ip=None)
    r = router(cloud)
    neutron_error(add_interface(cloud, r["id"], subnet_id=sub["id"]), 400, "BadRequest",
                  "gateway IP")


def test_interface_overlapping_the_gateway_subnet(cloud):
    pub = public(cloud)
    r = router(cloud, external_gateway_info={"network_id": pub["id"]})
    net = network(cloud)
    sub = subnet(cloud, net["id"], "203.0.113.0/25")
    neutron_error(add_interface(cloud, r["id"], subnet_id=sub["id"]), 400, "BadRequest",
                  "overlaps")


def test_interfaces_by_port(cloud):
    net = network(cloud)
    sub = subnet(cloud, net["id"], "10.0.0.0/24")
    p = port(cloud, net["id"], fixed_ips=[{"subnet_id": sub["id"],
                                           "ip_address": "10.0.0.50"}])
    r = router(cloud)
    resp = add_interface(cloud, r["id"], port_id=p["id"])
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert info["port_id"] == p["id"] and info["subnet_ids"] == [sub["id"]]
    attached = get(cloud, f"ports/{p['id']}")["port"]
    assert (attached["device_owner"], attached["device_id"]) == (
        "network:router_interface", r["id"])
    # a port already in use cannot be attached again
    r2 = router(cloud, name="r2")
    neutron_error(add_interface(cloud, r2["id"], port_id=p["id"]), 409, "PortInUse")
    neutron_error(remove_interface(cloud, r2["id"], port_id=p["id"]), 404,
                  "RouterInterfaceNotFound")
    resp = remove_interface(cloud, r["id"], port_id=p["id"])
    assert resp.status_code == 200 and resp.json()["port_id"] == p["id"]
    neutron_error(cloud.request("GET", f"{V2}/ports/{p['id']}"), 404, "PortNotFound")


def test_interface_body_errors(cloud):
    net = network(cloud)
    sub = subnet(cloud, net["id"])
    r = router(cloud)
    neutron_error(add_interface(cloud, r["id"]), 400, "BadRequest")
    neutron_error(add_interface(cloud, r["id"], subnet_id=sub["id"], port_id="x"), 400,
                  "BadRequest")
    neutron_error(add_interface(cloud, r["id"], subnet_id=5), 400)
    neutron_error(add_interface(cloud, r["id"], bogus=1), 400)
    neutron_error(add_interface(cloud, r["id"], subnet_id="nope"), 404, "SubnetNotFound")
    neutron_error(add_interface(cloud, r["id"], port_id="nope"), 404, "PortNotFound")
    neutron_error(add_interface(cloud, "nope", subnet_id=sub["id"]), 404, "RouterNotFound")
    neutron_error(remove_interface(cloud, r["id"]), 400, "BadRequest")
    r2 = cloud.request("PUT", f"{V2}/routers/{r['id']}/add_router_interface", content=b"x")
    neutron_error(r2, 400)


def test_static_routes(cloud):
    net = network(cloud)
    sub = subnet(cloud, net["id"], "10.0.0.0/24")
    r = router(cloud)
    assert add_interface(cloud, r["id"], subnet_id=sub["id"]).status_code == 200
    routes = [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]
    resp = put(cloud, f"routers/{r['id']}", "router", routes=routes)
    assert resp.status_code == 200, resp.text
    assert resp.json()["router"]["routes"] == routes
    # the nexthop must be on an attached subnet, and not the router itself
    bad = put(cloud, f"routers/{r['id']}", "router",
              routes=[{"destination": "192.168.0.0/16", "nexthop": "172.16.0.1"}])
    neutron_error(bad, 400, "InvalidRoutes", "not connected")
    bad = put(cloud, f"routers/{r['id']}", "router",
              routes=[{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1"}])
    neutron_error(bad, 400, "InvalidRoutes", "used by router")
    for route in ({"destination": "nope", "nexthop": "10.0.0.9"},
                  {"destination": "::/0", "nexthop": "10.0.0.9"},
                  {"destination": "10.1.0.0/16"}, "10.1.0.0/16 10.0.0.9"):
        neutron_error(put(cloud, f"routers/{r['id']}", "router", routes=[route]), 400)
    # the interface the route needs cannot be removed
    neutron_error(remove_interface(cloud, r["id"], subnet_id=sub["id"]), 409,
                  "RouterInterfaceInUseByRoute")
    # extraroute-atomic: add and remove one at a time
    more = {"destination": "172.16.0.0/12", "nexthop": "10.0.0.253"}
    resp = cloud.request("PUT", f"{V2}/routers/{r['id']}/add_extraroutes",
                         json={"router": {"routes": [more]}})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["router"]["routes"]) == 2
    resp = cloud.request("PUT", f"{V2}/routers/{r['id']}/remove_extraroutes",
                         json={"router": {"routes": routes + [more]}})
    assert resp.json()["router"]["routes"] == []
    assert remove_interface(cloud, r["id"], subnet_id=sub["id"]).status_code == 200


def test_two_projects(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    ra = router(cloud, a.token, name="a-router")
    assert ra["project_id"] == a.project_id
    assert ra["id"] not in ids(get(cloud, "routers", b.token), "routers")
    for resp in (cloud.request("GET", f"{V2}/routers/{ra['id']}", token=b.token),
                 put(cloud, f"routers/{ra['id']}", "router", b.token, name="x"),
                 delete(cloud, f"routers/{ra['id']}", b.token)):
        neutron_error(resp, 404, "RouterNotFound")
    # beta cannot plug its subnet into alpha's router, nor alpha's subnet into its own
    net_b = network(cloud, b.token)
    sub_b = subnet(cloud, net_b["id"], token=b.token)
    neutron_error(add_interface(cloud, ra["id"], b.token, subnet_id=sub_b["id"]), 404,
                  "RouterNotFound")
    rb = router(cloud, b.token, name="b-router")
    net_a = network(cloud, a.token)
    sub_a = subnet(cloud, net_a["id"], token=a.token)
    neutron_error(add_interface(cloud, rb["id"], b.token, subnet_id=sub_a["id"]), 404,
                  "SubnetNotFound")
    p_a = port(cloud, net_a["id"], a.token)
    neutron_error(add_interface(cloud, rb["id"], b.token, port_id=p_a["id"]), 404,
                  "PortNotFound")
    # and cannot make a router in alpha's name
    r = cloud.request("POST", f"{V2}/routers", token=b.token, json={"router": {
        "project_id": a.project_id}})
    neutron_error(r, 403)
    # the admin sees both
    assert {ra["id"], rb["id"]} <= set(ids(get(cloud, "routers"), "routers"))


def test_quota(cloud):
    t = tenant(cloud, "alpha")
    assert put(cloud, f"quotas/{t.project_id}", "quota", router=2).status_code == 200
    router(cloud, t.token, name="one")
    router(cloud, t.token, name="two")
    r = cloud.request("POST", f"{V2}/routers", token=t.token, json={"router": {}})
    neutron_error(r, 409, "OverQuota", "router")


def test_bad_bodies(cloud):
    for body in ({"router": {"name": 5}}, {"router": {"bogus": 1}}, {"router": []},
                 {"routes": []}, {"router": {"admin_state_up": "maybe"}}):
        neutron_error(cloud.request("POST", f"{V2}/routers", json=body), 400)
    r = router(cloud)
    neutron_error(put(cloud, f"routers/{r['id']}", "router", routes="x"), 400)
    for key in ("name", "description", "admin_state_up"):
        neutron_error(put(cloud, f"routers/{r['id']}", "router", **{key: None}), 400)
    neutron_error(put(cloud, f"routers/{r['id']}", "router",
                      external_gateway_info={"network_id": public(cloud)["id"],
                                             "enable_snat": "perhaps"}), 400)
    resp = cloud.request("PUT", f"{V2}/routers/{r['id']}/add_extraroutes",
                         json={"router": {"routes": [], "name": "x"}})
    neutron_error(resp, 400)

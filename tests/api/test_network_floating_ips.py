"""/v2.0/floatingips: allocation from the external network, association through a
router, status, policy and quotas, in process."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.api.network_helpers import (
    V2,
    Tenant,
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


@dataclass
class Topology:
    """A project's network and subnet, routed to ``public`` by its router."""

    tenant: Tenant
    public_id: str
    network_id: str
    subnet_id: str
    router_id: str


def public_id(cloud) -> str:
    return get(cloud, "networks?name=public")["networks"][0]["id"]


def topology(cloud, name: str, cidr: str = "10.0.0.0/24") -> Topology:
    t = tenant(cloud, name)
    pub = public_id(cloud)
    net = network(cloud, t.token, name=f"{name}-net")
    sub = subnet(cloud, net["id"], cidr, token=t.token)
    r = post(cloud, "routers", "router", t.token, name=f"{name}-router",
             external_gateway_info={"network_id": pub})
    resp = cloud.request("PUT", f"{V2}/routers/{r['id']}/add_router_interface",
                         token=t.token, json={"subnet_id": sub["id"]})
    assert resp.status_code == 200, resp.text
    return Topology(t, pub, net["id"], sub["id"], r["id"])


def fip(cloud, token: str | None, status: int = 201, **attrs):
    return post(cloud, "floatingips", "floatingip", token, status=status, **attrs)


def wait_status(cloud, fip_id: str, token: str | None, status: str,
                timeout: float = 15.0) -> dict:
    """The floating IP once it shows ``status`` (the router's host reports it)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = get(cloud, f"floatingips/{fip_id}", token)["floatingip"]
        if shown["status"] == status or time.monotonic() > deadline:
            assert shown["status"] == status, shown
            return shown
        time.sleep(0.1)


def test_lifecycle(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    f = fip(cloud, token, floating_network_id=topo.public_id, description="web", tags=["x"])
    assert f["floating_ip_address"].startswith("203.0.113.")
    assert (f["floating_network_id"], f["port_id"], f["fixed_ip_address"], f["router_id"],
            f["status"], f["description"], f["tags"], f["port_details"]) == (
        topo.public_id, None, None, None, "DOWN", "web", ["x"], None)
    assert f["project_id"] == f["tenant_id"] == topo.tenant.project_id
    assert "name" not in f
    # the address is held by a port of the cloud's on the external network
    [held] = get(cloud, f"ports?device_id={f['id']}")["ports"]
    assert held["device_owner"] == "network:floatingip" and held["project_id"] == ""
    assert held["fixed_ips"][0]["ip_address"] == f["floating_ip_address"]
    neutron_error(delete(cloud, f"ports/{held['id']}"), 409, "L3PortInUse")

    vm = port(cloud, topo.network_id, token, name="vm")
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"])
    assert resp.status_code == 200, resp.text
    bound = resp.json()["floatingip"]
    assert (bound["port_id"], bound["fixed_ip_address"], bound["router_id"],
            bound["status"]) == (vm["id"], vm["fixed_ips"][0]["ip_address"],
                                 topo.router_id, "DOWN")  # until its host has the NAT
    assert bound["port_details"]["name"] == "vm"
    assert bound["port_details"]["network_id"] == topo.network_id
    assert bound["revision_number"] > f["revision_number"]
    # the router's host (the in-process agent, fake drivers) applies it and reports
    shown = wait_status(cloud, f["id"], token, "ACTIVE")
    assert shown["revision_number"] > bound["revision_number"]
    moving = ("status", "revision_number", "updated_at")
    assert {k: v for k, v in shown.items() if k not in moving} == \
        {k: v for k, v in bound.items() if k not in moving}
    assert ids(get(cloud, f"floatingips?port_id={vm['id']}", token), "floatingips") == [
        f["id"]]
    assert ids(get(cloud, "floatingips?status=ACTIVE", token), "floatingips") == [f["id"]]
    assert ids(get(cloud, "floatingips?status=DOWN", token), "floatingips") == []

    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=None)
    unbound = resp.json()["floatingip"]
    assert (unbound["port_id"], unbound["fixed_ip_address"], unbound["router_id"],
            unbound["status"]) == (None, None, None, "DOWN")

    assert delete(cloud, f"floatingips/{f['id']}", token).status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/floatingips/{f['id']}", token=token), 404,
                  "FloatingIPNotFound")
    assert get(cloud, f"ports?device_id={f['id']}")["ports"] == []
    neutron_error(delete(cloud, f"floatingips/{f['id']}", token), 404, "FloatingIPNotFound")


def test_create_associated_and_address_release(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    vm = port(cloud, topo.network_id, token)
    f = fip(cloud, token, floating_network_id=topo.public_id, port_id=vm["id"])
    assert f["status"] == "DOWN" and f["router_id"] == topo.router_id
    wait_status(cloud, f["id"], token, "ACTIVE")
    address = f["floating_ip_address"]
    assert delete(cloud, f"floatingips/{f['id']}", token).status_code == 204
    # the address is free again (the admin may ask for it by name)
    again = fip(cloud, "admin", floating_network_id=topo.public_id,
                floating_ip_address=address)
    assert again["floating_ip_address"] == address
    r = cloud.request("POST", f"{V2}/floatingips", json={"floatingip": {
        "floating_network_id": topo.public_id, "floating_ip_address": address}})
    neutron_error(r, 409, "IpAddressAlreadyAllocated")


def test_only_admins_choose_the_address(cloud):
    topo = topology(cloud, "alpha")
    r = cloud.request("POST", f"{V2}/floatingips", token=topo.tenant.token, json={
        "floatingip": {"floating_network_id": topo.public_id,
                       "floating_ip_address": "203.0.113.77"}})
    neutron_error(r, 403, "PolicyNotAuthorized")


def test_network_must_be_external(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    fip(cloud, token, status=400, floating_network_id=topo.network_id)
    r = cloud.request("POST", f"{V2}/floatingips", token=token, json={
        "floatingip": {"floating_network_id": "nope"}})
    neutron_error(r, 404, "NetworkNotFound")
    r = cloud.request("POST", f"{V2}/floatingips", token=token, json={"floatingip": {}})
    neutron_error(r, 400)


def test_unreachable_port(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    lonely = network(cloud, token, name="lonely")
    subnet(cloud, lonely["id"], "10.5.0.0/24", token=token)
    vm = port(cloud, lonely["id"], token)
    f = fip(cloud, token, floating_network_id=topo.public_id)
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"])
    neutron_error(resp, 404, "ExternalGatewayForFloatingIPNotFound", topo.public_id)
    # a router without a gateway does not help either
    r = post(cloud, "routers", "router", token, name="no-gw")
    sub_id = get(cloud, f"networks/{lonely['id']}", token)["network"]["subnets"][0]
    resp = cloud.request("PUT", f"{V2}/routers/{r['id']}/add_router_interface",
                         token=token, json={"subnet_id": sub_id})
    assert resp.status_code == 200, resp.text
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"])
    neutron_error(resp, 404, "ExternalGatewayForFloatingIPNotFound")
    # giving that router a gateway does
    resp = put(cloud, f"routers/{r['id']}", "router", token,
               external_gateway_info={"network_id": topo.public_id})
    assert resp.status_code == 200, resp.text
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"])
    assert resp.status_code == 200 and resp.json()["floatingip"]["router_id"] == r["id"]
    # now the gateway cannot be removed, nor the interface
    neutron_error(put(cloud, f"routers/{r['id']}", "router", token,
                      external_gateway_info=None), 409,
                  "RouterExternalGatewayInUseByFloatingIp")
    neutron_error(cloud.request("PUT", f"{V2}/routers/{r['id']}/remove_router_interface",
                                token=token, json={"subnet_id": sub_id}), 409,
                  "RouterInterfaceInUseByFloatingIP")


def test_one_floating_ip_per_fixed_ip(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    vm = port(cloud, topo.network_id, token)
    first = fip(cloud, token, floating_network_id=topo.public_id, port_id=vm["id"])
    second = fip(cloud, token, floating_network_id=topo.public_id)
    resp = put(cloud, f"floatingips/{second['id']}", "floatingip", token, port_id=vm["id"])
    neutron_error(resp, 409, "FloatingIPPortAlreadyAssociated", first["fixed_ip_address"])
    # re-associating the same one is fine
    resp = put(cloud, f"floatingips/{first['id']}", "floatingip", token, port_id=vm["id"])
    assert resp.status_code == 200, resp.text


def test_fixed_ip_choice(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    vm = port(cloud, topo.network_id, token, fixed_ips=[
        {"subnet_id": topo.subnet_id, "ip_address": "10.0.0.10"},
        {"subnet_id": topo.subnet_id, "ip_address": "10.0.0.11"}])
    f = fip(cloud, token, floating_network_id=topo.public_id)
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"])
    neutron_error(resp, 400, "BadRequest", "multiple fixed IPv4 addresses")
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"],
               fixed_ip_address="10.0.0.99")
    neutron_error(resp, 400, "BadRequest", "does not have fixed ip")
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=vm["id"],
               fixed_ip_address="10.0.0.11")
    assert resp.status_code == 200, resp.text
    assert resp.json()["floatingip"]["fixed_ip_address"] == "10.0.0.11"
    # move to the other address of the same port
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token,
               fixed_ip_address="10.0.0.10")
    assert resp.json()["floatingip"]["fixed_ip_address"] == "10.0.0.10"


def test_router_ports_cannot_have_floating_ips(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    [iface] = get(cloud, f"ports?device_id={topo.router_id}"
                         "&device_owner=network:router_interface", token)["ports"]
    f = fip(cloud, token, floating_network_id=topo.public_id)
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", token, port_id=iface["id"])
    neutron_error(resp, 400, "BadRequest")


def test_deleted_port_disassociates(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    vm = port(cloud, topo.network_id, token)
    f = fip(cloud, token, floating_network_id=topo.public_id, port_id=vm["id"])
    assert delete(cloud, f"ports/{vm['id']}", token).status_code == 204
    shown = get(cloud, f"floatingips/{f['id']}", token)["floatingip"]
    assert (shown["port_id"], shown["fixed_ip_address"], shown["router_id"],
            shown["status"]) == (None, None, None, "DOWN")
    assert shown["revision_number"] > f["revision_number"]
    fixed = vm["fixed_ips"][0]["ip_address"]
    assert get(cloud, f"floatingips?fixed_ip_address={fixed}", token)["floatingips"] == []
    assert get(cloud, f"floatingips?router_id={topo.router_id}", token)["floatingips"] == []
    # the gateway and the interface are free to go
    resp = put(cloud, f"routers/{topo.router_id}", "router", token,
               external_gateway_info=None)
    assert resp.status_code == 200, resp.text
    resp = cloud.request("PUT", f"{V2}/routers/{topo.router_id}/remove_router_interface",
                         token=token, json={"subnet_id": topo.subnet_id})
    assert resp.status_code == 200, resp.text


def test_two_projects(cloud):
    a = topology(cloud, "alpha")
    b = topology(cloud, "beta", cidr="10.1.0.0/24")
    fa = fip(cloud, a.tenant.token, floating_network_id=a.public_id)
    fb = fip(cloud, b.tenant.token, floating_network_id=b.public_id)
    # the external network is visible to both; the floating IPs only to their owners
    assert ids(get(cloud, "floatingips", b.tenant.token), "floatingips") == [fb["id"]]
    for resp in (cloud.request("GET", f"{V2}/floatingips/{fa['id']}", token=b.tenant.token),
                 put(cloud, f"floatingips/{fa['id']}", "floatingip", b.tenant.token,
                     port_id=None),
                 delete(cloud, f"floatingips/{fa['id']}", b.tenant.token)):
        neutron_error(resp, 404, "FloatingIPNotFound")
    # beta cannot bind its floating IP to alpha's port
    vm_a = port(cloud, a.network_id, a.tenant.token)
    resp = put(cloud, f"floatingips/{fb['id']}", "floatingip", b.tenant.token,
               port_id=vm_a["id"])
    neutron_error(resp, 404, "PortNotFound")
    # nor create one in alpha's name
    r = cloud.request("POST", f"{V2}/floatingips", token=b.tenant.token, json={
        "floatingip": {"floating_network_id": b.public_id,
                       "project_id": a.tenant.project_id}})
    neutron_error(r, 403)
    # the admin may bind alpha's floating IP to alpha's port, and sees all
    resp = put(cloud, f"floatingips/{fa['id']}", "floatingip", "admin", port_id=vm_a["id"])
    assert resp.status_code == 200, resp.text
    assert {fa["id"], fb["id"]} <= set(ids(get(cloud, "floatingips"), "floatingips"))


def test_quota(cloud):
    topo = topology(cloud, "alpha")
    token = topo.tenant.token
    resp = put(cloud, f"quotas/{topo.tenant.project_id}", "quota", floatingip=1)
    assert resp.status_code == 200, resp.text
    fip(cloud, token, floating_network_id=topo.public_id)
    r = cloud.request("POST", f"{V2}/floatingips", token=token, json={
        "floatingip": {"floating_network_id": topo.public_id}})
    neutron_error(r, 409, "OverQuota", "floatingip")
    # the floating IP's port is the cloud's: it does not count as the project's port
    details = get(cloud, f"quotas/{topo.tenant.project_id}/details", token)["quota"]
    assert details["floatingip"]["used"] == 1
    assert details["port"]["used"] == 1  # the router interface only


def test_exhaustion(cloud):
    t = tenant(cloud, "alpha")
    ext = network(cloud, name="tiny-ext", **{"router:external": True})
    subnet(cloud, ext["id"], "198.51.100.0/30")  # one usable address besides the gateway
    fip(cloud, t.token, floating_network_id=ext["id"])
    r = cloud.request("POST", f"{V2}/floatingips", token=t.token, json={
        "floatingip": {"floating_network_id": ext["id"]}})
    neutron_error(r, 409, "IpAddressGenerationFailure")


def test_update_refuses_null_description(cloud):
    topo = topology(cloud, "alpha")
    f = fip(cloud, topo.tenant.token, floating_network_id=topo.public_id)
    neutron_error(put(cloud, f"floatingips/{f['id']}", "floatingip", description=None), 400)


@pytest.mark.parametrize("body", [
    {"floatingip": {"floating_network_id": 5}},
    {"floatingip": {"floating_network_id": "x", "bogus": 1}},
    {"floatingip": "x"},
    {"floatingips": {}},
])
def test_bad_bodies(cloud, body):
    neutron_error(cloud.request("POST", f"{V2}/floatingips", json=body), 400)

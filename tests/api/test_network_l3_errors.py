"""The Networking API's L3 side answering bad input as Neutron does (status code, fault
type, message), router and floating IP status from what hosts report, and which host
runs a router. In process: ``quiet`` (no agent, host ``host-a`` registered) for the
errors and the scheduling, ``cloud`` (an agent with the fake drivers) for status."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select

from onestack.db.models import ComputeService, Router, utcnow
from tests.api.compute_helpers import add_host, boot
from tests.api.network_helpers import (
    V2,
    delete,
    get,
    network,
    neutron_error,
    port,
    post,
    put,
    subnet,
)

# -- helpers ---------------------------------------------------------------------------


def public_id(cloud) -> str:
    return get(cloud, "networks?name=public")["networks"][0]["id"]


def router(cloud, token: str | None = "admin", **attrs: Any) -> dict[str, Any]:
    attrs.setdefault("name", "r")
    return post(cloud, "routers", "router", token, **attrs)


def action(cloud, router_id: str, what: str, token: str | None = "admin", **body: Any):
    return cloud.request("PUT", f"{V2}/routers/{router_id}/{what}", token=token, json=body)


def set_routes(cloud, router_id: str, routes: Any):
    return put(cloud, f"routers/{router_id}", "router", routes=routes)


def routed(cloud, cidr: str = "10.0.0.0/24", gateway: bool = True
           ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(router, network, subnet): a subnet attached to a router (with its gateway on
    ``public`` unless told)."""
    net = network(cloud)
    sub = subnet(cloud, net["id"], cidr)
    attrs = {"external_gateway_info": {"network_id": public_id(cloud)}} if gateway else {}
    r = router(cloud, **attrs)
    assert action(cloud, r["id"], "add_router_interface",
                  subnet_id=sub["id"]).status_code == 200
    return r, net, sub


def fip_for(cloud, port_id: str | None = None, status: int = 201, **attrs: Any) -> Any:
    """A floating IP on ``public`` (for ``port_id`` if given); the response if
    ``status`` is not 201."""
    if port_id is not None:
        attrs["port_id"] = port_id
    if status == 201:
        return post(cloud, "floatingips", "floatingip",
                    floating_network_id=public_id(cloud), **attrs)
    r = cloud.request("POST", f"{V2}/floatingips", json={"floatingip": {
        "floating_network_id": public_id(cloud), **attrs}})
    assert r.status_code == status, r.text
    return r


def wait_for(check, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "timed out"
            return value
        time.sleep(0.1)


# -- gateways ----------------------------------------------------------------------------


def test_gateway_must_be_on_an_external_network(quiet):
    internal = network(quiet)
    subnet(quiet, internal["id"])
    r = quiet.request("POST", f"{V2}/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": internal["id"]}}})
    neutron_error(r, 400, "BadRequest",
                  f"Bad router request: Network {internal['id']} is not an external "
                  "network.")
    r = router(quiet)
    neutron_error(put(quiet, f"routers/{r['id']}", "router",
                      external_gateway_info={"network_id": internal["id"]}),
                  400, "BadRequest", "is not an external network")
    neutron_error(put(quiet, f"routers/{r['id']}", "router",
                      external_gateway_info={"network_id": "nope"}), 404, "NetworkNotFound")


def test_gateway_stays_while_floating_ips_use_it(quiet):
    r, net, _ = routed(quiet)
    vm = port(quiet, net["id"])
    f = fip_for(quiet, vm["id"])
    error = neutron_error(put(quiet, f"routers/{r['id']}", "router",
                              external_gateway_info={}),
                          409, "RouterExternalGatewayInUseByFloatingIp")
    assert r["id"] in error["message"] and public_id(quiet) in error["message"]
    # nor may the interface the floating IP goes through go
    neutron_error(action(quiet, r["id"], "remove_router_interface",
                         port_id=_interface_port(quiet, r["id"])),
                  409, "RouterInterfaceInUseByFloatingIP")
    assert put(quiet, f"floatingips/{f['id']}", "floatingip",
               port_id=None).status_code == 200
    resp = put(quiet, f"routers/{r['id']}", "router", external_gateway_info={})
    assert resp.status_code == 200 and resp.json()["router"]["external_gateway_info"] is None


def _interface_port(cloud, router_id: str) -> str:
    [leg] = get(cloud, f"ports?device_id={router_id}&device_owner=network:router_interface"
                )["ports"]
    return str(leg["id"])


# -- static routes -------------------------------------------------------------------------


@pytest.mark.parametrize("routes, words", [
    ("x", "Invalid data format for hostroute: 'x'"),
    (["x"], "must be a dictionary"),
    ([{"destination": "10.9.0.0/16"}], "Validation of dictionary's keys failed"),
    ([{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9", "via": "x"}],
     "Validation of dictionary's keys failed"),
    ([{"destination": "10.9.0.0/33", "nexthop": "10.0.0.9"}],
     "'10.9.0.0/33' is not a valid CIDR"),
    ([{"destination": "10.9.0.1/16", "nexthop": "10.0.0.9"}],
     "'10.9.0.1/16' is not a recognized CIDR, '10.9.0.0/16' is recommended"),
    ([{"destination": "10.9.0.0", "nexthop": "10.0.0.9"}], "is not a recognized CIDR"),
    ([{"destination": "127.0.0.0/8", "nexthop": "10.0.0.9"}],
     "'127.0.0.0/8' is not a routable CIDR"),
    ([{"destination": "10.9.0.0/16", "nexthop": "10.0.0.300"}],
     "'10.0.0.300' is not a valid IP address"),
    ([{"destination": "10.9.0.0/16", "nexthop": 7}], "'7' is not a valid IP address"),
    ([{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}] * 2, "Duplicate hostroute"),
])
def test_malformed_routes(quiet, routes, words):
    r, _, _ = routed(quiet, gateway=False)
    error = neutron_error(set_routes(quiet, r["id"], routes), 400, "HTTPBadRequest",
                          "Invalid input for routes. Reason: ", words)
    assert error["detail"] == ""
    body = {"router": {"routes": routes}}
    r2 = quiet.request("PUT", f"{V2}/routers/{r['id']}/add_extraroutes", json=body)
    neutron_error(r2, 400, "HTTPBadRequest", words)
    assert get(quiet, f"routers/{r['id']}")["router"]["routes"] == []


def test_route_nexthops_must_be_connected_and_not_the_router(quiet):
    r, _, _ = routed(quiet)
    far = [{"destination": "10.9.0.0/16", "nexthop": "172.16.0.9"}]
    neutron_error(set_routes(quiet, r["id"], far), 400, "InvalidRoutes",
                  "Invalid format for routes: [{'destination': '10.9.0.0/16', 'nexthop': "
                  "'172.16.0.9'}], the nexthop is not connected with router")
    own = [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.1"}]
    neutron_error(set_routes(quiet, r["id"], own), 400, "InvalidRoutes",
                  "the nexthop is used by router")
    # the gateway's subnet is connected too, its address is the router's own
    gw = get(quiet, f"routers/{r['id']}")["router"]["external_gateway_info"]
    gw_ip = next(f["ip_address"] for f in gw["external_fixed_ips"] if "." in f["ip_address"])
    neutron_error(set_routes(quiet, r["id"], [{"destination": "10.9.0.0/16",
                                                "nexthop": gw_ip}]),
                  400, "InvalidRoutes", "the nexthop is used by router")
    mixed = [{"destination": "2001:db8:9::/64", "nexthop": "10.0.0.9"}]
    neutron_error(set_routes(quiet, r["id"], mixed), 400, "InvalidRoutes")
    ok = [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"},
          {"destination": "0.0.0.0/0", "nexthop": "203.0.113.254"}]
    resp = set_routes(quiet, r["id"], ok)
    assert resp.status_code == 200, resp.text
    assert sorted(resp.json()["router"]["routes"], key=lambda x: x["destination"]) == \
        sorted(ok, key=lambda x: x["destination"])


def test_too_many_routes(quiet):
    r, _, _ = routed(quiet, cidr="10.0.0.0/24", gateway=False)
    many = [{"destination": f"10.{100 + i}.0.0/16", "nexthop": "10.0.0.9"}
            for i in range(31)]
    error = neutron_error(set_routes(quiet, r["id"], many), 400, "RoutesExhausted")
    assert error["message"] == (f"Unable to complete operation for {r['id']}. The number "
                                "of routes exceeds the maximum 30.")
    assert set_routes(quiet, r["id"], many[:30]).status_code == 200
    resp = quiet.request("PUT", f"{V2}/routers/{r['id']}/add_extraroutes",
                         json={"router": {"routes": many[30:]}})
    neutron_error(resp, 400, "RoutesExhausted")
    assert len(get(quiet, f"routers/{r['id']}")["router"]["routes"]) == 30


def test_an_interface_a_route_needs_stays(quiet):
    r, _, sub = routed(quiet, gateway=False)
    route = [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}]
    assert set_routes(quiet, r["id"], route).status_code == 200
    error = neutron_error(action(quiet, r["id"], "remove_router_interface",
                                 subnet_id=sub["id"]), 409, "RouterInterfaceInUseByRoute")
    assert error["message"] == (f"Router interface for subnet {sub['id']} on router "
                                f"{r['id']} cannot be deleted, as it is required by one or "
                                "more routes.")
    neutron_error(action(quiet, r["id"], "remove_router_interface",
                         port_id=_interface_port(quiet, r["id"])),
                  409, "RouterInterfaceInUseByRoute")
    assert set_routes(quiet, r["id"], []).status_code == 200
    assert action(quiet, r["id"], "remove_router_interface",
                  subnet_id=sub["id"]).status_code == 200


# -- interfaces ----------------------------------------------------------------------------


def test_interfaces_refused(quiet):
    r, _, sub = routed(quiet, cidr="10.0.0.0/24")
    error = neutron_error(action(quiet, r["id"], "add_router_interface", subnet_id=sub["id"]),
                          400, "BadRequest")
    assert error["message"] == (f"Bad router request: Router already has a port on subnet "
                                f"{sub['id']}.")
    other = network(quiet)
    wide = subnet(quiet, other["id"], "10.0.0.0/16")
    error = neutron_error(action(quiet, r["id"], "add_router_interface",
                                 subnet_id=wide["id"]), 400, "BadRequest")
    assert error["message"] == (f"Bad router request: Cidr 10.0.0.0/16 of subnet "
                                f"{wide['id']} overlaps with cidr 10.0.0.0/24 of subnet "
                                f"{sub['id']}.")
    # the gateway's subnet counts too
    public = get(quiet, f"subnets?network_id={public_id(quiet)}&ip_version=4")["subnets"][0]
    clash = subnet(quiet, network(quiet)["id"], public["cidr"])
    neutron_error(action(quiet, r["id"], "add_router_interface", subnet_id=clash["id"]),
                  400, "BadRequest", "overlaps with")
    bare = subnet(quiet, network(quiet)["id"], "10.5.0.0/24", gateway_ip=None)
    neutron_error(action(quiet, r["id"], "add_router_interface", subnet_id=bare["id"]),
                  400, "BadRequest",
                  "Bad router request: Subnet for router interface must have a gateway IP.")
    neutron_error(action(quiet, r["id"], "add_router_interface", subnet_id="nope"),
                  404, "SubnetNotFound")
    neutron_error(action(quiet, r["id"], "add_router_interface"), 400, "BadRequest",
                  "Either subnet_id or port_id must be specified")


# -- deleting what routers use ------------------------------------------------------------


def test_deleting_what_a_router_uses(quiet):
    r, net, sub = routed(quiet)
    error = neutron_error(delete(quiet, f"routers/{r['id']}"), 409, "RouterInUse")
    assert error["message"] == f"Router {r['id']} still has ports"
    neutron_error(delete(quiet, f"subnets/{sub['id']}"), 409, "SubnetInUse")
    neutron_error(delete(quiet, f"networks/{net['id']}"), 409, "NetworkInUse")
    neutron_error(delete(quiet, f"ports/{_interface_port(quiet, r['id'])}"), 409)
    assert action(quiet, r["id"], "remove_router_interface",
                  subnet_id=sub["id"]).status_code == 200
    assert delete(quiet, f"routers/{r['id']}").status_code == 204
    assert delete(quiet, f"networks/{net['id']}").status_code == 204


# -- floating IPs ---------------------------------------------------------------------------


def test_floating_ip_needs_a_router_to_the_external_network(quiet):
    lonely = network(quiet)
    lonely_sub = subnet(quiet, lonely["id"], "10.1.0.0/24")
    vm = port(quiet, lonely["id"])
    error = neutron_error(fip_for(quiet, vm["id"], status=404), 404,
                          "ExternalGatewayForFloatingIPNotFound")
    assert error["message"] == (f"External network {public_id(quiet)} is not reachable from "
                                f"subnet {lonely_sub['id']}.  Therefore, cannot associate "
                                f"Port {vm['id']} with a Floating IP.")
    # a router on the subnet without a gateway is no path either
    r = router(quiet)
    assert action(quiet, r["id"], "add_router_interface",
                  subnet_id=lonely_sub["id"]).status_code == 200
    f = fip_for(quiet)
    neutron_error(put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=vm["id"]),
                  404, "ExternalGatewayForFloatingIPNotFound")
    assert put(quiet, f"routers/{r['id']}", "router", external_gateway_info={
        "network_id": public_id(quiet)}).status_code == 200
    resp = put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=vm["id"])
    assert resp.status_code == 200 and resp.json()["floatingip"]["router_id"] == r["id"]


def test_floating_ip_fixed_address_errors(quiet):
    r, net, sub = routed(quiet)
    vm = port(quiet, net["id"], fixed_ips=[{"subnet_id": sub["id"]},
                                           {"subnet_id": sub["id"]}])
    f = fip_for(quiet)
    one, two = (ip["ip_address"] for ip in vm["fixed_ips"])
    error = neutron_error(put(quiet, f"floatingips/{f['id']}", "floatingip",
                              port_id=vm["id"]), 400, "BadRequest")
    assert error["message"] == (f"Bad floatingip request: Port {vm['id']} has multiple "
                                "fixed IPv4 addresses.  Must provide a specific IPv4 address "
                                "when assigning a floating IP.")
    error = neutron_error(put(quiet, f"floatingips/{f['id']}", "floatingip",
                              port_id=vm["id"], fixed_ip_address="10.0.0.250"),
                          400, "BadRequest")
    assert error["message"] == (f"Bad floatingip request: Port {vm['id']} does not have "
                                "fixed ip 10.0.0.250.")
    neutron_error(put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=vm["id"],
                      fixed_ip_address="2001:db8::5"), 400, "BadRequest",
                  "since that is not an IPv4 address")
    neutron_error(put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=vm["id"],
                      fixed_ip_address="ten"), 400, "HTTPBadRequest",
                  "Invalid input for fixed_ip_address. Reason: 'ten' is not a valid IP "
                  "address.")
    resp = put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=vm["id"],
               fixed_ip_address=two)
    assert resp.status_code == 200 and resp.json()["floatingip"]["fixed_ip_address"] == two
    # the same fixed IP cannot have two floating IPs on one external network
    g = fip_for(quiet)
    error = neutron_error(put(quiet, f"floatingips/{g['id']}", "floatingip",
                              port_id=vm["id"], fixed_ip_address=two),
                          409, "FloatingIPPortAlreadyAssociated")
    assert error["message"] == (f"Cannot associate floating IP {g['floating_ip_address']} "
                                f"({g['id']}) with port {vm['id']} using fixed IP {two}, as "
                                "that fixed IP already has a floating IP on external "
                                f"network {public_id(quiet)}.")
    # its other address may have one
    resp = put(quiet, f"floatingips/{g['id']}", "floatingip", port_id=vm["id"],
               fixed_ip_address=one)
    assert resp.status_code == 200, resp.text


def test_floating_ip_on_a_port_without_ipv4(quiet):
    routed(quiet)
    v6 = network(quiet)
    subnet(quiet, v6["id"], "2001:db8:77::/64")
    vm = port(quiet, v6["id"])
    error = neutron_error(fip_for(quiet, vm["id"], status=400), 400, "BadRequest")
    assert error["message"] == (f"Bad floatingip request: Cannot add floating IP to port "
                                f"{vm['id']} that has no fixed IPv4 addresses.")
    neutron_error(fip_for(quiet, "nope", status=404), 404, "PortNotFound")
    # the cloud's own ports (a router's interface here) take none
    r, _, _ = routed(quiet, cidr="10.6.0.0/24")
    leg = _interface_port(quiet, r["id"])
    error = neutron_error(fip_for(quiet, leg, status=400), 400, "BadRequest")
    assert error["message"] == (f"Bad floatingip request: Port {leg} is unable to be "
                                "assigned a floating IP.")


# -- status --------------------------------------------------------------------------------


def test_status_follows_what_the_host_reports(cloud):
    """``cloud`` runs an agent (host ``compute-1``, fake drivers): it is the only host,
    so it runs the router and reports it."""
    r, net, _ = routed(cloud)
    shown = get(cloud, f"routers/{r['id']}")["router"]
    assert shown["status"] == "ACTIVE"
    assert shown["ha"] is False and shown["distributed"] is False
    assert shown["availability_zones"] == ["nova"]  # compute-1's zone
    assert shown["availability_zone_hints"] == []
    gw = shown["external_gateway_info"]
    assert gw["enable_snat"] is True and gw["network_id"] == public_id(cloud)
    assert any(f["ip_address"].startswith("203.0.113.") for f in gw["external_fixed_ips"])
    vm = port(cloud, net["id"])
    f = fip_for(cloud, vm["id"])
    assert f["status"] == "DOWN"  # until the host has the NAT in place
    wait_for(lambda: get(cloud, f"floatingips/{f['id']}")["floatingip"]["status"] ==
             "ACTIVE")
    resp = put(cloud, f"floatingips/{f['id']}", "floatingip", port_id=None)
    assert resp.json()["floatingip"]["status"] == "DOWN"
    # and it stays DOWN after the host's next reports
    cloud.services.network.changed()
    time.sleep(1.5)
    assert get(cloud, f"floatingips/{f['id']}")["floatingip"]["status"] == "DOWN"


def test_ha_and_distributed_are_for_admins(quiet):
    from tests.api.network_helpers import tenant

    t = tenant(quiet, "alpha")
    r = router(quiet, t.token)
    assert "ha" not in r and "distributed" not in r
    shown = get(quiet, f"routers/{r['id']}")["router"]
    assert shown["ha"] is False and shown["distributed"] is False


def test_reports_set_router_and_floating_ip_status(quiet):
    hostview = quiet.services.network.hostview
    r, net, _ = routed(quiet)
    vm = port(quiet, net["id"])
    f = fip_for(quiet, vm["id"])
    address, fixed = f["floating_ip_address"], f["fixed_ip_address"]
    assert _bound(quiet, r["id"]) == "host-a"
    # another host's word changes nothing
    hostview.report_routers("host-b", {}, [r["id"]])
    assert get(quiet, f"routers/{r['id']}")["router"]["status"] == "ACTIVE"
    hostview.report_routers("host-a", {}, [r["id"]])
    assert get(quiet, f"routers/{r['id']}")["router"]["status"] == "ERROR"
    assert get(quiet, f"floatingips/{f['id']}")["floatingip"]["status"] == "DOWN"
    router_ports = f"ports?device_id={r['id']}"
    assert {p["status"] for p in get(quiet, router_ports)["ports"]} == {"DOWN"}
    # in place, but with an older mapping: the floating IP stays DOWN
    hostview.report_routers("host-a", {r["id"]: {address: "10.0.0.77"}}, [])
    assert get(quiet, f"routers/{r['id']}")["router"]["status"] == "ACTIVE"
    # the router's interface and gateway ports are up with it, as Neutron's L3 agent
    # reports them
    owners = {p["device_owner"]: p["status"] for p in get(quiet, router_ports)["ports"]}
    assert owners == {"network:router_interface": "ACTIVE",
                      "network:router_gateway": "ACTIVE"}
    assert get(quiet, f"floatingips/{f['id']}")["floatingip"]["status"] == "DOWN"
    hostview.report_routers("host-a", {r["id"]: {address: fixed}}, [])
    assert get(quiet, f"floatingips/{f['id']}")["floatingip"]["status"] == "ACTIVE"
    assert [x["id"] for x in get(quiet, "floatingips?status=ACTIVE")["floatingips"]] == \
        [f["id"]]
    assert get(quiet, "floatingips?status=DOWN")["floatingips"] == []
    # a new association is DOWN again until reported
    other = port(quiet, net["id"])
    resp = put(quiet, f"floatingips/{f['id']}", "floatingip", port_id=other["id"])
    assert resp.json()["floatingip"]["status"] == "DOWN"


# -- one host per router --------------------------------------------------------------------


def _bound(cloud, router_id: str) -> str | None:
    with cloud.services.db.session() as session:
        row = session.get(Router, router_id)
        return row.host if row is not None else None


def test_a_router_runs_on_one_host(quiet, env):
    hosts = quiet.services.hosts
    add_host(quiet, "host-b")
    boot(quiet, env)  # on host-a (the scheduler's pick)
    r = router(quiet, external_gateway_info={"network_id": public_id(quiet)})
    # a gateway only: the live host with the fewest routers (a tie: by name)
    assert _bound(quiet, r["id"]) == "host-a"
    other = router(quiet, external_gateway_info={"network_id": public_id(quiet)})
    assert _bound(quiet, other["id"]) == "host-b"
    assert action(quiet, r["id"], "add_router_interface",
                  subnet_id=env.subnet).status_code == 200
    assert [s.id for s in hosts.desired_state("host-a").routers] == [r["id"]]
    state_b = hosts.desired_state("host-b")
    assert [s.id for s in state_b.routers] == [other["id"]]
    # host-b runs no router on the instance's network, nor that network's bridge
    assert env.network not in {n.id for n in state_b.networks}
    # host-a's agent goes silent: its routers move to a live host
    with quiet.services.db.session() as session:
        service = session.scalar(select(ComputeService).where(
            ComputeService.host == "host-a"))
        service.last_seen_at = utcnow() - dt.timedelta(minutes=5)
    assert sorted(s.id for s in hosts.desired_state("host-b").routers) == \
        sorted([r["id"], other["id"]])
    assert _bound(quiet, r["id"]) == "host-b"
    # the router host gets the bridges of every network it is on, without DHCP
    nets = {n.id: n for n in hosts.desired_state("host-b").networks}
    assert env.network in nets and nets[env.network].dhcp_mac is None
    assert public_id(quiet) in nets and nets[public_id(quiet)].external
    # a deleted host's routers move too
    with quiet.services.db.session() as session:
        session.delete(session.scalar(select(ComputeService).where(
            ComputeService.host == "host-b")))
        session.scalar(select(ComputeService).where(
            ComputeService.host == "host-a")).last_seen_at = utcnow()
    assert sorted(s.id for s in hosts.desired_state("host-a").routers) == \
        sorted([r["id"], other["id"]])
    shown = get(quiet, f"routers/{r['id']}")["router"]
    assert shown["availability_zones"] == ["nova"]


def test_a_router_goes_to_the_host_of_its_first_instance(quiet, env):
    hosts = quiet.services.hosts
    boot(quiet, env)  # host-a
    add_host(quiet, "host-b")
    # host-b has fewer routers, but the instance on the router's network is on host-a
    router(quiet, external_gateway_info={"network_id": public_id(quiet)})
    r = router(quiet)
    assert _bound(quiet, r["id"]) is None  # no ports: nothing to run yet
    assert action(quiet, r["id"], "add_router_interface",
                  subnet_id=env.subnet).status_code == 200
    assert _bound(quiet, r["id"]) == "host-a"
    assert r["id"] in {s.id for s in hosts.desired_state("host-a").routers}
    assert r["id"] not in {s.id for s in hosts.desired_state("host-b").routers}


# -- agents (read-only, admins) -------------------------------------------------------------


def test_agents_are_the_hosts_l3_and_dhcp_agents(cloud):
    """``cloud``'s one host (``compute-1``, fake drivers: routers and DHCP) has an L3
    and a DHCP agent; the L3 agent is where its routers run."""
    from tests.api.network_helpers import tenant

    agents = wait_for(lambda: get(cloud, "agents")["agents"])
    by_type = {a["agent_type"]: a for a in agents}
    assert set(by_type) == {"L3 agent", "DHCP agent"}
    l3 = by_type["L3 agent"]
    assert (l3["host"], l3["binary"], l3["topic"], l3["alive"], l3["admin_state_up"],
            l3["availability_zone"]) == ("compute-1", "neutron-l3-agent", "l3_agent",
                                         True, True, "nova")
    assert l3["configurations"]["agent_mode"] == "legacy"
    assert get(cloud, f"agents/{l3['id']}")["agent"] == l3
    assert [a["id"] for a in get(cloud, "agents?agent_type=L3 agent")["agents"]] == \
        [l3["id"]]
    assert get(cloud, "agents?host=elsewhere")["agents"] == []
    assert [a["id"] for a in get(cloud, "agents?alive=true")["agents"]] != []
    assert get(cloud, "agents?alive=false")["agents"] == []
    neutron_error(cloud.request("GET", f"{V2}/agents/nope"), 404, "AgentNotFound")

    r, _, _ = routed(cloud)
    [hosting] = get(cloud, f"routers/{r['id']}/l3-agents")["agents"]
    assert hosting["id"] == l3["id"] and hosting["ha_state"] is None
    assert get(cloud, f"agents/{l3['id']}")["agent"]["configurations"]["routers"] == 1
    unbound = router(cloud)
    assert get(cloud, f"routers/{unbound['id']}/l3-agents")["agents"] == []
    # not for project members: their list is empty (Neutron's policy filters every
    # agent out), reading one is refused
    t = tenant(cloud, "alpha")
    r_list = cloud.request("GET", f"{V2}/agents", token=t.token)
    assert r_list.status_code == 200 and r_list.json()["agents"] == [], r_list.text
    neutron_error(cloud.request("GET", f"{V2}/agents/{l3['id']}", token=t.token), 403,
                  "PolicyNotAuthorized")
    neutron_error(cloud.request("GET", f"{V2}/routers/{r['id']}/l3-agents", token=t.token),
                  403, "PolicyNotAuthorized")

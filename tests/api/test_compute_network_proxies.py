"""Nova's network proxy APIs (``onestack/api/compute/network_proxies.py``): floating
IPs, their pools and the ``addFloatingIp`` / ``removeFloatingIp`` actions, networks and
tenant networks, answered from the Networking service, in process (fake host drivers;
the host agent runs, so an association reaches the router's NAT)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.compute_helpers import BootEnv, action, boot, upload_image, wait_for
from tests.api.network_helpers import V2, Tenant, tenant
from tests.api.nova_helpers import nova, nova_error, ok
from tests.conftest import Cloud, running_cloud

PROXY = "2.35"     # the last microversion of the proxy APIs
ACTIONS = "2.43"   # the last one of the floating IP actions
FIP_KEYS = {"id", "ip", "pool", "fixed_ip", "instance_id"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[Cloud]:
    with running_cloud(tmp_path_factory.mktemp("netproxy")) as c:
        yield c


@pytest.fixture(scope="module")
def image(cloud) -> str:
    return upload_image(cloud)


@dataclass
class Project:
    """A project with a network and subnet routed to ``public`` by its router."""

    tenant: Tenant
    env: BootEnv
    router: str
    public: str


def public_id(cloud) -> str:
    r = cloud.request("GET", f"{V2}/networks?name=public")
    return str(ok(r)["networks"][0]["id"])


def project(cloud, image: str, name: str, cidr: str = "10.0.0.0/24",
            routed: bool = True) -> Project:
    t = tenant(cloud, name)
    net = ok(cloud.request("POST", f"{V2}/networks", token=t.token,
                           json={"network": {"name": f"{name}-net"}}), 201)["network"]
    sub = ok(cloud.request("POST", f"{V2}/subnets", token=t.token, json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4}}), 201)["subnet"]
    pub = public_id(cloud)
    router = ""
    if routed:
        router = ok(cloud.request("POST", f"{V2}/routers", token=t.token, json={"router": {
            "name": f"{name}-router", "external_gateway_info": {"network_id": pub}}}),
            201)["router"]["id"]
        ok(cloud.request("PUT", f"{V2}/routers/{router}/add_router_interface",
                         token=t.token, json={"subnet_id": sub["id"]}))
    return Project(t, BootEnv(image, net["id"], sub["id"], token=t.token), router, pub)


def fips(cloud, token: str, method: str = "GET", path: str = "", mv: str = PROXY,
         **kw: Any):
    return nova(cloud, method, f"/os-floating-ips{path}", token=token, microversion=mv,
                **kw)


def allocate(cloud, token: str, **body: Any) -> dict[str, Any]:
    return ok(fips(cloud, token, "POST", json=body))["floating_ip"]


def neutron_fip(cloud, fip_id: str) -> dict[str, Any]:
    return ok(cloud.request("GET", f"{V2}/floatingips/{fip_id}"))["floatingip"]


def address_of(cloud, sid: str, token: str) -> str:
    ports = ok(cloud.request("GET", f"{V2}/ports?device_id={sid}", token=token))["ports"]
    return str(ports[0]["fixed_ips"][0]["ip_address"])


# -- floating IPs and pools ------------------------------------------------------------


def test_allocate_show_list_delete(cloud, image):
    p = project(cloud, image, "fip-life")
    token = p.tenant.token
    pools = ok(nova(cloud, "GET", "/os-floating-ip-pools", token=token,
                    microversion=PROXY))["floating_ip_pools"]
    assert {"name": "public"} in pools
    by_default = allocate(cloud, token)               # the configured public network
    by_name = allocate(cloud, token, pool="public")
    by_id = allocate(cloud, token, pool=p.public)
    empty = ok(fips(cloud, token, "POST", content=b""))["floating_ip"]
    for f in (by_default, by_name, by_id, empty):
        assert set(f) == FIP_KEYS and f["pool"] == "public"
        assert f["ip"].startswith("203.0.113.") and f["fixed_ip"] is None
        assert f["instance_id"] is None
        # the very floating IP of the Networking API, in the caller's project
        n = neutron_fip(cloud, f["id"])
        assert (n["floating_ip_address"], n["floating_network_id"], n["project_id"]) == (
            f["ip"], p.public, p.tenant.project_id)
    shown = ok(fips(cloud, token, path=f"/{by_name['id']}"))["floating_ip"]
    assert shown == by_name
    listed = ok(fips(cloud, token))["floating_ips"]
    assert sorted(f["id"] for f in listed) == sorted(
        f["id"] for f in (by_default, by_name, by_id, empty))
    # an administrator's list is its own project's, as Nova's
    assert by_name not in ok(fips(cloud, "admin"))["floating_ips"]
    assert ok(fips(cloud, "admin", path=f"/{by_name['id']}"))["floating_ip"] == by_name

    r = fips(cloud, token, "DELETE", path=f"/{by_name['id']}")
    assert r.status_code == 202 and not r.content
    nova_error(fips(cloud, token, path=f"/{by_name['id']}"), 404,
               f"Floating IP not found for ID {by_name['id']}")
    r = cloud.request("GET", f"{V2}/floatingips/{by_name['id']}")
    assert r.status_code == 404
    nova_error(fips(cloud, token, "DELETE", path=f"/{by_name['id']}"), 404)


def test_floating_ip_faults(cloud, image):
    p = project(cloud, image, "fip-faults")
    other = tenant(cloud, "fip-faults-other")
    token = p.tenant.token
    nova_error(fips(cloud, token, "POST", json={"pool": "non_exist_pool"}), 404,
               "Floating IP pool not found.")
    # a pool is an external network: the project's own network is not one
    nova_error(fips(cloud, token, "POST", json={"pool": p.env.network}), 404)
    nova_error(fips(cloud, token, "POST", json={"pool": 5}), 400)
    nova_error(fips(cloud, token, "POST", content=b"[1]"), 400)
    for bad in ("00000000-0000-4000-8000-000000000000", "12345", "x"):
        nova_error(fips(cloud, token, path=f"/{bad}"), 404)
        nova_error(fips(cloud, token, "DELETE", path=f"/{bad}"), 404)
    mine = allocate(cloud, token)
    # another project's floating IP is not found for it
    nova_error(fips(cloud, other.token, path=f"/{mine['id']}"), 404)
    nova_error(fips(cloud, other.token, "DELETE", path=f"/{mine['id']}"), 404)
    assert neutron_fip(cloud, mine["id"])["id"] == mine["id"]
    # a small pool of the administrator's: its one address, then Nova's 404
    tiny = ok(cloud.request("POST", f"{V2}/networks", json={"network": {
        "name": "tiny", "router:external": True}}), 201)["network"]["id"]
    ok(cloud.request("POST", f"{V2}/subnets", json={"subnet": {
        "network_id": tiny, "cidr": "198.51.100.0/30", "ip_version": 4,
        "enable_dhcp": False}}), 201)
    assert {"name": "tiny"} in ok(nova(cloud, "GET", "/os-floating-ip-pools", token=token,
                                       microversion=PROXY))["floating_ip_pools"]
    only = allocate(cloud, token, pool="tiny")
    assert (only["pool"], only["ip"]) == ("tiny", "198.51.100.2")
    nova_error(fips(cloud, token, "POST", json={"pool": "tiny"}), 404,
               "No more floating IPs in pool tiny.")
    assert fips(cloud, token, "DELETE", path=f"/{only['id']}").status_code == 202
    assert allocate(cloud, token, pool=tiny)["ip"] == "198.51.100.2"  # released
    # two external networks of one name: which pool is meant is not known
    ok(cloud.request("POST", f"{V2}/networks", json={"network": {
        "name": "tiny", "router:external": True}}), 201)
    nova_error(fips(cloud, token, "POST", json={"pool": "tiny"}), 400, "Multiple")
    # the network quota applies, answered as Nova's 403
    ok(cloud.request("PUT", f"{V2}/quotas/{p.tenant.project_id}",
                     json={"quota": {"floatingip": 1}}))
    nova_error(fips(cloud, token, "POST", json={"pool": "public"}), 403,
               "IP allocation over quota in pool public.")


def test_reader_reads_and_member_writes(cloud, image):
    p = project(cloud, image, "fip-rbac", routed=False)
    reader = tenant(cloud, "fip-rbac-reader", role="reader")
    assert ok(fips(cloud, reader.token))["floating_ips"] == []
    msg = nova_error(fips(cloud, reader.token, "POST", json={}), 403)
    assert "os_compute_api:os-floating-ips:create" in msg
    f = allocate(cloud, p.tenant.token)
    assert fips(cloud, p.tenant.token, "DELETE", path=f"/{f['id']}").status_code == 202


def test_removed_from_2_36(cloud, image):
    p = project(cloud, image, "fip-versions", routed=False)
    token = p.tenant.token
    f = allocate(cloud, token)
    for path in ("/os-floating-ips", f"/os-floating-ips/{f['id']}",
                 "/os-floating-ip-pools", "/os-networks", f"/os-networks/{p.env.network}",
                 "/os-tenant-networks", f"/os-tenant-networks/{p.env.network}"):
        assert nova(cloud, "GET", path, token=token, microversion=PROXY).status_code == 200
        nova_error(nova(cloud, "GET", path, token=token, microversion="2.36"), 404)
    nova_error(fips(cloud, token, "POST", json={}, mv="2.36"), 404)
    nova_error(fips(cloud, token, "DELETE", path=f"/{f['id']}", mv="2.36"), 404)
    assert neutron_fip(cloud, f["id"])["id"] == f["id"]   # not deleted
    # no header at all is 2.1
    assert nova(cloud, "GET", "/os-floating-ips", token=token).status_code == 200


# -- addFloatingIp / removeFloatingIp --------------------------------------------------


def host_nat(cloud, router: str) -> list[tuple[str, str]]:
    """(floating address, fixed address) of each NAT the host's (fake) L3 driver has
    for the router."""
    agent = cloud.services.agent
    assert agent is not None
    spec = agent.network.l3.routers.get(router)
    return [] if spec is None else [(f.floating_ip, f.fixed_ip)
                                    for f in spec.floating_ips]


def wait_until(check, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_associate_applies_the_nat_and_disassociate_removes_it(cloud, image):
    p = project(cloud, image, "fip-assoc")
    token = p.tenant.token
    sid = boot(cloud, p.env, token=token)["id"]
    sid2 = boot(cloud, p.env, token=token, name="vm2")["id"]
    wait_for(cloud, sid, "ACTIVE", token=token)
    wait_for(cloud, sid2, "ACTIVE", token=token)
    fixed = address_of(cloud, sid, token)
    f = allocate(cloud, token)

    r = action(cloud, sid, {"addFloatingIp": {"address": f["ip"]}}, token=token,
               microversion=ACTIONS)
    assert r.status_code == 202 and not r.content, r.text
    shown = ok(fips(cloud, token, path=f"/{f['id']}"))["floating_ip"]
    assert (shown["instance_id"], shown["fixed_ip"]) == (sid, fixed)
    n = neutron_fip(cloud, f["id"])
    port = ok(cloud.request("GET", f"{V2}/ports?device_id={sid}"))["ports"][0]["id"]
    assert (n["port_id"], n["fixed_ip_address"], n["router_id"]) == (port, fixed, p.router)
    # the router's host applied the NAT and reported it: ACTIVE, as after a Neutron PUT
    assert wait_until(lambda: neutron_fip(cloud, f["id"])["status"] == "ACTIVE")
    assert host_nat(cloud, p.router) == [(f["ip"], fixed)]
    addresses = ok(nova(cloud, "GET", f"/servers/{sid}", token=token))["server"][
        "addresses"]["fip-assoc-net"]
    assert {"version": 4, "addr": f["ip"], "OS-EXT-IPS:type": "floating"}.items() <= {
        k: v for a in addresses if a["addr"] == f["ip"] for k, v in a.items()}.items()

    # a second floating IP for the same fixed IP: Neutron's conflict is Nova's 400
    g = allocate(cloud, token)
    nova_error(action(cloud, sid, {"addFloatingIp": {"address": g["ip"]}}, token=token,
                      microversion=ACTIONS), 400, "already has a floating IP")
    assert neutron_fip(cloud, g["id"])["port_id"] is None

    # associating it again elsewhere moves it (and the NAT)
    fixed2 = address_of(cloud, sid2, token)
    r = action(cloud, sid2, {"addFloatingIp": {"address": f["ip"], "fixed_address": fixed2}},
               token=token, microversion=ACTIONS)
    assert r.status_code == 202, r.text
    assert ok(fips(cloud, token, path=f"/{f['id']}"))["floating_ip"]["instance_id"] == sid2
    assert wait_until(lambda: host_nat(cloud, p.router) == [(f["ip"], fixed2)])
    nova_error(action(cloud, sid, {"removeFloatingIp": {"address": f["ip"]}}, token=token,
                      microversion=ACTIONS), 409,
               f"Floating IP {f['ip']} is not associated with instance {sid}.")

    r = action(cloud, sid2, {"removeFloatingIp": {"address": f["ip"]}}, token=token,
               microversion=ACTIONS)
    assert r.status_code == 202 and not r.content, r.text
    n = neutron_fip(cloud, f["id"])
    assert (n["port_id"], n["fixed_ip_address"], n["status"]) == (None, None, "DOWN")
    assert wait_until(lambda: host_nat(cloud, p.router) == [])
    assert ok(fips(cloud, token, path=f"/{f['id']}"))["floating_ip"]["instance_id"] is None
    nova_error(action(cloud, sid2, {"removeFloatingIp": {"address": f["ip"]}},
                      token=token, microversion=ACTIONS), 409)

    # deleting an associated floating IP through the proxy removes the NAT too
    assert action(cloud, sid, {"addFloatingIp": {"address": g["ip"]}}, token=token,
                  microversion=ACTIONS).status_code == 202
    assert wait_until(lambda: host_nat(cloud, p.router) != [])
    assert fips(cloud, token, "DELETE", path=f"/{g['id']}").status_code == 202
    assert wait_until(lambda: host_nat(cloud, p.router) == [])


def test_action_faults(cloud, image):
    p = project(cloud, image, "fip-act-faults", cidr="10.1.0.0/24")
    lonely = project(cloud, image, "fip-unrouted", cidr="10.2.0.0/24", routed=False)
    token = p.tenant.token
    sid = boot(cloud, p.env, token=token)["id"]
    wait_for(cloud, sid, "ACTIVE", token=token)
    f = allocate(cloud, token)

    def add(body: Any, server: str = sid, tok: str = token, mv: str = ACTIONS):
        return action(cloud, server, {"addFloatingIp": body}, token=tok, microversion=mv)

    def remove(body: Any, server: str = sid, tok: str = token, mv: str = ACTIONS):
        return action(cloud, server, {"removeFloatingIp": body}, token=tok,
                      microversion=mv)

    for bad in ({"address": ""}, {"address": "1.2.3"}, {}, {"address": 5},
                {"address": f["ip"], "extra": 1}, {"address": f["ip"], "fixed_address": ""},
                "x", None):
        nova_error(add(bad), 400)
    for bad in ({"address": ""}, {}, {"address": f["ip"], "fixed_address": "10.1.0.5"}):
        nova_error(remove(bad), 400)
    nova_error(add({"address": "0.0.0.0"}), 404, "floating IP not found")
    nova_error(remove({"address": "0.0.0.0"}), 404, "floating IP not found")
    nova_error(add({"address": f["ip"], "fixed_address": "192.0.2.99"}), 400,
               "Specified fixed address not assigned to instance")
    nova_error(add({"address": f["ip"]}, server="00000000-0000-4000-8000-000000000000"),
               404)
    # not associated at all
    nova_error(remove({"address": f["ip"]}), 409)
    # another project's floating IP is not found for this one
    theirs = allocate(cloud, lonely.tenant.token)
    nova_error(add({"address": theirs["ip"]}), 404)
    # no router between the server's subnet and the pool: Nova's 400, nothing changes
    lonely_sid = boot(cloud, lonely.env, token=lonely.tenant.token)["id"]
    wait_for(cloud, lonely_sid, "ACTIVE", token=lonely.tenant.token)
    nova_error(add({"address": theirs["ip"]}, server=lonely_sid, tok=lonely.tenant.token),
               400, "Unable to associate floating IP", "not reachable")
    assert neutron_fip(cloud, theirs["id"])["port_id"] is None
    # gone from 2.44 (the floating IP list from 2.36)
    nova_error(add({"address": f["ip"]}, mv="2.44"), 404)
    nova_error(remove({"address": f["ip"]}, mv="2.44"), 404)
    assert add({"address": f["ip"]}, mv="2.43").status_code == 202
    assert neutron_fip(cloud, f["id"])["port_id"] is not None
    # a reader may not associate
    reader = tenant(cloud, "fip-act-reader", role="reader")
    nova_error(remove({"address": f["ip"]}, tok=reader.token), 403)
    assert remove({"address": f["ip"]}).status_code == 202


# -- networks --------------------------------------------------------------------------


NETWORK_KEYS = {"id", "label", "cidr", "netmask", "gateway", "broadcast", "dns1", "dns2",
                "cidr_v6", "gateway_v6", "netmask_v6"}


def test_os_networks(cloud, image):
    p = project(cloud, image, "nets", cidr="10.3.0.0/24", routed=False)
    other = project(cloud, image, "nets-other", cidr="10.4.0.0/24", routed=False)
    token = p.tenant.token
    mine = ok(nova(cloud, "GET", "/os-networks", token=token, microversion=PROXY))[
        "networks"]
    by_label = {n["label"]: n for n in mine}
    assert set(by_label) >= {"nets-net", "public"} and "nets-other-net" not in by_label
    net = by_label["nets-net"]
    assert set(net) == NETWORK_KEYS
    assert (net["id"], net["cidr"], net["netmask"], net["gateway"], net["broadcast"],
            net["cidr_v6"]) == (p.env.network, "10.3.0.0/24", "255.255.255.0", "10.3.0.1",
                                "10.3.0.255", None)
    public = by_label["public"]
    assert public["cidr"] == "203.0.113.0/24" and public["cidr_v6"] == "2001:db8::/64"
    assert public["netmask_v6"] == "64"
    shown = ok(nova(cloud, "GET", f"/os-networks/{p.env.network}", token=token,
                    microversion=PROXY))["network"]
    assert shown == net
    nova_error(nova(cloud, "GET", f"/os-networks/{other.env.network}", token=token,
                    microversion=PROXY), 404, "Network not found")
    # an administrator sees every network, with nova-network's admin attributes
    admin = ok(nova(cloud, "GET", f"/os-networks/{p.env.network}",
                    microversion=PROXY))["network"]
    assert admin["project_id"] == p.tenant.project_id and admin["deleted"] is False
    assert admin["enable_dhcp"] is True and admin["vlan"] is None
    labels = {n["label"] for n in ok(nova(cloud, "GET", "/os-networks",
                                          microversion=PROXY))["networks"]}
    assert {"nets-net", "nets-other-net", "public"} <= labels
    # nova-network's writes are gone, at every microversion
    for method, path in (("POST", "/os-networks"), ("POST", "/os-networks/add"),
                         ("DELETE", f"/os-networks/{p.env.network}"),
                         ("POST", f"/os-networks/{p.env.network}/action"),
                         ("POST", "/os-tenant-networks"),
                         ("DELETE", f"/os-tenant-networks/{p.env.network}")):
        for mv in (PROXY, "2.96"):
            r = nova(cloud, method, path, microversion=mv, json={})
            assert r.status_code == 410, r.text
            assert r.json()["computeFault"]["code"] == 410
    assert ok(cloud.request("GET", f"{V2}/networks/{p.env.network}"))["network"]["id"]


def test_os_tenant_networks(cloud, image):
    p = project(cloud, image, "tnets", cidr="10.5.0.0/24", routed=False)
    other = project(cloud, image, "tnets-other", cidr="10.6.0.0/24", routed=False)
    token = p.tenant.token
    listed = ok(nova(cloud, "GET", "/os-tenant-networks", token=token,
                     microversion=PROXY))["networks"]
    assert all(set(n) == {"id", "cidr", "label"} for n in listed)
    assert {"id": p.env.network, "cidr": "10.5.0.0/24", "label": "tnets-net"} in listed
    assert other.env.network not in {n["id"] for n in listed}
    assert "public" in {n["label"] for n in listed}  # external networks are visible
    shown = ok(nova(cloud, "GET", f"/os-tenant-networks/{p.env.network}", token=token,
                    microversion=PROXY))["network"]
    assert shown == {"id": p.env.network, "cidr": "10.5.0.0/24", "label": "tnets-net"}
    nova_error(nova(cloud, "GET", f"/os-tenant-networks/{other.env.network}", token=token,
                    microversion=PROXY), 404, "Network not found")
    # a network without subnets has no cidr
    bare = ok(cloud.request("POST", f"{V2}/networks", token=token,
                            json={"network": {"name": "bare"}}), 201)["network"]["id"]
    shown = ok(nova(cloud, "GET", f"/os-tenant-networks/{bare}", token=token,
                    microversion=PROXY))["network"]
    assert shown == {"id": bare, "cidr": None, "label": "bare"}

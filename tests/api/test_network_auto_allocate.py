"""Neutron's auto-allocated topology (GET/DELETE /v2.0/auto-allocated-topology/{project})
and Nova's ``networks: "auto"`` on it, in process: what the topology is made of, that it
is made once (also under concurrent first requests), that its router is one the host
builds, dry-run, Neutron's faults, the default external network (``is_default``), the
tear-down, and servers booted with ``auto`` (one and several at once)."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import pytest

from onestack.db.models import AutoAllocatedTopology, Network, Port, Router, Subnet
from tests.api.compute_helpers import add_host, boot, nova_error, quiet_cloud, upload_image
from tests.api.network_helpers import (
    V2,
    Tenant,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    put,
    tenant,
)

TOPOLOGY = f"{V2}/auto-allocated-topology"


def allocate(cloud, project: str, token: str | None = "admin", status: int = 200,
             query: str = "") -> Any:
    r = cloud.request("GET", f"{TOPOLOGY}/{project}{query}", token=token)
    if status != 200:
        return r
    assert r.status_code == 200, r.text
    return r.json()["auto_allocated_topology"]


def counts(cloud, project: str) -> tuple[int, int, int]:
    """(networks, subnets, routers) of the project."""
    with cloud.services.db.session() as session:
        return tuple(session.query(model).filter_by(project_id=project).count()
                     for model in (Network, Subnet, Router))  # type: ignore[return-value]


def public(cloud) -> dict[str, Any]:
    return get(cloud, "networks?name=public")["networks"][0]


def default_pool(cloud, version: int) -> dict[str, Any]:
    [pool] = get(cloud, f"subnetpools?is_default=true&ip_version={version}")["subnetpools"]
    return pool


def wait_until(check, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def alpha(cloud) -> Tenant:
    return tenant(cloud, "alpha")


def test_extension_and_the_defaults_it_needs(cloud):
    aliases = {e["alias"] for e in get(cloud, "extensions")["extensions"]}
    assert "auto-allocated-topology" in aliases
    assert get(cloud, "extensions/auto-allocated-topology")["extension"]["name"] == \
        "Auto Allocated Topology Services"
    # public is the default external network; a tenant network has no is_default
    assert public(cloud)["is_default"] is True
    assert "is_default" not in network(cloud, name="plain")
    assert ids(get(cloud, "networks?is_default=true"), "networks") == [public(cloud)["id"]]
    assert default_pool(cloud, 4)["prefixes"] == ["172.30.0.0/16"]
    assert default_pool(cloud, 6)["prefixes"] == ["2001:db8:8000::/33"]


def test_get_makes_the_topology_once(cloud, alpha):
    topo = allocate(cloud, alpha.project_id, alpha.token)
    assert topo == {"id": topo["id"], "tenant_id": alpha.project_id,
                    "project_id": alpha.project_id}
    net = get(cloud, f"networks/{topo['id']}", token=alpha.token)["network"]
    assert (net["name"], net["project_id"], net["admin_state_up"], net["shared"]) == (
        "auto_allocated_network", alpha.project_id, True, False)
    subnets = {s["ip_version"]: s for s in
               get(cloud, f"subnets?network_id={topo['id']}", token=alpha.token)["subnets"]}
    assert set(subnets) == {4, 6}
    v4, v6 = subnets[4], subnets[6]
    assert (v4["name"], v4["cidr"], v4["subnetpool_id"], v4["gateway_ip"]) == (
        "auto_allocated_subnet_v4", "172.30.0.0/24", default_pool(cloud, 4)["id"],
        "172.30.0.1")
    assert v6["name"] == "auto_allocated_subnet_v6"
    assert v6["subnetpool_id"] == default_pool(cloud, 6)["id"]
    assert ipaddress.ip_network(v6["cidr"]).prefixlen == 64
    assert (v6["ipv6_ra_mode"], v6["ipv6_address_mode"]) == ("slaac", "slaac")
    [router] = get(cloud, f"routers?project_id={alpha.project_id}",
                   token=alpha.token)["routers"]
    assert router["name"] == "auto_allocated_router"
    gateway = router["external_gateway_info"]
    assert gateway["network_id"] == public(cloud)["id"] and gateway["enable_snat"] is True
    assert len(gateway["external_fixed_ips"]) == 2  # public's IPv4 and IPv6 subnets
    legs = get(cloud, f"ports?device_id={router['id']}&device_owner="
                      "network:router_interface")["ports"]
    assert sorted((p["fixed_ips"][0]["subnet_id"], p["fixed_ips"][0]["ip_address"])
                  for p in legs) == sorted([(v4["id"], "172.30.0.1"),
                                            (v6["id"], v6["gateway_ip"])])
    # again, and with "None" for the caller's project: the same network, nothing new
    assert counts(cloud, alpha.project_id) == (1, 2, 1)
    assert allocate(cloud, alpha.project_id, alpha.token)["id"] == topo["id"]
    assert allocate(cloud, "None", alpha.token)["id"] == topo["id"]
    assert counts(cloud, alpha.project_id) == (1, 2, 1)
    # another project: its own topology, the next /24 of the pool
    beta = tenant(cloud, "beta")
    other = allocate(cloud, beta.project_id, beta.token)
    assert other["id"] != topo["id"]
    [beta_v4] = get(cloud, f"subnets?network_id={other['id']}&ip_version=4")["subnets"]
    assert beta_v4["cidr"] == "172.30.1.0/24"


def test_the_router_is_built_by_the_host(cloud, alpha):
    topo = allocate(cloud, alpha.project_id, alpha.token)
    [router] = get(cloud, f"routers?project_id={alpha.project_id}")["routers"]
    [agent] = get(cloud, f"routers/{router['id']}/l3-agents")["agents"]
    assert agent["host"] == "compute-1"
    host = cloud.services.agent
    assert host is not None
    spec = wait_until(lambda: host.network.l3.routers.get(router["id"]))
    assert spec is not None, "the host never built the auto-allocated router"
    assert spec.gateway is not None and spec.enable_snat
    subnets = {s["cidr"] for s in get(cloud, f"subnets?network_id={topo['id']}")["subnets"]}
    built = {str(ipaddress.ip_interface(a).network)
             for leg in spec.interfaces for a in leg.addresses}
    assert built == subnets, (built, subnets)


def test_dry_run_and_fields(cloud, alpha):
    check = allocate(cloud, alpha.project_id, alpha.token, query="?fields=dry-run")
    assert check["id"] == "dry-run=pass" and check["tenant_id"] == alpha.project_id
    assert counts(cloud, alpha.project_id) == (0, 0, 0)  # validated, nothing made
    r = allocate(cloud, alpha.project_id, alpha.token, status=400, query="?fields=id")
    neutron_error(r, 400, "BadRequest", "Unrecognized field")
    assert counts(cloud, alpha.project_id) == (0, 0, 0)


def test_who_may(cloud, alpha):
    beta = tenant(cloud, "beta")
    reader = tenant(cloud, "gamma", role="reader")
    # a member asks only for its own project; a reader not at all
    r = allocate(cloud, alpha.project_id, beta.token, status=403)
    neutron_error(r, 403, "NotAuthorized", "Not authorized.")
    r = cloud.request("DELETE", f"{TOPOLOGY}/{alpha.project_id}", token=beta.token)
    neutron_error(r, 403, "NotAuthorized")
    neutron_error(allocate(cloud, reader.project_id, reader.token, status=403), 403,
                  "PolicyNotAuthorized")
    neutron_error(cloud.request("GET", f"{TOPOLOGY}/{alpha.project_id}", token=None), 401)
    assert counts(cloud, alpha.project_id) == (0, 0, 0)
    # the admin makes one for any project: it belongs to that project
    topo = allocate(cloud, alpha.project_id)
    assert topo["tenant_id"] == alpha.project_id
    assert topo["id"] in ids(get(cloud, "networks", token=alpha.token), "networks")
    assert allocate(cloud, alpha.project_id, alpha.token)["id"] == topo["id"]
    r = allocate(cloud, "x" * 65, status=400)
    neutron_error(r, 400, "InvalidInput")


def test_faults_without_defaults(cloud, alpha):
    ext = public(cloud)
    assert put(cloud, f"networks/{ext['id']}", "network", is_default=False).status_code \
        == 200
    for query in ("", "?fields=dry-run"):
        r = allocate(cloud, alpha.project_id, alpha.token, status=409, query=query)
        neutron_error(r, 409, "AutoAllocationFailure",
                      "Deployment error: No default router:external network.")
    assert put(cloud, f"networks/{ext['id']}", "network", is_default=True).status_code \
        == 200
    for version in (4, 6):
        pool = default_pool(cloud, version)
        assert put(cloud, f"subnetpools/{pool['id']}", "subnetpool",
                   is_default=False).status_code == 200
    r = allocate(cloud, alpha.project_id, alpha.token, status=409, query="?fields=dry-run")
    neutron_error(r, 409, "AutoAllocationFailure", "No default subnetpools defined")
    r = allocate(cloud, alpha.project_id, alpha.token, status=409)
    neutron_error(r, 409, "AutoAllocationFailure", "Unable to provide tenant private network")
    assert counts(cloud, alpha.project_id) == (0, 0, 0)  # nothing half-made


def test_an_exhausted_pool_leaves_nothing_behind(cloud, alpha):
    made = cloud.request("POST", f"{V2}/subnetpools", json={"subnetpool": {
        "name": "tiny", "prefixes": ["10.250.0.0/24"], "default_prefixlen": 24}})
    assert made.status_code == 201, made.text
    tiny = made.json()["subnetpool"]
    v4 = default_pool(cloud, 4)
    assert put(cloud, f"subnetpools/{v4['id']}", "subnetpool",
               is_default=False).status_code == 200
    assert put(cloud, f"subnetpools/{tiny['id']}", "subnetpool",
               is_default=True).status_code == 200
    first = allocate(cloud, alpha.project_id, alpha.token)
    beta = tenant(cloud, "beta")
    r = allocate(cloud, beta.project_id, beta.token, status=409)
    neutron_error(r, 409, "AutoAllocationFailure", "Unable to provide tenant private network")
    assert counts(cloud, beta.project_id) == (0, 0, 0)
    assert counts(cloud, alpha.project_id) == (1, 2, 1) and first["id"]


def test_over_quota(cloud, alpha):
    r = cloud.request("PUT", f"{V2}/quotas/{alpha.project_id}",
                      json={"quota": {"router": 0}})
    assert r.status_code == 200, r.text
    neutron_error(allocate(cloud, alpha.project_id, alpha.token, status=409), 409,
                  "OverQuota")
    assert counts(cloud, alpha.project_id) == (0, 0, 0)


def test_default_external_network_attribute(cloud, alpha):
    ext = public(cloud)
    # one default at a time
    r = cloud.request("POST", f"{V2}/networks", json={"network": {
        "name": "ext2", "router:external": True, "is_default": True}})
    neutron_error(r, 409, "DefaultExternalNetworkExists", ext["id"])
    ext2 = network(cloud, name="ext2", **{"router:external": True})
    assert ext2["is_default"] is False
    neutron_error(put(cloud, f"networks/{ext2['id']}", "network", is_default=True), 409,
                  "DefaultExternalNetworkExists")
    # the admin's attribute
    own = network(cloud, token=alpha.token, name="mine")
    neutron_error(put(cloud, f"networks/{own['id']}", "network", token=alpha.token,
                      is_default=True), 403, "PolicyNotAuthorized")
    r = cloud.request("POST", f"{V2}/networks", token=alpha.token,
                      json={"network": {"name": "x", "is_default": True}})
    neutron_error(r, 403, "PolicyNotAuthorized")
    # moving the default moves where auto-allocated routers go
    assert put(cloud, f"networks/{ext['id']}", "network", is_default=False).status_code \
        == 200
    r = put(cloud, f"networks/{ext2['id']}", "network", is_default=True)
    assert r.status_code == 200 and r.json()["network"]["is_default"] is True
    assert ids(get(cloud, "networks?is_default=true"), "networks") == [ext2["id"]]
    # an internal network is never the default: the attribute goes with router:external
    r = put(cloud, f"networks/{ext2['id']}", "network", **{"router:external": False})
    assert r.status_code == 200 and "is_default" not in r.json()["network"]
    with cloud.services.db.session() as session:
        assert session.get(Network, ext2["id"]).is_default is False
    # and a restart makes public the default again, since none is
    cloud.services.network.bootstrap(cloud.admin_project_id)
    assert public(cloud)["is_default"] is True


def test_delete_tears_it_down(cloud, alpha):
    # nothing to delete: still a 204
    r = cloud.request("DELETE", f"{TOPOLOGY}/{alpha.project_id}", token=alpha.token)
    assert r.status_code == 204
    topo = allocate(cloud, alpha.project_id, alpha.token)
    # a port in use on the network: 409, and everything stays
    used = port(cloud, topo["id"], token=alpha.token, device_id="vm", device_owner="compute:nova")
    r = cloud.request("DELETE", f"{TOPOLOGY}/{alpha.project_id}", token=alpha.token)
    neutron_error(r, 409, "NetworkInUse")
    assert counts(cloud, alpha.project_id) == (1, 2, 1)
    assert delete(cloud, f"ports/{used['id']}", token=alpha.token).status_code == 204
    r = cloud.request("DELETE", f"{TOPOLOGY}/None", token=alpha.token)
    assert r.status_code == 204, r.text
    assert counts(cloud, alpha.project_id) == (0, 0, 0)
    with cloud.services.db.session() as session:
        assert session.get(AutoAllocatedTopology, alpha.project_id) is None
        assert session.query(Port).filter(Port.network_id == topo["id"]).count() == 0
        # the router's gateway port went with it
        assert session.query(Port).filter(
            Port.device_owner == "network:router_gateway").count() == 0
    # the pool's prefix is free again, and a new topology can be had
    again = allocate(cloud, alpha.project_id, alpha.token)
    assert again["id"] != topo["id"]
    [v4] = get(cloud, f"subnets?network_id={again['id']}&ip_version=4")["subnets"]
    assert v4["cidr"] == "172.30.0.0/24"


def test_removed_by_hand_then_made_afresh(cloud, alpha):
    """What Tempest's cleanup does: interfaces off, router and network deleted through
    the ordinary API; the record goes with the network."""
    topo = allocate(cloud, alpha.project_id, alpha.token)
    [router] = get(cloud, f"routers?project_id={alpha.project_id}")["routers"]
    net = get(cloud, f"networks/{topo['id']}")["network"]
    for subnet_id in net["subnets"]:
        r = cloud.request("PUT", f"{V2}/routers/{router['id']}/remove_router_interface",
                          token=alpha.token, json={"subnet_id": subnet_id})
        assert r.status_code == 200, r.text
    assert delete(cloud, f"routers/{router['id']}", token=alpha.token).status_code == 204
    assert delete(cloud, f"networks/{topo['id']}", token=alpha.token).status_code == 204
    with cloud.services.db.session() as session:
        assert session.get(AutoAllocatedTopology, alpha.project_id) is None
    fresh = allocate(cloud, alpha.project_id, alpha.token)
    assert fresh["id"] != topo["id"] and counts(cloud, alpha.project_id) == (1, 2, 1)


def test_concurrent_first_requests_make_one_topology(cloud, alpha):
    service = cloud.services.network.auto_allocation
    ctx = cloud.services.identity.tokens.validate(alpha.token)
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(service.get(ctx, alpha.project_id)["id"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(results)) == 1 and len(results) == 4
    assert counts(cloud, alpha.project_id) == (1, 2, 1)


# -- Nova: networks "auto" -----------------------------------------------------------------


@pytest.fixture
def quiet(tmp_path):
    with quiet_cloud(tmp_path) as cloud:
        add_host(cloud, "host-a")
        yield cloud


def server_networks(cloud, server_id: str) -> set[str]:
    with cloud.services.db.session() as session:
        return {p.network_id for p in session.query(Port).filter_by(device_id=server_id)}


def test_server_auto_allocates_and_multi_create_shares_it(quiet):
    image = upload_image(quiet)
    lonely = tenant(quiet, "lonely")
    first = boot(quiet, None, token=lonely.token, name="a", imageRef=image, flavorRef="1",
                 networks="auto")
    [net_id] = server_networks(quiet, first["id"])
    topo = allocate(quiet, lonely.project_id, lonely.token)
    assert topo["id"] == net_id
    # three at once: the same network, no second topology
    r = boot(quiet, None, token=lonely.token, status=0, name="b", imageRef=image,
             flavorRef="1", networks="auto", min_count=3, return_reservation_id=True)
    assert r.status_code == 202, r.text
    servers = [s for s in quiet.request(
        "GET", "/compute/v2.1/servers", token=lonely.token).json()["servers"]]
    assert len(servers) == 4
    for s in servers:
        assert server_networks(quiet, s["id"]) == {net_id}
    assert counts(quiet, lonely.project_id) == (1, 2, 1)
    # "none": no network at all
    none = boot(quiet, None, token=lonely.token, name="c", imageRef=image, flavorRef="1",
                networks="none")
    assert server_networks(quiet, none["id"]) == set()


def test_server_auto_uses_an_existing_network_first(quiet):
    image = upload_image(quiet)
    own = tenant(quiet, "owner")
    net = network(quiet, token=own.token, name="mine")
    r = quiet.request("POST", f"{V2}/subnets", token=own.token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}})
    assert r.status_code == 201, r.text
    s = boot(quiet, None, token=own.token, name="a", imageRef=image, flavorRef="1",
             networks="auto")
    assert server_networks(quiet, s["id"]) == {net["id"]}
    assert counts(quiet, own.project_id) == (1, 1, 0)  # nothing auto-allocated


def test_server_auto_without_defaults_is_novas_400(quiet):
    image = upload_image(quiet)
    lonely = tenant(quiet, "lonely")
    ext = public(quiet)
    assert put(quiet, f"networks/{ext['id']}", "network", is_default=False).status_code \
        == 200
    r = boot(quiet, None, token=lonely.token, status=400, name="a", imageRef=image,
             flavorRef="1", networks="auto")
    nova_error(r, 400, f"Unable to automatically allocate a network for project "
                       f"{lonely.project_id}")
    assert counts(quiet, lonely.project_id) == (0, 0, 0)
    # "auto" before 2.37 is not a value at all
    r = boot(quiet, None, token=lonely.token, status=400, microversion="2.36", name="a",
             imageRef=image, flavorRef="1", networks="auto")
    assert r.status_code == 400

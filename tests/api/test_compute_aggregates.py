"""/compute/v2.1/os-aggregates: host aggregates, Nova's shapes and faults, and what
they mean: an aggregate's availability zone is its hosts' zone (os-services,
os-availability-zone, os-hosts, where the scheduler puts a server that asks for a
zone)."""

from __future__ import annotations

from typing import Any

import pytest

from onestack.db.models.compute import AggregateHost
from onestack.hostlink.types import HostReport
from tests.api.compute_helpers import (
    add_host,
    boot,
    force_state,
    nova,
    nova_error,
    ok,
    server,
    tenant,
)


def create(cloud, name: str, zone: str | None = None, microversion: str | None = None):
    body: dict = {"name": name}
    if zone is not None:
        body["availability_zone"] = zone
    return ok(nova(cloud, "POST", "/os-aggregates", microversion=microversion,
                   json={"aggregate": body}))["aggregate"]


def act(cloud, agg_id, body, microversion: str | None = None, token: str | None = "admin"):
    return nova(cloud, "POST", f"/os-aggregates/{agg_id}/action", token=token,
                microversion=microversion, json=body)


def show(cloud, agg_id, microversion: str | None = None):
    return ok(nova(cloud, "GET", f"/os-aggregates/{agg_id}",
                   microversion=microversion))["aggregate"]


def zone_of(cloud, host: str) -> str:
    services = ok(nova(cloud, "GET", f"/os-services?host={host}&binary=nova-compute"))[
        "services"]
    assert len(services) == 1, services
    return services[0]["zone"]


def zones(cloud) -> dict[str, list[str]]:
    """os-availability-zone/detail: zone -> its compute hosts."""
    detail = ok(nova(cloud, "GET", "/os-availability-zone/detail"))["availabilityZoneInfo"]
    return {z["zoneName"]: sorted(h for h, binaries in (z["hosts"] or {}).items()
                                  if "nova-compute" in binaries)
            for z in detail if z["zoneName"] != "internal"}


# -- shapes -------------------------------------------------------------------------------


def test_create_show_list_update_delete(quiet):
    created = create(quiet, "rack1", "az1")
    # Nova's create answer: no hosts, no metadata, no uuid before 2.41
    assert set(created) == {"availability_zone", "created_at", "deleted", "deleted_at", "id",
                            "name", "updated_at"}
    assert isinstance(created["id"], int)
    assert (created["name"], created["availability_zone"], created["deleted"],
            created["deleted_at"], created["updated_at"]) == ("rack1", "az1", False, None, None)
    agg_id = created["id"]
    shown = show(quiet, agg_id)
    assert shown["hosts"] == [] and shown["metadata"] == {"availability_zone": "az1"}
    assert "uuid" not in shown and shown["created_at"] == created["created_at"]
    new = show(quiet, agg_id, microversion="2.41")
    assert len(new["uuid"]) == 36
    plain = create(quiet, "rack2", microversion="2.41")
    assert plain["availability_zone"] is None and plain["uuid"] != new["uuid"]
    listed = ok(nova(quiet, "GET", "/os-aggregates", microversion="2.41"))["aggregates"]
    assert [(a["name"], a["uuid"]) for a in listed] == [("rack1", new["uuid"]),
                                                        ("rack2", plain["uuid"])]
    assert all(set(a) >= {"hosts", "metadata"} for a in listed)
    # rename (leading/trailing spaces dropped, as Nova normalises) and re-zone
    updated = ok(nova(quiet, "PUT", f"/os-aggregates/{agg_id}",
                      json={"aggregate": {"name": "  rack1b ", "availability_zone": "az9"}}))[
        "aggregate"]
    assert (updated["name"], updated["availability_zone"]) == ("rack1b", "az9")
    assert updated["metadata"] == {"availability_zone": "az9"} and updated["updated_at"]
    # delete answers 200 with no body; the aggregate is gone; ids are not reused
    r = nova(quiet, "DELETE", f"/os-aggregates/{plain['id']}")
    assert r.status_code == 200 and r.content == b""
    nova_error(nova(quiet, "GET", f"/os-aggregates/{plain['id']}"), 404,
               f"Aggregate {plain['id']} could not be found")
    again = create(quiet, "rack2")
    assert again["id"] > plain["id"]
    assert [a["name"] for a in ok(nova(quiet, "GET", "/os-aggregates"))["aggregates"]] == [
        "rack1b", "rack2"]


@pytest.mark.parametrize("body", [
    {}, {"aggregate": None}, {"aggregate": {}}, {"aggregate": {"name": ""}},
    {"aggregate": {"name": "a" * 256}}, {"aggregate": {"name": " lead"}},
    {"aggregate": {"name": 5}}, {"aggregate": {"name": "x", "bogus": 1}},
    {"aggregate": {"name": "x", "availability_zone": ""}},
    {"aggregate": {"name": "x", "availability_zone": "a:b"}},
    {"aggregate": {"name": "x", "availability_zone": "z" * 256}},
    {"aggregate": {"name": "x"}, "other": 1},
])
def test_create_refuses_bad_bodies(quiet, body):
    nova_error(nova(quiet, "POST", "/os-aggregates", json=body), 400)


def test_create_with_a_null_zone_has_none(quiet):
    r = ok(nova(quiet, "POST", "/os-aggregates",
                json={"aggregate": {"name": "x", "availability_zone": None}}))
    assert r["aggregate"]["availability_zone"] is None


def test_faults(quiet):
    agg = create(quiet, "dup")
    other = create(quiet, "other")
    nova_error(nova(quiet, "POST", "/os-aggregates", json={"aggregate": {"name": "dup"}}),
               409, "Aggregate dup already exists")
    nova_error(nova(quiet, "PUT", f"/os-aggregates/{other['id']}",
                    json={"aggregate": {"name": "dup"}}), 409)
    bodies: list[dict[str, Any]] = [
        {}, {"aggregate": {}}, {"aggregate": {"name": ""}},
        {"aggregate": {"availability_zone": ""}},
        {"aggregate": {"availability_zone": None}},   # a zone cannot be emptied
        {"aggregate": {"name": "x", "hosts": []}}]
    for body in bodies:
        nova_error(nova(quiet, "PUT", f"/os-aggregates/{agg['id']}", json=body), 400)
    # ids: not an integer is a 400, an unknown one (or -1) a 404
    for path in ("/os-aggregates/abc", "/os-aggregates/1.5"):
        nova_error(nova(quiet, "GET", path), 400, "must be an integer")
        nova_error(nova(quiet, "DELETE", path), 400)
    for ident in ("-1", "999999", "99999999999999999999999"):
        nova_error(nova(quiet, "GET", f"/os-aggregates/{ident}"), 404)
        nova_error(nova(quiet, "DELETE", f"/os-aggregates/{ident}"), 404)
        nova_error(nova(quiet, "PUT", f"/os-aggregates/{ident}",
                        json={"aggregate": {"name": "n"}}), 404)
        nova_error(act(quiet, ident, {"set_metadata": {"metadata": {"a": "b"}}}), 404)
        nova_error(act(quiet, ident, {"add_host": {"host": "host-a"}}), 404)
        nova_error(act(quiet, ident, {"remove_host": {"host": "host-a"}}), 404)
    # actions: one known action with Nova's body
    actions: list[dict[str, Any]] = [
        {}, {"add_host": {"host": "host-a"}, "remove_host": {"host": "host-a"}},
        {"add_host": {}}, {"add_host": {"host": ""}}, {"add_host": {"host": "a b"}},
        {"add_host": {"host": "host-a", "x": 1}}, {"remove_host": None},
        {"set_metadata": {}}, {"set_metadata": {"metadata": []}},
        {"set_metadata": {"metadata": {"bad/key": "v"}}},
        {"set_metadata": {"metadata": {"k": 5}}},
        {"set_metadata": {"metadata": {"k": "v" * 256}}},
        {"set_metadata": {"metadata": {"availability_zone": "a:b"}}},
        {"set_metadata": {"metadata": {"availability_zone": None}}},
        {"set_metadata": {"metadata": {"availability_zone": ""}}},
        {"cache_images": {}}, {"nope": {}}]
    for body in actions:
        nova_error(act(quiet, agg["id"], body), 400)
    # the failed requests changed nothing
    assert show(quiet, agg["id"]) == {**show(quiet, agg["id"]), "name": "dup", "hosts": [],
                                      "metadata": {}}


def test_only_administrators(quiet):
    agg = create(quiet, "admins-only")
    user = tenant(quiet, "someone")
    calls = [("GET", "/os-aggregates", None), ("POST", "/os-aggregates",
                                               {"aggregate": {"name": "mine"}}),
             ("GET", f"/os-aggregates/{agg['id']}", None),
             ("PUT", f"/os-aggregates/{agg['id']}", {"aggregate": {"name": "mine"}}),
             ("DELETE", f"/os-aggregates/{agg['id']}", None),
             ("POST", f"/os-aggregates/{agg['id']}/action", {"add_host": {"host": "host-a"}}),
             ("POST", f"/os-aggregates/{agg['id']}/action",
              {"remove_host": {"host": "host-a"}})]
    for method, path, body in calls:
        nova_error(nova(quiet, method, path, token=user.token, json=body), 403,
                   "os_compute_api:os-aggregates")
    assert show(quiet, agg["id"])["name"] == "admins-only"
    assert [a["name"] for a in ok(nova(quiet, "GET", "/os-aggregates"))["aggregates"]] == [
        "admins-only"]


# -- hosts and metadata ------------------------------------------------------------------


def test_hosts(quiet):
    add_host(quiet, "host-b")
    agg = create(quiet, "pair")
    nova_error(act(quiet, agg["id"], {"add_host": {"host": "no-such-host"}}), 404,
               "Compute host no-such-host could not be found")
    # a host must be a compute service: the server's own control services are not
    control = quiet.services.compute.hosts.host_name()
    if control not in ("host-a", "host-b"):
        nova_error(act(quiet, agg["id"], {"add_host": {"host": control}}), 404)
    body = ok(act(quiet, agg["id"], {"add_host": {"host": "host-b"}}))["aggregate"]
    assert body["hosts"] == ["host-b"] and body["metadata"] == {}
    body = ok(act(quiet, agg["id"], {"add_host": {"host": "host-a"}}, "2.41"))["aggregate"]
    assert body["hosts"] == ["host-a", "host-b"] and body["uuid"]
    nova_error(act(quiet, agg["id"], {"add_host": {"host": "host-a"}}), 409,
               f"Aggregate {agg['id']} already has host host-a")
    # an aggregate with hosts cannot be deleted
    nova_error(nova(quiet, "DELETE", f"/os-aggregates/{agg['id']}"), 400, "not empty")
    # a host in no zone's aggregate keeps its zone
    assert zone_of(quiet, "host-a") == "nova"
    other = create(quiet, "other")
    nova_error(act(quiet, other["id"], {"remove_host": {"host": "host-a"}}), 404,
               "Cannot remove host host-a in aggregate")
    nova_error(act(quiet, agg["id"], {"remove_host": {"host": "no-such-host"}}), 404)
    body = ok(act(quiet, agg["id"], {"remove_host": {"host": "host-a"}}))["aggregate"]
    assert body["hosts"] == ["host-b"]
    ok(act(quiet, agg["id"], {"remove_host": {"host": "host-b"}}))
    assert ok(nova(quiet, "DELETE", f"/os-aggregates/{agg['id']}")) is None


def test_set_metadata(quiet):
    agg = create(quiet, "meta")
    body = ok(act(quiet, agg["id"], {"set_metadata": {"metadata": {
        "ssd": "true", "gpu": "none", "rack": "r1"}}}))["aggregate"]
    assert body["metadata"] == {"gpu": "none", "rack": "r1", "ssd": "true"}
    assert body["updated_at"] is not None and body["availability_zone"] is None
    # keys are merged; a null removes one (an absent key is not an error)
    body = ok(act(quiet, agg["id"], {"set_metadata": {"metadata": {
        "ssd": "false", "gpu": None, "never-there": None}}}))["aggregate"]
    assert body["metadata"] == {"rack": "r1", "ssd": "false"}
    body = ok(act(quiet, agg["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az5"}}}))["aggregate"]
    assert body["availability_zone"] == "az5" and body["metadata"]["rack"] == "r1"
    assert show(quiet, agg["id"])["metadata"] == {"availability_zone": "az5", "rack": "r1",
                                                  "ssd": "false"}


# -- what a zone means -------------------------------------------------------------------


def test_an_aggregates_zone_is_its_hosts_zone(quiet, env):
    add_host(quiet, "host-b")
    az1 = create(quiet, "rack-1", "az1")
    ok(act(quiet, az1["id"], {"add_host": {"host": "host-a"}}))
    # os-services, os-hosts and os-availability-zone follow the aggregate
    assert zone_of(quiet, "host-a") == "az1" and zone_of(quiet, "host-b") == "nova"
    assert zones(quiet) == {"az1": ["host-a"], "nova": ["host-b"]}
    os_hosts = ok(nova(quiet, "GET", "/os-hosts?zone=az1"))["hosts"]
    assert [h["host_name"] for h in os_hosts] == ["host-a"]
    user = tenant(quiet, "viewer")
    listed = ok(nova(quiet, "GET", "/os-availability-zone", token=user.token))[
        "availabilityZoneInfo"]
    assert sorted(z["zoneName"] for z in listed) == ["az1", "nova"]
    # the scheduler puts a server asking for a zone on that zone's host
    vm1 = boot(quiet, env, availability_zone="az1")
    shown = server(quiet, vm1["id"])
    assert (shown["OS-EXT-SRV-ATTR:host"], shown["OS-EXT-AZ:availability_zone"]) == (
        "host-a", "az1")
    vm2 = boot(quiet, env, availability_zone="nova")
    assert server(quiet, vm2["id"])["OS-EXT-SRV-ATTR:host"] == "host-b"
    # a zone with no host left is refused at create
    r = boot(quiet, env, status=400, availability_zone="az-nowhere")
    nova_error(r, 400)

    # servers do not change zone: host-a runs one, so its zone is fixed
    nova_error(act(quiet, az1["id"], {"remove_host": {"host": "host-a"}}), 409,
               "from availability zone 'az1' to 'nova'")
    nova_error(act(quiet, az1["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az2"}}}), 400, "contain instances")
    nova_error(nova(quiet, "PUT", f"/os-aggregates/{az1['id']}",
                    json={"aggregate": {"availability_zone": "az2"}}), 400)
    # a host is in one zone only
    az3 = create(quiet, "rack-3", "az3")
    nova_error(act(quiet, az3["id"], {"add_host": {"host": "host-a"}}), 409,
               "already in availability zone(s) ['az1']")
    # ... but may be in several aggregates of its zone, and in any without a zone
    same = create(quiet, "rack-1-too", "az1")
    ok(act(quiet, same["id"], {"add_host": {"host": "host-a"}}))
    plain = create(quiet, "ssd-hosts")
    ok(act(quiet, plain["id"], {"add_host": {"host": "host-a"}}))
    # moving host-b (running vm2 in nova) into az3 would move its server
    nova_error(act(quiet, az3["id"], {"add_host": {"host": "host-b"}}), 409, "runs 1 server")
    # an aggregate's zone may not conflict with another zone of its hosts
    ok(act(quiet, plain["id"], {"add_host": {"host": "host-b"}}))   # no zone: allowed
    nova_error(act(quiet, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az7"}}}), 400, "already in availability zone(s)")
    assert zone_of(quiet, "host-b") == "nova"
    assert server(quiet, vm1["id"])["OS-EXT-AZ:availability_zone"] == "az1"


def test_zone_changes_move_idle_hosts(quiet, env):
    add_host(quiet, "host-b")
    agg = create(quiet, "rack", "east")
    ok(act(quiet, agg["id"], {"add_host": {"host": "host-b"}}))
    assert zones(quiet) == {"east": ["host-b"], "nova": ["host-a"]}
    ok(act(quiet, agg["id"], {"set_metadata": {"metadata": {"availability_zone": "west"}}}))
    assert zone_of(quiet, "host-b") == "west"
    ok(nova(quiet, "PUT", f"/os-aggregates/{agg['id']}",
            json={"aggregate": {"availability_zone": "north"}}))
    assert zones(quiet) == {"north": ["host-b"], "nova": ["host-a"]}
    vm = boot(quiet, env, availability_zone="north")
    assert server(quiet, vm["id"])["OS-EXT-SRV-ATTR:host"] == "host-b"
    # with a server, the zone stays; renaming the aggregate keeps it too
    ok(nova(quiet, "PUT", f"/os-aggregates/{agg['id']}",
            json={"aggregate": {"name": "rack-b", "availability_zone": "north"}}))
    assert zone_of(quiet, "host-b") == "north"
    # the server gone (a quiet cloud has no agent: finished as the host would), the
    # host goes back to the default zone when it leaves
    assert nova(quiet, "DELETE", f"/servers/{vm['id']}").status_code == 204
    force_state(quiet, vm["id"], deleted=True)
    ok(act(quiet, agg["id"], {"remove_host": {"host": "host-b"}}))
    assert zones(quiet) == {"nova": ["host-a", "host-b"]}


def test_a_deleted_compute_service_leaves_its_aggregates(quiet):
    service, _ = add_host(quiet, "host-gone")
    agg = create(quiet, "r", "az-x")
    ok(act(quiet, agg["id"], {"add_host": {"host": "host-gone"}}))
    assert zone_of(quiet, "host-gone") == "az-x"
    r = nova(quiet, "DELETE", f"/os-services/{service.uuid}", microversion="2.53")
    assert r.status_code == 204, r.text
    assert show(quiet, agg["id"])["hosts"] == []
    # registered again, it is a new host in the default zone
    quiet.services.compute.hostapi.register(_report("host-gone"))
    assert zone_of(quiet, "host-gone") == "nova"


def test_a_host_registering_takes_its_aggregates_zone(quiet):
    agg = create(quiet, "pre", "az-pre")
    with quiet.services.db.session() as session:  # a host listed before it registers
        session.add(AggregateHost(aggregate_id=agg["id"], host="host-new"))
    quiet.services.compute.hostapi.register(_report("host-new"))
    assert zone_of(quiet, "host-new") == "az-pre"


def _report(host: str) -> HostReport:
    return HostReport(host=host, hypervisor_hostname=f"{host}.example.org",
                      hypervisor_type="QEMU", hypervisor_version=8002000, accel="tcg",
                      vcpus=4, memory_mb=4096, local_gb=40, local_gb_used=0,
                      host_ip="192.0.2.20", cpu_info={}, cpu_allocation_ratio=16.0,
                      ram_allocation_ratio=1.5, disk_allocation_ratio=1.0, capabilities={})


# -- image pre-caching (2.81) ------------------------------------------------------------


def test_image_caching_is_refused_clearly(quiet):
    agg = create(quiet, "cache")
    image = "2b4e6c1e-3c8f-4e6a-9a55-0e6f3c2a7d11"
    path = f"/os-aggregates/{agg['id']}/images"
    body = {"cache": [{"id": image}]}
    nova_error(nova(quiet, "POST", path, microversion="2.80", json=body), 404)
    nova_error(nova(quiet, "POST", path, microversion="2.81", json=body), 501,
               "not supported")
    bad_bodies: list[dict[str, Any]] = [
        {}, {"cache": []}, {"cache": [{"id": "nope"}]}, {"cache": [{}]},
        {"cache": [{"id": image}, {"id": image}]}, {"cache": [{"id": image}], "x": 1}]
    for bad in bad_bodies:
        nova_error(nova(quiet, "POST", path, microversion="2.81", json=bad), 400)
    nova_error(nova(quiet, "POST", "/os-aggregates/424242/images", microversion="2.81",
                    json=body), 404)
    user = tenant(quiet, "u")
    nova_error(nova(quiet, "POST", path, microversion="2.81", json=body, token=user.token),
               403)

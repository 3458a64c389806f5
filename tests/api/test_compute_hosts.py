"""/compute/v2.1/os-services, os-hypervisors and os-availability-zone."""

from __future__ import annotations

import datetime as dt

import pytest

from onestack.db.models import ComputeNode, utcnow
from tests.api.nova_helpers import add_host, add_instance, nova, nova_error, ok, tenant


def services_of(cloud, microversion="2.53", query=""):
    return ok(nova(cloud, "GET", f"/os-services{query}",
                   microversion=microversion))["services"]


def test_control_services_are_registered(cloud):
    hosts = cloud.services.compute.hosts
    me = hosts.host_name()
    services = services_of(cloud, query=f"?host={me}")
    assert {s["binary"] for s in services} >= {"nova-scheduler", "nova-conductor"}
    for s in services:
        if s["binary"] != "nova-compute":
            assert (s["zone"], s["state"], s["status"]) == ("internal", "up", "enabled")
            assert s["forced_down"] is False and len(s["id"]) == 36
    # idempotent
    hosts.register_control_services(me)
    assert len([s for s in services_of(cloud) if s["host"] == me
                and s["binary"] == "nova-scheduler"]) == 1
    # old microversions: integer ids, no forced_down
    old = services_of(cloud, microversion=None)
    assert all(isinstance(s["id"], int) and "forced_down" not in s for s in old)


def test_state_filters_update_delete(cloud):
    fresh, _ = add_host(cloud, "cn1")
    stale, _ = add_host(cloud, "cn2", seen=utcnow() - dt.timedelta(seconds=120))
    by_host = {s["host"]: s for s in services_of(cloud, query="?binary=nova-compute")}
    assert {"cn1", "cn2"} <= set(by_host)
    assert all(s["binary"] == "nova-compute" for s in by_host.values())
    assert by_host["cn1"]["state"] == "up" and by_host["cn2"]["state"] == "down"
    assert by_host["cn1"]["zone"] == "nova"
    # disable with a reason, force down, enable again
    r = nova(cloud, "PUT", f"/os-services/{fresh.uuid}", microversion="2.53",
             json={"status": "disabled", "disabled_reason": "maintenance"})
    service = ok(r)["service"]
    assert (service["status"], service["disabled_reason"]) == ("disabled", "maintenance")
    r = nova(cloud, "PUT", f"/os-services/{fresh.uuid}", microversion="2.53",
             json={"forced_down": True})
    assert ok(r)["service"]["state"] == "down" and r.json()["service"]["forced_down"] is True
    nova_error(nova(cloud, "PUT", f"/os-services/{fresh.uuid}", microversion="2.53",
                    json={"status": "enabled", "disabled_reason": "x"}), 400)
    r = nova(cloud, "PUT", f"/os-services/{fresh.uuid}", microversion="2.53",
             json={"status": "enabled", "forced_down": "false"})
    service = ok(r)["service"]
    assert (service["status"], service["state"], service["disabled_reason"]) == (
        "enabled", "up", None)
    for body in ({}, {"status": "sleeping"}, {"forced_down": "maybe"}, {"bogus": 1},
                 {"disabled_reason": ""}):
        nova_error(nova(cloud, "PUT", f"/os-services/{fresh.uuid}", microversion="2.53",
                        json=body), 400)
    nova_error(nova(cloud, "PUT", "/os-services/not-a-uuid", microversion="2.53",
                    json={"status": "disabled"}), 400, "Invalid uuid not-a-uuid")
    nova_error(nova(cloud, "PUT", f"/os-services/{'0' * 32}", microversion="2.53",
                    json={"status": "disabled"}), 404)
    scheduler = next(s for s in services_of(cloud) if s["binary"] == "nova-scheduler")
    nova_error(nova(cloud, "PUT", f"/os-services/{scheduler['id']}", microversion="2.53",
                    json={"status": "disabled"}), 400, "Only nova-compute services")
    # a compute service hosting servers cannot go
    t = tenant(cloud, "alpha")
    add_instance(cloud, t.project_id, host="cn2")
    nova_error(nova(cloud, "DELETE", f"/os-services/{stale.uuid}", microversion="2.53"), 409)
    assert nova(cloud, "DELETE", f"/os-services/{fresh.uuid}",
                microversion="2.53").status_code == 204
    assert "cn1" not in {s["host"] for s in services_of(cloud)}
    assert "cn1" not in {h["hypervisor_hostname"] for h in ok(nova(
        cloud, "GET", "/os-hypervisors"))["hypervisors"]}
    nova_error(nova(cloud, "DELETE", "/os-services/abc"), 400)
    nova_error(nova(cloud, "DELETE", "/os-services/999999"), 404)


def test_legacy_actions(cloud):
    add_host(cloud, "cn1")
    r = nova(cloud, "PUT", "/os-services/disable-log-reason",
             json={"host": "cn1", "binary": "nova-compute", "disabled_reason": "why"})
    assert ok(r) == {"service": {"host": "cn1", "binary": "nova-compute",
                                 "status": "disabled", "disabled_reason": "why"}}
    r = nova(cloud, "PUT", "/os-services/enable", json={"host": "cn1", "binary": "nova-compute"})
    assert ok(r)["service"]["status"] == "enabled"
    r = nova(cloud, "PUT", "/os-services/force-down", microversion="2.11",
             json={"host": "cn1", "binary": "nova-compute", "forced_down": True})
    assert ok(r)["service"]["forced_down"] is True
    nova_error(nova(cloud, "PUT", "/os-services/force-down",
                    json={"host": "cn1", "binary": "nova-compute", "forced_down": True}), 400)
    nova_error(nova(cloud, "PUT", "/os-services/reboot",
                    json={"host": "cn1", "binary": "nova-compute"}), 404, "Unknown action")
    nova_error(nova(cloud, "PUT", "/os-services/disable",
                    json={"host": "nohost", "binary": "nova-compute"}), 404)
    nova_error(nova(cloud, "PUT", "/os-services/disable",
                    json={"host": "cn1", "binary": "nova-scheduler"}), 400)
    nova_error(nova(cloud, "PUT", "/os-services/disable-log-reason",
                    json={"host": "cn1", "binary": "nova-compute"}), 400)


def test_admin_only(cloud):
    t = tenant(cloud, "alpha")
    for path in ("/os-services", "/os-hypervisors", "/os-hypervisors/detail",
                 "/os-hypervisors/statistics", "/os-availability-zone/detail"):
        nova_error(nova(cloud, "GET", path, t.token), 403)
    nova_error(nova(cloud, "DELETE", f"/os-services/{'0' * 32}", t.token, "2.53"), 403)


def test_hypervisors(cloud):
    t = tenant(cloud, "alpha")
    service, node = add_host(cloud, "cn1", vcpus=4, memory_mb=8192, local_gb=50)
    add_host(cloud, "cn2", hypervisor_hostname="other.example.org")
    vm1 = add_instance(cloud, t.project_id, host="cn1", vcpus=2, memory_mb=1024, root_gb=10,
                       ephemeral_gb=5, display_name="one")
    add_instance(cloud, t.project_id, host="cn1", task_state="rebooting")
    add_instance(cloud, t.project_id, host="cn1", deleted=True, vcpus=8)
    detail = ok(nova(cloud, "GET", "/os-hypervisors/detail", microversion="2.28"))
    hyp = next(h for h in detail["hypervisors"] if h["hypervisor_hostname"] == "cn1.example.org")
    assert hyp["id"] == node.id and hyp["service"] == {"id": service.id, "host": "cn1",
                                                       "disabled_reason": None}
    assert (hyp["vcpus"], hyp["vcpus_used"], hyp["memory_mb"], hyp["memory_mb_used"]) == (
        4, 3, 8192, 1536)
    assert (hyp["local_gb"], hyp["local_gb_used"], hyp["free_disk_gb"]) == (50, 16, 34)
    assert (hyp["running_vms"], hyp["current_workload"], hyp["free_ram_mb"]) == (2, 1, 6656)
    assert (hyp["state"], hyp["status"], hyp["hypervisor_type"]) == ("up", "enabled", "QEMU")
    assert hyp["cpu_info"] == {"arch": "x86_64", "model": "qemu64"}
    old = ok(nova(cloud, "GET", f"/os-hypervisors/{node.id}"))["hypervisor"]
    assert isinstance(old["cpu_info"], str)
    # 2.53: uuids, pattern, with_servers
    shown = ok(nova(cloud, "GET", f"/os-hypervisors/{node.uuid}?with_servers=true",
                    microversion="2.53"))["hypervisor"]
    assert shown["id"] == node.uuid and shown["service"]["id"] == service.uuid
    assert {s["uuid"] for s in shown["servers"]} >= {vm1.uuid}
    found = ok(nova(cloud, "GET", "/os-hypervisors?hypervisor_hostname_pattern=other",
                    microversion="2.53"))["hypervisors"]
    assert [h["hypervisor_hostname"] for h in found] == ["other.example.org"]
    nova_error(nova(cloud, "GET", "/os-hypervisors?hypervisor_hostname_pattern=zzz",
                    microversion="2.53"), 404, "No hypervisor matching 'zzz'")
    nova_error(nova(cloud, "GET", "/os-hypervisors?hypervisor_hostname_pattern=cn&limit=1",
                    microversion="2.53"), 400)
    nova_error(nova(cloud, "GET", f"/os-hypervisors/{node.id}", microversion="2.53"), 400,
               "Invalid uuid")
    nova_error(nova(cloud, "GET", "/os-hypervisors/abc"), 404)
    nova_error(nova(cloud, "GET", "/os-hypervisors/999999"), 404)
    listed = ok(nova(cloud, "GET", "/os-hypervisors?with_servers=1", microversion="2.75"))
    assert all("servers" in h for h in listed["hypervisors"])
    # 2.33: pages
    page = ok(nova(cloud, "GET", "/os-hypervisors?limit=1", microversion="2.33"))
    assert len(page["hypervisors"]) == 1
    marker = page["hypervisors"][0]["id"]
    assert page["hypervisors_links"][0]["href"].endswith(f"limit=1&marker={marker}")
    rest = ok(nova(cloud, "GET", f"/os-hypervisors?limit=5&marker={marker}",
                   microversion="2.33"))
    assert marker not in [h["id"] for h in rest["hypervisors"]]
    nova_error(nova(cloud, "GET", "/os-hypervisors?marker=999999", microversion="2.33"), 400)
    # 2.88: no usage figures; uptime in the body; statistics and uptime routes gone
    latest = ok(nova(cloud, "GET", f"/os-hypervisors/{node.uuid}", microversion="2.88"))
    assert "vcpus" not in latest["hypervisor"] and "uptime" in latest["hypervisor"]
    assert latest["hypervisor"]["uptime"] is None  # not a host of this process
    nova_error(nova(cloud, "GET", "/os-hypervisors/statistics", microversion="2.88"), 404)
    nova_error(nova(cloud, "GET", f"/os-hypervisors/{node.uuid}/uptime", microversion="2.88"),
               404)
    stats = ok(nova(cloud, "GET", "/os-hypervisors/statistics"))["hypervisor_statistics"]
    assert stats["count"] >= 2 and stats["running_vms"] >= 2 and stats["vcpus_used"] >= 3
    nova_error(nova(cloud, "GET", f"/os-hypervisors/{node.id}/uptime"), 501)
    # the pre-2.53 search and servers routes
    found = ok(nova(cloud, "GET", "/os-hypervisors/cn1/search"))["hypervisors"]
    assert [h["id"] for h in found] == [node.id]
    servers = ok(nova(cloud, "GET", "/os-hypervisors/cn1/servers"))["hypervisors"]
    assert {s["name"] for s in servers[0]["servers"]} == {"one", "vm"}
    nova_error(nova(cloud, "GET", "/os-hypervisors/zzz/search"), 404)
    nova_error(nova(cloud, "GET", "/os-hypervisors/cn1/search", microversion="2.53"), 404)


def test_uptime_of_this_host(cloud):
    """The host of this process (its in-process agent, or the server's own machine)
    answers uptime."""
    me = cloud.services.compute.hosts.host_name()
    with cloud.services.db.session() as session:
        node = session.query(ComputeNode).filter(ComputeNode.host == me).one_or_none()
    if node is None:
        _, node = add_host(cloud, me)
    r = ok(nova(cloud, "GET", f"/os-hypervisors/{node.id}/uptime"))["hypervisor"]
    assert "load average" in r["uptime"]
    latest = ok(nova(cloud, "GET", f"/os-hypervisors/{node.uuid}", microversion="2.88"))
    assert "load average" in latest["hypervisor"]["uptime"]


def test_availability_zones(cloud):
    t = tenant(cloud, "alpha")
    add_host(cloud, "cn1")
    down, _ = add_host(cloud, "cn2", zone="az2")
    zones = ok(nova(cloud, "GET", "/os-availability-zone", t.token))["availabilityZoneInfo"]
    assert zones == [{"zoneName": "az2", "zoneState": {"available": True}, "hosts": None},
                     {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
    assert "internal" not in {z["zoneName"] for z in zones}
    ok(nova(cloud, "PUT", f"/os-services/{down.uuid}", microversion="2.53",
            json={"status": "disabled"}))
    zones = ok(nova(cloud, "GET", "/os-availability-zone", t.token))["availabilityZoneInfo"]
    assert {z["zoneName"]: z["zoneState"]["available"] for z in zones} == {
        "nova": True, "az2": False}
    detail = ok(nova(cloud, "GET", "/os-availability-zone/detail"))["availabilityZoneInfo"]
    by_name = {z["zoneName"]: z for z in detail}
    internal = by_name["internal"]["hosts"][cloud.services.compute.hosts.host_name()]
    assert internal["nova-scheduler"]["available"] is True
    assert internal["nova-conductor"]["active"] is True
    assert by_name["nova"]["hosts"]["cn1"]["nova-compute"]["available"] is True
    assert by_name["nova"]["hosts"]["cn1"]["nova-compute"]["updated_at"]
    assert by_name["az2"] == {"zoneName": "az2", "zoneState": {"available": False},
                              "hosts": None}


#: The Compute resources of flavors, key pairs, server groups, quotas, hosts and usage.
_PREFIXES = ("/compute/v2.1/flavors", "/compute/v2.1/os-keypairs",
             "/compute/v2.1/os-server-groups", "/compute/v2.1/os-quota",
             "/compute/v2.1/limits", "/compute/v2.1/os-services",
             "/compute/v2.1/os-hypervisors", "/compute/v2.1/os-availability-zone",
             "/compute/v2.1/os-simple-tenant-usage")
_BODIES = [b"{}", b"[1]", b'{"flavor": {"name": 5}}', b'{"keypair": []}',
           b'{"server_group": {"name": "g", "policy": null, "rules": 5}}',
           b'{"quota_set": {"instances": null}}', b'{"quota_class_set": []}',
           b'{"status": 1, "forced_down": []}', b'{"host": 1, "binary": []}',
           b'{"extra_specs": {"a": {"b": 1}}}', b'{"a": [1]}',
           b'{"addTenantAccess": {"tenant": 7}}']


@pytest.mark.parametrize("microversion", ["2.1", "2.11", "2.53", "2.64", "2.88", "latest"])
def test_bad_input_is_never_a_500(cloud, microversion):
    from tests.api.test_robustness import fill, routes

    seen = 0
    for path, method in routes(cloud):
        if not path.startswith(_PREFIXES):
            continue
        for ident in ("0" * 32, "1", "x" * 300, "%20"):
            url = fill(path, ident)
            headers = {"OpenStack-API-Version": f"compute {microversion}",
                       "Content-Type": "application/json"}
            if method in ("POST", "PUT"):
                for body in _BODIES:
                    r = cloud.request(method, url, content=body, headers=headers)
                    assert r.status_code < 500, f"{method} {url} {body!r}: {r.text}"
                    seen += 1
            else:
                query = "?limit=-1&marker=x&is_public=maybe&start=x&with_servers=x&user_id=%00"
                r = cloud.request(method, url + query, headers=headers)
                assert r.status_code < 500, f"{method} {url}: {r.text}"
                seen += 1
    assert seen > 100


def test_os_hosts_until_2_42(cloud):
    # openstack host list|show ask at 2.1; the routes were missing (404)
    add_host(cloud, "cn1", vcpus=4, memory_mb=2048, local_gb=50)
    hosts = ok(nova(cloud, "GET", "/os-hosts"))["hosts"]
    mine = [h for h in hosts if h["host_name"] == "cn1"]
    assert mine == [{"host_name": "cn1", "service": "compute", "zone": "nova"}]
    assert any(h["service"] == "scheduler" and h["zone"] == "internal" for h in hosts)
    assert all(h["zone"] == "nova" for h in ok(nova(cloud, "GET", "/os-hosts?zone=nova"))[
        "hosts"])
    resources = ok(nova(cloud, "GET", "/os-hosts/cn1"))["host"]
    by_project = {r["resource"]["project"]: r["resource"] for r in resources}
    assert by_project["(total)"] == {"host": "cn1", "project": "(total)", "cpu": 4,
                                     "memory_mb": 2048, "disk_gb": 50}
    assert by_project["(used_now)"]["cpu"] == 0 and by_project["(used_max)"]["cpu"] == 0
    nova_error(nova(cloud, "GET", "/os-hosts/nope"), 404, "Compute host nope")
    nova_error(nova(cloud, "PUT", "/os-hosts/cn1", json={"status": "disable"}), 501)
    for body in ({}, {"status": "off"}, {"maintenance_mode": "on"}, {"status": True},
                 {"status": "enable", "other": "x"}):
        nova_error(nova(cloud, "PUT", "/os-hosts/cn1", json=body), 400)
    nova_error(nova(cloud, "PUT", "/os-hosts/nope", json={"status": "ENABLE"}), 404)
    nova_error(nova(cloud, "GET", "/os-hosts/cn1/reboot"), 501)
    # gone from 2.43, as in Nova; admins only
    nova_error(nova(cloud, "GET", "/os-hosts", microversion="2.43"), 404)
    other = tenant(cloud, "other")
    nova_error(nova(cloud, "GET", "/os-hosts", token=other.token), 403)

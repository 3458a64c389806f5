"""/compute/v2.1/os-simple-tenant-usage: hours in a window, deleted servers, totals,
pagination (2.40), policy."""

from __future__ import annotations

import datetime as dt

import pytest

from onestack.db.models import utcnow
from onestack.services.compute.usage import hours_for
from tests.api.nova_helpers import add_host, add_instance, nova, nova_error, ok, tenant


def fmt(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def test_hours_for():
    t0 = dt.datetime(2026, 1, 1)
    hour = dt.timedelta(hours=1)
    assert hours_for(t0, None, t0, t0 + 2 * hour) == 2
    assert hours_for(t0 - hour, t0 + hour, t0, t0 + 2 * hour) == 1
    assert hours_for(t0 - 2 * hour, t0 - hour, t0, t0 + hour) == 0
    assert hours_for(t0 + 3 * hour, None, t0, t0 + hour) == 0
    assert hours_for(None, None, t0, t0 + hour) == 0


def test_usage_of_a_project(cloud):
    t, other = tenant(cloud, "alpha"), tenant(cloud, "beta")
    now = utcnow().replace(microsecond=0)
    start, end = now - dt.timedelta(hours=10), now - dt.timedelta(hours=2)
    running = add_instance(cloud, t.project_id, display_name="running", vcpus=2,
                           memory_mb=1024, root_gb=10, ephemeral_gb=5,
                           flavor={"name": "m1.small"},
                           launched_at=now - dt.timedelta(hours=5))
    gone = add_instance(cloud, t.project_id, display_name="gone", deleted=True,
                        vm_state="deleted", launched_at=now - dt.timedelta(hours=12),
                        terminated_at=now - dt.timedelta(hours=8),
                        deleted_at=now - dt.timedelta(hours=8))
    add_instance(cloud, t.project_id, display_name="before", deleted=True,
                 launched_at=now - dt.timedelta(hours=30),
                 terminated_at=now - dt.timedelta(hours=20))
    add_instance(cloud, t.project_id, display_name="never", launched_at=None,
                 vm_state="building")
    add_instance(cloud, other.project_id)
    r = nova(cloud, "GET", f"/os-simple-tenant-usage/{t.project_id}?start={fmt(start)}"
             f"&end={fmt(end)}", t.token)
    usage = ok(r)["tenant_usage"]
    assert usage["tenant_id"] == t.project_id
    assert usage["start"] == start.strftime("%Y-%m-%dT%H:%M:%S.%f")
    servers = {s["name"]: s for s in usage["server_usages"]}
    assert set(servers) == {"running", "gone"}
    assert servers["running"]["hours"] == pytest.approx(3)
    assert servers["running"]["state"] == "active" and servers["running"]["ended_at"] is None
    assert servers["running"]["flavor"] == "m1.small"
    assert (servers["running"]["vcpus"], servers["running"]["memory_mb"],
            servers["running"]["local_gb"]) == (2, 1024, 15)
    assert servers["running"]["instance_id"] == running.uuid
    assert servers["gone"]["hours"] == pytest.approx(2)
    assert servers["gone"]["state"] == "terminated"
    assert servers["gone"]["uptime"] == 4 * 3600 and servers["gone"]["instance_id"] == gone.uuid
    assert usage["total_hours"] == pytest.approx(5)
    assert usage["total_vcpus_usage"] == pytest.approx(2 * 3 + 1 * 2)
    assert usage["total_memory_mb_usage"] == pytest.approx(1024 * 3 + 512 * 2)
    assert usage["total_local_gb_usage"] == pytest.approx(15 * 3 + 1 * 2)
    # nothing in the window: an empty object
    empty = ok(nova(cloud, "GET", f"/os-simple-tenant-usage/{t.project_id}?start="
                    f"{fmt(now - dt.timedelta(days=30))}&end={fmt(now - dt.timedelta(days=29))}"))
    assert empty == {"tenant_usage": {}}


def test_all_projects_for_admins(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    add_instance(cloud, a.project_id)
    add_instance(cloud, b.project_id)
    start = fmt(utcnow() - dt.timedelta(days=1))
    usages = ok(nova(cloud, "GET", f"/os-simple-tenant-usage?start={start}"))["tenant_usages"]
    assert {u["tenant_id"] for u in usages} == {a.project_id, b.project_id}
    assert all("server_usages" not in u for u in usages)
    detailed = ok(nova(cloud, "GET", f"/os-simple-tenant-usage?start={start}&detailed=1"))
    assert all(len(u["server_usages"]) == 1 for u in detailed["tenant_usages"])
    nova_error(nova(cloud, "GET", "/os-simple-tenant-usage", a.token), 403,
               "os_compute_api:os-simple-tenant-usage:list")
    nova_error(nova(cloud, "GET", f"/os-simple-tenant-usage/{b.project_id}", a.token), 403)
    # an empty tenant id names nothing: a 404, not the list
    nova_error(nova(cloud, "GET", f"/os-simple-tenant-usage/?start={start}"), 404)


def test_pagination(cloud):
    t = tenant(cloud, "alpha")
    uuids = sorted(add_instance(cloud, t.project_id).uuid for _ in range(3))
    start = fmt(utcnow() - dt.timedelta(days=1))
    page = ok(nova(cloud, "GET", f"/os-simple-tenant-usage/{t.project_id}?start={start}"
                   "&limit=2", microversion="2.40"))
    assert [s["instance_id"] for s in page["tenant_usage"]["server_usages"]] == uuids[:2]
    (link,) = page["tenant_usage_links"]
    assert f"os-simple-tenant-usage/{t.project_id}?" in link["href"]
    assert f"marker={uuids[1]}" in link["href"]
    rest = ok(nova(cloud, "GET", f"/os-simple-tenant-usage/{t.project_id}?start={start}"
                   f"&limit=2&marker={uuids[1]}", microversion="2.40"))
    assert [s["instance_id"] for s in rest["tenant_usage"]["server_usages"]] == uuids[2:]
    assert "tenant_usage_links" not in rest
    listed = ok(nova(cloud, "GET", f"/os-simple-tenant-usage?start={start}&limit=1",
                     microversion="2.40"))
    assert "tenant_usages_links" in listed
    nova_error(nova(cloud, "GET", "/os-simple-tenant-usage?marker=nope", microversion="2.40"),
               400)


@pytest.mark.parametrize("query", [
    "start=yesterday", "end=2026-13-01T00:00:00",
    "start=2026-01-02T00:00:00&end=2026-01-01T00:00:00", "limit=-1",
])
def test_bad_queries(cloud, query):
    nova_error(nova(cloud, "GET", f"/os-simple-tenant-usage?{query}", microversion="2.40"),
               400)


def test_time_formats(cloud):
    for start in ("2026-01-01T00:00:00", "2026-01-01T00:00:00.000001",
                  "2026-01-01 00:00:00.000001", "2026-01-01T00:00:00Z"):
        assert nova(cloud, "GET", f"/os-simple-tenant-usage?start={start}").status_code == 200


def test_instance_usage_audit_log(cloud):
    add_host(cloud, "audit-a")
    logs = ok(nova(cloud, "GET", "/os-instance_usage_audit_log"))["instance_usage_audit_logs"]
    assert "audit-a" in logs["hosts_not_run"]
    n = logs["num_hosts"]
    assert n == len(logs["hosts_not_run"]) == logs["num_hosts_not_run"]
    assert (logs["num_hosts_done"], logs["total_errors"], logs["log"]) == (0, 0, {})
    assert logs["overall_status"] == f"0 of {n} hosts done. 0 errors."
    shown = ok(nova(cloud, "GET", "/os-instance_usage_audit_log/2026-03-15%2010:00:00.5")
               )["instance_usage_audit_log"]
    assert (shown["period_beginning"], shown["period_ending"]) == (
        "2026-02-01 00:00:00", "2026-03-01 00:00:00")
    january = ok(nova(cloud, "GET", "/os-instance_usage_audit_log/2026-01-01%2000:00:00")
                 )["instance_usage_audit_log"]
    assert january["period_beginning"] == "2025-12-01 00:00:00"
    nova_error(nova(cloud, "GET", "/os-instance_usage_audit_log/yesterday"), 400,
               "Invalid timestamp")
    member = tenant(cloud, "audit")
    nova_error(nova(cloud, "GET", "/os-instance_usage_audit_log", member.token), 403)

"""``GET /os-migrations``: every resize is recorded (in place: the server's host is
source and destination), its status following the resize through the fake host."""

from __future__ import annotations

from tests.api.compute_helpers import (
    action,
    boot,
    boot_env,
    nova,
    nova_error,
    ok,
    wait_for,
)
from tests.api.network_helpers import tenant


def _migrations(cloud, microversion: str = "2.80", query: str = "", token="admin"):
    return ok(nova(cloud, "GET", f"/os-migrations{query}", token=token,
                   microversion=microversion))["migrations"]


def test_resizes_are_recorded_with_their_outcome(cloud):
    env = boot_env(cloud)
    sid = boot(cloud, env)["id"]
    wait_for(cloud, sid, "ACTIVE")
    assert _migrations(cloud) == []
    assert action(cloud, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
    wait_for(cloud, sid, "VERIFY_RESIZE")
    [m] = _migrations(cloud)
    assert (m["instance_uuid"], m["migration_type"], m["status"]) == (sid, "resize",
                                                                     "finished")
    assert m["source_compute"] == m["dest_compute"] is not None
    assert (m["old_instance_type_id"], m["new_instance_type_id"]) == (1, 2)
    assert m["project_id"] == cloud.admin_project_id and len(m["uuid"]) == 36
    assert action(cloud, sid, {"confirmResize": None}).status_code == 204
    assert _migrations(cloud)[0]["status"] == "confirmed"
    # a second resize, reverted: newest first
    assert action(cloud, sid, {"resize": {"flavorRef": "3"}}).status_code == 202
    wait_for(cloud, sid, "VERIFY_RESIZE")
    assert action(cloud, sid, {"revertResize": None}).status_code == 202
    wait_for(cloud, sid, "ACTIVE")
    newest, oldest = _migrations(cloud)
    assert (newest["status"], oldest["status"]) == ("reverted", "confirmed")
    assert newest["id"] > oldest["id"]
    # filters, fields by microversion, paging
    assert _migrations(cloud, query="?status=reverted") == [newest]
    assert _migrations(cloud, query=f"?instance_uuid={sid}&migration_type=resize") == [
        newest, oldest]
    assert _migrations(cloud, query="?host=nowhere") == []
    plain = _migrations(cloud, microversion="2.1")[0]
    assert "migration_type" not in plain and "uuid" not in plain
    page = ok(nova(cloud, "GET", "/os-migrations?limit=1", microversion="2.80"))
    assert [m["id"] for m in page["migrations"]] == [newest["id"]]
    assert "marker=" in page["migrations_links"][0]["href"]
    assert _migrations(cloud, query=f"?marker={newest['uuid']}") == [oldest]
    nova_error(nova(cloud, "GET", "/os-migrations?marker=nope", microversion="2.80"), 404)
    nova_error(nova(cloud, "GET", "/os-migrations?bogus=1", microversion="2.80"), 400)
    # administrators only
    member = tenant(cloud, "alpha")
    nova_error(nova(cloud, "GET", "/os-migrations", token=member.token), 403)

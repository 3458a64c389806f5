"""Nova's volume proxies (``/compute/v2.1/os-volumes``, ``/os-snapshots``) in process,
through the Block Storage service (fake backend), and the refused
``os-assisted-volume-snapshots``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.compute_helpers import (
    BootEnv,
    boot,
    boot_env,
    nova,
    nova_error,
    ok,
    tenant,
    wait_for,
)
from tests.api.volume_helpers import VolumeClient

VOLUME_KEYS = {"id", "status", "size", "availabilityZone", "createdAt", "attachments",
               "displayName", "displayDescription", "volumeType", "snapshotId",
               "metadata"}
SNAPSHOT_KEYS = {"id", "volumeId", "status", "size", "createdAt", "displayName",
                 "displayDescription"}
MISSING = "6f1f4a52-0000-4000-8000-00000000000b"


def create(cloud, token: str | None = "admin", status: int = 200, **volume: Any) -> Any:
    volume.setdefault("size", 1)
    r = nova(cloud, "POST", "/os-volumes", token=token, json={"volume": volume})
    if status != 200:
        return r
    assert r.status_code == 200, r.text
    return r


def wait_status(cloud, path: str, key: str, status: str, token: str | None = "admin"
                ) -> dict[str, Any]:
    cloud.services.volume.wait_idle()
    deadline = time.monotonic() + 20
    while True:
        body = ok(nova(cloud, "GET", path, token=token))[key]
        if body["status"] == status:
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_volume_create_show_list_delete(cloud) -> None:
    r = create(cloud, display_name="data", display_description="scratch", size="2",
               metadata={"Type": "work"})
    vol = r.json()["volume"]
    assert set(vol) == VOLUME_KEYS
    assert r.headers["location"].endswith(f"/compute/v2.1/os-volumes/{vol['id']}")
    assert vol["displayName"] == "data" and vol["displayDescription"] == "scratch"
    assert vol["size"] == 2 and vol["metadata"] == {"Type": "work"}
    assert vol["availabilityZone"] == "nova" and vol["snapshotId"] is None
    assert vol["attachments"] == [{}]  # Nova's shape for a volume attached nowhere
    assert vol["volumeType"]  # the default type's name
    shown = wait_status(cloud, f"/os-volumes/{vol['id']}", "volume", "available")
    assert {**shown, "status": vol["status"]} == vol
    # the Block Storage service has the same volume
    cinder = VolumeClient(cloud).show(vol["id"])
    assert (cinder["name"], cinder["size"], cinder["volume_type"]) == \
        ("data", 2, vol["volumeType"])
    # list and detail are the same full view (Nova's summary is its detail)
    listed = ok(nova(cloud, "GET", "/os-volumes"))["volumes"]
    assert listed == ok(nova(cloud, "GET", "/os-volumes/detail"))["volumes"]
    assert listed == [shown]
    # an empty id is a 404, not the list (nor a redirect to it)
    for method in ("GET", "DELETE"):
        nova_error(nova(cloud, method, "/os-volumes/", follow_redirects=False), 404)
        nova_error(nova(cloud, method, "/os-snapshots/", follow_redirects=False), 404)
    assert VolumeClient(cloud).show(vol["id"])["status"] == "available"
    ok(nova(cloud, "DELETE", f"/os-volumes/{vol['id']}"), 202)
    cloud.services.volume.wait_idle()
    nova_error(nova(cloud, "GET", f"/os-volumes/{vol['id']}"), 404, vol["id"])
    assert ok(nova(cloud, "GET", "/os-volumes"))["volumes"] == []


def test_list_limit_and_offset(cloud) -> None:
    made = [create(cloud, display_name=f"v{i}").json()["volume"]["id"] for i in range(3)]
    everything = [v["id"] for v in ok(nova(cloud, "GET", "/os-volumes"))["volumes"]]
    assert sorted(everything) == sorted(made)
    for path in ("/os-volumes", "/os-volumes/detail"):
        page = ok(nova(cloud, "GET", f"{path}?limit=2"))["volumes"]
        assert [v["id"] for v in page] == everything[:2]
        page = ok(nova(cloud, "GET", f"{path}?offset=1&limit=1"))["volumes"]
        assert [v["id"] for v in page] == everything[1:2]
        assert ok(nova(cloud, "GET", f"{path}?limit=0"))["volumes"] != []
        nova_error(nova(cloud, "GET", f"{path}?offset=-1"), 400, "offset")
        nova_error(nova(cloud, "GET", f"{path}?limit=x"), 400, "limit")


@pytest.mark.parametrize("body, words", [
    ({"size": "#$%"}, ("size",)),
    ({"size": ""}, ("size",)),
    ({"size": "0"}, ("size", "minimum")),
    ({"size": 0}, ("size", "minimum")),
    ({"size": True}, ("size",)),
    ({"display_name": "no size"}, ("'size' is a required property",)),
    ({"size": 1, "name": "cinder's key"}, ("'name' was unexpected",)),
    ({"size": 1, "metadata": "x"}, ("metadata",)),
    ({"size": 1, "display_name": 5}, ("display_name",)),
])
def test_create_refuses_what_nova_schema_refuses(cloud, body: dict[str, Any],
                                                  words: tuple[str, ...]) -> None:
    r = nova(cloud, "POST", "/os-volumes", json={"volume": body})
    nova_error(r, 400, *words)
    assert VolumeClient(cloud).ok("GET", "/volumes")["volumes"] == []


def test_create_errors_from_the_volume_service(cloud) -> None:
    nova_error(nova(cloud, "POST", "/os-volumes", json={}), 400, "volume")
    nova_error(create(cloud, status=404, snapshot_id=MISSING), 404, MISSING)
    nova_error(create(cloud, status=400, availability_zone="elsewhere"), 400, "elsewhere")
    nova_error(create(cloud, status=404, volume_type="no-such-type"), 404)
    # over the project's quota: Nova's 403 (the volume service's is a 413)
    project = cloud.admin_project_id
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}",
                           json={"quota_set": {"volumes": 0}})
    nova_error(create(cloud, status=403), 403, "volumes")
    assert VolumeClient(cloud).ok("GET", "/volumes")["volumes"] == []


def test_projects_and_roles(cloud) -> None:
    alpha = tenant(cloud, "alpha")
    beta = tenant(cloud, "beta")
    vol = create(cloud, token=alpha.token).json()["volume"]
    cloud.services.volume.wait_idle()
    # another project neither sees nor deletes it
    assert ok(nova(cloud, "GET", "/os-volumes", token=beta.token))["volumes"] == []
    nova_error(nova(cloud, "GET", f"/os-volumes/{vol['id']}", token=beta.token), 404)
    nova_error(nova(cloud, "DELETE", f"/os-volumes/{vol['id']}", token=beta.token), 404)
    # its project's reader reads, but does not create or delete
    ident = cloud.services.identity
    user = ident.users.create(name="alpha-reader", password="reader-secret",
                              domain_id="default")
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user.id, alpha.project_id,
                                ident.roles.find("reader").id)
    reader = cloud.login("alpha-reader", "reader-secret", project="alpha")
    assert [v["id"] for v in ok(nova(cloud, "GET", "/os-volumes", token=reader))[
        "volumes"]] == [vol["id"]]
    nova_error(create(cloud, token=reader, status=403), 403, "os-volumes:create")
    nova_error(nova(cloud, "DELETE", f"/os-volumes/{vol['id']}", token=reader), 403)
    ok(nova(cloud, "DELETE", f"/os-volumes/{vol['id']}", token=alpha.token), 202)


def test_gone_from_microversion_2_36(cloud) -> None:
    vol = create(cloud).json()["volume"]
    for method, path in (("GET", "/os-volumes"), ("GET", "/os-volumes/detail"),
                         ("GET", f"/os-volumes/{vol['id']}"),
                         ("DELETE", f"/os-volumes/{vol['id']}"),
                         ("POST", "/os-volumes"), ("GET", "/os-snapshots"),
                         ("POST", "/os-snapshots")):
        nova_error(nova(cloud, method, path, microversion="2.36",
                        json={"volume": {"size": 1}}), 404)
    assert ok(nova(cloud, "GET", "/os-volumes", microversion="2.35"))["volumes"]
    # nothing was deleted or made at 2.36
    assert len(VolumeClient(cloud).ok("GET", "/volumes")["volumes"]) == 1


@pytest.fixture
def env(cloud) -> BootEnv:
    return boot_env(cloud)


def test_attached_volume_view_and_delete_refused(cloud, env: BootEnv) -> None:
    vol = create(cloud).json()["volume"]
    cloud.services.volume.wait_idle()
    created = boot(cloud, env)
    wait_for(cloud, created["id"], "ACTIVE")
    r = nova(cloud, "POST", f"/servers/{created['id']}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"]}})
    device = ok(r)["volumeAttachment"]["device"]
    shown = wait_status(cloud, f"/os-volumes/{vol['id']}", "volume", "in-use")
    assert shown["attachments"] == [{"id": vol["id"], "volumeId": vol["id"],
                                     "serverId": created["id"], "device": device}]
    # attached: the volume service refuses the delete, Nova's 400
    nova_error(nova(cloud, "DELETE", f"/os-volumes/{vol['id']}"), 400)
    assert VolumeClient(cloud).show(vol["id"])["status"] == "in-use"
    # a snapshot of an in-use volume needs force
    nova_error(nova(cloud, "POST", "/os-snapshots", json={"snapshot": {
        "volume_id": vol["id"]}}), 400, "in-use")
    snap = ok(nova(cloud, "POST", "/os-snapshots", json={"snapshot": {
        "volume_id": vol["id"], "force": "True"}}))["snapshot"]
    assert wait_status(cloud, f"/os-snapshots/{snap['id']}", "snapshot",
                       "available")["volumeId"] == vol["id"]


def test_snapshot_create_show_list_delete(cloud) -> None:
    vol = create(cloud, size=3).json()["volume"]
    cloud.services.volume.wait_idle()
    snap = ok(nova(cloud, "POST", "/os-snapshots", json={"snapshot": {
        "volume_id": vol["id"], "display_name": "snap", "display_description": "d"}})
    )["snapshot"]
    assert set(snap) == SNAPSHOT_KEYS
    assert (snap["volumeId"], snap["size"], snap["displayName"],
            snap["displayDescription"]) == (vol["id"], 3, "snap", "d")
    shown = wait_status(cloud, f"/os-snapshots/{snap['id']}", "snapshot", "available")
    assert VolumeClient(cloud).ok("GET", f"/snapshots/{snap['id']}")["snapshot"][
        "name"] == "snap"
    listed = ok(nova(cloud, "GET", "/os-snapshots"))["snapshots"]
    assert listed == ok(nova(cloud, "GET", "/os-snapshots/detail"))["snapshots"]
    assert listed == [shown]
    assert ok(nova(cloud, "GET", "/os-snapshots?offset=1"))["snapshots"] == []
    # a volume made from it through the proxy names it
    child = create(cloud, snapshot_id=snap["id"], size=3).json()["volume"]
    assert child["snapshotId"] == snap["id"]
    cloud.services.volume.wait_idle()
    ok(nova(cloud, "DELETE", f"/os-volumes/{child['id']}"), 202)
    cloud.services.volume.wait_idle()
    ok(nova(cloud, "DELETE", f"/os-snapshots/{snap['id']}"), 202)
    cloud.services.volume.wait_idle()
    nova_error(nova(cloud, "GET", f"/os-snapshots/{snap['id']}"), 404)
    nova_error(nova(cloud, "DELETE", f"/os-snapshots/{snap['id']}"), 404)


@pytest.mark.parametrize("body, status, words", [
    ({}, 400, ("snapshot",)),
    ({"snapshot": {}}, 400, ("'volume_id' is a required property",)),
    ({"snapshot": {"volume_id": 7}}, 400, ("volume_id",)),
    ({"snapshot": {"volume_id": MISSING, "force": "maybe"}}, 400, ("force",)),
    ({"snapshot": {"volume_id": MISSING, "name": "x"}}, 400, ("'name' was unexpected",)),
    ({"snapshot": {"volume_id": MISSING}}, 404, (MISSING,)),
])
def test_snapshot_create_errors(cloud, body: dict[str, Any], status: int,
                                words: tuple[str, ...]) -> None:
    nova_error(nova(cloud, "POST", "/os-snapshots", json=body), status, *words)


def test_assisted_volume_snapshots_are_refused(cloud) -> None:
    member = tenant(cloud, "alpha")
    good = {"snapshot": {"volume_id": MISSING, "create_info": {
        "snapshot_id": MISSING, "type": "qcow2", "new_file": "new_file"}}}
    path = "/os-assisted-volume-snapshots"
    nova_error(nova(cloud, "POST", path, token=member.token, json=good), 403,
               "os-assisted-volume-snapshots:create")
    nova_error(nova(cloud, "POST", path, json={"snapshot": {"volume_id": MISSING}}), 400,
               "create_info")
    bad_type = {"snapshot": {"volume_id": MISSING, "create_info": {
        "snapshot_id": MISSING, "type": "raw", "new_file": "f"}}}
    nova_error(nova(cloud, "POST", path, json=bad_type), 400, "qcow2")
    nova_error(nova(cloud, "POST", path, json=good), 501, "not supported")
    nova_error(nova(cloud, "DELETE", f"{path}/{MISSING}"), 400, "delete_info")
    nova_error(nova(cloud, "DELETE", f"{path}/{MISSING}?delete_info=%7B%7D"), 501,
               "not supported")
    nova_error(nova(cloud, "DELETE", f"{path}/{MISSING}?delete_info=%7B%7D",
                    token=member.token), 403)

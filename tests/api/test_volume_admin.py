"""Block Storage administration with the fake backend: volume type views, quota
classes, services (disable, freeze) and placement, hosts, backend capabilities, user
messages from a volume that could not be placed, and generic volume groups (group
types, groups, group snapshots, groups made from either)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.image_helpers import make_project_member
from tests.api.volume_helpers import VolumeClient, fault
from tests.conftest import Cloud, running_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("voladmin")), host_agent=False) as c:
        yield c


@pytest.fixture
def admin(cloud: Cloud) -> VolumeClient:
    return VolumeClient(cloud)


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> VolumeClient:
    token, project = make_project_member(cloud, "voladm-member")
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "volumes": -1, "snapshots": -1, "gigabytes": -1, "groups": -1}})
    return VolumeClient(cloud, token, project)


def _type(admin: VolumeClient, name: str, **extra: Any) -> dict[str, Any]:
    vt: dict[str, Any] = admin.ok("POST", "/types", json={"volume_type": {
        "name": name, **extra}})["volume_type"]
    return vt


def _refused(client: VolumeClient, **attrs: Any) -> dict[str, Any]:
    """A volume the scheduler cannot place: accepted (202), and in ``error`` at once."""
    vol: dict[str, Any] = client.ok("POST", "/volumes", status=202, json={"volume": {
        "size": 1, **attrs}})["volume"]
    assert vol["status"] == "error"
    return client.wait(vol["id"], "error")


def _wait(fetch: Any, status: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        item: dict[str, Any] = fetch()
        if item["status"] == status:
            return item
        assert time.monotonic() < deadline, item
        time.sleep(0.05)


# -- volume types ---------------------------------------------------------------------


def test_type_views_follow_cinder(admin: VolumeClient) -> None:
    created = _type(admin, "view-type", description="d")
    assert "qos_specs_id" not in created
    assert created["os-volume-type-access:is_public"] is True
    shown = admin.ok("GET", f"/types/{created['id']}")["volume_type"]
    assert shown["qos_specs_id"] is None
    updated = admin.ok("PUT", f"/types/{created['id']}", json={"volume_type": {
        "name": "view-type-2", "is_public": False}})["volume_type"]
    assert updated["name"] == "view-type-2" and updated["is_public"] is False
    assert "os-volume-type-access:is_public" not in updated
    assert "qos_specs_id" not in updated
    fault(admin.request("POST", "/types", json={"volume_type": {"name": "view-type-2"}}),
          409, "conflictingRequest", "already exists")
    fault(admin.request("POST", f"/types/{created['id']}/extra_specs",
                        json={"extra_specs": None}), 400, "badRequest")
    qos = admin.ok("POST", "/qos-specs", json={"qos_specs": {"name": "view-qos"}})
    assert qos["links"][0]["href"].endswith(f"/qos-specs/{qos['qos_specs']['id']}")
    assert admin.ok("GET", f"/qos-specs/{qos['qos_specs']['id']}")["links"]
    qos_id = qos["qos_specs"]["id"]
    assert admin.ok("PUT", f"/qos-specs/{qos_id}", json={"qos_specs": {"a": "1"}}) == {
        "qos_specs": {"a": "1"}}
    admin.ok("PUT", f"/qos-specs/{qos_id}", json={"qos_specs": {"b": "2"}})
    fault(admin.request("PUT", f"/qos-specs/{qos_id}/delete_keys", json={
        "keys": ["a", "nope"]}), 404, "itemNotFound", "nope")
    admin.ok("PUT", f"/qos-specs/{qos_id}/delete_keys", status=202, json={"keys": ["a"]})
    assert admin.ok("GET", f"/qos-specs/{qos_id}")["qos_specs"]["specs"] == {"b": "2"}
    admin.ok("GET", f"/qos-specs/{qos_id}/associate?vol_type_id={created['id']}",
             status=202)
    admin.ok("GET", f"/qos-specs/{qos_id}/disassociate_all", status=202)
    assert admin.ok("GET", f"/qos-specs/{qos_id}/associations")["qos_associations"] == []


def test_encryption_specs_are_kept_and_their_volumes_refused(admin: VolumeClient) -> None:
    vt = _type(admin, "enc-type")
    base = f"/types/{vt['id']}/encryption"
    assert admin.ok("GET", base) == {}
    fault(admin.request("POST", base, json={"encryption": {"control_location": "middle",
                                                             "provider": "luks"}}),
          400, "badRequest", "control location")
    fault(admin.request("POST", "/types/00000000-0000-4000-8000-00000000dead/encryption",
                        json={"encryption": {"provider": "luks"}}), 404, "itemNotFound")
    made = admin.ok("POST", base, json={"encryption": {
        "provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256,
        "control_location": "front-end"}})["encryption"]
    assert made["volume_type_id"] == vt["id"] and made["key_size"] == 256
    fault(admin.request("POST", base, json={"encryption": {"provider": "luks"}}), 400,
          "badRequest", "already exists")
    shown = admin.ok("GET", base)
    assert shown["encryption_id"] == made["encryption_id"] and shown["deleted"] is False
    assert admin.ok("PUT", f"{base}/{made['encryption_id']}", json={"encryption": {
        "key_size": 128}}) == {"encryption": {"key_size": 128}}
    assert admin.ok("GET", f"{base}/key_size") == {"key_size": 128}
    # no backend encrypts: a volume of the type is refused, with a message saying why
    vol = _refused(admin, volume_type=vt["id"])
    (msg,) = [m for m in admin.ok("GET", "/messages")["messages"]
              if m["resource_uuid"] == vol["id"]]
    assert "encrypted" in msg["user_message"]
    fault(admin.request("DELETE", f"{base}/{made['encryption_id']}"), 400, "badRequest",
          "in use")
    admin.ok("DELETE", f"/volumes/{vol['id']}", status=202)
    admin.gone(vol["id"])
    admin.ok("DELETE", f"{base}/{made['encryption_id']}", status=202)
    assert admin.ok("GET", base) == {}
    fault(admin.request("GET", f"{base}/cipher"), 404, "itemNotFound")


def test_force_detach_drops_a_bookkeeping_attachment(admin: VolumeClient,
                                                      member: VolumeClient) -> None:
    vol = member.create(1)
    server = "00000000-0000-4000-8000-0000000000f1"
    member.ok("POST", f"/volumes/{vol['id']}/action", status=202,
              json={"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}})
    att = member.wait(vol["id"], "in-use")["attachments"][0]
    admin.ok("POST", f"/volumes/{vol['id']}/action", status=202,
             json={"os-reset_status": {"status": "error"}})
    fault(member.request("POST", f"/volumes/{vol['id']}/action", json={
        "os-force_detach": {"attachment_id": att["attachment_id"]}}), 403, "forbidden")
    fault(admin.request("POST", f"/volumes/{vol['id']}/action", json={
        "os-force_detach": {"attachment_id": "nope"}}), 404, "itemNotFound")
    admin.ok("POST", f"/volumes/{vol['id']}/action", status=202, json={
        "os-force_detach": {"connector": None, "attachment_id": att["attachment_id"]}})
    shown = member.show(vol["id"])
    assert shown["status"] == "available" and shown["attachments"] == []
    # an attachment with a live connection (the attachments API's) is not forced away
    made = member.ok("POST", "/attachments", json={"attachment": {
        "volume_uuid": vol["id"], "instance_uuid": server,
        "connector": {"initiator": "iqn.x", "host": "h"}}})["attachment"]
    fault(admin.request("POST", f"/volumes/{vol['id']}/action", json={
        "os-force_detach": {"attachment_id": made["id"]}}), 400, "badRequest",
        "attachments API")


def test_update_snapshot_status_reports_progress(admin: VolumeClient,
                                                 member: VolumeClient) -> None:
    vol = member.create(1)
    snap = member.ok("POST", "/snapshots", status=202, json={"snapshot": {
        "volume_id": vol["id"]}})["snapshot"]
    member.cloud.services.volume.wait_idle()
    path = f"/snapshots/{snap['id']}/action"
    fault(member.request("POST", path, json={"os-update_snapshot_status": {
        "status": "error"}}), 400, "badRequest", "not allowed")   # it is available
    admin.ok("POST", path, status=202, json={"os-reset_status": {"status": "creating"}})
    fault(member.request("POST", path, json={"os-update_snapshot_status": {
        "status": "deleting"}}), 400, "badRequest", "not allowed")
    fault(member.request("POST", path, json={"os-update_snapshot_status": {
        "status": "error", "progress": 80}}), 400, "badRequest")
    member.ok("POST", path, status=202, json={"os-update_snapshot_status": {
        "status": "error", "progress": "80%"}})
    shown = member.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]
    assert shown["status"] == "error"
    assert shown["os-extended-snapshot-attributes:progress"] == "80%"
    member.ok("DELETE", f"/snapshots/{snap['id']}", status=202)


# -- quota classes --------------------------------------------------------------------


def test_default_quota_class_sets_every_projects_defaults(cloud: Cloud,
                                                          admin: VolumeClient) -> None:
    token, project = make_project_member(cloud, "voladm-quota")
    member = VolumeClient(cloud, token, project)  # a project without limits of its own
    shown = admin.ok("GET", "/os-quota-class-sets/default")["quota_class_set"]
    assert shown["id"] == "default" and shown["volumes"] >= 0
    vt = _type(admin, "class-type")
    try:
        body = admin.ok("PUT", "/os-quota-class-sets/default", json={"quota_class_set": {
            "volumes": 2, "volumes_class-type": 5}})["quota_class_set"]
        assert body["volumes"] == 2 and body["volumes_class-type"] == 5
        assert "id" not in body
        defaults = admin.ok("GET", f"/os-quota-sets/{member.project}/defaults")["quota_set"]
        assert defaults["volumes"] == 2 and defaults["volumes_class-type"] == 5
        # a project without limits of its own is held to the class's
        made = [member.create(1)["id"] for _ in range(2)]
        fault(member.request("POST", "/volumes", json={"volume": {"size": 1}}), 413,
              "overLimit", "volumes")
        for vid in made:
            member.ok("DELETE", f"/volumes/{vid}", status=202)
            member.gone(vid)
    finally:
        admin.ok("PUT", "/os-quota-class-sets/default", json={"quota_class_set": {
            "volumes": shown["volumes"]}})
    fault(admin.request("PUT", "/os-quota-class-sets/default", json={"quota_class_set": {
        "bogus": 1}}), 400, "badRequest", "bogus")
    fault(admin.request("PUT", "/os-quota-class-sets/default", json={"quota_class_set": {
        "volumes": -5}}), 400, "badRequest")
    fault(member.request("GET", "/os-quota-class-sets/default"), 403, "forbidden")
    admin.ok("DELETE", f"/types/{vt['id']}", status=202)


# -- services, placement, messages ----------------------------------------------------


def test_services_hosts_and_capabilities(admin: VolumeClient) -> None:
    services = admin.ok("GET", "/os-services")["services"]
    binaries = {s["binary"]: s for s in services}
    volume_host = binaries["cinder-volume"]["host"]
    assert volume_host.startswith("onestack@")
    only = admin.ok("GET", "/os-services?host=onestack&binary=cinder-volume")["services"]
    assert [s["host"] for s in only] == [volume_host]
    assert admin.ok("GET", "/os-services?host=elsewhere")["services"] == []

    hosts = admin.ok("GET", "/os-hosts")["hosts"]
    assert {h["service"] for h in hosts} == {"cinder-scheduler", "cinder-volume"}
    vol = admin.create(2)
    usage = admin.ok("GET", f"/os-hosts/{volume_host}")["host"]
    assert usage[0]["resource"]["project"] == "(total)"
    mine = [u["resource"] for u in usage if u["resource"]["project"] == admin.project]
    assert int(mine[0]["volume_count"]) >= 1 and int(mine[0]["total_volume_gb"]) >= 2
    fault(admin.request("GET", "/os-hosts/onestack"), 404, "itemNotFound")

    pools = admin.ok("GET", "/scheduler-stats/get_pools?detail=True")["pools"]
    caps = admin.ok("GET", f"/capabilities/{volume_host}")
    assert caps["vendor_name"] == pools[0]["capabilities"]["vendor_name"] == "OneStack"
    assert caps["storage_protocol"] == pools[0]["capabilities"]["storage_protocol"]
    assert caps["namespace"].startswith("OS::Storage::Capabilities::")
    fault(admin.request("GET", "/capabilities/nowhere@x"), 404, "itemNotFound")
    admin.ok("DELETE", f"/volumes/{vol['id']}", status=202)


def test_disabled_or_frozen_backend_takes_no_volumes(admin: VolumeClient) -> None:
    host = admin.ok("GET", "/os-services?binary=cinder-volume")["services"][0]["host"]
    fault(admin.request("PUT", "/os-services/disable-log-reason", json={
        "host": host, "binary": "cinder-volume", "disabled_reason": None}), 400,
        "badRequest")
    fault(admin.request("PUT", "/os-services/enable", json={
        "host": "invalid", "binary": "cinder-volume"}), 404, "itemNotFound")
    fault(admin.request("PUT", "/os-services/disable", json={
        "host": host, "binary": "invalid"}), 404, "itemNotFound")
    fault(admin.request("PUT", "/os-services/freeze", json={"host": "invalid"}), 400,
          "badRequest")
    body = admin.ok("PUT", "/os-services/disable-log-reason", json={
        "host": host, "binary": "cinder-volume", "disabled_reason": "maintenance"})
    assert body["disabled"] is True and body["disabled_reason"] == "maintenance"
    try:
        svc = admin.ok("GET", "/os-services?binary=cinder-volume")["services"][0]
        assert svc["status"] == "disabled" and svc["disabled_reason"] == "maintenance"
        _refused(admin)
    finally:
        body = admin.ok("PUT", "/os-services/enable", json={
            "host": host, "binary": "cinder-volume"})
    assert body["disabled"] is False and body["status"] == "enabled"
    admin.ok("PUT", "/os-services/freeze", json={"host": host})
    try:
        assert admin.ok("GET", "/os-services?binary=cinder-volume")["services"][0]["frozen"]
        _refused(admin)
    finally:
        admin.ok("PUT", "/os-services/thaw", json={"host": host})
    admin.create(1)


def test_unplaceable_type_gives_error_volume_and_message(admin: VolumeClient,
                                                         member: VolumeClient) -> None:
    caps = admin.ok("GET", "/scheduler-stats/get_pools?detail=True")["pools"][0][
        "capabilities"]
    good = _type(admin, "placeable", extra_specs={
        "storage_protocol": caps["storage_protocol"], "vendor_name": "OneStack"})
    bad = _type(admin, "unplaceable", extra_specs={
        "storage_protocol": "iSCSI", "vendor_name": "Other"})
    assert member.create(1, volume_type=good["id"])["status"] == "available"
    vol = _refused(member, volume_type=bad["id"])
    messages = member.ok("GET", "/messages")["messages"]
    (msg,) = [m for m in messages if m["resource_uuid"] == vol["id"]]
    assert msg["event_id"] == "VOLUME_VOLUME_001_003"
    assert "backend" in msg["user_message"] and msg["request_id"].startswith("req-")
    shown = member.ok("GET", f"/messages/{msg['id']}")["message"]
    assert shown["id"] == msg["id"]
    member.ok("DELETE", f"/messages/{msg['id']}", status=204)
    fault(member.request("GET", f"/messages/{msg['id']}"), 404, "itemNotFound")


# -- groups ---------------------------------------------------------------------------


def test_group_types_and_specs(admin: VolumeClient, member: VolumeClient) -> None:
    gt = admin.ok("POST", "/group_types", status=202, json={"group_type": {
        "name": "b-gt", "description": "d", "is_public": False,
        "group_specs": {"k": "v"}}})["group_type"]
    pub = admin.ok("POST", "/group_types", status=202, json={"group_type": {
        "name": "a-gt"}})["group_type"]
    names = [t["name"] for t in admin.ok("GET", "/group_types?sort=name:asc&is_public=None")
             ["group_types"]]
    assert names.index("a-gt") < names.index("b-gt")
    private = admin.ok("GET", "/group_types?is_public=False")["group_types"]
    assert [t["name"] for t in private] == ["b-gt"]
    assert "b-gt" not in [t["name"] for t in member.ok("GET", "/group_types")["group_types"]]
    fault(member.request("GET", f"/group_types/{gt['id']}"), 404, "itemNotFound")
    fault(member.request("POST", "/group_types", json={"group_type": {"name": "x"}}), 403,
          "forbidden")
    fault(admin.request("POST", "/group_types", json={"group_type": {"name": "a-gt"}}),
          409, "conflictingRequest")
    fault(admin.request("POST", "/group_types", json={"group_type": {"name": "x"}},
                        version="3.10"), 404, "itemNotFound")
    body = admin.ok("POST", f"/group_types/{gt['id']}/group_specs", status=202,
                    json={"group_specs": {"k2": "v2"}})
    assert body == {"group_specs": {"k2": "v2"}}
    assert admin.ok("GET", f"/group_types/{gt['id']}/group_specs")["group_specs"] == {
        "k": "v", "k2": "v2"}
    assert admin.ok("PUT", f"/group_types/{gt['id']}/group_specs/k",
                    json={"k": "v3"}) == {"k": "v3"}
    admin.ok("DELETE", f"/group_types/{gt['id']}/group_specs/k", status=202)
    fault(admin.request("GET", f"/group_types/{gt['id']}/group_specs/k"), 404,
          "itemNotFound")
    updated = admin.ok("PUT", f"/group_types/{gt['id']}", json={"group_type": {
        "name": "c-gt", "description": "new"}})["group_type"]
    assert updated["name"] == "c-gt" and updated["description"] == "new"
    for t in (gt, pub):
        admin.ok("DELETE", f"/group_types/{t['id']}", status=202)
    fault(admin.request("GET", f"/group_types/{gt['id']}"), 404, "itemNotFound")


def _group(client: VolumeClient, gt: str, vt: str, name: str = "g") -> dict[str, Any]:
    made = client.ok("POST", "/groups", status=202, json={"group": {
        "name": name, "group_type": gt, "volume_types": [vt]}})["group"]
    return _wait(lambda: client.ok("GET", f"/groups/{made['id']}")["group"], "available")


def _members(client: VolumeClient, group_id: str) -> list[dict[str, Any]]:
    return [v for v in client.ok("GET", "/volumes/detail")["volumes"]
            if v["group_id"] == group_id]


def test_group_lifecycle_and_snapshots(admin: VolumeClient, member: VolumeClient) -> None:
    gt = admin.ok("POST", "/group_types", status=202, json={"group_type": {
        "name": "life-gt"}})["group_type"]
    vt = _type(admin, "life-vt")
    other_vt = _type(admin, "other-vt")
    group = _group(member, gt["id"], vt["id"])
    assert group["volume_types"] == [vt["id"]] and group["group_type"] == gt["id"]
    usage = admin.ok("GET", f"/os-quota-sets/{member.project}?usage=true")["quota_set"]
    assert usage["groups"]["in_use"] == 1
    vols = [member.create(1, volume_type=vt["id"], group_id=group["id"]) for _ in range(2)]
    assert all(v["group_id"] == group["id"] for v in vols)
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "volume_type": other_vt["id"], "group_id": group["id"]}}), 400,
        "badRequest", "volume_type")
    shown = member.ok("GET", f"/groups/{group['id']}")["group"]
    assert sorted(shown["volumes"]) == sorted(v["id"] for v in vols)

    # membership changes
    member.ok("PUT", f"/groups/{group['id']}", status=202, json={"group": {
        "name": "renamed", "remove_volumes": vols[1]["id"]}})
    assert [v["id"] for v in _members(member, group["id"])] == [vols[0]["id"]]
    assert member.ok("GET", f"/groups/{group['id']}")["group"]["name"] == "renamed"
    member.ok("PUT", f"/groups/{group['id']}", status=202, json={"group": {
        "add_volumes": vols[1]["id"]}})
    assert len(_members(member, group["id"])) == 2
    loose = member.create(1, volume_type=other_vt["id"])
    fault(member.request("PUT", f"/groups/{group['id']}", json={"group": {
        "add_volumes": loose["id"]}}), 400, "badRequest", "volume type")

    # a group snapshot: one snapshot of each member
    gsnap = member.ok("POST", "/group_snapshots", status=202, json={"group_snapshot": {
        "group_id": group["id"], "name": "gs"}})["group_snapshot"]
    assert gsnap["group_type_id"] == gt["id"]
    gsnap = _wait(lambda: member.ok("GET", f"/group_snapshots/{gsnap['id']}")[
        "group_snapshot"], "available")
    snaps = [s for s in member.ok("GET", "/snapshots/detail")["snapshots"]
             if s["group_snapshot_id"] == gsnap["id"]]
    assert sorted(s["volume_id"] for s in snaps) == sorted(v["id"] for v in vols)
    assert all(s["status"] == "available" for s in snaps)
    listed = member.ok("GET", "/group_snapshots/detail")["group_snapshots"]
    assert [g["group_id"] for g in listed if g["id"] == gsnap["id"]] == [group["id"]]

    # a group from the group snapshot, and one from the group
    copy = member.ok("POST", "/groups/action", status=202, json={"create-from-src": {
        "group_snapshot_id": gsnap["id"], "name": "from-snap"}})["group"]
    copy = _wait(lambda: member.ok("GET", f"/groups/{copy['id']}")["group"], "available")
    copied = _members(member, copy["id"])
    assert sorted(v["snapshot_id"] for v in copied) == sorted(s["id"] for s in snaps)
    assert all(v["status"] == "available" for v in copied)
    clone = member.ok("POST", "/groups/action", status=202, json={"create-from-src": {
        "source_group_id": group["id"], "name": "clone"}})["group"]
    clone = _wait(lambda: member.ok("GET", f"/groups/{clone['id']}")["group"], "available")
    assert clone["source_group_id"] == group["id"]
    assert sorted(v["source_volid"] for v in _members(member, clone["id"])) == \
        sorted(v["id"] for v in vols)

    # a group with snapshots cannot go; a group with volumes needs delete-volumes
    fault(member.request("POST", f"/groups/{group['id']}/action", json={
        "delete": {"delete-volumes": True}}), 400, "badRequest", "snapshots")
    fault(member.request("POST", f"/group_snapshots/{gsnap['id']}/action", json={
        "reset_status": {"status": "error"}}), 403, "forbidden")
    admin.ok("POST", f"/group_snapshots/{gsnap['id']}/action", status=202, json={
        "reset_status": {"status": "error"}})
    assert member.ok("GET", f"/group_snapshots/{gsnap['id']}")["group_snapshot"][
        "status"] == "error"
    # an administrator's reset stands (it is not worked out again from the members)
    admin.ok("POST", f"/group_snapshots/{gsnap['id']}/action", status=202, json={
        "reset_status": {"status": "creating"}})
    assert member.ok("GET", f"/group_snapshots/{gsnap['id']}")["group_snapshot"][
        "status"] == "creating"
    admin.ok("POST", f"/group_snapshots/{gsnap['id']}/action", status=202, json={
        "reset_status": {"status": "available"}})
    for g in (copy, clone):
        member.ok("POST", f"/groups/{g['id']}/action", status=202,
                  json={"delete": {"delete-volumes": True}})
    member.cloud.services.volume.wait_idle()
    member.ok("DELETE", f"/group_snapshots/{gsnap['id']}", status=202)
    member.cloud.services.volume.wait_idle()
    fault(member.request("GET", f"/group_snapshots/{gsnap['id']}"), 404, "itemNotFound")
    assert not [s for s in member.ok("GET", "/snapshots")["snapshots"]
                if s["id"] in {x["id"] for x in snaps}]
    fault(member.request("POST", f"/groups/{group['id']}/action", json={
        "delete": {"delete-volumes": False}}), 400, "badRequest", "contains volumes")
    fault(member.request("POST", f"/groups/{group['id']}/action", json={
        "reset_status": {"status": "error"}}), 403, "forbidden")
    for status in ("creating", "error", "available"):
        admin.ok("POST", f"/groups/{group['id']}/action", status=202, json={
            "reset_status": {"status": status}})
        assert member.ok("GET", f"/groups/{group['id']}")["group"]["status"] == status
    member.ok("POST", f"/groups/{group['id']}/action", status=202,
              json={"delete": {"delete-volumes": True}})
    for v in vols:
        member.gone(v["id"])
    fault(member.request("GET", f"/groups/{group['id']}"), 404, "itemNotFound")
    assert member.ok("GET", "/groups")["groups"] == []


def test_consistent_group_snapshots_are_refused(admin: VolumeClient,
                                                member: VolumeClient) -> None:
    gt = admin.ok("POST", "/group_types", status=202, json={"group_type": {
        "name": "cg-gt", "group_specs": {
            "consistent_group_snapshot_enabled": "<is> True"}}})["group_type"]
    vt = _type(admin, "cg-vt")
    made = member.ok("POST", "/groups", status=202, json={"group": {
        "name": "cg", "group_type": gt["id"], "volume_types": [vt["id"]]}})["group"]
    group = member.ok("GET", f"/groups/{made['id']}")["group"]
    assert group["status"] == "error"
    fault(member.request("POST", "/group_snapshots", json={"group_snapshot": {
        "group_id": group["id"]}}), 400, "badRequest", "available")
    member.ok("POST", f"/groups/{group['id']}/action", status=202,
              json={"delete": {"delete-volumes": False}})
    fault(member.request("POST", "/groups", json={"group": {
        "group_type": gt["id"], "volume_types": []}}), 400, "badRequest")
    fault(member.request("POST", "/groups", json={"group": {
        "group_type": "nope", "volume_types": [vt["id"]]}}), 404, "itemNotFound")
    admin.ok("PUT", f"/os-quota-sets/{member.project}", json={"quota_set": {"groups": 0}})
    try:
        fault(member.request("POST", "/groups", json={"group": {
            "group_type": gt["id"], "volume_types": [vt["id"]]}}), 413, "overLimit",
            "groups")
    finally:
        admin.ok("PUT", f"/os-quota-sets/{member.project}", json={"quota_set": {
            "groups": -1}})

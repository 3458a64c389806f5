"""Block Storage v3: what Cinder's views carry on create/update versus show/detail, the
legacy attach actions (os-reserve, os-attach, os-detach, ...), image metadata actions,
read-only flags among the metadata, snapshot metadata items, links for URLs without a
project id, and the 404 for an empty id. Fake backend, in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.api.compute_helpers import upload_image
from tests.api.image_helpers import make_project_member
from tests.api.volume_helpers import VolumeClient, fault, vheaders
from tests.conftest import Cloud, running_cloud

SERVER = "6a0a5a8e-0c4e-4a4b-9a5e-0d2b3c4d5e6f"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("volact")), host_agent=False) as c:
        yield c


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> VolumeClient:
    token, project = make_project_member(cloud, "volact-member")
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "volumes": -1, "snapshots": -1, "gigabytes": -1}})
    # Tempest's volume client speaks 3.0 unless a test asks for more
    return VolumeClient(cloud, token, project, version="3.0")


EXTENDED = ("os-vol-tenant-attr:tenant_id", "os-vol-mig-status-attr:migstat",
            "os-vol-mig-status-attr:name_id", "os-vol-host-attr:host",
            "volume_image_metadata")


def test_create_and_update_answer_with_the_plain_view(cloud: Cloud,
                                                      member: VolumeClient) -> None:
    image_id = upload_image(cloud, data=b"\x02" * 2048, name="volact-src")
    body = member.ok("POST", "/volumes", status=202, json={"volume": {
        "size": 1, "imageRef": image_id}})["volume"]
    assert not [k for k in EXTENDED if k in body], body
    assert "migration_status" not in body  # administrators only
    vol = member.wait(body["id"], "available")
    # show adds the owner's tenant attribute and the image metadata, not the
    # administrators' migration and host attributes
    assert vol["os-vol-tenant-attr:tenant_id"] == member.project
    assert vol["volume_image_metadata"]["image_id"] == image_id
    for key in ("os-vol-mig-status-attr:migstat", "os-vol-host-attr:host"):
        assert key not in vol
    updated = member.ok("PUT", f"/volumes/{vol['id']}", json={"volume": {
        "name": "renamed"}})["volume"]
    assert updated["name"] == "renamed"
    assert not [k for k in EXTENDED if k in updated], updated
    admin_view = VolumeClient(cloud, project=member.project).show(vol["id"])
    assert admin_view["os-vol-mig-status-attr:migstat"] is None
    assert admin_view["os-vol-host-attr:host"].count("@") == 1
    detail = member.ok("GET", "/volumes/detail")["volumes"]
    assert [v for v in detail if v["id"] == vol["id"]][0][
        "os-vol-tenant-attr:tenant_id"] == member.project


def test_image_metadata_actions(cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create()
    meta = {"image_id": "5137a025-3c5f-43c1-bc64-5f41270040a5", "kernel_id": "k",
            "ramdisk_id": "somedisk"}
    r = member.action(vol["id"], {"os-set_image_metadata": {"metadata": meta}})
    assert r.status_code == 200 and r.json()["metadata"] == meta
    assert member.show(vol["id"])["volume_image_metadata"] == meta
    r = member.action(vol["id"], {"os-unset_image_metadata": {"key": "ramdisk_id"}})
    assert r.status_code == 200
    r = member.action(vol["id"], {"os-show_image_metadata": {}})
    assert r.status_code == 200
    assert r.json()["metadata"] == {"image_id": meta["image_id"], "kernel_id": "k"}
    fault(member.action(vol["id"], {"os-unset_image_metadata": {"key": "ramdisk_id"}}),
          404, "itemNotFound", "ramdisk_id")
    fault(member.action(vol["id"], {"os-set_image_metadata": {"metadata": {"k": 1}}}),
          400, "badRequest")
    fault(member.action(vol["id"], {"os-set_image_metadata": {}}), 400, "badRequest",
          "'metadata' is a required property")


def test_readonly_flag_is_shown_among_the_metadata(member: VolumeClient) -> None:
    vol = member.create(metadata={"purpose": "ro"})
    for flag in (True, False):
        r = member.action(vol["id"], {"os-update_readonly_flag": {"readonly": flag}})
        assert r.status_code == 202
        shown = member.show(vol["id"])["metadata"]
        assert shown == {"purpose": "ro", "readonly": str(flag)}
    # the metadata API itself holds only the user's keys
    assert member.ok("GET", f"/volumes/{vol['id']}/metadata")["metadata"] == {
        "purpose": "ro"}


def test_reserve_unreserve(member: VolumeClient) -> None:
    vol = member.create()
    assert member.action(vol["id"], {"os-reserve": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "attaching"
    fault(member.action(vol["id"], {"os-reserve": {}}), 400, "badRequest",
          "must be available")
    assert member.action(vol["id"], {"os-unreserve": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "available"
    # unreserving what is not reserved changes nothing
    assert member.action(vol["id"], {"os-unreserve": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "available"
    fault(member.action("00000000-0000-4000-8000-00000000000a", {"os-reserve": {}}), 404,
          "itemNotFound")


def test_legacy_attach_detach(cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create()
    r = member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER,
                                                "mountpoint": "/dev/vdb"}})
    assert r.status_code == 202, r.text
    shown = member.show(vol["id"])
    assert shown["status"] == "in-use"
    (att,) = shown["attachments"]
    assert att["server_id"] == SERVER and att["device"] == "/dev/vdb"
    assert att["id"] == vol["id"] and att["volume_id"] == vol["id"]
    assert shown["metadata"]["attached_mode"] == "rw"
    # the volume is attached: no second attach, no delete
    fault(member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER,
                                                  "mountpoint": "/dev/vdc"}}), 409,
          "conflictingRequest")
    fault(member.request("DELETE", f"/volumes/{vol['id']}"), 400, "badRequest")
    # begin/roll detaching
    assert member.action(vol["id"], {"os-begin_detaching": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "detaching"
    assert member.action(vol["id"], {"os-roll_detaching": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "in-use"
    assert member.action(vol["id"], {"os-detach": {}}).status_code == 202
    shown = member.show(vol["id"])
    assert shown["status"] == "available" and shown["attachments"] == []
    assert "attached_mode" not in shown["metadata"]
    # nothing left to detach: accepted, the volume stays available (as Cinder's manager)
    assert member.action(vol["id"], {"os-detach": {}}).status_code == 202
    assert member.show(vol["id"])["status"] == "available"
    fault(member.action(vol["id"], {"os-begin_detaching": {}}), 400, "badRequest")
    assert member.request("DELETE", f"/volumes/{vol['id']}").status_code == 202


def test_legacy_attach_bad_input(member: VolumeClient) -> None:
    vol = member.create()
    fault(member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER}}), 400,
          "badRequest", "mountpoint")
    fault(member.action(vol["id"], {"os-attach": {"instance_uuid": "nope",
                                                  "mountpoint": "/dev/vdb"}}), 400,
          "badRequest", "UUID")
    fault(member.action(vol["id"], {"os-attach": {"mountpoint": "/dev/vdb"}}), 400,
          "badRequest", "instance_uuid")
    fault(member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER,
                                                  "mountpoint": "/dev/vdb",
                                                  "mode": "xx"}}), 400, "badRequest")
    fault(member.action(vol["id"], {"os-attach": "x"}), 400, "badRequest")
    # a read-only volume attaches only read-only
    member.action(vol["id"], {"os-update_readonly_flag": {"readonly": True}})
    fault(member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER,
                                                  "mountpoint": "/dev/vdb"}}), 400,
          "badRequest", "read-only")
    r = member.action(vol["id"], {"os-attach": {"instance_uuid": SERVER,
                                                "mountpoint": "/dev/vdb", "mode": "ro"}})
    assert r.status_code == 202
    assert member.show(vol["id"])["metadata"]["attached_mode"] == "ro"
    fault(member.action(vol["id"], {"os-detach": {"attachment_id": SERVER}}), 404,
          "itemNotFound")
    assert member.action(vol["id"], {"os-detach": {}}).status_code == 202
    fault(member.action("00000000-0000-4000-8000-00000000000b", {"os-detach": {}}), 404,
          "itemNotFound")
    fault(member.action(vol["id"], {"os-initialize_connection": {"connector": {}}}), 501,
          "notImplemented")


def test_snapshot_views_and_metadata_items(member: VolumeClient) -> None:
    vol = member.create()
    created = member.ok("POST", "/snapshots", status=202, json={"snapshot": {
        "volume_id": vol["id"], "metadata": {"a": "1"}}})["snapshot"]
    assert not [k for k in created if k.startswith("os-extended-snapshot-attributes")]
    member.cloud.services.volume.wait_idle()
    shown = member.ok("GET", f"/snapshots/{created['id']}")["snapshot"]
    assert shown["os-extended-snapshot-attributes:project_id"] == member.project
    assert shown["os-extended-snapshot-attributes:progress"] == "100%"
    plain = member.ok("GET", "/snapshots")["snapshots"]
    assert not [k for s in plain for k in s if k.startswith("os-extended")]
    updated = member.ok("PUT", f"/snapshots/{created['id']}", json={"snapshot": {
        "name": "s2"}})["snapshot"]
    assert updated["name"] == "s2" and "os-extended-snapshot-attributes:progress" \
        not in updated
    base = f"/snapshots/{created['id']}/metadata"
    assert member.ok("GET", f"{base}/a") == {"meta": {"a": "1"}}
    assert member.ok("PUT", f"{base}/a", json={"meta": {"a": "2"}}) == {"meta": {"a": "2"}}
    assert member.ok("GET", base)["metadata"] == {"a": "2"}
    fault(member.request("PUT", f"{base}/a", json={"meta": {"b": "2"}}), 400,
          "badRequest", "mismatch")
    assert member.request("DELETE", f"{base}/a").status_code == 200
    assert member.ok("GET", base)["metadata"] == {}
    fault(member.request("GET", f"{base}/a"), 404, "itemNotFound")
    fault(member.request("DELETE", f"{base}/a"), 404, "itemNotFound")


def test_snapshot_of_no_volume(member: VolumeClient) -> None:
    fault(member.request("POST", "/snapshots", json={"snapshot": {"volume_id": None}}),
          404, "itemNotFound")
    fault(member.request("POST", "/snapshots", json={"snapshot": {"name": "x"}}), 400,
          "badRequest", "'volume_id' is a required property")
    fault(member.request("POST", "/snapshots", json={"snapshot": {"volume_id": 5}}), 400,
          "badRequest")


def test_links_follow_the_url_form(cloud: Cloud, member: VolumeClient) -> None:
    ids = [member.create(name=f"page-{i}")["id"] for i in range(2)]
    r = cloud.request("GET", "/volume/v3/volumes?limit=1", token=member.token,
                      headers=vheaders("3.0"))
    assert r.status_code == 200
    body = r.json()
    (nxt,) = body["volumes_links"]
    assert urlparse(nxt["href"]).path == "/volume/v3/volumes"
    assert urlparse(body["volumes"][0]["links"][0]["href"]).path == \
        f"/volume/v3/volumes/{body['volumes'][0]['id']}"
    r = cloud.request("GET", "/volume/v3/volumes/detail?limit=1", token=member.token,
                      headers=vheaders("3.0"))
    assert urlparse(r.json()["volumes_links"][0]["href"]).path == \
        "/volume/v3/volumes/detail"
    with_project = member.ok("GET", "/volumes?limit=1")
    assert urlparse(with_project["volumes_links"][0]["href"]).path == \
        f"/volume/v3/{member.project}/volumes"
    for vid in ids:
        member.request("DELETE", f"/volumes/{vid}")


def test_empty_id_is_not_found(member: VolumeClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        fault(member.request(method, "/volumes/", json={"volume": {}}
                             if method == "PUT" else None), 404, "itemNotFound")
    fault(member.request("GET", "/snapshots/"), 404, "itemNotFound")
    assert member.request("GET", "/volumes").status_code == 200


def test_next_link_whenever_the_page_is_full(member: VolumeClient) -> None:
    ids = [member.create(name=f"full-{i}")["id"] for i in range(2)]
    listed = member.ok("GET", "/volumes?name=full-0&limit=1")
    assert [v["id"] for v in listed["volumes"]] == [ids[0]]
    assert listed["volumes_links"][0]["rel"] == "next"  # full, though nothing follows
    listed = member.ok("GET", "/volumes?name=full-0&limit=2")
    assert "volumes_links" not in listed
    snaps = [member.snapshot(ids[0], name=n)["id"] for n in ("b-snap", "a-snap")]
    asc = member.ok("GET", "/snapshots?sort_key=display_name&sort_dir=asc")["snapshots"]
    assert [s["id"] for s in asc if s["id"] in snaps] == snaps[::-1]
    for sid in snaps:
        member.request("DELETE", f"/snapshots/{sid}")

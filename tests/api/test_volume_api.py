"""Block Storage v3 (Cinder) API with the fake backend: versions and microversions,
volumes (create, list, filters, sort, paging, update, delete), bad input with Cinder's
fault bodies, quotas, snapshots, metadata, actions, types, transfers, messages and the
catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.compute_helpers import upload_image
from tests.api.image_helpers import make_project_member
from tests.api.volume_helpers import LATEST, VolumeClient, fault, vheaders
from tests.conftest import Cloud, running_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("volume")), host_agent=False) as c:
        yield c


@pytest.fixture
def admin(cloud: Cloud) -> VolumeClient:
    return VolumeClient(cloud)


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> VolumeClient:
    token, project = make_project_member(cloud, "vol-member")
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "volumes": -1, "snapshots": -1}})
    return VolumeClient(cloud, token, project)


# -- versions and microversions -----------------------------------------------------------


def test_version_documents(cloud: Cloud) -> None:
    r = cloud.request("GET", "/volume/", token=None)
    assert r.status_code == 300
    (v3,) = r.json()["versions"]
    assert v3["id"] == "v3.0" and v3["min_version"] == "3.0"
    assert tuple(int(x) for x in v3["version"].split(".")) >= (3, 70)
    assert v3["links"][-1]["href"].endswith("/volume/v3/")
    r = cloud.request("GET", "/volume/v3", token=None)
    assert r.status_code == 200 and r.json()["versions"][0]["id"] == "v3.0"


def test_microversion_negotiated_and_echoed(admin: VolumeClient) -> None:
    r = admin.request("GET", "/volumes", headers={"OpenStack-API-Version": "volume 3.42"})
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "volume 3.42"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    r = admin.cloud.request("GET", f"/volume/v3/{admin.project}/volumes")
    assert r.headers["OpenStack-API-Version"] == "volume 3.0"
    r = admin.request("GET", "/volumes", headers={"OpenStack-API-Version": "volume latest"})
    assert r.headers["OpenStack-API-Version"] == f"volume {LATEST}"
    for bad in ("3.71", "2.0", "4.0", "3.x"):
        r = admin.request("GET", "/volumes", headers={"OpenStack-API-Version": f"volume {bad}"})
        assert r.status_code == 406, bad
        assert r.headers["OpenStack-API-Version"] == "volume 3.0"
        assert "message" in next(iter(r.json().values()))


def test_url_without_project_id(admin: VolumeClient) -> None:
    vol = admin.create(name="no-project-url")
    r = admin.cloud.request("GET", f"/volume/v3/volumes/{vol['id']}", headers=vheaders())
    assert r.status_code == 200 and r.json()["volume"]["name"] == "no-project-url"
    assert admin.request("DELETE", f"/volumes/{vol['id']}").status_code == 202


def test_catalog_lists_block_storage_and_volumev3(cloud: Cloud) -> None:
    r = cloud.request("GET", "/v3/auth/catalog")
    services = {s["type"]: s for s in r.json()["catalog"]}
    for kind in ("block-storage", "volumev3"):
        urls = {e["url"] for e in services[kind]["endpoints"]}
        assert urls == {f"{cloud.config.public_url}/volume/v3"}


def test_a_project_url_of_another_project_is_refused(cloud: Cloud, member: VolumeClient
                                                      ) -> None:
    r = cloud.request("GET", f"/volume/v3/{cloud.admin_project_id}/volumes",
                      token=member.token)
    fault(r, 403, "forbidden")


# -- volumes -----------------------------------------------------------------------------


def test_create_show_update_delete(member: VolumeClient) -> None:
    vol = member.create(size=2, name="v1", description="first",
                        metadata={"purpose": "test"})
    assert vol["size"] == 2 and vol["bootable"] == "false"
    assert vol["metadata"] == {"purpose": "test"}
    assert vol["volume_type"] == "__DEFAULT__" and vol["attachments"] == []
    assert vol["os-vol-tenant-attr:tenant_id"] == member.project
    assert "os-vol-host-attr:host" not in vol  # administrators only
    body = member.ok("PUT", f"/volumes/{vol['id']}", json={"volume": {"name": "v1b"}})
    assert body["volume"]["name"] == "v1b" and body["volume"]["description"] == "first"
    r = member.request("PUT", f"/volumes/{vol['id']}", json={"volume": {"size": 3}})
    fault(r, 400, "badRequest", "Additional properties")
    assert member.request("DELETE", f"/volumes/{vol['id']}").status_code == 202
    member.gone(vol["id"])
    assert vol["id"] not in member.cloud.services.volume.backend.list_volumes()


@pytest.mark.parametrize("size, words", [
    (0, ["0 is less than the minimum of 1"]),
    (-1, ["-1 is less than the minimum of 1"]),
    ("abc", ["does not match"]),
    ("1.5", ["does not match"]),
    (1.5, ["is not of type"]),
    (True, ["is not of type"]),
    (None, ["size"]),
    (2**31, ["greater than the maximum"]),
])
def test_bad_sizes_are_cinders_400(member: VolumeClient, size: object,
                                   words: list[str]) -> None:
    before = member.ok("GET", "/volumes")["volumes"]
    r = member.request("POST", "/volumes", json={"volume": {"size": size}})
    fault(r, 400, "badRequest", *words)
    assert member.ok("GET", "/volumes")["volumes"] == before


def test_a_size_beyond_the_quota_is_413_and_leaves_nothing(member: VolumeClient) -> None:
    before = member.ok("GET", "/volumes")["volumes"]
    r = member.request("POST", "/volumes", json={"volume": {"size": 10**9}})
    fault(r, 413, "overLimit", "gigabytes quota", "Requested 1000000000G")
    assert member.ok("GET", "/volumes")["volumes"] == before


def test_volume_count_quota(cloud: Cloud) -> None:
    token, project = make_project_member(cloud, "vol-quota")
    client = VolumeClient(cloud, token, project)
    admin = VolumeClient(cloud)
    admin.ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"volumes": 1}})
    client.create()
    fault(client.request("POST", "/volumes", json={"volume": {"size": 1}}), 413, "overLimit",
          "Maximum number of volumes allowed (1)")
    shown = client.ok("GET", f"/os-quota-sets/{project}?usage=true")["quota_set"]
    assert shown["volumes"] == {"limit": 1, "in_use": 1, "reserved": 0, "allocated": 0}
    limits = client.ok("GET", "/limits")["limits"]["absolute"]
    assert limits["maxTotalVolumes"] == 1 and limits["totalVolumesUsed"] == 1
    assert limits["totalGigabytesUsed"] == 1
    # a member may not change its quotas
    fault(client.request("PUT", f"/os-quota-sets/{project}",
                         json={"quota_set": {"volumes": 5}}), 403, "forbidden")
    fault(admin.request("PUT", f"/os-quota-sets/{project}",
                        json={"quota_set": {"nonsense": 5}}), 400, "badRequest")


def test_list_filters_sort_and_paging(cloud: Cloud) -> None:
    token, project = make_project_member(cloud, "vol-lister")
    client = VolumeClient(cloud, token, project)
    made = [client.create(size=n, name=f"list-{n}", metadata={"n": str(n % 2)})
            for n in (1, 2, 3)]
    ids = [v["id"] for v in made]
    listed = client.ok("GET", "/volumes")["volumes"]
    assert [v["id"] for v in listed] == ids[::-1]  # newest first
    assert set(listed[0]) == {"id", "name", "links"}
    by_size = client.ok("GET", "/volumes/detail?sort=size:asc")["volumes"]
    assert [v["size"] for v in by_size] == [1, 2, 3]
    assert [v["name"] for v in client.ok(
        "GET", "/volumes/detail?sort_key=name&sort_dir=desc")["volumes"]] == \
        ["list-3", "list-2", "list-1"]
    assert [v["id"] for v in client.ok("GET", "/volumes?name=list-2")["volumes"]] == [ids[1]]
    assert len(client.ok("GET", "/volumes?name~=list")["volumes"]) == 3
    assert len(client.ok("GET", '/volumes/detail?metadata={"n": "1"}')["volumes"]) == 2
    page = client.ok("GET", "/volumes?limit=2&sort=size:asc")
    assert [v["id"] for v in page["volumes"]] == ids[:2]
    assert "marker=" in page["volumes_links"][0]["href"]
    rest = client.ok("GET", f"/volumes?limit=2&sort=size:asc&marker={ids[1]}")
    assert [v["id"] for v in rest["volumes"]] == ids[2:] and "volumes_links" not in rest
    counted = client.ok("GET", "/volumes?with_count=true&limit=1")
    assert counted["count"] == 3 and len(counted["volumes"]) == 1
    fault(client.request("GET", "/volumes?sort=bogus:asc"), 400, "badRequest", "sort key")
    fault(client.request("GET", "/volumes?limit=-1"), 400, "badRequest")
    fault(client.request("GET", "/volumes?marker=nope"), 404, "itemNotFound")
    summary = client.ok("GET", "/volumes/summary")["volume-summary"]
    assert summary["total_count"] == 3 and summary["total_size"] == 6
    # the admin lists its own project unless it asks for all
    admin = VolumeClient(cloud)
    assert not {v["id"] for v in admin.ok("GET", "/volumes")["volumes"]} & set(ids)
    everything = admin.ok("GET", f"/volumes?all_tenants=1&project_id={project}")["volumes"]
    assert {v["id"] for v in everything} == set(ids)


def test_another_project_cannot_see_a_volume(cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create()
    token, project = make_project_member(cloud, "vol-stranger")
    stranger = VolumeClient(cloud, token, project)
    fault(stranger.request("GET", f"/volumes/{vol['id']}"), 404, "itemNotFound")
    fault(stranger.request("DELETE", f"/volumes/{vol['id']}"), 404, "itemNotFound")
    assert vol["id"] not in {v["id"] for v in stranger.ok("GET", "/volumes")["volumes"]}


def test_metadata_routes(member: VolumeClient) -> None:
    vol = member.create(metadata={"a": "1"})
    path = f"/volumes/{vol['id']}/metadata"
    assert member.ok("POST", path, json={"metadata": {"b": "2"}})["metadata"] == \
        {"a": "1", "b": "2"}
    assert member.ok("GET", f"{path}/b") == {"meta": {"b": "2"}}
    assert member.ok("PUT", f"{path}/b", json={"meta": {"b": "3"}}) == {"meta": {"b": "3"}}
    fault(member.request("PUT", f"{path}/b", json={"meta": {"c": "3"}}), 400, "badRequest",
          "mismatch")
    assert member.request("DELETE", f"{path}/a").status_code == 200
    fault(member.request("GET", f"{path}/a"), 404, "itemNotFound")
    assert member.ok("PUT", path, json={"metadata": {"z": "9"}})["metadata"] == {"z": "9"}
    fault(member.request("POST", path, json={"metadata": {"k": 5}}), 400, "badRequest")


# -- snapshots and clones ----------------------------------------------------------------


def test_snapshot_then_volume_from_it_and_clone(member: VolumeClient) -> None:
    vol = member.create(size=2)
    snap = member.snapshot(vol["id"], name="s1")
    assert snap["status"] == "available" and snap["size"] == 2
    from_snap = member.create(size=None, snapshot_id=snap["id"])
    assert from_snap["size"] == 2 and from_snap["snapshot_id"] == snap["id"]
    bigger = member.create(size=3, snapshot_id=snap["id"])
    assert bigger["size"] == 3
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "snapshot_id": snap["id"]}}), 400, "badRequest", "cannot be smaller")
    clone = member.create(size=None, source_volid=vol["id"])
    assert clone["source_volid"] == vol["id"] and clone["size"] == 2
    # the volume has a snapshot: deleting it alone is refused; --cascade takes both
    fault(member.request("DELETE", f"/volumes/{vol['id']}"), 400, "badRequest", "snapshots")
    assert member.request("DELETE", f"/volumes/{vol['id']}?cascade=true").status_code == 202
    member.gone(vol["id"])
    fault(member.request("GET", f"/snapshots/{snap['id']}"), 404, "itemNotFound")
    backend = member.cloud.services.volume.backend
    assert snap["id"] not in backend.list_snapshots()


def test_snapshot_list_update_metadata_delete(member: VolumeClient) -> None:
    vol = member.create()
    snap = member.snapshot(vol["id"], name="before")
    listed = member.ok("GET", f"/snapshots/detail?volume_id={vol['id']}")["snapshots"]
    assert [s["id"] for s in listed] == [snap["id"]]
    assert listed[0]["os-extended-snapshot-attributes:project_id"] == member.project
    updated = member.ok("PUT", f"/snapshots/{snap['id']}",
                        json={"snapshot": {"name": "after"}})["snapshot"]
    assert updated["name"] == "after"
    assert member.ok("POST", f"/snapshots/{snap['id']}/metadata",
                     json={"metadata": {"k": "v"}})["metadata"] == {"k": "v"}
    assert member.request("DELETE", f"/snapshots/{snap['id']}").status_code == 202
    member.cloud.services.volume.wait_idle()
    fault(member.request("GET", f"/snapshots/{snap['id']}"), 404, "itemNotFound")


def test_snapshot_quota(cloud: Cloud) -> None:
    token, project = make_project_member(cloud, "snap-quota")
    client = VolumeClient(cloud, token, project)
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}",
                           json={"quota_set": {"snapshots": 0}})
    vol = client.create()
    fault(client.request("POST", "/snapshots", json={"snapshot": {"volume_id": vol["id"]}}),
          413, "overLimit", "snapshots")


# -- actions -----------------------------------------------------------------------------


def test_extend(member: VolumeClient) -> None:
    vol = member.create(size=1)
    assert member.action(vol["id"], {"os-extend": {"new_size": 3}}).status_code == 202
    assert member.wait(vol["id"], "available")["size"] == 3
    fault(member.action(vol["id"], {"os-extend": {"new_size": 3}}), 400, "badRequest",
          "greater than current size")
    fault(member.action(vol["id"], {"os-extend": {"new_size": 0}}), 400, "badRequest")
    fault(member.action(vol["id"], {"os-extend": {}}), 400, "badRequest")


def test_bootable_readonly_reset_status_force_delete(cloud: Cloud, member: VolumeClient,
                                                     admin: VolumeClient) -> None:
    vol = member.create()
    assert member.action(vol["id"], {"os-set_bootable": {"bootable": True}}).status_code == 200
    assert member.show(vol["id"])["bootable"] == "true"
    fault(member.action(vol["id"], {"os-set_bootable": {"bootable": "maybe"}}), 400,
          "badRequest")
    assert member.action(vol["id"], {"os-update_readonly_flag": {"readonly": True}}
                         ).status_code == 202
    fault(member.action(vol["id"], {"os-reset_status": {"status": "error"}}), 403,
          "forbidden")
    other = VolumeClient(cloud, admin.token, member.project)
    assert other.action(vol["id"], {"os-reset_status": {"status": "error"}}).status_code == 202
    assert member.show(vol["id"])["status"] == "error"
    fault(other.action(vol["id"], {"os-reset_status": {"status": "bogus"}}), 400,
          "badRequest")
    assert other.action(vol["id"], {"os-reset_status": {"status": "maintenance"}}
                        ).status_code == 202
    fault(member.request("DELETE", f"/volumes/{vol['id']}"), 400, "badRequest")
    fault(member.action(vol["id"], {"os-force_delete": {}}), 403, "forbidden")
    assert other.action(vol["id"], {"os-force_delete": {}}).status_code == 202
    member.gone(vol["id"])
    fault(member.action("00000000-0000-4000-8000-000000000009", {"os-extend": {
        "new_size": 2}}), 404, "itemNotFound")
    vol = member.create()
    fault(member.action(vol["id"], {"os-nonsense": {}}), 400, "badRequest", "no such action")
    fault(member.action(vol["id"], {"os-migrate_volume": {"host": "x"}}), 501,
          "notImplemented")


def test_upload_to_image_and_create_from_image(cloud: Cloud, member: VolumeClient) -> None:
    image_id = upload_image(cloud, data=b"\x01" * 4096, name="vol-src")
    vol = member.create(size=1, imageRef=image_id)
    assert vol["bootable"] == "true"
    assert vol["volume_image_metadata"]["image_id"] == image_id
    backend = cloud.services.volume.backend
    assert backend.volumes[vol["id"]]["data"] == b"\x01" * 4096
    r = member.action(vol["id"], {"os-volume_upload_image": {"image_name": "from-vol",
                                                             "disk_format": "raw"}})
    assert r.status_code == 202, r.text
    uploaded = r.json()["os-volume_upload_image"]
    assert uploaded["status"] == "uploading" and uploaded["image_name"] == "from-vol"
    assert member.wait(vol["id"], "available")
    image = cloud.request("GET", f"/image/v2/images/{uploaded['image_id']}",
                          token=member.token).json()
    assert image["status"] == "active" and image["size"] == 4096
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "imageRef": "00000000-0000-4000-8000-00000000000a"}}), 404,
        "itemNotFound")
    fault(member.action(vol["id"], {"os-volume_upload_image": {
        "image_name": "x", "disk_format": "vmdk"}}), 400, "badRequest", "disk-format")


def test_a_backend_failure_is_error_with_a_user_message(cloud: Cloud,
                                                        member: VolumeClient) -> None:
    backend = cloud.services.volume.backend
    backend.fail_next["create"] = "the disk caught fire"
    vol = member.create(wait="error")
    assert vol["id"] not in backend.list_volumes()  # nothing half-made
    messages = member.ok("GET", "/messages")["messages"]
    mine = [m for m in messages if m["resource_uuid"] == vol["id"]]
    assert mine and "the disk caught fire" in mine[0]["user_message"]
    fault(member.request("GET", "/messages", version="3.2"), 404, "itemNotFound")
    assert member.request("DELETE", f"/messages/{mine[0]['id']}").status_code == 204
    # an error volume can be deleted
    assert member.request("DELETE", f"/volumes/{vol['id']}").status_code == 202
    member.gone(vol["id"])


# -- types, QoS, zones, services, backups ---------------------------------------------------


def test_types_extra_specs_and_access(cloud: Cloud, admin: VolumeClient,
                                      member: VolumeClient) -> None:
    vt = admin.ok("POST", "/types", json={"volume_type": {
        "name": "fast", "extra_specs": {"tier": "gold"}}})["volume_type"]
    assert vt["extra_specs"] == {"tier": "gold"}
    fault(admin.request("POST", "/types", json={"volume_type": {"name": "fast"}}), 409,
          "conflictingRequest")
    fault(member.request("POST", "/types", json={"volume_type": {"name": "x"}}), 403,
          "forbidden")
    names = {t["name"] for t in member.ok("GET", "/types")["volume_types"]}
    assert {"__DEFAULT__", "fast"} <= names
    admin.ok("POST", f"/types/{vt['id']}/extra_specs", json={"extra_specs": {"k": "v"}})
    assert member.ok("GET", f"/types/{vt['id']}/extra_specs/k") == {"k": "v"}
    vol = member.create(volume_type="fast")
    assert vol["volume_type"] == "fast"
    admin.ok("PUT", f"/os-quota-sets/{member.project}",
             json={"quota_set": {"volumes_fast": 1}})
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "volume_type": "fast"}}), 413, "overLimit", "volumes_fast")
    member.create()  # the default type is not limited by it
    usage = member.ok("GET", f"/os-quota-sets/{member.project}?usage=true")["quota_set"]
    assert usage["volumes_fast"] == {"limit": 1, "in_use": 1, "reserved": 0, "allocated": 0}
    fault(admin.request("DELETE", f"/types/{vt['id']}"), 400, "badRequest", "in use")
    private = admin.ok("POST", "/types", json={"volume_type": {
        "name": "secret", "os-volume-type-access:is_public": False}})["volume_type"]
    assert "secret" not in {t["name"] for t in member.ok("GET", "/types")["volume_types"]}
    assert admin.request("POST", f"/types/{private['id']}/action", json={
        "addProjectAccess": {"project": member.project}}).status_code == 202
    assert "secret" in {t["name"] for t in member.ok("GET", "/types")["volume_types"]}
    assert admin.ok("GET", f"/types/{private['id']}/os-volume-type-access") == {
        "volume_type_access": [{"volume_type_id": private["id"],
                                "project_id": member.project}]}
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "volume_type": "nonexistent"}}), 404, "itemNotFound")
    # retype on the same backend: the type changes, the bytes stay
    plain = member.create()
    assert member.action(plain["id"], {"os-retype": {"new_type": "secret"}}).status_code == 202
    assert member.show(plain["id"])["volume_type"] == "secret"
    fault(member.action(plain["id"], {"os-retype": {"new_type": "secret"}}), 400,
          "badRequest", "different")
    admin.ok("POST", "/types", json={"volume_type": {
        "name": "elsewhere", "extra_specs": {"volume_backend_name": "local"}}})
    fault(member.action(plain["id"], {"os-retype": {"new_type": "elsewhere"}}), 400,
          "badRequest", "migration_policy")
    fault(member.action(plain["id"], {"os-retype": {"new_type": "elsewhere",
                                                    "migration_policy": "on-demand"}}),
          501, "notImplemented")
    qos = admin.ok("POST", "/qos-specs", json={"qos_specs": {
        "name": "q1", "consumer": "front-end", "read_iops_sec": "100"}})["qos_specs"]
    assert qos["specs"] == {"read_iops_sec": "100"}
    r = admin.request("GET", f"/qos-specs/{qos['id']}/associate?vol_type_id={vt['id']}")
    assert r.status_code == 202
    assert admin.ok("GET", f"/qos-specs/{qos['id']}/associations")["qos_associations"][0][
        "id"] == vt["id"]


def test_zones_services_pools_and_backups(admin: VolumeClient, member: VolumeClient
                                          ) -> None:
    zones = member.ok("GET", "/os-availability-zone")["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}}]
    services = admin.ok("GET", "/os-services")["services"]
    assert {"cinder-scheduler", "cinder-volume"} == {s["binary"] for s in services}
    fault(member.request("GET", "/os-services"), 403, "forbidden")
    pools = admin.ok("GET", "/scheduler-stats/get_pools?detail=true")["pools"]
    assert pools[0]["capabilities"]["volume_backend_name"] == "fake"
    assert member.ok("GET", "/backups/detail") == {"backups": []}
    fault(member.request("GET", "/backups/00000000-0000-4000-8000-00000000000d"), 404,
          "itemNotFound")
    fault(member.request("POST", "/backups", json={"backup": {}}), 400, "badRequest")
    fault(member.request("POST", "/backups", json={"backup": {"volume_id": "x"}}), 404,
          "itemNotFound")  # backups themselves: tests/api/test_volume_backups.py
    fault(member.request("POST", "/volumes", json={"volume": {
        "size": 1, "backup_id": "00000000-0000-4000-8000-00000000000b"}}), 404,
        "itemNotFound", "Backup")


# -- transfers ---------------------------------------------------------------------------


@pytest.mark.parametrize("collection, version", [("os-volume-transfer", "3.0"),
                                                 ("volume-transfers", "3.55")])
def test_transfer_between_projects(cloud: Cloud, collection: str, version: str) -> None:
    token, project = make_project_member(cloud, f"giver-{version}")
    giver = VolumeClient(cloud, token, project, version=version)
    token, project = make_project_member(cloud, f"taker-{version}")
    taker = VolumeClient(cloud, token, project, version=version)
    vol = giver.create(name="gift")
    body = giver.ok("POST", f"/{collection}", status=202,
                    json={"transfer": {"volume_id": vol["id"], "name": "t"}})["transfer"]
    assert body["auth_key"] and giver.show(vol["id"])["status"] == "awaiting-transfer"
    assert [t["id"] for t in giver.ok("GET", f"/{collection}")["transfers"]] == [body["id"]]
    assert "auth_key" not in giver.ok("GET", f"/{collection}/{body['id']}")["transfer"]
    fault(taker.request("POST", f"/{collection}/{body['id']}/accept",
                        json={"accept": {"auth_key": "wrong"}}), 400, "badRequest",
          "auth key")
    r = taker.request("POST", f"/{collection}/{body['id']}/accept",
                      json={"accept": {"auth_key": body["auth_key"]}})
    assert r.status_code == 202, r.text
    moved = taker.show(vol["id"])
    assert moved["status"] == "available"
    assert moved["os-vol-tenant-attr:tenant_id"] == taker.project
    fault(giver.request("GET", f"/volumes/{vol['id']}"), 404, "itemNotFound")
    # a cancelled transfer gives the volume back
    other = giver.create(name="kept")
    t2 = giver.ok("POST", f"/{collection}", status=202,
                  json={"transfer": {"volume_id": other["id"]}})["transfer"]
    assert giver.request("DELETE", f"/{collection}/{t2['id']}").status_code == 202
    assert giver.show(other["id"])["status"] == "available"


def test_volume_transfers_path_needs_3_55(member: VolumeClient) -> None:
    fault(member.request("GET", "/volume-transfers", version="3.54"), 404, "itemNotFound")


# -- crash recovery ------------------------------------------------------------------------


def test_recover_settles_rows_and_removes_orphans(cloud: Cloud, member: VolumeClient) -> None:
    from onestack.db.models import Volume

    service = cloud.services.volume
    stuck = member.create()
    deleting = member.create()
    uploading = member.create()
    with service.db.session() as s:
        s.get(Volume, stuck["id"]).status = "creating"
        s.get(Volume, deleting["id"]).status = "deleting"
        s.get(Volume, uploading["id"]).status = "uploading"
    service.backend.create("00000000-0000-4000-8000-0000000000ff", 1)  # no row
    service.recover()
    vol = member.show(stuck["id"])
    assert vol["status"] == "error"
    with service.db.session() as s:
        assert "server stopped" in (s.get(Volume, stuck["id"]).error_message or "")
    assert stuck["id"] not in service.backend.list_volumes()
    fault(member.request("GET", f"/volumes/{deleting['id']}"), 404, "itemNotFound")
    assert member.show(uploading["id"])["status"] == "available"
    assert "00000000-0000-4000-8000-0000000000ff" not in service.backend.list_volumes()


def test_an_existing_install_gains_the_catalog_entries_on_restart(tmp_path: Path) -> None:
    with running_cloud(tmp_path, host_agent=False) as first:
        services = first.request("GET", "/v3/services").json()["services"]
        for service in services:
            if service["type"] in ("block-storage", "volumev3"):  # as before this service
                assert first.request("DELETE", f"/v3/services/{service['id']}"
                                     ).status_code == 204
        types = {s["type"] for s in first.request("GET", "/v3/auth/catalog").json()["catalog"]}
        assert not types & {"block-storage", "volumev3"}
    with running_cloud(tmp_path, host_agent=False) as again:
        catalog = again.request("GET", "/v3/auth/catalog").json()["catalog"]
        assert {"block-storage", "volumev3"} <= {s["type"] for s in catalog}

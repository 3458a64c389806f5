"""Volume backups (Cinder v3 ``/backups``) through the API: the data really is copied
to the backup directory (compressed chunks with sha256s) and back, byte for byte, to a
new volume or over an existing one; incremental backups store only changed chunks;
states, faults, quotas, the admin actions, export/import of records. The fake backend
holds real bytes; the last tests use the ``local`` backend's qcow2 files."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.image_helpers import make_project_member
from tests.api.volume_helpers import VolumeClient, fault
from tests.conftest import Cloud, running_cloud

MiB = 1 << 20


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("backups")), host_agent=False) as c:
        yield c


@pytest.fixture
def admin(cloud: Cloud) -> VolumeClient:
    return VolumeClient(cloud)


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> VolumeClient:
    token, project = make_project_member(cloud, "backup-member")
    VolumeClient(cloud).ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "volumes": -1, "snapshots": -1, "gigabytes": -1}})
    return VolumeClient(cloud, token, project)


def store(cloud: Cloud) -> Any:
    return cloud.services.volume.backend


def put_data(cloud: Cloud, volume_id: str, data: bytes) -> None:
    store(cloud).volumes[volume_id]["data"] = data


def get_data(cloud: Cloud, volume_id: str) -> bytes:
    return bytes(store(cloud).volumes[volume_id]["data"])


def backup(client: VolumeClient, volume_id: str, status: str = "available",
           **attrs: Any) -> dict[str, Any]:
    made = client.ok("POST", "/backups", status=202, json={"backup": {
        "volume_id": volume_id, **attrs}})["backup"]
    assert set(made) >= {"id", "links", "name"}
    return wait_backup(client, made["id"], status)


def wait_backup(client: VolumeClient, backup_id: str, status: str) -> dict[str, Any]:
    client.cloud.services.volume.wait_idle(60)
    deadline = time.monotonic() + 30
    while True:
        shown = client.ok("GET", f"/backups/{backup_id}")["backup"]
        if shown["status"] == status:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)


def pattern(seed: int, size: int) -> bytes:
    block = bytes((seed * 31 + i * 7) % 251 for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


def backup_dir(cloud: Cloud, backup_id: str) -> Path:
    return cloud.config.state_dir / "backups" / "backups" / backup_id


def test_backup_copies_the_data_and_restores_it_to_a_new_volume(
        cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create(size=1, metadata={"purpose": "db"})
    data = pattern(1, 9 * MiB + 123)  # three chunks of 4 MiB, the last partial
    put_data(cloud, vol["id"], data)
    b = backup(member, vol["id"], name="nightly", description="first")
    assert member.show(vol["id"])["status"] == "available"
    assert (b["name"], b["description"], b["status"], b["size"]) == (
        "nightly", "first", "available", 1)
    assert b["is_incremental"] is False and b["has_dependent_backups"] is False
    assert b["fail_reason"] is None and b["volume_id"] == vol["id"]
    assert b["object_count"] == 3 and b["container"] == "backups"
    assert b["links"][0]["href"].endswith(f"/backups/{b['id']}")
    assert "os-backup-project-attr:project_id" not in b  # administrators only
    # the data are on disk, apart from the volume: compressed chunks and checksums
    meta = json.loads((backup_dir(cloud, b["id"]) / "metadata.json").read_text())
    stored = [c for c in meta["chunks"] if c["object"]]
    assert len(stored) == 3 and len(meta["chunks"]) == 256  # 1 GiB in 4 MiB chunks
    assert all(len(c["sha256"]) == 64 for c in stored)
    assert sorted(p.name for p in backup_dir(cloud, b["id"]).iterdir()) == [
        "chunk-00001.zz", "chunk-00002.zz", "chunk-00003.zz", "metadata.json"]
    # the volume may change or go: the backup still holds the data
    put_data(cloud, vol["id"], b"overwritten")
    restored = member.ok("POST", f"/backups/{b['id']}/restore", status=202,
                         json={"restore": {"name": "back"}})["restore"]
    assert restored["backup_id"] == b["id"] and restored["volume_name"] == "back"
    new = member.wait(restored["volume_id"], "available")
    assert get_data(cloud, new["id"]) == data
    assert new["name"] == "back" and new["size"] == 1
    assert new["metadata"] == {"purpose": "db"}  # the source's metadata come along
    assert wait_backup(member, b["id"], "available")["status"] == "available"
    # listed, summary and detail
    summary = member.ok("GET", "/backups")["backups"]
    assert {"id": b["id"], "name": "nightly", "links": b["links"]} in summary
    detail = member.ok("GET", "/backups/detail?name=nightly&with_count=true")
    assert [x["id"] for x in detail["backups"]] == [b["id"]] and detail["count"] == 1
    assert member.ok("GET", "/backups/detail?status=error")["backups"] == []
    # delete: the row and the directory go
    r = member.request("DELETE", f"/backups/{b['id']}")
    assert r.status_code == 202
    cloud.services.volume.wait_idle()
    fault(member.request("GET", f"/backups/{b['id']}"), 404, "itemNotFound")
    assert not backup_dir(cloud, b["id"]).exists()


def test_incremental_backup_stores_only_changed_chunks(cloud: Cloud, member: VolumeClient
                                                      ) -> None:
    vol = member.create(size=1)
    first = pattern(2, 12 * MiB)
    put_data(cloud, vol["id"], first)
    full = backup(member, vol["id"])
    second = first[:4 * MiB] + pattern(3, 4 * MiB) + first[8 * MiB:] + pattern(4, MiB)
    put_data(cloud, vol["id"], second)
    inc = backup(member, vol["id"], incremental=True)
    assert inc["is_incremental"] is True and inc["object_count"] == 2
    assert member.ok("GET", f"/backups/{full['id']}")["backup"][
        "has_dependent_backups"] is True
    fault(member.request("DELETE", f"/backups/{full['id']}"), 400, "badRequest",
          "Incremental backups exist")
    # restore each over an existing, larger volume: each gives its own point in time
    target = member.create(size=2)
    put_data(cloud, target["id"], b"x" * 100)
    for made, expected in ((inc, second), (full, first)):
        member.ok("POST", f"/backups/{made['id']}/restore", status=202,
                  json={"restore": {"volume_id": target["id"]}})
        member.wait(target["id"], "available")
        assert get_data(cloud, target["id"]) == expected
    # the child goes first, then the parent
    member.ok("DELETE", f"/backups/{inc['id']}", status=202)
    cloud.services.volume.wait_idle()
    member.ok("DELETE", f"/backups/{full['id']}", status=202)
    cloud.services.volume.wait_idle()
    assert not backup_dir(cloud, full["id"]).exists()


def test_update_backup(member: VolumeClient) -> None:
    vol = member.create(size=1)
    b = backup(member, vol["id"], metadata={"a": "1"})
    assert b["metadata"] == {"a": "1"}
    fault(member.request("PUT", f"/backups/{b['id']}", version="3.8",
                         json={"backup": {"name": "x"}}), 404, "itemNotFound")
    r = member.ok("PUT", f"/backups/{b['id']}", json={"backup": {
        "name": "renamed", "description": "d", "metadata": {"b": "2"}}})["backup"]
    assert (r["id"], r["name"], r["metadata"]) == (b["id"], "renamed", {"b": "2"})
    shown = member.ok("GET", f"/backups/{b['id']}")["backup"]
    assert (shown["name"], shown["description"]) == ("renamed", "d")
    fault(member.request("PUT", f"/backups/{b['id']}", json={"backup": {"size": 3}}),
          400, "badRequest")
    fault(member.request("PUT", f"/backups/{b['id']}", json={"backup": {"name": 5}}),
          400, "badRequest")


def test_faults(cloud: Cloud, admin: VolumeClient, member: VolumeClient) -> None:
    fault(member.request("POST", "/backups", json={"backup": {}}), 400, "badRequest",
          "volume_id")
    fault(member.request("POST", "/backups", json={"nobackup": {}}), 400, "badRequest")
    fault(member.request("POST", "/backups", json={"backup": {
        "volume_id": "00000000-0000-4000-8000-000000000001"}}), 404, "itemNotFound")
    vol = member.create(size=1)
    fault(member.request("POST", "/backups", json={"backup": {
        "volume_id": vol["id"], "incremental": True}}), 400, "badRequest",
        "No backups available")
    fault(member.request("POST", "/backups", json={"backup": {
        "volume_id": vol["id"], "container": "../etc"}}), 400, "badRequest")
    fault(member.request("POST", "/backups", json={"backup": {
        "volume_id": vol["id"], "availability_zone": "mars"}}), 400, "badRequest")
    fault(member.request("POST", "/backups", json={"backup": {
        "volume_id": vol["id"], "incremental": "perhaps"}}), 400, "badRequest")
    # in use: only with force, and the volume is in-use again afterwards
    admin.ok("POST", f"/volumes/{vol['id']}/action", status=202,
             json={"os-reset_status": {"status": "in-use", "attach_status": "attached"}})
    fault(member.request("POST", "/backups", json={"backup": {"volume_id": vol["id"]}}),
          400, "badRequest", "in-use")
    b = backup(member, vol["id"], force=True)
    assert member.show(vol["id"])["status"] == "in-use"
    fault(member.request("POST", f"/backups/{b['id']}/restore", json={"restore": {
        "volume_id": vol["id"]}}), 400, "badRequest", "must be available")
    small = member.create(size=1)
    big_vol = member.create(size=2)
    big = backup(member, big_vol["id"])
    fault(member.request("POST", f"/backups/{big['id']}/restore", json={"restore": {
        "volume_id": small["id"]}}), 400, "badRequest", "too small")
    fault(member.request("POST", f"/backups/{big['id']}/restore", json={}), 400,
          "badRequest")
    # another project sees nothing
    other_token, other_project = make_project_member(cloud, "backup-other")
    other = VolumeClient(cloud, other_token, other_project)
    fault(other.request("GET", f"/backups/{b['id']}"), 404, "itemNotFound")
    assert b["id"] not in [x["id"] for x in other.ok("GET", "/backups")["backups"]]
    fault(member.request("GET", "/backups/not-a-uuid"), 404, "itemNotFound")
    fault(member.request("GET", "/backups?sort=bogus:asc"), 400, "badRequest")


def test_backup_of_a_snapshot(cloud: Cloud, member: VolumeClient) -> None:
    vol = member.create(size=1)
    put_data(cloud, vol["id"], b"before snapshot")
    snap = member.snapshot(vol["id"])
    put_data(cloud, vol["id"], b"after snapshot")
    b = backup(member, vol["id"], snapshot_id=snap["id"])
    assert b["snapshot_id"] == snap["id"]
    assert member.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "available"
    restored = member.ok("POST", f"/backups/{b['id']}/restore", status=202,
                         json={"restore": {}})["restore"]
    assert restored["volume_name"] == f"restore_backup_{b['id']}"
    member.wait(restored["volume_id"], "available")
    assert get_data(cloud, restored["volume_id"]) == b"before snapshot"


def test_failures_put_the_backup_or_the_volume_in_error(cloud: Cloud,
                                                        member: VolumeClient) -> None:
    vol = member.create(size=1)
    put_data(cloud, vol["id"], pattern(5, MiB))
    store(cloud).fail_next["open_data"] = "the disk is on fire"
    b = backup(member, vol["id"], status="error")
    assert "the disk is on fire" in b["fail_reason"]
    assert member.show(vol["id"])["status"] == "available"
    member.ok("DELETE", f"/backups/{b['id']}", status=202)
    # a corrupted chunk: the restore notices (sha256) and the volume is error_restoring
    good = backup(member, vol["id"])
    chunk = backup_dir(cloud, good["id"]) / "chunk-00001.zz"
    import zlib
    chunk.write_bytes(zlib.compress(b"tampered" + bytes(MiB - 8)))
    target = member.create(size=1)
    member.ok("POST", f"/backups/{good['id']}/restore", status=202,
              json={"restore": {"volume_id": target["id"]}})
    failed = member.wait(target["id"], "error_restoring")
    assert failed["status"] == "error_restoring"
    assert wait_backup(member, good["id"], "available")["status"] == "available"
    messages = member.ok("GET", "/messages")["messages"]
    assert any(m["resource_uuid"] == target["id"] and "sha256" in m["user_message"]
               for m in messages)


def test_quotas(cloud: Cloud, admin: VolumeClient) -> None:
    token, project = make_project_member(cloud, "backup-quota")
    client = VolumeClient(cloud, token, project)
    admin.ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {
        "backups": 1, "backup_gigabytes": 3}})
    vol = client.create(size=2)
    backup(client, vol["id"])
    fault(client.request("POST", "/backups", json={"backup": {"volume_id": vol["id"]}}),
          413, "overLimit", "backups")
    admin.ok("PUT", f"/os-quota-sets/{project}", json={"quota_set": {"backups": 5}})
    fault(client.request("POST", "/backups", json={"backup": {"volume_id": vol["id"]}}),
          413, "overLimit", "Backup gigabytes")
    usage = admin.ok("GET", f"/os-quota-sets/{project}?usage=true")["quota_set"]
    assert usage["backups"]["in_use"] == 1 and usage["backup_gigabytes"]["in_use"] == 2


def test_admin_actions_and_policy(cloud: Cloud, admin: VolumeClient,
                                  member: VolumeClient) -> None:
    vol = member.create(size=1)
    b = backup(member, vol["id"])
    fault(member.request("POST", f"/backups/{b['id']}/action", json={
        "os-reset_status": {"status": "error"}}), 403, "forbidden")
    fault(admin.request("POST", f"/backups/{b['id']}/action", json={
        "os-reset_status": {"status": "creating"}}), 400, "badRequest")
    admin.ok("POST", f"/backups/{b['id']}/action", status=202, json={
        "os-reset_status": {"status": "error"}})
    shown = admin.ok("GET", f"/backups/{b['id']}")["backup"]
    assert shown["status"] == "error"
    assert shown["os-backup-project-attr:project_id"] == member.project
    fault(member.request("POST", f"/backups/{b['id']}/restore", json={"restore": {}}),
          400, "badRequest", "must be available")
    fault(admin.request("POST", f"/backups/{b['id']}/action", json={"os-bogus": {}}),
          400, "badRequest")
    admin.ok("POST", f"/backups/{b['id']}/action", status=202,
             json={"os-force_delete": {}})
    cloud.services.volume.wait_idle()
    fault(member.request("GET", f"/backups/{b['id']}"), 404, "itemNotFound")
    fault(member.request("GET", f"/backups/{b['id']}/export_record"), 403, "forbidden")


def test_export_and_import_record(cloud: Cloud, admin: VolumeClient,
                                  member: VolumeClient) -> None:
    vol = member.create(size=1)
    data = pattern(7, 2 * MiB)
    put_data(cloud, vol["id"], data)
    b = backup(member, vol["id"])
    record = admin.ok("GET", f"/backups/{b['id']}/export_record")["backup-record"]
    assert record["backup_service"].startswith("cinder.backup.drivers")
    decoded = json.loads(base64.b64decode(record["backup_url"]))
    new_id = "11111111-2222-4333-8444-555555555555"
    url = base64.b64encode(json.dumps({**decoded, "id": new_id}).encode()).decode()
    fault(admin.request("POST", "/backups/import_record", json={"backup-record": {
        "backup_service": record["backup_service"], "backup_url": record["backup_url"]}}),
        400, "badRequest", "already exists")
    fault(admin.request("POST", "/backups/import_record", json={"backup-record": {
        "backup_service": "cinder.backup.drivers.swift", "backup_url": url}}),
        400, "badRequest")
    fault(admin.request("POST", "/backups/import_record", json={"backup-record": {
        "backup_service": record["backup_service"], "backup_url": "!!"}}),
        400, "badRequest")
    bogus = base64.b64encode(json.dumps({**decoded, "id": new_id,
                                         "service_metadata": "backups/nothing"}).encode())
    fault(admin.request("POST", "/backups/import_record", json={"backup-record": {
        "backup_service": record["backup_service"], "backup_url": bogus.decode()}}),
        400, "badRequest")
    imported = admin.ok("POST", "/backups/import_record", status=201, json={
        "backup-record": {"backup_service": record["backup_service"],
                          "backup_url": url}})["backup"]
    assert imported["id"] == new_id
    assert admin.ok("GET", f"/backups/{new_id}")["backup"]["status"] == "available"
    restored = admin.ok("POST", f"/backups/{new_id}/restore", status=202,
                        json={"restore": {}})["restore"]
    admin.wait(restored["volume_id"], "available")
    assert get_data(cloud, restored["volume_id"]) == data
    # both rows name the same data: they stay until the last row goes
    member.ok("DELETE", f"/backups/{b['id']}", status=202)
    cloud.services.volume.wait_idle()
    assert backup_dir(cloud, b["id"]).exists()
    admin.ok("DELETE", f"/backups/{new_id}", status=202)
    cloud.services.volume.wait_idle()
    assert not backup_dir(cloud, b["id"]).exists()


def test_paging_and_sorting(member: VolumeClient) -> None:
    vol = member.create(size=1)
    made = [backup(member, vol["id"], name=f"page-{i}") for i in range(3)]
    ids = sorted(m["id"] for m in made)
    got = member.ok("GET", "/backups?sort=id:asc&limit=2&name~=page-")
    page = [x["id"] for x in got["backups"]]
    assert page == ids[:2] and "backups_links" in got
    rest = member.ok("GET", f"/backups?sort=id:asc&name~=page-&marker={page[-1]}")
    assert [x["id"] for x in rest["backups"]] == ids[2:]


# -- the local backend: real qcow2 files -----------------------------------------------

needs_qemu = pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("qemu-io")),
                                reason="needs qemu-img and qemu-io")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("backups-local")), host_agent=False,
                       volume_backend="local") as c:
        yield c


def qemu_io(path: Path, command: str) -> str:
    proc = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@needs_qemu
def test_local_backend_backup_and_restore_of_qcow2_files(local: Cloud) -> None:
    client = VolumeClient(local)
    vol = client.create(size=1)
    path = local.config.state_dir / "volumes" / f"volume-{vol['id']}"
    qemu_io(path, "write -P 0x5a 0 1M")
    qemu_io(path, f"write -P 0xa5 {600 * MiB} 64k")
    full = backup(client, vol["id"])
    assert full["object_count"] == 2  # only the two chunks with data
    qemu_io(path, f"write -P 0x3c {600 * MiB} 64k")
    inc = backup(client, vol["id"], incremental=True)
    assert inc["object_count"] == 1
    root = local.config.state_dir / "backups" / "backups"
    assert (root / inc["id"] / "metadata.json").is_file()
    for made, second in ((full, 0xa5), (inc, 0x3c)):
        restored = client.ok("POST", f"/backups/{made['id']}/restore", status=202,
                             json={"restore": {}})["restore"]
        client.wait(restored["volume_id"], "available")
        out = local.config.state_dir / "volumes" / f"volume-{restored['volume_id']}"
        assert "Pattern verification failed" not in qemu_io(out, "read -P 0x5a 0 1M")
        assert "Pattern verification failed" not in qemu_io(
            out, f"read -P {second:#x} {600 * MiB} 64k")
        assert "Pattern verification failed" not in qemu_io(out, f"read -P 0 {MiB} 1M")
    assert not [p for p in (local.config.state_dir / "volumes").iterdir()
                if p.name.startswith(".partial-")]
    assert os.path.getsize(root / full["id"] / "chunk-00001.zz") < MiB  # compressed


def test_extension_listed(member: VolumeClient) -> None:
    aliases = {e["alias"] for e in member.ok("GET", "/extensions")["extensions"]}
    assert {"backups", "os-backup-project-attr"} <= aliases


def test_volume_from_backup(cloud: Cloud, member: VolumeClient) -> None:
    """3.47: POST /volumes with backup_id; the volume is restoring-backup until the data
    are in, never available before."""
    vol = member.create(size=1, metadata={"from": "source"})
    data = pattern(9, 3 * MiB)
    put_data(cloud, vol["id"], data)
    b = backup(member, vol["id"])
    made = member.ok("POST", "/volumes", status=202, json={"volume": {
        "backup_id": b["id"], "name": "from-backup", "size": 2}})["volume"]
    assert made["status"] == "restoring-backup" and made["size"] == 2
    new = member.wait(made["id"], "available")
    assert get_data(cloud, new["id"]) == data and new["name"] == "from-backup"
    assert new["metadata"] == {"from": "source"}
    assert wait_backup(member, b["id"], "available")["status"] == "available"
    fault(member.request("POST", "/volumes", json={"volume": {
        "backup_id": b["id"], "size": 0}}), 400, "badRequest")
    store(cloud).fail_next["create"] = "no room"
    failed = member.ok("POST", "/volumes", status=202, json={"volume": {
        "backup_id": b["id"]}})["volume"]
    assert member.wait(failed["id"], "error")["status"] == "error"
    assert wait_backup(member, b["id"], "available")["status"] == "available"


def test_recover_settles_what_a_crash_left(cloud: Cloud, member: VolumeClient) -> None:
    from onestack.db.models import Volume
    from onestack.db.models.volume_backups import VolumeBackup
    from onestack.services.volume.backups import backups_of

    vol = member.create(size=1)
    put_data(cloud, vol["id"], b"abc")
    done = backup(member, vol["id"])
    target = member.create(size=1)
    service = cloud.services.volume
    stray = backup_dir(cloud, "00000000-0000-4000-8000-0000000000aa")
    with service.db.session() as session:
        session.get(Volume, vol["id"]).status = "backing-up"
        session.get(Volume, target["id"]).status = "restoring-backup"
        row = session.get(VolumeBackup, done["id"])
        row.status, row.restore_volume_id = "restoring", target["id"]
        session.add(VolumeBackup(
            id=stray.name, project_id=member.project, volume_id=vol["id"],
            status="creating", size=1, service="cinder.backup.drivers.posix",
            service_metadata=f"backups/{stray.name}", object_count=0,
            volume_previous_status="available", metadata_={}, volume_info={},
            is_incremental=False))
    stray.mkdir(parents=True)
    (stray / "metadata.json").write_text('{"format": 1}')
    backups_of(service).recover()
    assert member.show(vol["id"])["status"] == "available"
    assert member.show(target["id"])["status"] == "error_restoring"
    assert member.ok("GET", f"/backups/{done['id']}")["backup"]["status"] == "available"
    crashed = member.ok("GET", f"/backups/{stray.name}")["backup"]
    assert crashed["status"] == "error" and "stopped" in crashed["fail_reason"]
    assert not stray.exists()

"""The ``local`` volume backend behind the API: real qcow2 files made by qemu-img (no
root needed). Data written into a volume (with qemu-io) is found again in its snapshot,
in a volume made from the snapshot, in a clone, and in a volume made from an image;
sizes are the files' virtual sizes; nothing is left on disk after deletes or a crash."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.db.models import Volume
from tests.api.compute_helpers import upload_image
from tests.api.volume_helpers import VolumeClient
from tests.conftest import Cloud, running_cloud

pytestmark = pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("qemu-io")),
                                reason="needs qemu-img and qemu-io")

GiB = 1 << 30


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(Path(tmp_path_factory.mktemp("local")), host_agent=False,
                       volume_backend="local") as c:
        yield c


@pytest.fixture
def admin(cloud: Cloud) -> VolumeClient:
    return VolumeClient(cloud)


def volume_dir(cloud: Cloud) -> Path:
    return cloud.config.state_dir / "volumes"


def info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def qemu_io(path: Path, command: str) -> str:
    proc = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def has_pattern(path: Path, pattern: int, offset: int = 0, length: int = 65536) -> bool:
    proc = subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                           f"read -P {pattern:#x} {offset} {length}", str(path)],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or "Pattern verification failed" in out, out
    return proc.returncode == 0 and "Pattern verification failed" not in out


def test_volume_snapshot_clone_extend_with_data(cloud: Cloud, admin: VolumeClient) -> None:
    vol = admin.create(size=1, name="data")
    path = volume_dir(cloud) / f"volume-{vol['id']}"
    meta = info(path)
    assert meta["format"] == "qcow2" and meta["virtual-size"] == GiB
    assert "backing-filename" not in meta
    qemu_io(path, "write -P 0xab 0 65536")
    snap = admin.snapshot(vol["id"])
    assert snap["status"] == "available"
    snap_path = volume_dir(cloud) / f"snapshot-{snap['id']}"
    assert has_pattern(snap_path, 0xAB)
    qemu_io(path, "write -P 0xcd 0 65536")  # the snapshot keeps the old data
    assert has_pattern(snap_path, 0xAB) and not has_pattern(snap_path, 0xCD)
    from_snap = admin.create(size=2, snapshot_id=snap["id"])
    from_path = volume_dir(cloud) / f"volume-{from_snap['id']}"
    assert info(from_path)["virtual-size"] == 2 * GiB and has_pattern(from_path, 0xAB)
    clone = admin.create(size=None, source_volid=vol["id"])
    assert has_pattern(volume_dir(cloud) / f"volume-{clone['id']}", 0xCD)
    assert admin.action(vol["id"], {"os-extend": {"new_size": 3}}).status_code == 202
    assert admin.wait(vol["id"], "available")["size"] == 3
    assert info(path)["virtual-size"] == 3 * GiB and has_pattern(path, 0xCD)
    for ident in (from_snap["id"], clone["id"]):
        assert admin.request("DELETE", f"/volumes/{ident}").status_code == 202
    assert admin.request("DELETE", f"/volumes/{vol['id']}?cascade=true").status_code == 202
    cloud.services.volume.wait_idle()
    assert sorted(p.name for p in volume_dir(cloud).iterdir()) == []


def test_volume_from_image_and_upload_back(cloud: Cloud, admin: VolumeClient) -> None:
    pattern = bytes([0x5A]) * (1 << 20)
    image_id = upload_image(cloud, data=pattern, name="patterned")
    vol = admin.create(size=1, imageRef=image_id)
    path = volume_dir(cloud) / f"volume-{vol['id']}"
    assert info(path)["virtual-size"] == GiB
    assert has_pattern(path, 0x5A, 0, 1 << 20)
    r = admin.action(vol["id"], {"os-volume_upload_image": {
        "image_name": "round-trip", "disk_format": "qcow2"}})
    assert r.status_code == 202, r.text
    image = r.json()["os-volume_upload_image"]["image_id"]
    admin.wait(vol["id"], "available")
    shown = cloud.request("GET", f"/image/v2/images/{image}").json()
    assert shown["status"] == "active" and shown["disk_format"] == "qcow2"
    assert shown["virtual_size"] == GiB
    again = admin.create(size=1, imageRef=image)
    assert has_pattern(volume_dir(cloud) / f"volume-{again['id']}", 0x5A, 0, 1 << 20)
    assert not [p for p in volume_dir(cloud).iterdir() if p.name.startswith(".partial-")]
    for ident in (vol["id"], again["id"]):
        admin.request("DELETE", f"/volumes/{ident}")
    cloud.services.volume.wait_idle()


def test_a_volume_smaller_than_its_image_is_refused(cloud: Cloud, admin: VolumeClient,
                                                    tmp_path: Path) -> None:
    disk = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "2G"], check=True)
    image_id = upload_image(cloud, data=disk.read_bytes(), name="big", disk_format="qcow2")
    before = sorted(p.name for p in volume_dir(cloud).iterdir())
    r = admin.request("POST", "/volumes", json={"volume": {"size": 1, "imageRef": image_id}})
    assert r.status_code == 400, r.text
    assert "larger than volume size 1GB" in r.json()["badRequest"]["message"]
    vol = admin.create(size=2, imageRef=image_id)
    assert info(volume_dir(cloud) / f"volume-{vol['id']}")["virtual-size"] == 2 * GiB
    admin.request("DELETE", f"/volumes/{vol['id']}")
    cloud.services.volume.wait_idle()
    assert sorted(p.name for p in volume_dir(cloud).iterdir()) == before


def test_crash_leftovers_are_cleaned(cloud: Cloud, admin: VolumeClient) -> None:
    service = cloud.services.volume
    vol = admin.create(size=1)
    with service.db.session() as s:
        s.get(Volume, vol["id"]).status = "creating"
    orphan = volume_dir(cloud) / "volume-00000000-0000-4000-8000-0000000000ee"
    partial = volume_dir(cloud) / ".partial-volume-x-1234"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(orphan), "1G"], check=True)
    partial.write_bytes(b"half")
    service.backend.remove_partials()  # what a new process does when it loads the backend
    service.recover()
    assert not orphan.exists() and not partial.exists()
    assert admin.show(vol["id"])["status"] == "error"
    assert not (volume_dir(cloud) / f"volume-{vol['id']}").exists()
    admin.request("DELETE", f"/volumes/{vol['id']}")
    service.wait_idle()


def test_a_types_backend_name_picks_the_backend(cloud: Cloud, admin: VolumeClient) -> None:
    admin.ok("POST", "/types", json={"volume_type": {
        "name": "in-memory", "extra_specs": {"volume_backend_name": "fake"}}})
    admin.ok("POST", "/types", json={"volume_type": {
        "name": "nowhere", "extra_specs": {"volume_backend_name": "no-such-backend"}}})
    before = sorted(p.name for p in volume_dir(cloud).iterdir())
    vol = admin.create(volume_type="in-memory")
    assert sorted(p.name for p in volume_dir(cloud).iterdir()) == before  # not a file
    assert vol["os-vol-host-attr:host"] == "onestack@fake#fake"
    assert vol["id"] in cloud.services.volume.backend_for("fake").list_volumes()
    r = admin.request("POST", "/volumes", json={"volume": {"size": 1,
                                                           "volume_type": "nowhere"}})
    assert r.status_code == 400 and "no-such-backend" in r.text, r.text
    binaries = {s["host"] for s in admin.ok("GET", "/os-services")["services"]}
    assert {"onestack@local", "onestack@fake"} <= binaries
    # a clone stays on its source's backend whatever the default
    clone = admin.create(size=None, source_volid=vol["id"])
    assert clone["os-vol-host-attr:host"] == "onestack@fake#fake"
    for ident in (clone["id"], vol["id"]):
        admin.request("DELETE", f"/volumes/{ident}")
    cloud.services.volume.wait_idle()
    assert cloud.services.volume.backend_for("fake").list_volumes() == []

"""The fake storage driver: the same rules as ``local`` (checksums, one fetch, bases kept
while used, grow only) without qemu-img, and state that survives a new instance."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.storage import ImageSource, StorageError, load
from onestack.drivers.storage.fake import FakeStorage

GiB = 1 << 30
MiB = 1 << 20
IMAGE_ID = "6f1b8ad2-5a0c-4b8e-9d7e-2f9a3c1e0b11"
VM_A = "a0000000-0000-4000-8000-00000000000a"
VM_B = "b0000000-0000-4000-8000-00000000000b"


def qcow2_header(virtual_size: int, backing: bool = False) -> bytes:
    """Enough of a qcow2 v3 header for the inspector."""
    header = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 512 if backing else 0,
                         8 if backing else 0, 16, virtual_size, 0, 1, 3 << 16, 1 << 16, 1,
                         0, 0, 0, 0, 0, 4, 104)
    return header.ljust(4096, b"\0")


class Source:
    def __init__(self, data: bytes, disk_format: str = "raw", hash_value: str | None = None,
                 delay: float = 0.0) -> None:
        self.data = data
        self.opened = 0
        self.delay = delay
        self.image = ImageSource(
            id=IMAGE_ID, disk_format=disk_format, size=len(data), hash_algo="sha512",
            hash_value=hash_value or hashlib.sha512(data).hexdigest(), open=self._open)

    def _open(self) -> Iterator[bytes]:
        self.opened += 1
        for offset in range(0, len(self.data), 1000):
            if self.delay:
                time.sleep(self.delay)
            yield self.data[offset:offset + 1000]


@pytest.fixture(params=["memory", "files"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> FakeStorage:
    root = tmp_path / "disks" if request.param == "files" else None
    driver = load("fake", root=root, ignored=True)
    assert isinstance(driver, FakeStorage)
    return driver


def test_one_fetch_overlay_sizes_and_idempotence(storage: FakeStorage) -> None:
    source = Source(b"x" * 5000)
    a = storage.create_disk(VM_A, source.image, 1)
    b = storage.create_disk(VM_B, source.image, 0)
    assert source.opened == 1
    assert (a.format, a.virtual_size) == ("qcow2", GiB)
    assert b.virtual_size == 5120  # the image's size, in whole sectors
    assert storage.create_disk(VM_A, source.image, 7) == a == storage.disk(VM_A)
    assert storage.list_disks() == [VM_A, VM_B]
    assert storage.ensure_base(source.image).virtual_size == 5120


def test_qcow2_virtual_size_comes_from_the_header(storage: FakeStorage) -> None:
    source = Source(qcow2_header(3 * GiB), "qcow2")
    assert storage.create_disk(VM_A, source.image, 1).virtual_size == 3 * GiB


def test_checksums_formats_and_backing_files_are_checked(storage: FakeStorage) -> None:
    with pytest.raises(StorageError, match="checksum .* didn't match"):
        storage.create_disk(VM_A, Source(b"x" * 10, hash_value="00").image, 1)
    with pytest.raises(StorageError, match="image format vmdk can't boot"):
        storage.ensure_base(Source(b"x", "vmdk").image)
    with pytest.raises(StorageError, match="backing file"):
        storage.ensure_base(Source(qcow2_header(GiB, backing=True), "qcow2").image)
    with pytest.raises(StorageError, match="not a valid qcow2"):
        storage.ensure_base(Source(b"y" * 4096, "qcow2").image)
    assert storage.list_disks() == [] and storage.usage()[0] == 0


def test_concurrent_ensure_base_fetches_once(storage: FakeStorage) -> None:
    source = Source(b"z" * 20_000, delay=0.001)
    start = threading.Barrier(6)

    def worker() -> None:
        start.wait()
        storage.ensure_base(source.image)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.opened == 1


def test_bases_stay_while_used_and_resize_grows(storage: FakeStorage) -> None:
    source = Source(b"x" * 5000)
    storage.create_disk(VM_A, source.image, 1)
    storage.create_disk(VM_B, source.image, 1)
    assert storage.resize_disk(VM_A, 2).virtual_size == 2 * GiB
    assert storage.resize_disk(VM_A, 1).virtual_size == 2 * GiB
    storage.delete_disk(VM_A)
    assert storage.usage()[0] == 5000
    storage.delete_disk(VM_B)
    storage.delete_disk(VM_B)
    assert storage.usage()[0] == 0 and storage.list_disks() == []
    storage.create_disk(VM_A, source.image, 1)
    assert source.opened == 2  # the base went with its last disk
    with pytest.raises(StorageError, match="no disk"):
        storage.resize_disk(VM_B, 3)


def test_state_survives_a_new_instance(tmp_path: Path) -> None:
    source = Source(b"x" * 5000)
    first = FakeStorage(tmp_path / "disks")
    first.create_disk(VM_A, source.image, 1)
    first.resize_disk(VM_A, 4)
    second = FakeStorage(tmp_path / "disks")
    assert second.list_disks() == [VM_A]
    assert second.disk(VM_A).virtual_size == 4 * GiB  # type: ignore[union-attr]
    second.ensure_base(source.image)
    assert source.opened == 1
    assert json.loads((tmp_path / "disks" / VM_A / "disk").read_text())["image_id"] == IMAGE_ID
    second.delete_disk(VM_A)
    assert FakeStorage(tmp_path / "disks").list_disks() == []
    assert not (tmp_path / "disks" / "_base" / IMAGE_ID).exists()


def test_snapshot_is_a_valid_empty_qcow2(storage: FakeStorage, tmp_path: Path) -> None:
    storage.create_disk(VM_A, Source(b"x" * 5000).image, 2)
    dest = tmp_path / "snap.qcow2"
    snap = storage.snapshot(VM_A, dest)
    assert (snap.path, snap.format, snap.virtual_size) == (dest, "qcow2", 2 * GiB)
    assert dest.read_bytes()[:4] == b"QFI\xfb"
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(dest)], check=True)
        out = subprocess.run(["qemu-img", "info", "-f", "qcow2", "--output=json", str(dest)],
                             check=True, capture_output=True, text=True).stdout
        assert json.loads(out)["virtual-size"] == 2 * GiB
    with pytest.raises(StorageError, match="no disk"):
        storage.snapshot(VM_B, tmp_path / "other.qcow2")

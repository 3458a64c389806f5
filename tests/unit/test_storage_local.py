"""The local storage driver against the real qemu-img: one fetch per image, verified
checksums, overlays on bases, bases kept while used, standalone snapshots."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.storage import ImageSource, StorageError, load
from onestack.drivers.storage.local import LocalStorage

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

MiB = 1 << 20
GiB = 1 << 30
IMAGE_ID = "6f1b8ad2-5a0c-4b8e-9d7e-2f9a3c1e0b11"
OTHER_IMAGE_ID = "0c2d4e6f-8a1b-4c3d-9e5f-7a9b1c3d5e7f"
VM_A = "a0000000-0000-4000-8000-00000000000a"
VM_B = "b0000000-0000-4000-8000-00000000000b"


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def info(path: Path, fmt: str = "qcow2") -> dict:
    return json.loads(run("qemu-img", "info", "-U", "-f", fmt, "--output=json", str(path)))


def raw_bytes(size: int = 2 * MiB) -> bytes:
    """Some data at the start and the end, zeros between."""
    data = bytearray(size)
    data[:MiB // 2] = (bytes(range(256)) * (MiB // 512))
    data[-4096:] = b"\xee" * 4096
    return bytes(data)


def qcow2_bytes(tmp_path: Path, size: int, *options: str) -> bytes:
    path = tmp_path / f"made-{len(list(tmp_path.iterdir()))}.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), str(size))
    return path.read_bytes()


class Source:
    """An ``ImageSource`` over bytes that counts how often it is opened."""

    def __init__(self, data: bytes, disk_format: str = "raw", image_id: str = IMAGE_ID,
                 hash_value: str | None = None, delay: float = 0.0) -> None:
        self.data = data
        self.opened = 0
        self.delay = delay
        self.image = ImageSource(
            id=image_id, disk_format=disk_format, size=len(data), hash_algo="sha512",
            hash_value=hash_value or hashlib.sha512(data).hexdigest(), open=self._open)

    def _open(self) -> Iterator[bytes]:
        self.opened += 1
        for offset in range(0, len(self.data), 256 * 1024):
            if self.delay:
                time.sleep(self.delay)
            yield self.data[offset:offset + 256 * 1024]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    driver = load("local", root=tmp_path / "disks", unused_option=1)
    assert isinstance(driver, LocalStorage)
    return driver


def test_base_is_fetched_once_for_two_disks(storage: LocalStorage) -> None:
    source = Source(raw_bytes())
    a = storage.create_disk(VM_A, source.image, 1)
    b = storage.create_disk(VM_B, source.image, 1)
    assert source.opened == 1
    base = storage.root / "_base" / IMAGE_ID
    assert base.read_bytes() == source.data
    assert os.stat(base).st_blocks * 512 < len(source.data)  # the zeros stayed holes
    assert a.path == storage.root / VM_A / "disk" and b.path == storage.root / VM_B / "disk"
    assert storage.list_disks() == [VM_A, VM_B]
    assert storage.ensure_base(source.image).path == base
    assert source.opened == 1


def test_overlay_is_backed_by_the_base_and_grown_to_the_flavor(
        storage: LocalStorage, tmp_path: Path) -> None:
    source = Source(qcow2_bytes(tmp_path, 64 * MiB), "qcow2")
    disk = storage.create_disk(VM_A, source.image, 1)
    found = info(disk.path)
    assert found["backing-filename"] == str(storage.root / "_base" / IMAGE_ID)
    assert found["backing-filename-format"] == "qcow2"
    assert found["virtual-size"] == disk.virtual_size == GiB
    assert disk.format == "qcow2"
    # 0 (or a flavor smaller than the image) means the image's own size
    small = storage.create_disk(VM_B, source.image, 0)
    assert small.virtual_size == info(small.path)["virtual-size"] == 64 * MiB
    # idempotent: the existing disk comes back, whatever size is asked now
    again = storage.create_disk(VM_A, source.image, 5)
    assert again == storage.disk(VM_A) and again.virtual_size == GiB
    assert source.opened == 1


def test_checksum_mismatch_is_refused_and_leaves_nothing(storage: LocalStorage) -> None:
    source = Source(raw_bytes(), hash_value=hashlib.sha512(b"other").hexdigest())
    with pytest.raises(StorageError, match="checksum .* didn't match"):
        storage.ensure_base(source.image)
    with pytest.raises(StorageError, match="checksum"):
        storage.create_disk(VM_A, source.image, 1)
    assert os.listdir(storage.root / "_base") == []
    assert storage.list_disks() == [] and storage.disk(VM_A) is None


@pytest.mark.parametrize("what", ["backing file", "data file"])
def test_a_qcow2_that_points_at_other_files_is_refused(
        storage: LocalStorage, tmp_path: Path, what: str) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"secret" * 100)
    if what == "backing file":
        data = qcow2_bytes(tmp_path, MiB, "-F", "raw", "-b", str(host_file))
    else:
        data = qcow2_bytes(tmp_path, MiB, "-o", f"data_file={host_file}")
    source = Source(data, "qcow2")
    with pytest.raises(StorageError, match=what.replace(" ", ".?")):
        storage.create_disk(VM_A, source.image, 1)
    assert os.listdir(storage.root / "_base") == [] and storage.list_disks() == []


def test_qemu_img_info_refuses_what_the_header_parse_lets_through(
        storage: LocalStorage, tmp_path: Path) -> None:
    corrupt = bytearray(qcow2_bytes(tmp_path, MiB))
    corrupt[79] |= 0x02  # incompatible feature bit 1: "corrupt"
    with pytest.raises(StorageError, match="marked corrupt"):
        storage.ensure_base(Source(bytes(corrupt), "qcow2").image)
    encrypted = bytearray(qcow2_bytes(tmp_path, MiB))
    encrypted[35] = 1  # crypt_method: AES (making a LUKS one takes seconds)
    with pytest.raises(StorageError, match="encrypted"):
        storage.ensure_base(Source(bytes(encrypted), "qcow2", image_id=OTHER_IMAGE_ID).image)
    assert os.listdir(storage.root / "_base") == []


def test_formats_other_than_qcow2_and_raw_are_refused(storage: LocalStorage) -> None:
    source = Source(raw_bytes(), "vmdk")
    with pytest.raises(StorageError, match="image format vmdk can't boot on the local"):
        storage.ensure_base(source.image)
    assert source.opened == 0
    declared_qcow2 = Source(raw_bytes(), "qcow2")
    with pytest.raises(StorageError, match="not a valid qcow2"):
        storage.ensure_base(declared_qcow2.image)
    assert os.listdir(storage.root / "_base") == []


def test_a_base_stays_while_any_disk_uses_it(storage: LocalStorage) -> None:
    source = Source(raw_bytes())
    other = Source(raw_bytes(MiB), image_id=OTHER_IMAGE_ID)
    storage.create_disk(VM_A, source.image, 1)
    storage.create_disk(VM_B, source.image, 1)
    storage.ensure_base(other.image)  # used by no disk: goes at the next delete
    base = storage.root / "_base" / IMAGE_ID
    storage.delete_disk(VM_A)
    assert base.exists() and storage.list_disks() == [VM_B]
    assert not (storage.root / "_base" / OTHER_IMAGE_ID).exists()
    assert info(storage.root / VM_B / "disk")["backing-filename"] == str(base)
    storage.delete_disk(VM_B)
    assert os.listdir(storage.root / "_base") == []  # base and its lock file
    assert os.listdir(storage.root) == ["_base"]
    storage.delete_disk(VM_B)  # idempotent
    # a new instance of the driver (an agent restart) sees the same references
    storage.create_disk(VM_A, source.image, 1)
    storage.create_disk(VM_B, source.image, 1)
    LocalStorage(storage.root).delete_disk(VM_A)
    assert base.exists()


def test_leftovers_of_a_crash_are_finished_or_cleaned(storage: LocalStorage) -> None:
    source = Source(raw_bytes())
    storage.create_disk(VM_A, source.image, 1)
    # create_disk of B died after writing its reference, before the disk was renamed
    (storage.root / VM_B).mkdir()
    (storage.root / VM_B / "base").write_text(IMAGE_ID + "\n")
    (storage.root / VM_B / "disk.partial").write_bytes(b"half")
    # delete_disk died after its rename; a fetch died half way
    (storage.root / ".deleted-c-1234").mkdir()
    (storage.root / "_base" / f".{OTHER_IMAGE_ID}.partial-99").write_bytes(b"x")
    assert storage.disk(VM_B) is None and storage.list_disks() == [VM_A, VM_B]
    storage.delete_disk(VM_A)  # B's reference keeps the base
    assert (storage.root / "_base" / IMAGE_ID).exists()
    assert sorted(os.listdir(storage.root / "_base")) == [f".{IMAGE_ID}.lock", IMAGE_ID]
    disk = storage.create_disk(VM_B, source.image, 1)
    assert info(disk.path)["virtual-size"] == GiB
    assert sorted(os.listdir(storage.root / VM_B)) == ["base", "disk"]
    # a disk without its reference file still counts, through its backing file
    (storage.root / VM_B / "base").unlink()
    storage.delete_disk(VM_A)
    assert (storage.root / "_base" / IMAGE_ID).exists()
    assert sorted(os.listdir(storage.root)) == ["_base", VM_B]


def test_snapshot_is_standalone_with_the_same_content(
        storage: LocalStorage, tmp_path: Path) -> None:
    source = Source(raw_bytes())
    disk = storage.create_disk(VM_A, source.image, 1)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 64k",
        "-c", "write -P 0xcd 512M 4k", str(disk.path))
    dest = tmp_path / "snap.qcow2"
    snap = storage.snapshot(VM_A, dest)
    assert snap.path == dest and snap.format == "qcow2" and snap.virtual_size == GiB
    found = info(dest)
    assert "backing-filename" not in found and found["virtual-size"] == GiB
    run("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(disk.path), str(dest))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".snap")]
    with pytest.raises(StorageError, match="no disk"):
        storage.snapshot(VM_B, tmp_path / "none.qcow2")


def test_concurrent_ensure_base_from_threads_fetches_once(storage: LocalStorage) -> None:
    source = Source(raw_bytes(), delay=0.005)
    start = threading.Barrier(8)
    results: list[object] = []

    def worker(index: int) -> None:
        start.wait()
        driver = storage if index % 2 else LocalStorage(storage.root)
        results.append(driver.ensure_base(source.image))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.opened == 1
    assert len(results) == 8 and len({r.path for r in results}) == 1  # type: ignore[attr-defined]


def test_clones_racing_deletes_never_lose_a_base_in_use(storage: LocalStorage) -> None:
    source = Source(raw_bytes(MiB))
    failures: list[str] = []

    def worker(index: int) -> None:
        driver = LocalStorage(storage.root)
        for n in range(12):
            instance = f"{index:08d}-0000-4000-8000-{n:012d}"
            try:
                disk = driver.create_disk(instance, source.image, 1)
                if not Path(info(disk.path)["full-backing-filename"]).exists():
                    failures.append(f"{instance}: base gone")
                driver.delete_disk(instance)
            except Exception as exc:  # collected: an assert in a thread would be lost
                failures.append(f"{instance}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert os.listdir(storage.root) == ["_base"] and os.listdir(storage.root / "_base") == []


def _fetch_in_process(root: str, counter: str, data: bytes, start: float) -> None:
    def counted() -> Iterator[bytes]:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.05)
        yield data

    image = ImageSource(IMAGE_ID, "raw", len(data), "sha512",
                        hashlib.sha512(data).hexdigest(), counted)
    time.sleep(max(0.0, start - time.time()))
    LocalStorage(Path(root)).ensure_base(image)


def test_concurrent_ensure_base_from_processes_fetches_once(
        storage: LocalStorage, tmp_path: Path) -> None:
    counter = tmp_path / "opened"
    counter.touch()
    data = raw_bytes(MiB)
    start = time.time() + 0.3
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_fetch_in_process,
                             args=(str(storage.root), str(counter), data, start))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0] * 4
    assert counter.read_text() == "x"
    assert (storage.root / "_base" / IMAGE_ID).read_bytes() == data


def test_resize_grows_and_never_shrinks(storage: LocalStorage) -> None:
    source = Source(raw_bytes())
    storage.create_disk(VM_A, source.image, 1)
    grown = storage.resize_disk(VM_A, 3)
    assert grown.virtual_size == info(grown.path)["virtual-size"] == 3 * GiB
    assert storage.resize_disk(VM_A, 2).virtual_size == 3 * GiB
    assert storage.disk(VM_A).virtual_size == 3 * GiB  # type: ignore[union-attr]
    with pytest.raises(StorageError, match="no disk"):
        storage.resize_disk(VM_B, 2)


def test_qemu_img_errors_carry_its_stderr(storage: LocalStorage) -> None:
    source = Source(raw_bytes())
    disk = storage.create_disk(VM_A, source.image, 1)
    disk.path.write_bytes(b"not a qcow2 image at all" * 100)
    with pytest.raises(StorageError, match="qemu-img info failed: .*qcow2"):
        storage.disk(VM_A)


def test_invalid_names_and_usage(storage: LocalStorage) -> None:
    with pytest.raises(StorageError, match="invalid instance uuid"):
        storage.delete_disk("../etc")
    bad = Source(raw_bytes(), image_id="../../x")
    with pytest.raises(StorageError, match="invalid image id"):
        storage.ensure_base(bad.image)
    used, total = storage.usage()
    assert 0 < used <= total

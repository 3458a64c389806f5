"""The ``fake`` storage driver, for tests without qemu-img: records instead of disks.

It behaves like ``local`` where that is cheap: it reads every image through
``ImageSource.open()`` and verifies its checksum, takes only qcow2 and raw, refuses a
qcow2 with a backing or data file (a header check), fetches each image once even when
threads race, keeps a base while a disk uses it, grows and never shrinks. Given a
``root``, its records are tiny JSON files there (``_base/<image_id>``,
``<instance_uuid>/disk``), so a new instance on the same root sees the same state.

``snapshot`` writes a valid, empty qcow2 of the disk's virtual size (the image service
inspects what is uploaded); its content is zeros, not the guest's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import struct
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from oslo_utils.imageutils import format_inspector as fi

from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError
from onestack.hostlink import capabilities as caps

GiB = 1 << 30
BASE_FORMATS = ("qcow2", "raw")
#: What ``usage()`` reports as the total.
CAPACITY = 1 << 40
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
#: Where disks "are" when there is no root (nothing is written there).
_NOWHERE = Path("/nonexistent/onestack-fake-storage")


def _round512(size: int) -> int:
    return -(-size // 512) * 512


def _check_name(kind: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise StorageError(f"invalid {kind} {value!r}")


def _check_format(image: ImageSource) -> None:
    if image.disk_format not in BASE_FORMATS:
        raise StorageError(f"image format {image.disk_format} can't boot on the fake "
                           f"storage driver (use {' or '.join(BASE_FORMATS)})")


def write_empty_qcow2(path: Path, virtual_size: int) -> None:
    """A valid qcow2 v3 file with no data: header, refcount table and block, L1 table
    (64 KiB clusters, written sparse)."""
    cluster = 1 << 16
    l1_size = max(1, -(-virtual_size // (cluster * (cluster // 8))))
    l1_clusters = -(-l1_size * 8 // cluster)
    clusters = 3 + l1_clusters  # header, refcount table, refcount block, L1 table
    header = struct.pack(
        ">4sIQIIQIIQQIIQQQQII",
        b"QFI\xfb", 3, 0, 0, 16, virtual_size, 0, l1_size, 3 * cluster, cluster, 1, 0, 0,
        0, 0, 0, 4, 104)
    header += struct.pack(">II", 0, 0)  # end of header extensions
    with open(path, "wb") as f:
        f.write(header)
        f.seek(cluster)
        f.write(struct.pack(">Q", 2 * cluster))
        f.seek(2 * cluster)
        f.write(struct.pack(f">{clusters}H", *([1] * clusters)))
        f.truncate(clusters * cluster)


class FakeStorage(StorageDriver):
    name = "fake"
    capabilities: ClassVar[dict[str, bool]] = {
        caps.SNAPSHOT: True, caps.RBD: False, caps.VOLUMES: False}

    def __init__(self, root: Path | None = None, **_ignored: object) -> None:
        self.root = Path(root).absolute() if root is not None else None
        self._where = self.root or _NOWHERE
        self._bases: dict[str, dict[str, Any]] = {}  # image id -> format, sizes
        self._disks: dict[str, dict[str, Any]] = {}  # instance uuid -> image id, size
        self._mutex = threading.Lock()
        self._image_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        if self.root is not None:
            self._load()

    # -- records -------------------------------------------------------------------------

    def _base_path(self, image_id: str) -> Path:
        return self._where / "_base" / image_id

    def _disk_path(self, instance_uuid: str) -> Path:
        return self._where / instance_uuid / "disk"

    def _load(self) -> None:
        assert self.root is not None
        (self.root / "_base").mkdir(parents=True, exist_ok=True)
        for path in (self.root / "_base").iterdir():
            if _NAME.fullmatch(path.name):
                self._bases[path.name] = json.loads(path.read_text())
        for path in self.root.glob("*/disk"):
            if _NAME.fullmatch(path.parent.name):
                self._disks[path.parent.name] = json.loads(path.read_text())

    def _save(self, path: Path, record: dict[str, Any]) -> None:
        if self.root is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)

    # -- bases ---------------------------------------------------------------------------

    def ensure_base(self, image: ImageSource) -> Disk:
        _check_name("image id", image.id)
        _check_format(image)
        with self._image_lock(image.id):
            return self._ensure_base_locked(image)

    def _image_lock(self, image_id: str) -> threading.Lock:
        with self._mutex:
            return self._image_locks[image_id]

    def _ensure_base_locked(self, image: ImageSource) -> Disk:
        with self._mutex:
            record = self._bases.get(image.id)
        if record is None:
            record = self._fetch(image)
            with self._mutex:
                self._bases[image.id] = record
                self._save(self._base_path(image.id), record)
        return Disk(self._base_path(image.id), record["format"], record["virtual_size"])

    @staticmethod
    def _fetch(image: ImageSource) -> dict[str, Any]:
        try:
            digest = hashlib.new(image.hash_algo)
        except (ValueError, TypeError):
            raise StorageError(f"image {image.id}: unknown hash algorithm "
                               f"{image.hash_algo!r}") from None
        inspector = fi.QcowInspector() if image.disk_format == "qcow2" else None
        total = 0
        chunks = image.open()
        try:
            for chunk in chunks:
                total += len(chunk)
                if image.size and total > image.size:
                    raise StorageError(f"image {image.id}: more data than its size of "
                                       f"{image.size} bytes")
                digest.update(chunk)
                if inspector is not None and not inspector.complete:
                    inspector.eat_chunk(chunk)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"image {image.id}: fetching it failed: {exc}") from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if digest.hexdigest() != image.hash_value.lower():
            raise StorageError(
                f"image {image.id}: the {image.hash_algo} checksum of the downloaded data "
                f"didn't match the image's ({digest.hexdigest()} != {image.hash_value})")
        virtual_size = _round512(total)
        if inspector is not None:
            inspector.finish()
            try:
                inspector.safety_check()
            except fi.SafetyCheckFailed as exc:
                reasons = "; ".join(str(v) or k for k, v in exc.failures.items())
                raise StorageError(f"image {image.id} is refused: {reasons}") from None
            except fi.ImageFormatError as exc:
                raise StorageError(f"image {image.id} is not a valid qcow2 image: "
                                   f"{exc}") from None
            virtual_size = inspector.virtual_size
        if virtual_size <= 0:
            raise StorageError(f"image {image.id} has no virtual size")
        return {"format": image.disk_format, "virtual_size": virtual_size, "size": total}

    # -- disks ---------------------------------------------------------------------------

    def create_disk(self, instance_uuid: str, image: ImageSource, size_gb: int) -> Disk:
        _check_name("instance uuid", instance_uuid)
        if size_gb < 0:
            raise StorageError(f"invalid disk size {size_gb} GiB")
        existing = self.disk(instance_uuid)
        if existing:
            return existing
        _check_name("image id", image.id)
        _check_format(image)
        with self._image_lock(image.id):  # keeps the base from being removed under us
            base = self._ensure_base_locked(image)
            size = _round512(max(size_gb * GiB, base.virtual_size))
            record: dict[str, Any] = {"image_id": image.id, "virtual_size": size}
            with self._mutex:
                if instance_uuid in self._disks:
                    record = self._disks[instance_uuid]
                else:
                    self._disks[instance_uuid] = record
                    self._save(self._disk_path(instance_uuid), record)
        return Disk(self._disk_path(instance_uuid), "qcow2", record["virtual_size"])

    def disk(self, instance_uuid: str) -> Disk | None:
        with self._mutex:
            record = self._disks.get(instance_uuid)
        if record is None:
            return None
        return Disk(self._disk_path(instance_uuid), "qcow2", record["virtual_size"])

    def resize_disk(self, instance_uuid: str, size_gb: int) -> Disk:
        with self._mutex:
            record = self._disks.get(instance_uuid)
            if record is None:
                raise StorageError(f"instance {instance_uuid} has no disk to resize")
            if size_gb * GiB > record["virtual_size"]:
                record = {**record, "virtual_size": size_gb * GiB}
                self._disks[instance_uuid] = record
                self._save(self._disk_path(instance_uuid), record)
        return Disk(self._disk_path(instance_uuid), "qcow2", record["virtual_size"])

    def delete_disk(self, instance_uuid: str) -> None:
        _check_name("instance uuid", instance_uuid)
        with self._mutex:
            self._disks.pop(instance_uuid, None)
            if self.root is not None:
                shutil.rmtree(self.root / instance_uuid, ignore_errors=True)
            used = {record["image_id"] for record in self._disks.values()}
            for image_id in list(self._bases):
                lock = self._image_locks[image_id]
                if image_id in used or not lock.acquire(blocking=False):
                    continue  # in use, or being fetched right now
                try:
                    del self._bases[image_id]
                    if self.root is not None:
                        self._base_path(image_id).unlink(missing_ok=True)
                finally:
                    lock.release()

    def snapshot(self, instance_uuid: str, dest: Path) -> Disk:
        disk = self.disk(instance_uuid)
        if disk is None:
            raise StorageError(f"instance {instance_uuid} has no disk to snapshot")
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.partial-{secrets.token_hex(4)}")
        try:
            write_empty_qcow2(tmp, disk.virtual_size)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Disk(dest, "qcow2", disk.virtual_size)

    def list_disks(self) -> list[str]:
        with self._mutex:
            return sorted(self._disks)

    def usage(self) -> tuple[int, int]:
        with self._mutex:
            return sum(int(record["size"]) for record in self._bases.values()), CAPACITY

"""The ``rbd`` storage driver: boot disks as RBD clones in a Ceph cluster (see
``docs/design/ceph.md``).

- An image's base is ``<images_pool>/<image-id>@snap`` when the image service stores
  its data in the cluster (``[image] store = rbd``) and the image is raw: nothing is
  copied. Otherwise (a qcow2 image, or image data kept elsewhere) the host fetches the
  image once (checksum verified, header inspected as the local driver does), converts
  it to raw and writes ``<images_pool>/<image-id>.raw`` with its protected ``snap``.
- A boot disk is ``<vms_pool>/<instance-uuid>_disk``, a copy-on-write clone of the
  base's snapshot (constant time whatever the image size), grown to the flavor's disk.
  QEMU opens it through librbd; no byte of it is on this host, so a host that dies
  loses no disk.
- Deleting the disk removes the clone; a ``.raw`` base or an image the image service
  deleted meanwhile (``<image-id>.deleted``) goes with its last clone.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

from onestack.ceph.client import CephClient, CephSettings, RbdUnavailable, client_for
from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError
from onestack.drivers.storage.local import LocalStorage, qemu_img
from onestack.hostlink import capabilities as caps

LOG = logging.getLogger(__name__)

GiB = 1 << 30
DISK_SUFFIX = "_disk"
RAW_SUFFIX = ".raw"
DELETED_SUFFIX = ".deleted"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,200}")


def _check_name(kind: str, value: str) -> None:
    if not _NAME.fullmatch(value):
        raise StorageError(f"invalid {kind} {value!r}")


class RbdStorage(StorageDriver):
    name = "rbd"
    capabilities: ClassVar[dict[str, bool]] = {
        caps.SNAPSHOT: True, caps.RBD: True, caps.VOLUMES: False}

    def __init__(self, root: Path, ceph_conf: str = "", ceph_keyring: str = "",
                 ceph_user: str = "onestack", images_pool: str = "images",
                 vms_pool: str = "vms", **_ignored: object) -> None:
        if not ceph_conf:
            raise StorageError("the rbd storage driver needs a ceph.conf ([ceph] conf, "
                               "--ceph-conf)")
        #: Local scratch space (image fetches before they go to the cluster).
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings = CephSettings(conf=ceph_conf, keyring=ceph_keyring, user=ceph_user)
        self.ceph_conf, self.ceph_user = ceph_conf, ceph_user
        self.images_pool = images_pool
        self.vms_pool = vms_pool
        self._client: CephClient | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_mutex = threading.Lock()

    @property
    def client(self) -> CephClient:
        if self._client is None:
            try:
                self._client = client_for(self.settings)
            except RbdUnavailable as exc:
                raise StorageError(str(exc)) from None
        return self._client

    def _lock(self, image_id: str) -> threading.Lock:
        with self._locks_mutex:
            return self._locks.setdefault(image_id, threading.Lock())

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call; Ceph's errors become StorageError (shown in ``fault``)."""
        try:
            return fn(*args, **kwargs)
        except StorageError:
            raise
        except RbdUnavailable as exc:
            raise StorageError(str(exc)) from None
        except Exception as exc:
            if type(exc).__module__ in ("rbd", "rados"):
                raise StorageError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
            raise

    # -- bases ---------------------------------------------------------------------------

    def ensure_base(self, image: ImageSource) -> Disk:
        _check_name("image id", image.id)
        with self._lock(image.id):
            return self._call(f"image {image.id}: its base in the cluster",
                              self._ensure_base_locked, image)

    def _ensure_base_locked(self, image: ImageSource) -> Disk:
        c = self.client
        pool = self.images_pool
        if image.disk_format == "raw" and c.has_snap(pool, image.id):
            return Disk(path=Path(pool, image.id), format="raw",
                        virtual_size=c.size(pool, image.id), kind="rbd")
        name = image.id + RAW_SUFFIX
        if not c.has_snap(pool, name):
            self._import(image, name)
        return Disk(path=Path(pool, name), format="raw", virtual_size=c.size(pool, name),
                    kind="rbd")

    def _import(self, image: ImageSource, name: str) -> None:
        """Fetch the image (checksum verified), inspect it, write it raw into the pool."""
        if image.disk_format not in ("raw", "qcow2"):
            raise StorageError(f"image format {image.disk_format} can't boot on the rbd "
                               "storage driver (use raw or qcow2)")
        try:
            digest = hashlib.new(image.hash_algo)
        except (ValueError, TypeError):
            raise StorageError(f"image {image.id}: unknown hash algorithm "
                               f"{image.hash_algo!r}") from None
        LOG.info("image %s: fetching it into %s/%s", image.id, self.images_pool, name)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=self.root) as tmp:
            fetched = Path(tmp) / "image"
            with open(fetched, "wb") as f:
                for chunk in image.open():
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != image.hash_value.lower():
                raise StorageError(f"image {image.id}: the {image.hash_algo} checksum of the "
                                   "downloaded data didn't match the image's")
            LocalStorage._inspect(image.id, fetched, image.disk_format)
            raw = fetched
            if image.disk_format != "raw":
                raw = Path(tmp) / "image.raw"
                qemu_img("convert", "-q", "-f", image.disk_format, "-O", "raw", "-S", "4k",
                         str(fetched), str(raw), timeout=None)
                fetched.unlink()
            self.client.write_image(self.images_pool, name, raw)

    # -- disks ---------------------------------------------------------------------------

    def _disk_name(self, instance_uuid: str) -> str:
        _check_name("instance uuid", instance_uuid)
        return instance_uuid + DISK_SUFFIX

    def create_disk(self, instance_uuid: str, image: ImageSource, size_gb: int) -> Disk:
        name = self._disk_name(instance_uuid)
        if size_gb < 0:
            raise StorageError(f"invalid disk size {size_gb} GiB")
        existing = self.disk(instance_uuid)
        if existing:
            return existing
        base = self.ensure_base(image)
        size = max(size_gb * GiB, base.virtual_size)
        parent_pool, parent = str(base.path).split("/", 1)
        with self._lock(image.id):
            self._call(f"cloning {base.path}@snap", self.client.clone, parent_pool, parent,
                       self.vms_pool, name, size)
        return Disk(path=Path(self.vms_pool, name), format="raw", virtual_size=size, kind="rbd")

    def disk(self, instance_uuid: str) -> Disk | None:
        name = self._disk_name(instance_uuid)
        c = self.client

        def size() -> int | None:
            try:
                return c.size(self.vms_pool, name)
            except c.rbd.ImageNotFound:
                return None

        found = self._call(f"reading {self.vms_pool}/{name}", size)
        if found is None:
            return None
        return Disk(path=Path(self.vms_pool, name), format="raw", virtual_size=found,
                    kind="rbd")

    def resize_disk(self, instance_uuid: str, size_gb: int) -> Disk:
        disk = self.disk(instance_uuid)
        if disk is None:
            raise StorageError(f"instance {instance_uuid} has no disk to resize")
        size = size_gb * GiB
        if size <= disk.virtual_size:
            return disk

        def grow() -> None:
            with self.client.image(self.vms_pool, self._disk_name(instance_uuid)) as image:
                image.resize(size)

        self._call("growing the disk", grow)
        return Disk(path=disk.path, format="raw", virtual_size=size, kind="rbd")

    def delete_disk(self, instance_uuid: str) -> None:
        name = self._disk_name(instance_uuid)
        c = self.client

        def delete() -> None:
            try:
                parent = c.parent(self.vms_pool, name)
            except c.rbd.ImageNotFound:
                return
            if not c.remove_image(self.vms_pool, name):
                raise StorageError(f"disk {self.vms_pool}/{name} has clones of its own; "
                                   "not removed")
            if parent is not None:
                self._collect(*parent)

        self._call(f"deleting {self.vms_pool}/{name}", delete)

    def _collect(self, pool: str, name: str) -> None:
        """Remove a base this driver made, or an image deleted while clones used it, once
        nothing is cloned from it."""
        if not name.endswith((RAW_SUFFIX, DELETED_SUFFIX)):
            return
        image_id = name.rsplit(".", 1)[0]
        with self._lock(image_id):
            if not self.client.children(pool, name) and self.client.remove_image(pool, name):
                LOG.info("removed %s/%s: no clone uses it", pool, name)

    def snapshot(self, instance_uuid: str, dest: Path) -> Disk:
        disk = self.disk(instance_uuid)
        if disk is None:
            raise StorageError(f"instance {instance_uuid} has no disk to snapshot")
        dest = Path(dest)
        qemu_img("convert", "-f", "raw", "-O", "qcow2",
                 self.settings.qemu_filename(self.vms_pool, self._disk_name(instance_uuid)),
                 str(dest), timeout=None)
        return Disk(path=dest, format="qcow2", virtual_size=disk.virtual_size)

    def list_disks(self) -> list[str]:
        names = self._call("listing disks", self.client.names, self.vms_pool)
        return sorted(n[:-len(DISK_SUFFIX)] for n in names if n.endswith(DISK_SUFFIX))

    def usage(self) -> tuple[int, int]:
        try:
            stats = self.client.cluster().get_cluster_stats()
        except Exception as exc:  # the scheduler's figure; an unreachable cluster is 0
            LOG.warning("cluster usage unknown: %s", exc)
            return 0, 0
        return int(stats["kb_used"]) * 1024, int(stats["kb"]) * 1024

"""The ``rbd`` volume backend: volumes as RBD images in a Ceph pool (``[ceph]
volumes_pool``), reached with ``[ceph] conf``/``keyring``/``user`` (see
docs/design/ceph.md).

- ``volume-<id>``: a volume; empty ones are thin (only written objects exist).
- From an image: a copy-on-write clone of ``<images_pool>/<image-id>@snap`` when the
  image service keeps the image there as raw (constant time); otherwise the image is
  fetched, converted to raw and written.
- Snapshots are RBD snapshots ``snapshot-<id>`` of the volume. A volume from a snapshot
  or from another volume is a clone that is flattened at once, so it depends on
  nothing (the source and its snapshots stay deletable).
- ``connection_info``: Cinder's rbd shape (``name`` ``<pool>/volume-<id>``, monitors'
  ``hosts``/``ports``, ``auth_username``), plus this host's ``conf`` and ``keyring``
  paths, which QEMU's librbd client opens the image with.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from onestack.ceph.client import SNAP, CephClient, CephSettings, RbdUnavailable, client_for
from onestack.services.volume.backends.base import (
    GiB,
    ImageData,
    VolumeBackend,
    VolumeData,
    VolumeError,
)

if TYPE_CHECKING:
    from onestack.common.config import Config

VOLUME_PREFIX = "volume-"
SNAPSHOT_PREFIX = "snapshot-"
_UUID = re.compile(r"[0-9a-fA-F-]{36}")


def _checked(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise VolumeError(f"invalid id {value!r}")
    return value


class RbdVolumeBackend(VolumeBackend):
    name: ClassVar[str] = "rbd"
    storage_protocol: ClassVar[str] = "ceph"
    capabilities: ClassVar[dict[str, bool]] = {
        "snapshots": True, "clone": True, "create_from_image": True, "copy_to_image": True,
        "online_extend": True, "multiattach": False, "thin_provisioning": True,
        "constant_time_clone": True}

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        c = config.ceph
        if not c.conf:
            raise VolumeError("the rbd volume backend needs [ceph] conf (--ceph-conf)")
        self.settings = CephSettings(conf=c.conf, keyring=c.keyring, user=c.user)
        self.pool = c.volumes_pool
        self.images_pool = c.images_pool
        self._client: CephClient | None = None

    @property
    def client(self) -> CephClient:
        if self._client is None:
            try:
                self._client = client_for(self.settings)
            except RbdUnavailable as exc:
                raise VolumeError(str(exc)) from None
        return self._client

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Ceph's exceptions become VolumeError (the volume's ``error_message``)."""
        try:
            yield
        except (VolumeError, FileNotFoundError):
            raise
        except RbdUnavailable as exc:
            raise VolumeError(str(exc)) from None
        except Exception as exc:
            if type(exc).__module__ in ("rbd", "rados"):
                raise VolumeError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
            raise

    @staticmethod
    def _name(volume_id: str) -> str:
        return VOLUME_PREFIX + _checked(volume_id)

    def _create_undoing(self, volume_id: str) -> contextlib.AbstractContextManager[None]:
        """Removes a half-made volume if the block raises."""
        backend = self

        class _Undo(contextlib.AbstractContextManager[None]):
            def __exit__(self, exc_type: Any, *rest: Any) -> None:
                if exc_type is not None:
                    with contextlib.suppress(Exception):
                        backend.client.remove_image(backend.pool, backend._name(volume_id))
                return None

        return _Undo()

    # -- volumes ----------------------------------------------------------------------

    def create(self, volume_id: str, size_gb: int) -> None:
        name = self._name(volume_id)
        with self._errors(f"creating {self.pool}/{name}"):
            if self.client.exists(self.pool, name):
                return
            with self.client.ioctx(self.pool) as io:
                self.client.rbd.RBD().create(io, name, size_gb * GiB, old_format=False,
                                             features=self.client.features())

    def create_from_image(self, volume_id: str, image: ImageData, size_gb: int) -> None:
        name = self._name(volume_id)
        c = self.client
        with self._errors(f"creating {self.pool}/{name} from image {image.id}"):
            if c.exists(self.pool, name):
                return
            with self._create_undoing(volume_id):
                if image.disk_format == "raw" and c.has_snap(self.images_pool, image.id):
                    c.clone(self.images_pool, image.id, self.pool, name, size_gb * GiB)
                    return
                if image.disk_format not in ("raw", "qcow2"):
                    raise VolumeError(f"image {image.id} is {image.disk_format}: only raw "
                                      "and qcow2 images can become volumes")
                with tempfile.TemporaryDirectory(prefix="onestack-vol-") as tmp:
                    fetched = Path(tmp) / "image"
                    with open(fetched, "wb") as f:
                        for chunk in image.open():
                            f.write(chunk)
                    raw = fetched
                    if image.disk_format != "raw":
                        raw = Path(tmp) / "image.raw"
                        _qemu_img("convert", "-q", "-f", image.disk_format, "-O", "raw",
                                  "-S", "4k", str(fetched), str(raw))
                    c.write_image(self.pool, name, raw)
                    # write_image leaves a protected snapshot: a volume has none of its own.
                    c_snap_remove(c, self.pool, name, SNAP)
                self._grow(name, size_gb)

    def _grow(self, name: str, size_gb: int) -> None:
        with self.client.image(self.pool, name) as img:
            if size_gb * GiB > img.size():
                img.resize(size_gb * GiB)

    def _clone_flat(self, source: str, snap: str, volume_id: str, size_gb: int) -> None:
        """A new volume from ``source@snap`` that depends on nothing (clone + flatten)."""
        c = self.client
        name = self._name(volume_id)
        with self._create_undoing(volume_id):
            with c.image(self.pool, source) as img:
                if not img.is_protected_snap(snap):
                    img.protect_snap(snap)
            try:
                with c.ioctx(self.pool) as io:
                    c.rbd.RBD().clone(io, source, snap, io, name, features=c.features())
                with c.image(self.pool, name) as img:
                    img.flatten()
            finally:
                with c.image(self.pool, source) as img, contextlib.suppress(Exception):
                    img.unprotect_snap(snap)
            self._grow(name, size_gb)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str,
                             source_volume_id: str, size_gb: int) -> None:
        with self._errors(f"creating volume {volume_id} from snapshot {snapshot_id}"):
            if self.client.exists(self.pool, self._name(volume_id)):
                return
            self._clone_flat(self._name(source_volume_id), SNAPSHOT_PREFIX +
                             _checked(snapshot_id), volume_id, size_gb)

    def clone(self, volume_id: str, source_volume_id: str, size_gb: int) -> None:
        source = self._name(source_volume_id)
        snap = f"clone-{_checked(volume_id)}"
        c = self.client
        with self._errors(f"cloning volume {source_volume_id}"):
            if c.exists(self.pool, self._name(volume_id)):
                return
            with c.image(self.pool, source) as img:
                img.create_snap(snap)
            try:
                self._clone_flat(source, snap, volume_id, size_gb)
            finally:
                c_snap_remove(c, self.pool, source, snap)

    def delete(self, volume_id: str) -> None:
        name = self._name(volume_id)
        c = self.client
        with self._errors(f"deleting {self.pool}/{name}"):
            try:
                parent = c.parent(self.pool, name)
            except c.rbd.ImageNotFound:
                return
            if not c.remove_image(self.pool, name):
                raise VolumeError(f"volume {volume_id} has snapshots that clones depend on")
            if parent and parent[1].endswith(".deleted") and not c.children(*parent):
                c.remove_image(*parent)  # an image deleted while this volume used it

    def extend(self, volume_id: str, new_size_gb: int, online: bool = False) -> None:
        with self._errors(f"extending volume {volume_id}"):
            self._grow(self._name(volume_id), new_size_gb)

    def exists(self, volume_id: str) -> bool:
        with self._errors("looking up a volume"):
            return self.client.exists(self.pool, self._name(volume_id))

    def list_volumes(self) -> list[str]:
        with self._errors("listing volumes"):
            return sorted(n[len(VOLUME_PREFIX):] for n in self.client.names(self.pool)
                          if n.startswith(VOLUME_PREFIX))

    # -- snapshots --------------------------------------------------------------------

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        snap = SNAPSHOT_PREFIX + _checked(snapshot_id)
        with self._errors(f"snapshotting volume {volume_id}"), \
                self.client.image(self.pool, self._name(volume_id)) as img:
            if not any(s["name"] == snap for s in img.list_snaps()):
                img.create_snap(snap)

    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        with self._errors(f"deleting snapshot {snapshot_id}"):
            try:
                c_snap_remove(self.client, self.pool, self._name(volume_id),
                              SNAPSHOT_PREFIX + _checked(snapshot_id))
            except self.client.rbd.ImageNotFound:
                return

    def list_snapshots(self) -> list[str]:
        c = self.client
        found: list[str] = []
        with self._errors("listing snapshots"):
            for name in c.names(self.pool):
                if not name.startswith(VOLUME_PREFIX):
                    continue
                with contextlib.suppress(c.rbd.ImageNotFound), \
                        c.image(self.pool, name, read_only=True) as img:
                    found += [s["name"][len(SNAPSHOT_PREFIX):] for s in img.list_snaps()
                              if s["name"].startswith(SNAPSHOT_PREFIX)]
        return sorted(found)

    # -- data out, attachments, capacity ----------------------------------------------

    def copy_to_image(self, volume_id: str, disk_format: str) -> Iterator[bytes]:
        if disk_format not in ("raw", "qcow2"):
            raise VolumeError(f"can't write a volume as {disk_format} (raw or qcow2)")
        source = self.settings.qemu_filename(self.pool, self._name(volume_id))
        with tempfile.TemporaryDirectory(prefix="onestack-vol-") as tmp:
            out = Path(tmp) / f"image.{disk_format}"
            _qemu_img("convert", "-f", "raw", "-O", disk_format, source, str(out))
            with open(out, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

    @contextlib.contextmanager
    def open_data(self, volume_id: str, snapshot_id: str | None = None,
                  write: bool = False) -> Iterator[VolumeData]:
        """The RBD image itself (at the snapshot when ``snapshot_id``) through librbd:
        a backup reads it, a restore writes it in place (zeros are discarded)."""
        snap = SNAPSHOT_PREFIX + _checked(snapshot_id) if snapshot_id else None
        with self._errors(f"opening volume {volume_id}"), \
                self.client.image(self.pool, self._name(volume_id), snapshot=snap,
                                  read_only=not write) as img:
            yield _RbdData(img, write)

    def connection_info(self, volume_id: str, connector: dict[str, Any] | None
                        ) -> dict[str, Any]:
        monitors = self.settings.monitors()
        data: dict[str, Any] = {
            "name": f"{self.pool}/{self._name(volume_id)}", "volume_id": volume_id,
            "hosts": [h for h, _ in monitors], "ports": [str(p) for _, p in monitors],
            "cluster_name": "ceph", "auth_enabled": True,
            "auth_username": self.settings.user, "secret_type": "ceph", "secret_uuid": None,
            "format": "raw", "discard": True, "conf": self.settings.conf}
        if self.settings.keyring:
            data["keyring"] = self.settings.keyring
        return {"driver_volume_type": "rbd", "data": data}

    def usage(self) -> tuple[int, int]:
        with self._errors("reading the cluster's usage"):
            stats = self.client.cluster().get_cluster_stats()
        return int(stats["kb_used"]) * 1024, int(stats["kb"]) * 1024


def c_snap_remove(client: CephClient, pool: str, name: str, snap: str) -> None:
    """Remove ``name@snap`` (unprotecting it first); missing is fine."""
    with client.image(pool, name) as img:
        if not any(s["name"] == snap for s in img.list_snaps()):
            return
        if img.is_protected_snap(snap):
            img.unprotect_snap(snap)
        img.remove_snap(snap)


def _qemu_img(*args: str) -> None:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise VolumeError(f"qemu-img {args[0]} failed: {proc.stderr.strip()}")


class _RbdData(VolumeData):
    def __init__(self, image: Any, writable: bool) -> None:
        self.image = image
        self.size = int(image.size())
        self.writable = writable

    def read(self, offset: int, length: int) -> bytes | None:
        length = max(0, min(length, self.size - offset))
        return bytes(self.image.read(offset, length)) if length else None

    def write(self, offset: int, data: bytes | None, length: int = 0) -> None:
        if not self.writable:
            raise VolumeError("this volume data was opened for reading")
        if data is None:
            self.image.discard(offset, length)
        else:
            self.image.write(data, offset)

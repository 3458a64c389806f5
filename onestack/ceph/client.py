"""A client of a Ceph cluster (this machine's ``onestack ceph up`` or a production one):
``ceph.conf`` + a keyring + a user, through Ceph's own bindings (Debian's
``python3-rados`` / ``python3-rbd``; ``make ceph-deps`` makes the venv see them).

Shared by the image store, the rbd storage driver and the rbd volume backend: images
are RBD images with a protected snapshot ``snap``; disks and volumes are clones of it.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The snapshot of an image that clones are made from.
SNAP = "snap"
#: RBD features of every image we create (layering = clones; the rest as Nova/Cinder).
FEATURES_NAMES = ("layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten")


class RbdUnavailable(Exception):
    """The bindings are missing or the cluster can't be reached."""


@dataclass(frozen=True)
class CephSettings:
    conf: str
    keyring: str = ""
    user: str = "onestack"
    connect_timeout: int = 20

    def qemu_filename(self, pool: str, name: str) -> str:
        """QEMU's (and qemu-img's) ``rbd:`` file name of ``pool/name`` for this client."""
        def esc(value: str) -> str:
            return value.replace("\\", "\\\\").replace(":", "\\:")

        out = f"rbd:{esc(pool)}/{esc(name)}:id={esc(self.user)}:conf={esc(self.conf)}"
        if self.keyring:
            out += f":keyring={esc(self.keyring)}"
        return out

    def monitors(self) -> list[tuple[str, int]]:
        """The monitors' (host, port) from ``mon_host`` in ``ceph.conf`` (v1 and v2)."""
        out: list[tuple[str, int]] = []
        for line in Path(self.conf).read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip().replace(" ", "_") != "mon_host":
                continue
            for part in value.replace("[", " ").replace("]", " ").replace(",", " ").split():
                addr = part.split(":", 1)[1] if part.startswith(("v1:", "v2:")) else part
                host, _, port = addr.rpartition(":")
                if host and port.isdigit():
                    out.append((host.strip("[]"), int(port)))
                elif addr:
                    out.append((addr.strip("[]"), 6789))
        return out


def _bindings() -> tuple[Any, Any]:
    try:
        import rados  # type: ignore[import-not-found, unused-ignore]
        import rbd  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RbdUnavailable(
            "Ceph's Python bindings (python3-rados, python3-rbd) are not importable: "
            "install them and link them into the venv with `make ceph-deps`") from None
    return rados, rbd


class CephClient:
    """One librados connection per process, opened on first use (thread-safe)."""

    def __init__(self, settings: CephSettings) -> None:
        self.settings = settings
        self._cluster: Any = None
        self._mutex = threading.Lock()
        self.rados, self.rbd = _bindings()

    def cluster(self) -> Any:
        with self._mutex:
            if self._cluster is None:
                conf: dict[str, str] = {}
                if self.settings.keyring:
                    conf["keyring"] = self.settings.keyring
                cluster = self.rados.Rados(conffile=self.settings.conf,
                                           rados_id=self.settings.user, conf=conf)
                try:
                    cluster.connect(timeout=self.settings.connect_timeout)
                except self.rados.Error as exc:
                    raise RbdUnavailable(f"can't reach the Ceph cluster of "
                                         f"{self.settings.conf} as client."
                                         f"{self.settings.user}: {exc}") from None
                self._cluster = cluster
            return self._cluster

    @contextlib.contextmanager
    def ioctx(self, pool: str) -> Iterator[Any]:
        ioctx = self.cluster().open_ioctx(pool)
        try:
            yield ioctx
        finally:
            ioctx.close()

    @contextlib.contextmanager
    def image(self, pool: str, name: str, snapshot: str | None = None,
              read_only: bool = False) -> Iterator[Any]:
        with self.ioctx(pool) as ioctx:
            image = self.rbd.Image(ioctx, name, snapshot=snapshot, read_only=read_only)
            try:
                yield image
            finally:
                image.close()

    def features(self) -> int:
        rbd = self.rbd
        return int(rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                   | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF
                   | rbd.RBD_FEATURE_DEEP_FLATTEN)

    def exists(self, pool: str, name: str) -> bool:
        with self.ioctx(pool) as ioctx:
            try:
                self.rbd.Image(ioctx, name, read_only=True).close()
            except self.rbd.ImageNotFound:
                return False
        return True

    def names(self, pool: str) -> list[str]:
        with self.ioctx(pool) as ioctx:
            return list(self.rbd.RBD().list(ioctx))

    def has_snap(self, pool: str, name: str, snap: str = SNAP) -> bool:
        try:
            with self.image(pool, name, read_only=True) as image:
                return any(s["name"] == snap for s in image.list_snaps())
        except self.rbd.ImageNotFound:
            return False

    def write_image(self, pool: str, name: str, source: Path, size: int | None = None,
                    chunk: int = 4 << 20) -> None:
        """A new image ``pool/name`` holding ``source``'s bytes (zero chunks skipped, so
        a sparse file stays thin), then its protected snapshot: the image is complete
        once ``snap`` exists. A half-written image of the same name is replaced."""
        length = source.stat().st_size if size is None else size
        with self.ioctx(pool) as ioctx:
            rbd = self.rbd.RBD()
            with contextlib.suppress(self.rbd.ImageNotFound):
                if self.has_snap(pool, name):
                    raise FileExistsError(f"RBD image {pool}/{name} already exists")
                rbd.remove(ioctx, name)
            rbd.create(ioctx, name, length, old_format=False, features=self.features())
            try:
                image = self.rbd.Image(ioctx, name)
                try:
                    zeros = bytes(chunk)
                    with open(source, "rb", buffering=0) as f:
                        offset = 0
                        while offset < length:
                            data = f.read(min(chunk, length - offset))
                            if not data:
                                break
                            if data != zeros[:len(data)]:
                                image.write(data, offset)
                            offset += len(data)
                    image.flush()
                    image.create_snap(SNAP)
                    image.protect_snap(SNAP)
                finally:
                    image.close()
            except BaseException:
                with contextlib.suppress(Exception):
                    self.remove_image(pool, name)
                raise

    def children(self, pool: str, name: str, snap: str = SNAP) -> list[tuple[str, str]]:
        """(pool, image) of every clone of ``pool/name@snap``."""
        try:
            with self.image(pool, name, snapshot=snap, read_only=True) as image:
                return [(c[0], c[1]) for c in image.list_children()]
        except (self.rbd.ImageNotFound, self.rbd.ObjectNotFound):
            return []

    def remove_image(self, pool: str, name: str) -> bool:
        """Remove ``pool/name`` and its snapshots; False (and nothing removed) while a
        clone still uses one of them. Missing is fine."""
        with self.ioctx(pool) as ioctx:
            try:
                image = self.rbd.Image(ioctx, name)
            except self.rbd.ImageNotFound:
                return True
            try:
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap["name"]):
                        try:
                            image.unprotect_snap(snap["name"])
                        except self.rbd.ImageBusy:
                            return False  # a clone depends on it
                    image.remove_snap(snap["name"])
            finally:
                image.close()
            self.rbd.RBD().remove(ioctx, name)
        return True

    def clone(self, parent_pool: str, parent: str, pool: str, name: str,
              size: int | None = None) -> None:
        """``pool/name`` as a copy-on-write clone of ``parent_pool/parent@snap``, grown to
        ``size`` bytes when that is larger (constant time: only metadata is written)."""
        with self.ioctx(parent_pool) as parent_ioctx, self.ioctx(pool) as ioctx:
            self.rbd.RBD().clone(parent_ioctx, parent, SNAP, ioctx, name,
                                 features=self.features())
            if size is not None:
                image = self.rbd.Image(ioctx, name)
                try:
                    if size > image.size():
                        image.resize(size)
                finally:
                    image.close()

    def size(self, pool: str, name: str) -> int:
        with self.image(pool, name, read_only=True) as image:
            return int(image.size())

    def parent(self, pool: str, name: str) -> tuple[str, str] | None:
        """(pool, image) of the clone's parent, None for an image that is no clone."""
        with self.image(pool, name, read_only=True) as image:
            try:
                info = image.parent_info()
            except self.rbd.ImageNotFound:
                return None
            return (info[0], info[1])

    def reader(self, pool: str, name: str, snap: str | None = SNAP,
               length: int | None = None) -> RbdReader:
        return RbdReader(self, pool, name, snap, length)


class RbdReader(io.RawIOBase):
    """An RBD image (at its snapshot) read like a file: ``read`` from the position,
    ``pread`` at an offset (what the image download streams with)."""

    def __init__(self, client: CephClient, pool: str, name: str, snap: str | None,
                 length: int | None) -> None:
        super().__init__()
        self._ioctx = client.cluster().open_ioctx(pool)
        try:
            self._image = client.rbd.Image(self._ioctx, name, snapshot=snap, read_only=True)
        except BaseException:
            self._ioctx.close()
            raise
        self.length = int(self._image.size()) if length is None else length
        self._pos = 0
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def pread(self, n: int, offset: int) -> bytes:
        n = max(0, min(n, self.length - offset))
        if n == 0:
            return b""
        with self._lock:
            if self.closed:
                raise ValueError("read of a closed image")
            return bytes(self._image.read(offset, n))

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.length - self._pos
        data = self.pread(n, self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                with contextlib.suppress(Exception):
                    self._image.close()
                with contextlib.suppress(Exception):
                    self._ioctx.close()
            super().close()


_clients: dict[CephSettings, CephClient] = {}
_clients_mutex = threading.Lock()


def client_for(settings: CephSettings) -> CephClient:
    """The process's client for ``settings`` (one connection each)."""
    with _clients_mutex:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = CephClient(settings)
        return client

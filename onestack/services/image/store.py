"""The image store: one file per image under ``<state_dir>/images/`` (``file``), or
RBD images in a Ceph pool (``rbd``, ``RbdImageStore`` at the end of this module).

Layout::

    images/<image-id>               data of an active (or deactivated) image
    images/staging/<image-id>       data staged by glance-direct, not yet imported
    images/.partial-<id>-<random>   data being received; never anything else

Data arrives in a ``PartialFile``: written to a temporary file and hashed (MD5 and
SHA-512) as it goes, so nothing is read twice and nothing is held in memory. Only
``PartialFile.commit`` gives it a real name (an atomic rename after fsync); every
failure path calls ``discard``, which leaves nothing behind. Files are opened with
``O_NOFOLLOW`` and the directories are the server's own (mode 0700), so nothing in the
store can point elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

from onestack.common.durable import fsync_dir
from onestack.services.image.fields import UUID_RE

log = logging.getLogger(__name__)

#: Data is handed to a worker thread (hashing + writing) in buffers of this size, one
#: buffer in flight while the next is received: memory per upload stays ~2 buffers.
BUFFER_SIZE = 4 << 20
PARTIAL_PREFIX = ".partial-"
_IOV_MAX = 1024


class PartialFile:
    """Image data being received; the hashes and the size are those of everything
    written so far."""

    def __init__(self, directory: Path, image_id: str, fsync: bool) -> None:
        fd, name = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{image_id}-", dir=directory)
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._fsync = fsync
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.committed = False
        # Held while the descriptor is in use, so that discard() (possibly called
        # while a write is still running in a worker thread) never closes it under a
        # write, which could then land in whatever file reused the descriptor number.
        self._fd_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Hash and write ``data`` (blocking)."""
        self.md5.update(data)
        self.sha512.update(data)
        self._write([data])

    async def write_parallel(self, chunks: list[bytes]) -> None:
        """Hash (MD5, SHA-512) and write ``chunks`` in three worker threads at once:
        each releases the GIL, so an upload runs at the speed of the slowest of the
        three rather than their sum. The chunks are never joined (no copy)."""
        await asyncio.gather(asyncio.to_thread(_update, self.md5, chunks),
                             asyncio.to_thread(_update, self.sha512, chunks),
                             asyncio.to_thread(self._write, chunks))

    def _write(self, chunks: list[bytes]) -> None:
        with self._fd_lock:
            if self._file is None:
                raise ValueError("write after finish or discard")
            self._write_locked(self._file.fileno(), chunks)

    def _write_locked(self, fd: int, chunks: list[bytes]) -> None:
        for start in range(0, len(chunks), _IOV_MAX):
            group = chunks[start:start + _IOV_MAX]
            written = os.writev(fd, group)
            expected = sum(len(c) for c in group)
            if written < expected:  # a short write: finish the rest plainly
                rest = memoryview(b"".join(group))[written:]
                while rest:
                    rest = rest[os.write(fd, rest):]
            self.size += expected

    def finish(self) -> None:
        """Flush (and fsync) the data; no more writes."""
        with self._fd_lock:
            if self._file is not None:
                if self._fsync:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._file = None

    def commit(self, destination: Path) -> None:
        """Give the data its real name, atomically."""
        self.finish()
        os.replace(self.path, destination)
        self.committed = True
        if self._fsync:
            fsync_dir(destination.parent)

    def discard(self) -> None:
        """Forget the data; safe to call at any time, any number of times."""
        with self._fd_lock:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _update(hasher: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)


async def receive(partial: PartialFile, chunks: AsyncIterator[bytes],
                  check: Callable[[int], None]) -> None:
    """Write ``chunks`` into ``partial``, hashing and writing in worker threads while
    the next buffer arrives. ``check(total)`` runs as bytes arrive and may raise (a size
    limit) to stop the transfer; any error propagates once no write is in flight."""
    pending: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    batched = 0
    total = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            total += len(chunk)
            check(total)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BUFFER_SIZE:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(partial.write_parallel(batch))
                batch, batched = [], 0
        if pending is not None:
            await pending
            pending = None
        if batch:
            await partial.write_parallel(batch)
    finally:
        if pending is not None:
            if not pending.done():
                # The caller discards the file next: let the write in flight end first.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pending)
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: the error that stopped us is the one told


class ImageStore:
    """Image files on the local file system."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.staging = root / "staging"
        self.fsync = fsync
        for directory in (root, self.staging):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, image_id: str) -> Path:
        return self.root / _checked(image_id)

    def staged_path(self, image_id: str) -> Path:
        return self.staging / _checked(image_id)

    def new_partial(self, image_id: str) -> PartialFile:
        return PartialFile(self.root, _checked(image_id), self.fsync)

    def open(self, image_id: str) -> BinaryIO | None:
        """The image's data for reading, or None if there is none. An open file stays
        readable even if the image is deleted meanwhile."""
        try:
            fd = os.open(self.path(image_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        return os.fdopen(fd, "rb", buffering=0)

    def exists(self, image_id: str) -> bool:
        return self.path(image_id).is_file()

    def promote_staged(self, image_id: str) -> None:
        """Move staged data into place (same file system: a rename)."""
        os.replace(self.staged_path(image_id), self.path(image_id))
        if self.fsync:
            fsync_dir(self.root)

    def delete(self, image_id: str) -> None:
        """Remove the image's data and anything staged for it (missing is fine)."""
        for path in (self.path(image_id), self.staged_path(image_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def image_ids(self) -> set[str]:
        """Ids with data or staged data in the store."""
        ids: set[str] = set()
        for directory in (self.root, self.staging):
            ids.update(p.name for p in directory.iterdir()
                       if p.is_file() and UUID_RE.match(p.name))
        return ids

    def remove_partials(self) -> int:
        """Remove data left by uploads that never finished (a crash); returns how many."""
        removed = 0
        for path in self.root.glob(f"{PARTIAL_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed


def _checked(image_id: str) -> str:
    """Image ids are UUIDs; anything else must never become a path."""
    if not UUID_RE.match(image_id):
        raise ValueError(f"not an image id: {image_id!r}")
    return image_id


class RbdPartialFile(PartialFile):
    """Data received into a local temporary file (hashed and inspected there, before
    anything else reads it); committing it into the store writes it into RBD."""

    def __init__(self, store: RbdImageStore, image_id: str) -> None:
        super().__init__(store.root, image_id, store.fsync)
        self._store = store
        self._image_id = image_id

    def commit(self, destination: Path) -> None:
        if destination.parent == self._store.staging:
            super().commit(destination)  # staged data stays local until its import
            return
        self.finish()
        self._store.put(self._image_id, self.path)
        self.committed = True
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class RbdImageStore(ImageStore):
    """Image data as RBD images ``<images_pool>/<image-id>`` with a protected snapshot
    ``snap`` (what boot disks and volumes are cloned from); an image is complete once
    its snapshot exists. Uploads and staged data pass through local files under
    ``root`` first (hashed and inspected before they reach the cluster).

    Deleting an image that clones still use renames it ``<image-id>.deleted``; the last
    clone's deletion removes it (the rbd storage and volume drivers do)."""

    def __init__(self, root: Path, settings: Any, pool: str, fsync: bool = True) -> None:
        from onestack.ceph.client import client_for

        super().__init__(root, fsync)
        self.pool = pool
        self.client = client_for(settings)

    def new_partial(self, image_id: str) -> PartialFile:
        return RbdPartialFile(self, _checked(image_id))

    def put(self, image_id: str, source: Path) -> None:
        """Write ``source`` as the image's data (then snapshot and protect it)."""
        self.client.write_image(self.pool, _checked(image_id), source)

    def open(self, image_id: str) -> BinaryIO | None:
        from onestack.ceph.client import SNAP

        rbd = self.client.rbd
        try:
            reader = self.client.reader(self.pool, _checked(image_id), SNAP)
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            return None
        return reader  # type: ignore[return-value]

    def exists(self, image_id: str) -> bool:
        return self.client.has_snap(self.pool, _checked(image_id))

    def promote_staged(self, image_id: str) -> None:
        staged = self.staged_path(image_id)
        if not staged.exists():
            raise FileNotFoundError(staged)
        self.put(image_id, staged)
        staged.unlink(missing_ok=True)

    def delete(self, image_id: str) -> None:
        _checked(image_id)
        with contextlib.suppress(FileNotFoundError):
            self.staged_path(image_id).unlink()
        if self.client.remove_image(self.pool, image_id):
            return
        # Clones (boot disks, volumes) still use its snapshot: set it aside; the last
        # clone's deletion removes it.
        with self.client.ioctx(self.pool) as ioctx:
            self.client.rbd.RBD().rename(ioctx, image_id, f"{image_id}.deleted")
        log.info("image %s: data kept as %s/%s.deleted while clones use it", image_id,
                 self.pool, image_id)

    def image_ids(self) -> set[str]:
        ids = {p.name for p in self.staging.iterdir() if p.is_file() and UUID_RE.match(p.name)}
        ids.update(n for n in self.client.names(self.pool) if UUID_RE.match(n))
        return ids


def make_image_store(config: Any) -> ImageStore:
    """The store ``[image] store`` names: ``file`` or ``rbd``."""
    root = config.state_dir / "images"
    if config.image.store == "rbd":
        from onestack.ceph.client import CephSettings

        c = config.ceph
        if not c.conf:
            raise ValueError("[image] store = rbd needs [ceph] conf (--ceph-conf)")
        return RbdImageStore(root, CephSettings(conf=c.conf, keyring=c.keyring, user=c.user),
                             c.images_pool, fsync=config.image.fsync)
    if config.image.store != "file":
        raise ValueError(f"unknown image store {config.image.store!r} (file or rbd)")
    return ImageStore(root, fsync=config.image.fsync)

"""The local image store: one file per image under ``<state_dir>/images/``.

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
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from onestack.services.image.fields import UUID_RE

log = logging.getLogger(__name__)

#: Data is handed to a worker thread (hashing + writing) in buffers of this size, one
#: buffer in flight while the next is received: memory per upload stays ~2 buffers.
BUFFER_SIZE = 4 << 20
PARTIAL_PREFIX = ".partial-"


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

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hash and write ``data`` (blocking)."""
        self.md5.update(data)
        self.sha512.update(data)
        self._write(data)

    async def write_parallel(self, data: bytes | bytearray) -> None:
        """Hash (MD5, SHA-512) and write ``data`` in three worker threads at once:
        each releases the GIL, so an upload runs at the speed of the slowest of the
        three instead of their sum."""
        await asyncio.gather(asyncio.to_thread(self.md5.update, data),
                             asyncio.to_thread(self.sha512.update, data),
                             asyncio.to_thread(self._write, data))

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._file is not None, "write after finish or discard"
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0:]
        self.size += len(data)

    def finish(self) -> None:
        """Flush (and fsync) the data; no more writes."""
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
            _fsync_dir(destination.parent)

    def discard(self) -> None:
        """Forget the data; safe to call at any time, any number of times."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def receive(partial: PartialFile, chunks: AsyncIterator[bytes],
                  check: Callable[[int], None]) -> None:
    """Write ``chunks`` into ``partial``, hashing and writing in worker threads while
    the next buffer arrives. ``check(total)`` runs as bytes arrive and may raise (a size
    limit) to stop the transfer; any error propagates once no write is in flight."""
    pending: asyncio.Future[None] | None = None
    buffer = bytearray()
    total = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            total += len(chunk)
            check(total)
            buffer += chunk
            if len(buffer) >= BUFFER_SIZE:
                if pending is not None:
                    await pending
                data, buffer = buffer, bytearray()
                pending = asyncio.ensure_future(partial.write_parallel(data))
        if pending is not None:
            await pending
            pending = None
        if buffer:
            await partial.write_parallel(buffer)
    finally:
        if pending is not None and not pending.done():
            # The caller discards the file next: let the write in flight end first.
            with contextlib.suppress(BaseException):
                await asyncio.shield(pending)


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
            _fsync_dir(self.root)

    def delete(self, image_id: str) -> None:
        """Remove the image's data and anything staged for it (missing is fine)."""
        for path in (self.path(image_id), self.staged_path(image_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def image_ids(self) -> set[str]:
        """Ids with data or staged data in the store."""
        ids = set()
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

"""The ``local`` storage driver: image bases on this host's file system, boot disks as
qcow2 overlays on them (see ``docs/design/storage.md``).

Layout under ``root`` (``<state_dir>/disks``)::

    _base/<image_id>               the image in its own format (qcow2 or raw), verified
    _base/.<image_id>.lock         flock(2): held to fetch, clone onto or remove the base
    _base/.<image_id>.partial-*    a fetch in progress
    <instance_uuid>/base           the image id the disk uses (written before the disk)
    <instance_uuid>/disk           qcow2 overlay; backing file = the base, format pinned
    .deleted-<instance_uuid>-*     a disk being deleted

Every file that must look complete is written under a temporary name, fsynced and
renamed into place, so a crash leaves either nothing or something the next call cleans
up. A disk's ``base`` file is the reference that keeps a base alive: it exists before
the disk does and goes with it, so the count is right after a crash too (a disk dir
left without ``base`` falls back to the disk's backing file as ``qemu-img`` reads it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from oslo_utils.imageutils import format_inspector as fi

from onestack.common.durable import fsync_dir
from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError
from onestack.hostlink import capabilities as caps

LOG = logging.getLogger(__name__)

GiB = 1 << 30
#: Formats a boot disk can be cloned from: the overlay names the base's format.
BASE_FORMATS = ("qcow2", "raw")
#: ``qemu-img info`` parses untrusted headers: bound its memory and CPU as Nova does
#: (OSSA-2015-014).
_INFO_LIMITS = ("prlimit", "--as=1073741824", "--cpu=30", "--")
#: Image ids and instance uuids become file names (no dots: ours carry suffixes).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_SHORT_TIMEOUT = 120.0


def _check_name(kind: str, value: str) -> None:
    """Ids become file names: refuse anything that could leave the directory."""
    if not _NAME.fullmatch(value):
        raise StorageError(f"invalid {kind} {value!r}")


def _check_format(image: ImageSource) -> None:
    if image.disk_format not in BASE_FORMATS:
        raise StorageError(f"image format {image.disk_format} can't boot on the local "
                           f"storage driver (use {' or '.join(BASE_FORMATS)})")


def qemu_img(*args: str, limits: bool = False, timeout: float | None = _SHORT_TIMEOUT) -> str:
    """Run ``qemu-img``; its stdout, or ``StorageError`` carrying its stderr."""
    command = [*(_INFO_LIMITS if limits else ()), "qemu-img", *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise StorageError(f"{exc.filename} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise StorageError(f"qemu-img {args[0]} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise StorageError(f"qemu-img {args[0]} failed: {detail}")
    return proc.stdout


def qemu_img_info(path: Path, fmt: str, *, untrusted: bool = False) -> dict[str, Any]:
    """``qemu-img info`` of ``path`` opened as ``fmt`` (never probed), shared with any
    QEMU that has it open; ``untrusted`` bounds the process's memory and CPU."""
    out = qemu_img("info", "-U", "-f", fmt, "--output=json", str(path), limits=untrusted)
    info: dict[str, Any] = json.loads(out)
    return info


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _remove_tree(path: Path) -> None:
    """``rmtree`` that another thread's garbage collection may overtake."""
    def onerror(func: Any, failed: str, exc_info: Any) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=onerror)


def _write_durably(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class _ImageLock:
    """An exclusive ``flock`` on ``_base/.<image_id>.lock``, between threads and processes.

    ``flock`` rather than ``lockf``: POSIX record locks belong to the process, so two
    threads of one agent would both "hold" them. The lock file may be removed by whoever
    holds it (with the base); an acquirer that finds its file unlinked retries.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def acquire(self, blocking: bool = True) -> bool:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            held = os.fstat(fd)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                self.fd = fd
                return True
            os.close(fd)  # removed or replaced while we waited: lock the new one

    def release(self, remove: bool = False) -> None:
        if self.fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = -1


class LocalStorage(StorageDriver):
    """Bases under ``<root>/_base``, one directory per instance holding its overlay."""

    name = "local"
    capabilities: ClassVar[dict[str, bool]] = {
        caps.SNAPSHOT: True, caps.RBD: False, caps.VOLUMES: False}

    def __init__(self, root: Path, **_ignored: object) -> None:
        self.root = Path(root).absolute()
        self.base_dir = self.root / "_base"
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # Bases already checked by qemu-img in this process, by (inode, size, mtime).
        self._checked: dict[str, tuple[tuple[int, int, int], Disk]] = {}
        self._checked_mutex = threading.Lock()

    # -- bases ---------------------------------------------------------------------------

    def ensure_base(self, image: ImageSource) -> Disk:
        _check_name("image id", image.id)
        _check_format(image)
        with self._holding(image.id):
            return self._ensure_base_locked(image)

    def _lock(self, image_id: str) -> _ImageLock:
        return _ImageLock(self.base_dir / f".{image_id}.lock")

    @contextlib.contextmanager
    def _holding(self, image_id: str) -> Iterator[None]:
        """The image's lock, held for the block; its file goes if there is no base (after
        a failed fetch), so a lock file exists only beside a base or a fetch."""
        lock = self._lock(image_id)
        lock.acquire()
        try:
            yield
        finally:
            lock.release(remove=not (self.base_dir / image_id).exists())

    def _ensure_base_locked(self, image: ImageSource) -> Disk:
        path = self.base_dir / image.id
        if not path.exists():
            self._fetch(image, path)
        return self._checked_base(image.id, path, image.disk_format)

    def _fetch(self, image: ImageSource, path: Path) -> None:
        """Stream the image into a temporary file, verify it, rename it into place."""
        for stale in self.base_dir.glob(f".{image.id}.partial-*"):
            stale.unlink(missing_ok=True)  # a fetch that crashed; we hold the lock
        try:
            digest = hashlib.new(image.hash_algo)
        except (ValueError, TypeError):
            raise StorageError(f"image {image.id}: unknown hash algorithm "
                               f"{image.hash_algo!r}") from None
        tmp = self.base_dir / f".{image.id}.partial-{secrets.token_hex(4)}"
        LOG.info("fetching image %s (%d bytes) into %s", image.id, image.size, path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                self._receive(image, fd, digest)
                os.fsync(fd)
            finally:
                os.close(fd)
            if digest.hexdigest() != image.hash_value.lower():
                raise StorageError(
                    f"image {image.id}: the {image.hash_algo} checksum of the downloaded data "
                    f"didn't match the image's ({digest.hexdigest()} != {image.hash_value})")
            self._inspect(image.id, tmp, image.disk_format)
            os.rename(tmp, path)
            fsync_dir(self.base_dir)
        except StorageError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"image {image.id}: fetching it failed: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _receive(image: ImageSource, fd: int, digest: Any) -> None:
        """Hash and write the image's bytes; chunks of zeros become holes (a sparse raw
        image stays sparse). Writing in a second thread while hashing was tried: on two
        CPUs it gained under 10%, the kernel's copy competes for the same cores."""
        chunks = image.open()
        offset = 0
        zeros = b""
        try:
            for chunk in chunks:
                n = len(chunk)
                if not n:
                    continue
                if image.size and offset + n > image.size:
                    raise StorageError(f"image {image.id}: more data than its size of "
                                       f"{image.size} bytes")
                digest.update(chunk)
                if len(zeros) != n:
                    zeros = bytes(n)
                if chunk != zeros:
                    _pwrite_all(fd, chunk, offset)
                offset += n
            os.ftruncate(fd, offset)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _checked_base(self, image_id: str, path: Path, fmt: str) -> Disk:
        st = os.stat(path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._checked_mutex:
            cached = self._checked.get(image_id)
        if cached and cached[0] == key and cached[1].format == fmt:
            return cached[1]
        disk = Disk(path=path, format=fmt, virtual_size=self._inspect(image_id, path, fmt))
        with self._checked_mutex:
            self._checked[image_id] = (key, disk)
        return disk

    @staticmethod
    def _inspect(image_id: str, path: Path, fmt: str) -> int:
        """Refuse a base QEMU must not open: wrong format, a backing or data file (either
        could point at host files), encryption, corruption. Returns the virtual size."""
        what = f"image {image_id}"
        if fmt == "qcow2":
            # Our own parse of the header first, so qemu-img never opens a hostile one.
            try:
                fi.QcowInspector.from_file(str(path)).safety_check()
            except fi.SafetyCheckFailed as exc:
                reasons = "; ".join(str(v) or k for k, v in exc.failures.items())
                raise StorageError(f"{what} is refused: {reasons}") from None
            except fi.ImageFormatError as exc:
                raise StorageError(f"{what} is not a valid qcow2 image: {exc}") from None
        info = qemu_img_info(path, fmt, untrusted=True)
        data = (info.get("format-specific") or {}).get("data") or {}
        if info.get("format") != fmt:
            raise StorageError(f"{what} opens as {info.get('format')}, not {fmt}")
        if info.get("backing-filename") or info.get("full-backing-filename"):
            raise StorageError(f"{what} is refused: it has a backing file")
        if data.get("data-file"):
            raise StorageError(f"{what} is refused: it has an external data file")
        if info.get("encrypted") or data.get("encrypt"):
            raise StorageError(f"{what} is encrypted and can't boot")
        if data.get("corrupt"):
            raise StorageError(f"{what} is marked corrupt")
        size = int(info.get("virtual-size") or 0)
        if size <= 0:
            raise StorageError(f"{what} has no virtual size")
        return size

    # -- disks ---------------------------------------------------------------------------

    def create_disk(self, instance_uuid: str, image: ImageSource, size_gb: int) -> Disk:
        _check_name("instance uuid", instance_uuid)
        _check_name("image id", image.id)
        _check_format(image)
        if size_gb < 0:
            raise StorageError(f"invalid disk size {size_gb} GiB")
        existing = self.disk(instance_uuid)
        if existing:
            return existing
        with self._holding(image.id):  # keeps the base from being removed under us
            existing = self.disk(instance_uuid)
            if existing:
                return existing
            base = self._ensure_base_locked(image)
            size = -(-max(size_gb * GiB, base.virtual_size) // 512) * 512
            directory = self.root / instance_uuid
            path = directory / "disk"
            tmp = directory / "disk.partial"
            directory.mkdir(exist_ok=True)
            try:
                _write_durably(directory / "base", image.id + "\n")
                tmp.unlink(missing_ok=True)
                qemu_img("create", "-q", "-f", "qcow2", "-F", base.format,
                         "-b", str(base.path), str(tmp), str(size))
                _fsync_file(tmp)
                os.rename(tmp, path)
                fsync_dir(directory)
            except BaseException:
                tmp.unlink(missing_ok=True)
                if not path.exists():
                    shutil.rmtree(directory, ignore_errors=True)
                raise
        return Disk(path=path, format="qcow2", virtual_size=size)

    def disk(self, instance_uuid: str) -> Disk | None:
        _check_name("instance uuid", instance_uuid)
        path = self.root / instance_uuid / "disk"
        if not path.exists():
            return None
        info = qemu_img_info(path, "qcow2")
        return Disk(path=path, format="qcow2", virtual_size=int(info["virtual-size"]))

    def resize_disk(self, instance_uuid: str, size_gb: int) -> Disk:
        disk = self.disk(instance_uuid)
        if disk is None:
            raise StorageError(f"instance {instance_uuid} has no disk to resize")
        size = size_gb * GiB
        if size <= disk.virtual_size:
            return disk
        qemu_img("resize", "-q", "-f", "qcow2", str(disk.path), str(size))
        return Disk(path=disk.path, format="qcow2", virtual_size=size)

    def delete_disk(self, instance_uuid: str) -> None:
        _check_name("instance uuid", instance_uuid)
        directory = self.root / instance_uuid
        if directory.exists():
            # One rename takes the disk away as a whole; the rest is cleanup.
            doomed = self.root / f".deleted-{instance_uuid}-{secrets.token_hex(4)}"
            os.rename(directory, doomed)
            fsync_dir(self.root)
            _remove_tree(doomed)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Remove leftovers of interrupted deletes and every base no disk references."""
        for entry in os.scandir(self.root):
            if entry.name.startswith(".deleted-"):
                _remove_tree(Path(entry.path))
        image_ids = {name.lstrip(".").split(".", 1)[0] if name.startswith(".") else name
                     for name in os.listdir(self.base_dir)}
        used = self._referenced()
        if used is None:
            return
        candidates = image_ids - used
        with contextlib.ExitStack() as stack:
            locked: dict[str, _ImageLock] = {}
            for image_id in sorted(candidates):
                lock = self._lock(image_id)
                if lock.acquire(blocking=False):  # busy: a fetch or clone is under way
                    stack.callback(lock.release)
                    locked[image_id] = lock
            # A clone takes the image's lock, so with the locks held this is final.
            referenced = self._referenced()
            if referenced is None:
                return
            for image_id, lock in locked.items():
                if image_id in referenced:
                    continue
                base = self.base_dir / image_id
                if base.exists():
                    LOG.info("removing base of image %s: no disk uses it", image_id)
                base.unlink(missing_ok=True)
                for stale in self.base_dir.glob(f".{image_id}.partial-*"):
                    stale.unlink(missing_ok=True)
                fsync_dir(self.base_dir)
                with self._checked_mutex:
                    self._checked.pop(image_id, None)
                lock.release(remove=True)

    def _referenced(self) -> set[str] | None:
        """Image ids whose base some instance directory uses; None when a disk's base
        can't be told (then nothing may be removed)."""
        used: set[str] = set()
        for name in self.list_disks():
            directory = self.root / name
            try:
                used.add((directory / "base").read_text().strip())
                continue
            except FileNotFoundError:
                pass
            if (directory / "disk").exists():
                try:
                    info = qemu_img_info(directory / "disk", "qcow2")
                except StorageError as exc:
                    LOG.warning("keeping all bases: can't read the backing file of %s: %s",
                                directory / "disk", exc)
                    return None
                backing = info.get("backing-filename")
                if backing and Path(backing).parent == self.base_dir:
                    used.add(Path(backing).name)
        return used

    def snapshot(self, instance_uuid: str, dest: Path) -> Disk:
        disk = self.disk(instance_uuid)
        if disk is None:
            raise StorageError(f"instance {instance_uuid} has no disk to snapshot")
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.partial-{secrets.token_hex(4)}")
        try:
            qemu_img("convert", "-U", "-f", "qcow2", "-O", "qcow2", str(disk.path), str(tmp),
                     timeout=None)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Disk(path=dest, format="qcow2", virtual_size=disk.virtual_size)

    def list_disks(self) -> list[str]:
        """Every instance directory, also one an interrupted ``create_disk`` left without
        a disk (``disk()`` says None for it; ``delete_disk`` removes it)."""
        return sorted(entry.name for entry in os.scandir(self.root)
                      if entry.is_dir(follow_symlinks=False) and _NAME.fullmatch(entry.name))

    def usage(self) -> tuple[int, int]:
        st = os.statvfs(self.root)
        return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize

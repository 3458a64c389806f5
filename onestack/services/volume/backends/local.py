"""The ``local`` volume backend: every volume and snapshot is a standalone qcow2 file
on this machine (see ``docs/design/volumes.md``).

Layout under ``<state_dir>/volumes``::

    volume-<id>                  a volume: qcow2, no backing file
    snapshot-<id>                a snapshot: a standalone qcow2 copy of its volume
    .partial-<name>-<random>     a file being made; never anything else

Why standalone files and not qcow2 chains: a volume must be deletable, extendable and
attachable to any guest whatever was made from it or it was made from; chains would
tie a volume's life to its snapshot's (and its image's). Copies cost time proportional
to the data written (qcow2 copies skip unallocated clusters), which is the price of
simplicity on one machine; the ``rbd`` backend is the constant-time one.

Everything is written under a ``.partial-`` name, flushed to disk (``qemu-img convert
-t writeback`` flushes at the end; qemu-img's default for convert would not) and renamed
into place, so a file with a real name is complete, also after a power loss; what a
crash leaves under ``.partial-`` is removed at the next start (``remove_partials``).
Sources that may be open in a running guest are read with ``qemu-img -U`` (shared, no
lock): a snapshot of an in-use volume is crash consistent at best, as a snapshot taken
with ``--force`` is in Cinder's LVM driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from onestack.common.config import Config
from onestack.common.durable import fsync_dir
from onestack.services.volume.backends.base import (
    Connector,
    ImageData,
    VolumeBackend,
    VolumeData,
    VolumeError,
)

LOG = logging.getLogger(__name__)

GiB = 1 << 30
PARTIAL = ".partial-"
_ID = re.compile(r"[0-9a-fA-F-]{1,64}")
#: Image formats a volume can be made from (qemu-img reads them, named explicitly so
#: nothing is probed from untrusted headers).
IMAGE_FORMATS = ("qcow2", "raw")
_LONG_TIMEOUT = 3600.0
_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)


def _checked(value: str) -> str:
    if not _ID.fullmatch(value):
        raise VolumeError(f"invalid id {value!r}")
    return value


def _run(*args: str, timeout: float = _LONG_TIMEOUT) -> str:
    """Run ``qemu-img``; its stdout, or ``VolumeError`` carrying its stderr."""
    try:
        proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise VolumeError(f"{exc.filename} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise VolumeError(f"qemu-img {args[0]} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise VolumeError(f"qemu-img {args[0]} failed: {detail}")
    return proc.stdout


class LocalVolumeBackend(VolumeBackend):
    name = "local"
    storage_protocol = "file"
    capabilities: ClassVar[dict[str, bool]] = {
        "snapshots": True, "clone": True, "create_from_image": True, "copy_to_image": True,
        "online_extend": True, "multiattach": True, "thin_provisioning": True,
        "constant_time_clone": False,
    }

    def __init__(self, config: Config, root: Path | None = None) -> None:
        super().__init__(config)
        self.root = root or config.state_dir / "volumes"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.remove_partials()

    # -- paths --------------------------------------------------------------------

    def volume_path(self, volume_id: str) -> Path:
        return self.root / f"volume-{_checked(volume_id)}"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / f"snapshot-{_checked(snapshot_id)}"

    @contextlib.contextmanager
    def _making(self, final: Path) -> Iterator[Path]:
        """A temporary path that becomes ``final`` when the block ends without error,
        and is removed otherwise."""
        tmp = self.root / f"{PARTIAL}{final.name}-{secrets.token_hex(4)}"
        try:
            yield tmp
            os.replace(tmp, final)
            fsync_dir(self.root)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def remove_partials(self) -> int:
        removed = 0
        for path in self.root.glob(f"{PARTIAL}*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    # -- volumes ------------------------------------------------------------------

    def create(self, volume_id: str, size_gb: int) -> None:
        final = self.volume_path(volume_id)
        if final.exists():
            return
        with self._making(final) as tmp:
            _run("create", "-q", "-f", "qcow2", str(tmp), f"{size_gb}G")

    def create_from_image(self, volume_id: str, image: ImageData, size_gb: int) -> None:
        if image.disk_format not in IMAGE_FORMATS:
            raise VolumeError(f"image {image.id} is {image.disk_format}; a volume can be "
                              f"made from {' or '.join(IMAGE_FORMATS)} images only")
        final = self.volume_path(volume_id)
        if final.exists():
            return
        source = _local_file(image.location)
        with contextlib.ExitStack() as stack:
            if source is None:
                source = stack.enter_context(self._fetched(image))
            with self._making(final) as tmp:
                _run("convert", "-q", "-t", "writeback", "-f", image.disk_format, "-O", "qcow2",
                     str(source), str(tmp))
                self._grow(tmp, size_gb)

    @contextlib.contextmanager
    def _fetched(self, image: ImageData) -> Iterator[Path]:
        """The image's bytes in a temporary file here (removed afterwards); whole
        chunks of zeros are skipped, so a sparse image stays sparse."""
        fd, name = tempfile.mkstemp(prefix=f"{PARTIAL}image-{image.id}-", dir=self.root)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in image.open():
                    if len(chunk) == _CHUNK and chunk == _ZEROS:
                        out.seek(_CHUNK, os.SEEK_CUR)  # keep the copy sparse
                    else:
                        out.write(chunk)
                out.truncate()
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _grow(self, path: Path, size_gb: int) -> None:
        info = self._info(path, shared=False)
        if int(info.get("virtual-size", 0)) < size_gb * GiB:
            _run("resize", "-q", "-f", "qcow2", str(path), f"{size_gb}G")

    def _info(self, path: Path, shared: bool = True) -> dict[str, Any]:
        import json

        args = ["info", "--output=json", "-f", "qcow2"]
        if shared:
            args.append("-U")
        return dict(json.loads(_run(*args, str(path), timeout=120.0)))

    def _copy(self, source: Path, final: Path, size_gb: int | None) -> None:
        if not source.exists():
            raise VolumeError(f"{source.name} is missing from {self.root}")
        with self._making(final) as tmp:
            _run("convert", "-q", "-t", "writeback", "-U", "-f", "qcow2", "-O", "qcow2",
                 str(source), str(tmp))
            if size_gb is not None:
                self._grow(tmp, size_gb)

    def create_from_snapshot(self, volume_id: str, snapshot_id: str,
                             source_volume_id: str, size_gb: int) -> None:
        final = self.volume_path(volume_id)
        if not final.exists():
            self._copy(self.snapshot_path(snapshot_id), final, size_gb)

    def clone(self, volume_id: str, source_volume_id: str, size_gb: int) -> None:
        final = self.volume_path(volume_id)
        if not final.exists():
            self._copy(self.volume_path(source_volume_id), final, size_gb)

    def delete(self, volume_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.volume_path(volume_id).unlink()
            fsync_dir(self.root)

    def extend(self, volume_id: str, new_size_gb: int, online: bool = False) -> None:
        path = self.volume_path(volume_id)
        if not path.exists():
            raise VolumeError(f"volume {volume_id} has no file in {self.root}")
        if online:
            return  # QEMU holds the file; its block_resize grows it (module docstring)
        self._grow(path, new_size_gb)

    def exists(self, volume_id: str) -> bool:
        return self.volume_path(volume_id).exists()

    def list_volumes(self) -> list[str]:
        return sorted(p.name[len("volume-"):] for p in self.root.glob("volume-*"))

    # -- snapshots ----------------------------------------------------------------

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        final = self.snapshot_path(snapshot_id)
        if not final.exists():
            self._copy(self.volume_path(volume_id), final, None)

    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.snapshot_path(snapshot_id).unlink()
            fsync_dir(self.root)

    def list_snapshots(self) -> list[str]:
        return sorted(p.name[len("snapshot-"):] for p in self.root.glob("snapshot-*"))

    # -- data out, attachments, capacity ------------------------------------------

    def copy_to_image(self, volume_id: str, disk_format: str) -> Iterator[bytes]:
        if disk_format not in IMAGE_FORMATS:
            raise VolumeError(f"a volume can be uploaded as {' or '.join(IMAGE_FORMATS)}, "
                              f"not {disk_format}")
        source = self.volume_path(volume_id)
        if not source.exists():
            raise VolumeError(f"volume {volume_id} has no file in {self.root}")
        fd, name = tempfile.mkstemp(prefix=f"{PARTIAL}upload-{volume_id}-", dir=self.root)
        os.close(fd)
        out = Path(name)
        try:
            _run("convert", "-q", "-U", "-f", "qcow2", "-O", disk_format, str(source),
                 str(out))
            with out.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    yield chunk
        finally:
            with contextlib.suppress(FileNotFoundError):
                out.unlink()

    @contextlib.contextmanager
    def open_data(self, volume_id: str, snapshot_id: str | None = None,
                  write: bool = False) -> Iterator[VolumeData]:
        """Through a sparse raw copy beside the volumes (``.partial-``, so a crash
        leaves nothing): for a backup the volume (or snapshot) is converted to it
        (read with ``-U``: an in-use volume is crash consistent); for a restore it is
        written and then converted into the volume's file, grown to its size."""
        source = self.snapshot_path(snapshot_id) if snapshot_id else \
            self.volume_path(volume_id)
        if not source.exists():
            raise VolumeError(f"{source.name} is missing from {self.root}")
        fd, name = tempfile.mkstemp(prefix=f"{PARTIAL}raw-{volume_id}-", dir=self.root)
        os.close(fd)
        raw = Path(name)
        try:
            size = int(self._info(source).get("virtual-size", 0))
            if write:
                with raw.open("r+b") as f:
                    f.truncate(size)
            else:
                _run("convert", "-q", "-U", "-f", "qcow2", "-O", "raw", str(source),
                     str(raw))
            with raw.open("r+b" if write else "rb") as f:
                yield _RawFile(f.fileno(), size, write)
                if write:
                    os.fsync(f.fileno())
            if write:
                final = self.volume_path(volume_id)
                with self._making(final) as tmp:
                    _run("convert", "-q", "-t", "writeback", "-f", "raw", "-O", "qcow2",
                         str(raw), str(tmp))
                    self._grow(tmp, -(-size // GiB))
        finally:
            with contextlib.suppress(FileNotFoundError):
                raw.unlink()

    def connection_info(self, volume_id: str, connector: Connector | None) -> dict[str, Any]:
        return {"driver_volume_type": "file",
                "data": {"path": str(self.volume_path(volume_id)), "format": "qcow2",
                         "volume_id": volume_id, "name": f"volume-{volume_id}",
                         "discard": True}}

    def usage(self) -> tuple[int, int]:
        used = 0
        for path in self.root.iterdir():
            with contextlib.suppress(FileNotFoundError):
                used += path.stat().st_blocks * 512
        total = shutil.disk_usage(self.root).total
        return used, total


def _local_file(location: str | None) -> Path | None:
    """A ``file://`` location as a path, if the file is there."""
    if location and location.startswith("file://"):
        path = Path(location[len("file://"):])
        if path.is_file():
            return path
    return None


class _RawFile(VolumeData):
    """A sparse raw file: holes (``SEEK_DATA``) read as None."""

    def __init__(self, fd: int, size: int, writable: bool) -> None:
        self.fd = fd
        self.size = size
        self.writable = writable

    def read(self, offset: int, length: int) -> bytes | None:
        length = max(0, min(length, self.size - offset))
        try:
            data_at = os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: nothing but a hole from here to the end
            return None
        if data_at >= offset + length:
            return None
        return os.pread(self.fd, length, offset)

    def write(self, offset: int, data: bytes | None, length: int = 0) -> None:
        if not self.writable:
            raise VolumeError("this volume data was opened for reading")
        if data is not None:  # a new file is all holes: zeros need no writing
            os.pwrite(self.fd, data, offset)

"""The posix backup driver: a backup is a directory of compressed chunks.

Layout under ``[volume] backup_path`` (default ``<state_dir>/backups``)::

    <container>/<backup id>/metadata.json   what the backup holds (below)
    <container>/<backup id>/chunk-00001.zz  a chunk of the volume, zlib-compressed
    <container>/.partial-<backup id>-<rnd>  a backup being written; never anything else

The volume is read in chunks of ``[volume] backup_chunk_size`` bytes. ``metadata.json``
lists every chunk (``offset``, ``length``, ``sha256`` of the uncompressed bytes, and
``object``: the path of its file relative to the root, or null for a chunk of zeros,
which is not stored). An incremental backup stores only the chunks whose sha256
differs from its parent's chunk at the same offset; the others point at the parent's
(or an older ancestor's) file, which the service keeps by refusing to delete a backup
with children. A restore reads every chunk, checks its sha256, and writes it.

A backup is written under a ``.partial-`` name, flushed, and renamed into place, so a
directory with a real name is complete; ``remove_partials`` clears what a crash left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import zlib
from pathlib import Path
from typing import Any, ClassVar

from onestack.common.config import Config
from onestack.common.durable import fsync_dir
from onestack.services.volume.backends.base import VolumeData
from onestack.services.volume.backup_drivers.base import (
    BackupDriver,
    BackupError,
    BackupResult,
    Progress,
)

log = logging.getLogger(__name__)

PARTIAL = ".partial-"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
FORMAT = 1


def check_location(location: str) -> tuple[str, str]:
    """``<container>/<name>``, each a plain file name (no traversal)."""
    container, _, name = location.partition("/")
    if not (_NAME.fullmatch(container) and _NAME.fullmatch(name)):
        raise BackupError(f"invalid backup location {location!r}")
    return container, name


class PosixBackupDriver(BackupDriver):
    service: ClassVar[str] = "cinder.backup.drivers.posix"

    def __init__(self, config: Config, root: Path | None = None) -> None:
        configured = config.volume.backup_path
        self.root = root or (Path(configured) if configured else config.state_dir / "backups")
        self.chunk_size = max(4096, int(config.volume.backup_chunk_size))
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.remove_partials()

    def remove_partials(self) -> int:
        removed = 0
        for path in self.root.glob(f"*/{PARTIAL}*"):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        return removed

    def _dir(self, location: str) -> Path:
        container, name = check_location(location)
        return self.root / container / name

    def _metadata(self, location: str) -> dict[str, Any]:
        path = self._dir(location) / "metadata.json"
        try:
            meta: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise BackupError(f"the backup data at {location} is missing") from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"the backup metadata at {location} is unreadable: "
                              f"{exc}") from None
        if meta.get("format") != FORMAT:
            raise BackupError(f"the backup at {location} has an unknown format")
        return meta

    def exists(self, location: str) -> bool:
        return (self._dir(location) / "metadata.json").is_file()

    def size_of(self, location: str) -> int:
        return int(self._metadata(location)["volume_size"])

    def backup(self, location: str, data: VolumeData, parent: str | None,
               progress: Progress) -> BackupResult:
        final = self._dir(location)
        if self.exists(location):
            raise BackupError(f"a backup is already stored at {location}")
        inherited: dict[int, dict[str, Any]] = {}
        if parent is not None:
            for chunk in self._metadata(parent)["chunks"]:
                inherited[int(chunk["offset"])] = chunk
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = final.parent / f"{PARTIAL}{final.name}-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        container, name = check_location(location)
        chunks: list[dict[str, Any]] = []
        written = stored = 0
        try:
            offset = 0
            while offset < data.size:
                length = min(self.chunk_size, data.size - offset)
                raw = data.read(offset, length)
                if raw is not None and not raw.strip(b"\0"):
                    raw = None
                entry: dict[str, Any] = {"offset": offset, "length": length,
                                         "sha256": None, "object": None}
                if raw is not None:
                    digest = hashlib.sha256(raw).hexdigest()
                    entry["sha256"] = digest
                    old = inherited.get(offset)
                    if old is not None and old.get("sha256") == digest and \
                            int(old["length"]) == length:
                        entry["object"] = old["object"]
                    else:
                        written += 1
                        object_name = f"chunk-{written:05d}.zz"
                        packed = zlib.compress(raw, 6)
                        with (tmp / object_name).open("wb") as f:
                            f.write(packed)
                            os.fsync(f.fileno())
                        stored += len(packed)
                        entry["object"] = f"{container}/{name}/{object_name}"
                chunks.append(entry)
                offset += length
                progress(offset, data.size)
            meta = {"format": FORMAT, "volume_size": data.size, "chunk_size": self.chunk_size,
                    "compression": "zlib", "parent": parent, "chunks": chunks}
            with (tmp / "metadata.json").open("w") as f:
                json.dump(meta, f)
                os.fsync(f.fileno())
            fsync_dir(tmp)
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return BackupResult(object_count=written, stored_bytes=stored)

    def restore(self, location: str, data: VolumeData, progress: Progress) -> None:
        meta = self._metadata(location)
        size = int(meta["volume_size"])
        if data.size < size:
            raise BackupError(f"the volume ({data.size} bytes) is smaller than the backup "
                              f"({size} bytes)")
        for number, chunk in enumerate(meta["chunks"], start=1):
            offset, length = int(chunk["offset"]), int(chunk["length"])
            if chunk["object"] is None:
                data.write(offset, None, length)
            else:
                container, _, rest = str(chunk["object"]).partition("/")
                directory, _, object_name = rest.partition("/")
                check_location(f"{container}/{directory}")
                if not _NAME.fullmatch(object_name):
                    raise BackupError(f"chunk {number} names an invalid object")
                path = self.root / container / directory / object_name
                try:
                    raw = zlib.decompress(path.read_bytes())
                except FileNotFoundError:
                    raise BackupError(f"chunk {number} of the backup ({chunk['object']}) "
                                      "is missing") from None
                except zlib.error as exc:
                    raise BackupError(f"chunk {number} of the backup cannot be "
                                      f"decompressed: {exc}") from None
                if hashlib.sha256(raw).hexdigest() != chunk["sha256"] or len(raw) != length:
                    raise BackupError(f"chunk {number} of the backup is corrupt (its sha256 "
                                      "does not match)")
                data.write(offset, raw)
            progress(offset + length, size)

    def delete(self, location: str) -> None:
        path = self._dir(location)
        if not path.exists():
            return
        # rename first: a directory with a real name is always complete
        doomed = path.parent / f"{PARTIAL}deleted-{path.name}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, doomed)
            fsync_dir(path.parent)
        shutil.rmtree(doomed, ignore_errors=True)

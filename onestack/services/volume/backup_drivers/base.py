"""The backup driver interface.

A driver copies a volume's bytes (a ``VolumeData`` its backend opened) to storage
independent of the volume, and back. The service names each backup's data by a
``location`` it chose (``<container>/<backup id>``); a driver knows nothing of rows,
states or HTTP. Every method blocks (the service runs it in a worker thread), removes
what it half-made when it raises, and raises ``BackupError`` with a message for people
(the backup's ``fail_reason``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from onestack.services.volume.backends.base import VolumeData

#: progress(done_bytes, total_bytes)
Progress = Callable[[int, int], None]


class BackupError(Exception):
    """A backup, restore or delete failed; the message is shown to users."""


@dataclass
class BackupResult:
    #: data objects this backup wrote (Cinder's ``object_count``)
    object_count: int
    #: bytes stored for this backup (compressed)
    stored_bytes: int


class BackupDriver(abc.ABC):
    #: The name Cinder's API shows as ``backup_service`` (export_record).
    service: ClassVar[str] = ""

    @abc.abstractmethod
    def backup(self, location: str, data: VolumeData, parent: str | None,
               progress: Progress) -> BackupResult:
        """Copy ``data`` to ``location``. ``parent``: the location of the backup this
        one is incremental to (only what changed since is stored)."""

    @abc.abstractmethod
    def restore(self, location: str, data: VolumeData, progress: Progress) -> None:
        """Write the backup's bytes into ``data``, checking every checksum."""

    @abc.abstractmethod
    def delete(self, location: str) -> None:
        """Remove the backup's data; succeeds if it is not there."""

    @abc.abstractmethod
    def exists(self, location: str) -> bool:
        """Whether a complete backup is at ``location``."""

    @abc.abstractmethod
    def size_of(self, location: str) -> int:
        """The size in bytes of the volume the backup at ``location`` holds."""

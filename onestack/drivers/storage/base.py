"""The storage driver interface: image bases and instance boot disks on this host.

Each image is fetched once into a base cache (its checksum verified); a boot disk is a
copy-on-write clone of its base (a qcow2 overlay for ``local``), made in constant time
whatever the image size, then grown to the flavor's disk size. A base stays while any
disk uses it. Every method is idempotent. Failures raise ``StorageError`` whose message
ends up in the server's ``fault``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


class StorageError(Exception):
    """A disk operation failed; the message is shown to the user in ``fault``."""


@dataclass
class ImageSource:
    """What the agent knows of a Glance image, and how to read its bytes."""

    id: str
    disk_format: str  # "qcow2", "raw", ...
    size: int
    #: Glance's multihash (``os_hash_algo`` / ``os_hash_value``), checked after the fetch.
    hash_algo: str
    hash_value: str
    #: Yields the image's bytes, in order.
    open: Callable[[], Iterator[bytes]]


@dataclass
class Disk:
    path: Path
    format: str  # what QEMU opens it as
    virtual_size: int  # bytes
    #: "file" (``path`` on this host) or "rbd" (``path`` is ``pool/image``).
    kind: str = "file"


class StorageDriver(abc.ABC):
    name: str = ""
    #: What this backend can do (``onestack.hostlink.capabilities`` names): ``rbd``
    #: (disks as RBD images), ``snapshot`` (copy a disk out), ``volumes``. The host
    #: reports it; a name missing means no.
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def ensure_base(self, image: ImageSource) -> Disk:
        """The image's base on this host, fetched now if missing (checksum verified)."""

    @abc.abstractmethod
    def create_disk(self, instance_uuid: str, image: ImageSource, size_gb: int) -> Disk:
        """The instance's boot disk: a clone of the image's base, grown to ``size_gb``
        (never shrunk below the image's virtual size; 0 means the image's size).
        Returns the existing disk if there is one."""

    @abc.abstractmethod
    def resize_disk(self, instance_uuid: str, size_gb: int) -> Disk:
        """Grow the boot disk (never shrinks)."""

    @abc.abstractmethod
    def disk(self, instance_uuid: str) -> Disk | None:
        """The instance's boot disk, if it has one."""

    @abc.abstractmethod
    def delete_disk(self, instance_uuid: str) -> None:
        """Remove the instance's disks; bases no disk uses any more are removed too."""

    @abc.abstractmethod
    def snapshot(self, instance_uuid: str, dest: Path) -> Disk:
        """A standalone qcow2 copy of the boot disk (no backing file) written to ``dest``,
        for upload to the image service."""

    @abc.abstractmethod
    def list_disks(self) -> list[str]:
        """Instance uuids that have a disk here (to find leftovers)."""

    @abc.abstractmethod
    def usage(self) -> tuple[int, int]:
        """(used, total) bytes of the storage this driver writes to."""

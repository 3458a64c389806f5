"""The volume backend interface: where a Block Storage volume's bytes live.

The volume service (``onestack.services.volume``) owns the rows, the states, quotas and
policy; a backend only does what it is told with the bytes, named by ids the service
chose. Whatever the backend, the contract is:

- Sizes are whole GiB. Ids (volume, snapshot) are UUIDs the service made; a backend may
  use them in file or image names (``volume-<id>``, ``snapshot-<id>``, as Cinder does).
- Every method is idempotent where that makes sense: ``create*`` of an existing
  volume raises nothing only if the existing one is complete (a backend writes under a
  temporary name and renames, or removes what it half-made before raising);
  ``delete``/``delete_snapshot`` of something that does not exist succeed.
- Nothing half-made survives a failure: a method that raises has removed what it
  created. The service then puts the volume in ``error`` with the message.
- ``VolumeError`` carries a message for people (it ends up in the volume's
  ``error_message`` and in the log); anything else is a bug.
- A backend never touches the database and knows nothing of HTTP.
- ``list_volumes``/``list_snapshots`` let the service remove what a crash left without
  a row (``onestack.services.volume.recovery``).
- Blocking calls are fine: the service runs them in worker threads.

Connection info follows Nova's and os-brick's shape, ``{"driver_volume_type": ...,
"data": {...}}``:

- ``local``: ``{"driver_volume_type": "file", "data": {"path": "/.../volume-<id>",
  "format": "qcow2", ...}}``
- ``rbd``: ``{"driver_volume_type": "rbd", "data": {"name": "<pool>/volume-<id>",
  "hosts": [...], "ports": [...], "auth_enabled": bool, "auth_username": "...",
  "secret_type": "ceph", "secret_uuid": "...", "keyring": "..." (optional),
  "cluster_name": "ceph", "format": "raw", ...}}``

Every backend adds ``"volume_id"``, ``"name"`` (``volume-<id>``), ``"access_mode"``
(``rw``/``ro``, filled by the service from the volume's read-only flag) and
``"discard": true`` when it supports it; the service adds ``"serial"`` (the volume id,
what the guest sees in ``/dev/disk/by-id``) and ``"qos_specs"``.

Extending an attached volume: ``extend(..., online=True)`` is called first, then the
compute side (the callback it gave ``Volumes.register_extend_attached``) tells the
running guest (QMP ``block_resize``). A file backend whose file QEMU holds open does
nothing in ``extend(online=True)`` and leaves the growing to QEMU's ``block_resize``;
a backend whose image lives elsewhere (rbd) grows it there.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from onestack.common.config import Config

GiB = 1 << 30


class VolumeError(Exception):
    """A backend operation failed; the message is shown to users (volume
    ``error_message``) and should say what went wrong and, if it can, what to do."""


@dataclass
class ImageData:
    """What a backend needs to make a volume from a Glance image."""

    id: str
    #: Glance's ``disk_format`` (``qcow2``, ``raw``, ...); only qcow2 and raw are
    #: accepted by the shipped backends.
    disk_format: str
    #: Bytes of the image data as stored.
    size: int
    #: The image's virtual disk size in bytes, if Glance knows it.
    virtual_size: int | None
    #: Yields the image's bytes in order (a new iterator per call).
    open: Callable[[], Iterator[bytes]]
    #: Where the image already lives in a store the backend may clone from directly
    #: (the image service's location, e.g. ``rbd://<fsid>/<pool>/<image>/snap``),
    #: or None: then the backend copies the bytes from ``open()``.
    location: str | None = None
    #: The image's properties (e.g. ``hw_disk_bus``), copied to the volume's
    #: ``volume_image_metadata`` by the service; for backends' information only.
    properties: dict[str, Any] = field(default_factory=dict)


class VolumeData(abc.ABC):
    """A volume's (or a snapshot's) bytes opened for a backup or a restore
    (``VolumeBackend.open_data``): ``size`` bytes, read and written at offsets."""

    size: int = 0

    @abc.abstractmethod
    def read(self, offset: int, length: int) -> bytes | None:
        """``length`` bytes at ``offset`` (fewer at the end), or None when the backend
        knows the range holds only zeros (a hole)."""

    def write(self, offset: int, data: bytes | None, length: int = 0) -> None:
        """Write ``data`` at ``offset``; None: ``length`` bytes of zeros."""
        raise VolumeError("this volume data was opened for reading")


#: The os-brick connector a compute host sends (``initiator``, ``host``, ``ip``,
#: ``multipath``, ``platform``, ``os_type``, ...); backends read what they need.
Connector = dict[str, Any]


class VolumeBackend(abc.ABC):
    """One storage backend. Built once per server process as ``Backend(config)``."""

    #: The ``[volume] backend`` name, and Cinder's ``volume_backend_name``.
    name: ClassVar[str] = ""
    #: Cinder's ``storage_protocol`` (``file``, ``ceph``, ...) as shown in pools.
    storage_protocol: ClassVar[str] = ""
    #: What the backend can do; a name missing means no. Names: ``snapshots``,
    #: ``clone`` (volume from volume), ``create_from_image``, ``copy_to_image``,
    #: ``online_extend`` (grow while attached), ``multiattach``, ``thin_provisioning``,
    #: ``constant_time_clone`` (clones cost the same whatever the size).
    capabilities: ClassVar[dict[str, bool]] = {}

    def __init__(self, config: Config) -> None:
        self.config = config

    # -- volumes ----------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, volume_id: str, size_gb: int) -> None:
        """An empty (zero-filled, ideally thin) volume of ``size_gb``."""

    @abc.abstractmethod
    def create_from_image(self, volume_id: str, image: ImageData, size_gb: int) -> None:
        """A volume holding the image's disk, grown to ``size_gb`` (the service has
        checked that ``size_gb`` is not below the image's virtual size)."""

    @abc.abstractmethod
    def create_from_snapshot(self, volume_id: str, snapshot_id: str,
                             source_volume_id: str, size_gb: int) -> None:
        """A new volume with the snapshot's contents, grown to ``size_gb``.
        ``source_volume_id`` is the volume the snapshot was taken of (which may be gone
        by then for backends whose snapshots outlive nothing; the shipped ones refuse to
        delete a volume with snapshots)."""

    @abc.abstractmethod
    def clone(self, volume_id: str, source_volume_id: str, size_gb: int) -> None:
        """A new volume with the source volume's contents, grown to ``size_gb``."""

    @abc.abstractmethod
    def delete(self, volume_id: str) -> None:
        """Remove the volume's data. Succeeds if it does not exist."""

    @abc.abstractmethod
    def extend(self, volume_id: str, new_size_gb: int, online: bool = False) -> None:
        """Grow the volume to ``new_size_gb``. ``online``: it is attached to a running
        guest, which is told afterwards (see the module docstring)."""

    @abc.abstractmethod
    def exists(self, volume_id: str) -> bool:
        """Whether the backend holds a complete volume of that id."""

    @abc.abstractmethod
    def list_volumes(self) -> list[str]:
        """Ids of every volume the backend holds (to find what a crash left)."""

    # -- snapshots --------------------------------------------------------------------

    @abc.abstractmethod
    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        """A point-in-time copy of the volume. Called while the volume is available or
        (``force``) in use; a backend that cannot do it consistently while a guest
        writes says so in its documentation."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        """Remove the snapshot. Succeeds if it does not exist."""

    @abc.abstractmethod
    def list_snapshots(self) -> list[str]:
        """Ids of every snapshot the backend holds."""

    # -- data out, attachments, capacity ----------------------------------------------

    @abc.abstractmethod
    def copy_to_image(self, volume_id: str, disk_format: str) -> Iterator[bytes]:
        """The volume's contents as an image file of ``disk_format`` (``raw`` or
        ``qcow2``), streamed; what it needed on the side is removed when the iterator
        is exhausted or closed."""

    @abc.abstractmethod
    def connection_info(self, volume_id: str, connector: Connector | None) -> dict[str, Any]:
        """How a host opens the volume (see the module docstring). ``connector`` is the
        host's os-brick connector, or None when a host will send it later."""

    def terminate_connection(self, volume_id: str, connector: Connector | None) -> None:
        """A host stops using the volume (default: nothing to undo)."""
        return None

    def open_data(self, volume_id: str, snapshot_id: str | None = None,
                  write: bool = False) -> contextlib.AbstractContextManager[VolumeData]:
        """The volume's bytes (a snapshot's when ``snapshot_id``; read-only then) for a
        backup (``write`` False) or a restore into the volume (``write`` True: what
        was written is the volume's content once the block ends without error; the
        volume must not be attached). The default: backups are not supported."""
        raise VolumeError(f"the {self.name} volume backend cannot give a volume's data "
                          "to a backup")

    @abc.abstractmethod
    def usage(self) -> tuple[int, int]:
        """(used, total) bytes of the storage this backend writes to (pools' capacity
        in the scheduler-stats API)."""

"""The hypervisor driver interface: start, stop and watch guests on this host.

A driver knows nothing of HTTP or the database: the agent hands it a ``GuestSpec`` (what
to run) and asks what runs. Guests must outlive the process that started them (QEMU is
daemonized with a pidfile and a QMP socket under ``<instances_dir>/<uuid>/``), so a
restarted agent re-adopts them with ``list_guests`` instead of restarting them.

Every method is idempotent: starting a running guest or destroying a missing one is not
an error. Failures raise ``HypervisorError`` with a message a person can act on; it ends
up in the server's ``fault``.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from onestack.hostlink.diagnostics import GuestDiagnostics
from onestack.hostlink.states import PowerState  # the one definition, re-exported

#: virtio-blk's serial is 20 bytes: the guest sees the volume id's first 20 characters.
VOLUME_SERIAL_LENGTH = 20


class HypervisorError(Exception):
    """A guest operation failed; the message is shown to the user in ``fault``."""


@dataclass
class GuestNic:
    port_id: str
    mac: str
    #: The tap the network driver created (persistent, already on its bridge); QEMU opens
    #: it by name with ``script=no``.
    tap: str
    mtu: int = 1500


@dataclass
class GuestDisk:
    """One disk as QEMU opens it: a ``file`` on this host (``source`` its path, a qcow2
    overlay or a raw file) or an ``rbd`` image (``source`` ``pool/image``, opened by
    QEMU's own RBD client as ``user``). The agent translates the wire's typed disks
    (image overlay, RBD, volume) into these."""

    kind: Literal["file", "rbd"]
    source: str
    format: str = "qcow2"
    #: 0 for the boot disk; None for a disk the guest does not boot from.
    boot_index: int | None = 0
    user: str = ""
    read_only: bool = False
    #: A block-storage volume's id: the disk is then hot-pluggable (``attach_volume``)
    #: and the guest sees ``VOLUME_SERIAL_LENGTH`` characters of the id as its serial
    #: (``/dev/disk/by-id/virtio-<serial>``, as OpenStack guests expect).
    volume_id: str = ""
    #: rbd only: a ``ceph.conf`` (monitors, keyring) for QEMU's RBD client; empty:
    #: librbd's default search.
    conf: str = ""
    #: A volume's front-end QoS: Cinder's key (``write_bytes_sec``, ``total_iops_sec``,
    #: their ``*_max`` bursts, ``size_iops_sec``; ``FRONT_END_QOS_KEYS``) -> a positive
    #: limit. The driver throttles the disk's I/O to them (a hypervisor that cannot
    #: throttle, ``volume_io_limits`` raises, attaches it without); empty: no limit.
    io_limits: dict[str, int] = field(default_factory=dict)

    @property
    def serial(self) -> str:
        """What the guest reads as the disk's serial (virtio-blk keeps 20 bytes)."""
        return self.volume_id[:VOLUME_SERIAL_LENGTH]

    @classmethod
    def file(cls, path: Path | str, format: str = "qcow2",
             boot_index: int | None = 0) -> GuestDisk:
        return cls(kind="file", source=str(path), format=format, boot_index=boot_index)


@dataclass
class GuestSpec:
    uuid: str
    name: str
    vcpus: int
    memory_mib: int
    #: The guest's disks, the boot disk (``boot_index`` 0) first.
    disks: list[GuestDisk] = field(default_factory=list)
    nics: list[GuestNic] = field(default_factory=list)
    #: An ISO9660 config drive (label ``config-2``), when the user asked for one.
    config_drive: Path | None = None
    #: SMBIOS type 1 fields; cloud-init looks for ``product == "OpenStack Nova"``.
    smbios: dict[str, str] = field(default_factory=dict)


@dataclass
class HostInfo:
    hypervisor_type: str  # "QEMU"
    hypervisor_version: int  # Nova's encoding: major * 1000000 + minor * 1000 + micro
    accel: str  # "kvm" or "tcg" (what guests really get)
    vcpus: int
    memory_mib: int
    cpu_info: dict = field(default_factory=dict)


class HypervisorDriver(abc.ABC):
    """One backend per module; ``onestack.drivers.hypervisor.load`` picks one by name."""

    name: str = ""
    #: What this backend can do (``onestack.hostlink.capabilities`` names); the host
    #: reports it, the scheduler and the API go by it. A name missing means no.
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def host_info(self) -> HostInfo:
        """What this host offers (measured, or the configured overrides)."""

    @abc.abstractmethod
    def list_guests(self) -> dict[str, PowerState]:
        """Every guest this driver knows on this host (running or not), by uuid.

        Called at agent start: reconnects to guests still running from an earlier process.
        """

    @abc.abstractmethod
    def spawn(self, spec: GuestSpec) -> None:
        """Start the guest (no-op if it already runs with this uuid)."""

    @abc.abstractmethod
    def power_off(self, uuid: str, timeout: float = 0) -> None:
        """ACPI shutdown, waiting up to ``timeout`` seconds, then force off (0: force now).

        The guest's runtime directory (console log) stays; ``spawn`` starts it again.
        """

    @abc.abstractmethod
    def reboot(self, spec: GuestSpec, hard: bool, timeout: float = 0) -> None:
        """Soft: ACPI shutdown then start (forced after ``timeout``); hard: reset now.

        A guest that is not running is started.
        """

    @abc.abstractmethod
    def pause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    def unpause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    def suspend(self, uuid: str) -> None:
        """Save the guest's memory to disk and stop its process (PowerState.SUSPENDED)."""

    @abc.abstractmethod
    def resume(self, spec: GuestSpec) -> None:
        """Restore a suspended guest."""

    @abc.abstractmethod
    def destroy(self, uuid: str) -> None:
        """Stop the guest if it runs and remove its runtime files (not its disks)."""

    @abc.abstractmethod
    def power_state(self, uuid: str) -> PowerState:
        """NOSTATE if the driver does not know the guest."""

    @abc.abstractmethod
    def console_log(self, uuid: str, lines: int | None = None) -> str:
        """The serial console's output so far (the last ``lines`` lines if given)."""

    @abc.abstractmethod
    def serial_socket(self, uuid: str) -> Path:
        """A unix socket speaking the guest's serial console (for remote consoles)."""

    # --- rescue (``RESCUE``) ---------------------------------------------------------------

    def rescue(self, spec: GuestSpec, rescue_disk: GuestDisk) -> None:
        """Stop the guest at once and start it booting from ``rescue_disk``, with
        ``spec``'s own disks attached after it and booted from none of them (Nova's
        rescue: the user repairs the guest's disk from a rescue system). ``unrescue``
        starts ``spec`` again."""
        self.power_off(spec.uuid, 0)
        self.spawn(rescue_spec(spec, rescue_disk))

    def unrescue(self, spec: GuestSpec) -> None:
        """Stop the rescued guest at once and start it from its own disks (``spec``)."""
        self.power_off(spec.uuid, 0)
        self.spawn(spec)

    # --- diagnostics (``DIAGNOSTICS``) ------------------------------------------------------

    def diagnostics(self, uuid: str) -> GuestDiagnostics:
        """What the running guest has used so far (CPU time per vCPU, disk and NIC
        counters, memory); HypervisorError if the guest does not run."""
        raise HypervisorError(f"The {self.name} hypervisor cannot report diagnostics")

    # --- interfaces (``ATTACH_INTERFACE``) ------------------------------------------------

    def attach_nic(self, uuid: str, nic: GuestNic) -> None:
        """Hot-plug ``nic`` (its tap made and bridged by the network driver) into the
        running (or paused) guest; it stays in the guest's spec, so a restarted guest has
        it again. A no-op if it is plugged; HypervisorError if the guest does not run."""
        raise HypervisorError(f"The {self.name} hypervisor cannot hot-plug interfaces")

    def detach_nic(self, uuid: str, port_id: str, timeout: float = 30.0) -> None:
        """Unplug the port's NIC, waiting up to ``timeout`` seconds for the guest to let
        go (HypervisorError if it does not); a no-op if it is not plugged."""
        raise HypervisorError(f"The {self.name} hypervisor cannot hot-plug interfaces")

    def attached_nics(self, uuid: str) -> list[str]:
        """The port ids of the NICs the running guest has; [] for a guest that does
        not run."""
        return []

    # --- volumes (``VOLUME_HOTPLUG``) ------------------------------------------------------

    def attach_volume(self, uuid: str, disk: GuestDisk) -> None:
        """Hot-plug ``disk`` (a volume: ``disk.volume_id`` set) into the running guest;
        it stays in the guest's spec, so a restarted guest has it again. A no-op if it
        is attached; HypervisorError if the guest does not run."""
        raise HypervisorError(f"The {self.name} hypervisor cannot hot-plug volumes")

    def detach_volume(self, uuid: str, volume_id: str, timeout: float = 30.0) -> None:
        """Unplug the volume, waiting up to ``timeout`` seconds for the guest to release
        it (HypervisorError if it does not); a no-op if it is not attached. A guest that
        does not run only has the volume taken out of its spec."""
        raise HypervisorError(f"The {self.name} hypervisor cannot hot-plug volumes")

    def attached_volumes(self, uuid: str) -> dict[str, int]:
        """The volumes attached to the guest (by id) and the size in bytes the guest
        sees for each; {} for an unknown guest."""
        return {}

    def volume_io_limits(self, uuid: str) -> dict[str, dict[str, int]]:
        """Each attached volume (by id) and the I/O limits (``GuestDisk.io_limits``'s
        keys) its disk is throttled to, as the hypervisor has them; {} for an unknown
        guest."""
        raise HypervisorError(f"The {self.name} hypervisor cannot throttle volumes")

    def resize_volume(self, uuid: str, volume_id: str, size_bytes: int) -> None:
        """Grow an attached volume to ``size_bytes`` and tell the guest (a no-op if it
        is that size already)."""
        raise HypervisorError(f"The {self.name} hypervisor cannot resize attached volumes")


def rescue_spec(spec: GuestSpec, rescue_disk: GuestDisk) -> GuestSpec:
    """``spec`` booting from ``rescue_disk``: that disk first (boot index 0), then the
    guest's own disks, none of them a boot disk any more (the guest sees its own boot
    disk second, ``/dev/vdb`` for virtio)."""
    own = [dataclasses.replace(d, boot_index=None) for d in spec.disks]
    return dataclasses.replace(
        spec, disks=[dataclasses.replace(rescue_disk, boot_index=0), *own])

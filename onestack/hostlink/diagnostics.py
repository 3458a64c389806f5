"""A guest's diagnostics as its host measures them (``GET /servers/{id}/diagnostics``).

The hypervisor driver fills a ``GuestDiagnostics`` from what it can read of the running
guest (QEMU: QMP's ``query-cpus-fast`` and ``query-blockstats``, the tap devices'
counters in sysfs, ``/proc`` of the QEMU process); the agent hands it to the server as
JSON (``to_wire``/``from_wire``), and the compute API renders it in Nova's shapes: the
2.48 object, or the older flat libvirt-style dict (``legacy``).

Units are Nova's: CPU time in nanoseconds, memory in MiB, uptime in seconds, bytes and
packets as counted. A figure the driver cannot know is None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Nova's diagnostics states (2.48 ``state``), by ``PowerState`` number.
STATES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed",
          7: "suspended"}


@dataclass
class CpuStats:
    id: int
    #: CPU time the vCPU's thread used, in nanoseconds.
    time: int | None = None
    utilisation: int | None = None


@dataclass
class DiskStats:
    #: The guest's device name (``vda``...), for the pre-2.48 keys.
    name: str
    read_bytes: int | None = None
    read_requests: int | None = None
    write_bytes: int | None = None
    write_requests: int | None = None
    errors_count: int | None = None


@dataclass
class NicStats:
    """Counters from the guest's side (what it received is what its tap sent)."""

    mac_address: str | None
    #: The host's device (the tap), for the pre-2.48 keys.
    name: str = ""
    rx_octets: int | None = None
    rx_errors: int | None = None
    rx_drop: int | None = None
    rx_packets: int | None = None
    rx_rate: int | None = None
    tx_octets: int | None = None
    tx_errors: int | None = None
    tx_drop: int | None = None
    tx_packets: int | None = None
    tx_rate: int | None = None


@dataclass
class GuestDiagnostics:
    #: A ``PowerState`` number.
    power_state: int
    #: The hypervisor as the driver names it (``qemu`` under TCG, ``kvm``, ``fake``).
    hypervisor: str
    hypervisor_os: str | None = "linux"
    #: Seconds since the guest's process (or fake guest) started.
    uptime: int | None = None
    #: MiB: the guest's configured memory, and what it holds on the host.
    memory_max_mib: int | None = None
    memory_used_mib: int | None = None
    cpus: list[CpuStats] = field(default_factory=list)
    disks: list[DiskStats] = field(default_factory=list)
    nics: list[NicStats] = field(default_factory=list)

    @property
    def state(self) -> str:
        return STATES.get(self.power_state, "pending")

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> GuestDiagnostics:
        return cls(
            power_state=int(data["power_state"]), hypervisor=str(data["hypervisor"]),
            hypervisor_os=data.get("hypervisor_os"), uptime=data.get("uptime"),
            memory_max_mib=data.get("memory_max_mib"),
            memory_used_mib=data.get("memory_used_mib"),
            cpus=[CpuStats(**c) for c in data.get("cpus") or []],
            disks=[DiskStats(**d) for d in data.get("disks") or []],
            nics=[NicStats(**n) for n in data.get("nics") or []])

"""What a host's agent and the server say to each other.

The agent reads desired state (``desired_instances``, ``networks``) and writes observed
state (``finish_task``, ``fail_task``, ``report_power``, ...). ``ControlPlane`` is the
interface; ``onestack.services.compute.hostapi.HostAPI`` implements it in the server
process (the all-in-one mode calls it directly). Everything crossing it is a plain
dataclass, so an HTTP transport for remote hosts can carry the same calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from onestack.drivers.network.base import NetworkSpec

#: What each task is called in os-instance-actions events.
TASK_EVENTS = {
    "spawning": "compute__do_build_and_run_instance",
    "deleting": "compute_terminate_instance",
    "powering-off": "compute_stop_instance",
    "powering-on": "compute_start_instance",
    "rebooting": "compute_reboot_instance",
    "rebooting_hard": "compute_reboot_instance",
    "pausing": "compute_pause_instance",
    "unpausing": "compute_unpause_instance",
    "suspending": "compute_suspend_instance",
    "resuming": "compute_resume_instance",
    "rebuilding": "compute_rebuild_instance",
    "resize_prep": "compute_resize_instance",
    "resize_reverting": "compute_revert_resize",
    "image_snapshot": "compute_snapshot_instance",
}


@dataclass
class ImageRef:
    id: str
    disk_format: str
    size: int
    hash_algo: str
    hash_value: str


@dataclass
class PortInfo:
    id: str
    network_id: str
    mac: str
    mtu: int
    ips: list[str] = field(default_factory=list)


@dataclass
class DesiredInstance:
    uuid: str
    name: str
    hostname: str
    vm_state: str
    task_state: str | None
    task_args: dict[str, Any]
    #: The last power state the host reported (a PowerState number).
    power_state: int
    vcpus: int
    memory_mb: int
    root_gb: int
    image: ImageRef | None
    ports: list[PortInfo]
    config_drive: bool = False
    #: During a resize: the flavor it goes to, and the one a revert goes back to
    #: (Instance.flavor dicts: vcpus, ram, disk...).
    new_flavor: dict[str, Any] | None = None
    old_flavor: dict[str, Any] | None = None


@dataclass
class HostReport:
    host: str
    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    accel: str
    vcpus: int
    memory_mb: int
    local_gb: int
    local_gb_used: int
    host_ip: str = "127.0.0.1"
    cpu_info: dict[str, Any] = field(default_factory=dict)
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0


class ControlPlane(Protocol):
    def register(self, report: HostReport) -> None:
        """Create or refresh this host's nova-compute service and hypervisor; also the
        heartbeat (called every poll)."""

    def desired_instances(self, host: str) -> list[DesiredInstance]:
        """Every instance assigned to ``host`` that is not yet deleted."""

    def networks(self, host: str) -> list[NetworkSpec]:
        """Every network with a port of an instance on ``host``, with its DHCP port
        (created here if missing) and the DHCP host entries."""

    def existing_networks(self, network_ids: list[str]) -> set[str]:
        """Which of these networks still exist. A host removes a deleted network at
        once (even when stopping); an existing one no instance uses is kept a while."""

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        """The files of the instance's config drive, by path."""

    def open_image(self, image_id: str) -> Iterator[bytes]:
        """The image's bytes."""

    def upload_snapshot(self, image_id: str, path: Path) -> None:
        """Store a snapshot file as the (queued) image's data and make it active."""

    def start_event(self, uuid: str, event: str) -> None:
        """Record an instance-action event (``compute_stop_instance``...) as started."""

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        """Apply ``changes`` (vm_state, power_state, ...) and clear the task, if the task
        is still ``expected_task_state``; False if something newer replaced it."""

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        """Record a fault, clear the task and (for builds) set vm_state error."""

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        """The observed power state (and, when the guest stopped on its own, vm_state)."""

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        """ACTIVE once plugged, DOWN once unplugged."""

    def instance_deleted(self, uuid: str) -> None:
        """The host released everything: delete the ports the server created, unbind the
        others, soft-delete the row."""

"""The two directions of the server-host boundary, as typed interfaces.

``HostToServer``: what a host's agent calls on the control plane (read desired state,
report observed state, fetch images and config drives, upload snapshots, identify
guests for the metadata proxy). The server's host service implements it
(``onestack.services.hosts``).

``ServerToHost``: what the control plane calls on one host (console output, serial
console endpoint, uptime, capabilities, wake-up). The agent implements it
(``onestack.agent``); the server keeps one handle per host in a ``HostDirectory``.

A transport is anything that makes one side's object callable from the other: in
process the object itself is passed (``onestack.hostlink.inprocess``), over HTTP a
client and a route table (``onestack.hostlink.http``, ``onestack.api.hostlink``). Every
argument and answer is a wire type or a JSON-friendly value, except where noted
(image bytes stream, a snapshot is a file on the host).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from onestack.hostlink.types import HostReport, HostState, SerialEndpoint


class HostUnreachable(Exception):
    """A ServerToHost call could not reach the host (not connected, timed out)."""


@runtime_checkable
class HostToServer(Protocol):
    """The control plane as one host sees it; every call names the host's data only."""

    # -- hosts ----------------------------------------------------------------------

    def register(self, report: HostReport) -> None:
        """Create or refresh this host's nova-compute service and hypervisor, and its
        capabilities; also the heartbeat (called every poll)."""

    # -- desired state --------------------------------------------------------------

    def desired_state(self, host: str) -> HostState:
        """Everything that should be on ``host``: instances not yet deleted, the
        networks their ports are on (with this host's DHCP port, made if missing, and
        the DHCP host entries), later routers, security groups and attachments."""

    def existing_networks(self, network_ids: list[str]) -> list[str]:
        """Which of these networks still exist. A host removes a deleted network at
        once (even when stopping); an existing one no instance uses is kept a while."""

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        """The files of the instance's config drive, by path."""

    def open_image(self, image_id: str) -> Iterator[bytes]:
        """The image's bytes, in chunks."""

    def upload_snapshot(self, image_id: str, path: Path) -> None:
        """Store a snapshot (a file on the host) as the queued image's data and make it
        active. A transport streams the file's bytes."""

    # -- observed state -------------------------------------------------------------

    def start_event(self, uuid: str, event: str) -> None:
        """Record an instance-action event (``compute_stop_instance``...) as started."""

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        """Apply ``changes`` (vm_state, power_state, flavor, ...) and clear the task, if
        the task is still ``expected_task_state``; False if something newer replaced
        it."""

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        """Record a fault, clear the task and (for builds) set vm_state error."""

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        """The observed power state (and, when the guest stopped on its own, vm_state)."""

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        """ACTIVE once plugged, DOWN once unplugged."""

    def report_routers(self, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
        """What ``host`` made of the routers its desired state gave it: ``applied``
        maps each router set up exactly as desired to its floating IPs in place
        (floating address -> fixed address); ``failed`` lists those it could not set
        up. Routers show ``ACTIVE``/``ERROR``, floating IPs ``ACTIVE``/``DOWN`` from it;
        routers bound to another host are not touched."""

    def instance_deleted(self, uuid: str) -> None:
        """The host released everything: delete the ports the server created, unbind the
        others, soft-delete the row."""

    def report_attachments(self, uuid: str, attachment_ids: list[str]) -> None:
        """The volume attachments the instance has now (hot-plugged into its running
        guest, or on the command line of a guest that does not run): attachments in
        it are completed, detaches of attachments not in it are finished."""

    def volume_extended(self, uuid: str, volume_id: str, size_gb: int,
                        error: str | None) -> None:
        """The running guest's disk of ``volume_id`` was grown to ``size_gb`` GiB
        (``error``: why it could not be): ends the server's ``extend_volume`` action."""

    # -- the metadata proxy -----------------------------------------------------------

    def metadata_secret(self) -> bytes:
        """The key the host's metadata proxy signs forwarded requests with."""

    def instance_for_address(self, network_id: str, ip: str) -> tuple[str, str] | None:
        """(instance uuid, project id) of the instance with fixed address ``ip`` on
        ``network_id``; None if there is none."""


@runtime_checkable
class ServerToHost(Protocol):
    """One host as the control plane sees it. Calls may raise ``HostUnreachable``."""

    @property
    def host(self) -> str:
        """The host's name (``instance.host``)."""

    def wake(self) -> None:
        """Desired state changed: converge now instead of at the next poll."""

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        """The guest's serial console output (the last ``lines`` lines if given);
        FileNotFoundError if there is none."""

    def serial_endpoint(self, uuid: str) -> SerialEndpoint:
        """Where the guest's serial console can be reached."""

    def diagnostics(self, uuid: str) -> dict[str, Any]:
        """The running guest's diagnostics (``hostlink.diagnostics.GuestDiagnostics``
        on the wire); FileNotFoundError if the host has no such guest, RuntimeError if
        the guest does not run or cannot be measured."""

    def uptime(self) -> str:
        """The host's ``uptime`` line."""

    def capabilities(self) -> dict[str, bool]:
        """What the host's drivers can do (``onestack.hostlink.capabilities``)."""

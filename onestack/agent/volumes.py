"""Volume attachments on this host: the desired state's ``attachments`` made true in the
guests, level-triggered.

For each steady instance (no task running) the agent's worker calls
``VolumeAttacher.converge`` after the instance itself converged:

- a running (or paused) guest gets every desired volume it lacks hot-plugged, loses
  every volume it has that is no longer desired (not a paused one: it cannot answer the
  unplug; it follows when it runs again), and an attached volume that grew (extended
  while attached) is resized so the guest sees the new size;
- a guest that does not run has nothing to plug: its desired volumes are on its
  command line when it next starts (``Agent._spec``), so they count as attached.

What is attached is then reported (``HostToServer.report_attachments``): the server
completes attachments that are there and finishes detaches of those that are gone.
The report is sent when it changed, and again every ``report_interval`` seconds while
the instance has volumes, so a report the server lost is made good.

Connection info (Cinder's ``driver_volume_type`` and ``data``) becomes the
hypervisor's ``GuestDisk`` here: ``file`` (a qcow2 or raw file on this host) or
``rbd`` (``pool/image``, opened by QEMU's own RBD client), with the front-end QoS
limits of ``data.qos_specs`` as its ``io_limits`` (the hypervisor throttles the disk).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from onestack.drivers.hypervisor.base import (
    GuestDisk,
    HypervisorDriver,
    HypervisorError,
    PowerState,
)
from onestack.hostlink.interfaces import HostToServer
from onestack.hostlink.types import (
    DesiredInstance,
    VolumeAttachment,
    VolumeDisk,
    front_end_limits,
)

log = logging.getLogger(__name__)

GiB = 1 << 30
#: How often an unchanged report is sent again while an instance has volumes.
REPORT_INTERVAL = 60.0


def guest_disk(volume_id: str, connection: dict[str, Any],
               boot_index: int | None = None) -> GuestDisk:
    """The hypervisor's disk for a volume, from its connection info."""
    kind = connection.get("driver_volume_type", "")
    data = connection.get("data") or {}
    read_only = data.get("access_mode") == "ro"
    limits = front_end_limits(connection)
    if kind == "rbd":
        return GuestDisk(kind="rbd", source=str(data["name"]), format="raw",
                         boot_index=boot_index, user=str(data.get("auth_username") or ""),
                         read_only=read_only, volume_id=volume_id,
                         conf=str(data.get("conf") or ""), io_limits=limits)
    if kind in ("file", "local", "fake"):  # fake: the fake backend's, for tests
        path = data.get("path") or data.get("device_path")
        if not path:
            raise HypervisorError(f"Volume {volume_id}: its connection info has no path")
        return GuestDisk(kind="file", source=str(path), format=str(data.get("format", "raw")),
                         boot_index=boot_index, read_only=read_only, volume_id=volume_id,
                         io_limits=limits)
    raise HypervisorError(f"Volume {volume_id}: this host cannot attach a "
                          f"{kind or 'untyped'} volume.")


def volume_disk(volume: VolumeDisk) -> GuestDisk:
    """The hypervisor's disk for one of an instance's volumes (boot or attached)."""
    return guest_disk(volume.volume_id, volume.connection, volume.boot_index)


class VolumeAttacher:
    def __init__(self, hypervisor: HypervisorDriver, control: HostToServer,
                 report_interval: float = REPORT_INTERVAL) -> None:
        self.hypervisor = hypervisor
        self.control = control
        self.report_interval = report_interval
        self._lock = threading.Lock()
        #: Instance uuid -> (attachment ids last reported, when).
        self._reported: dict[str, tuple[list[str], float]] = {}

    def converge(self, d: DesiredInstance, attachments: list[VolumeAttachment]) -> None:
        """Make ``d``'s guest have exactly ``attachments`` (see the module docstring).

        Called from the instance's worker (one at a time per instance); a task in
        progress owns the guest, so nothing is done then."""
        if d.task_state is not None:
            return
        state = self.hypervisor.power_state(d.uuid)
        if state in (PowerState.RUNNING, PowerState.PAUSED):
            done = self._plug(d, attachments, paused=state == PowerState.PAUSED)
        elif state in (PowerState.SHUTDOWN, PowerState.NOSTATE, PowerState.CRASHED):
            done = [a.attachment_id for a in attachments]
        else:
            return  # suspended: its saved memory holds its devices; nothing may change
        self._report(d.uuid, sorted(done))

    def forget(self, uuid: str) -> None:
        """The instance left this host."""
        with self._lock:
            self._reported.pop(uuid, None)

    def _plug(self, d: DesiredInstance, attachments: list[VolumeAttachment],
              paused: bool) -> list[str]:
        try:
            plugged = self.hypervisor.attached_volumes(d.uuid)
        except HypervisorError as exc:
            log.warning("instance %s: cannot list its volumes: %s", d.uuid, exc)
            return []
        boot = {disk.volume_id for disk in d.disks
                if isinstance(disk, VolumeDisk) and disk.boot_index is not None}
        wanted = {a.volume_id: a for a in attachments}
        done: list[str] = []
        for volume_id, attachment in wanted.items():
            if volume_id not in plugged:
                started = time.monotonic()
                try:
                    disk = guest_disk(volume_id, attachment.connection)
                    self.hypervisor.attach_volume(d.uuid, disk)
                except HypervisorError as exc:
                    log.warning("instance %s: attaching volume %s failed: %s", d.uuid,
                                volume_id, exc)
                    continue
                log.info("instance %s: volume %s attached in %.2f s", d.uuid, volume_id,
                         time.monotonic() - started)
                plugged[volume_id] = attachment.size_gb * GiB
            wanted_bytes = attachment.size_gb * GiB
            if wanted_bytes and plugged[volume_id] < wanted_bytes:
                self._grow(d.uuid, volume_id, attachment.size_gb)
            done.append(attachment.attachment_id)
        for volume_id in sorted(set(plugged) - set(wanted) - boot):
            if paused:
                log.info("instance %s: volume %s waits for the guest to run to be "
                         "detached", d.uuid, volume_id)
                continue
            started = time.monotonic()
            try:
                self.hypervisor.detach_volume(d.uuid, volume_id)
            except HypervisorError as exc:
                log.warning("instance %s: detaching volume %s failed: %s", d.uuid,
                            volume_id, exc)
                continue
            log.info("instance %s: volume %s detached in %.2f s", d.uuid, volume_id,
                     time.monotonic() - started)
        return done

    def _grow(self, uuid: str, volume_id: str, size_gb: int) -> None:
        """Grow the guest's disk of an extended volume and say how it went (the
        server's ``extend_volume`` action waits for it)."""
        error = None
        try:
            self.hypervisor.resize_volume(uuid, volume_id, size_gb * GiB)
        except HypervisorError as exc:
            error = str(exc)
            log.warning("instance %s: growing volume %s to %d GiB failed: %s", uuid,
                        volume_id, size_gb, exc)
        try:
            self.control.volume_extended(uuid, volume_id, size_gb, error)
        except Exception:
            log.exception("instance %s: could not report the growth of volume %s", uuid,
                          volume_id)

    def _report(self, uuid: str, done: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._reported.get(uuid)
        if last is not None and last[0] == done and (
                not done or now - last[1] < self.report_interval):
            return
        try:
            self.control.report_attachments(uuid, done)
        except Exception:
            log.exception("instance %s: could not report its volume attachments", uuid)
            return
        with self._lock:
            self._reported[uuid] = (done, now)

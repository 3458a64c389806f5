"""An in-memory hypervisor for API and agent tests: no processes, no sleeps.

Power states move as ``QemuDriver``'s do (same idempotence, same errors for impossible
transitions). With ``instances_dir`` the guests are kept in
``<instances_dir>/fake-hypervisor.json`` and re-read on every call, so a second
``FakeDriver`` over the same directory sees (re-adopts) the first one's guests, as a
restarted agent does with real QEMU processes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from onestack.drivers.hypervisor.base import (
    GuestDisk,
    GuestNic,
    GuestSpec,
    HostInfo,
    HypervisorDriver,
    HypervisorError,
    PowerState,
    rescue_spec,
)
from onestack.drivers.hypervisor.qemu import QemuDriver
from onestack.hostlink.diagnostics import CpuStats, DiskStats, GuestDiagnostics, NicStats

QEMU_CAPABILITIES = QemuDriver.capabilities

STATE_FILE = "fake-hypervisor.json"
#: What the fake host reports (QEMU 7.2.0) unless told otherwise.
FAKE_VERSION = 7_002_000


class FakeDriver(HypervisorDriver):
    """Fake guests. Takes (and ignores) ``QemuDriver``'s keyword arguments.

    ``vcpus`` and ``memory_mib`` set what ``host_info`` reports (defaults: 8 and 16384),
    so scheduler tests can shape a host; ``accel`` (``kvm``/``tcg``) is reported as-is,
    ``auto`` as ``tcg``.
    """

    name = "fake"
    #: As QEMU's, so the API tests see what a real host offers.
    capabilities: ClassVar[dict[str, bool]] = dict(QEMU_CAPABILITIES)

    def __init__(self, instances_dir: Path | None = None, *, accel: str = "auto",
                 vcpus: int = 8, memory_mib: int = 16384, **_ignored: Any) -> None:
        self.instances_dir = Path(instances_dir) if instances_dir else None
        self.accel = "kvm" if accel == "kvm" else "tcg"
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        self._lock = threading.RLock()
        #: uuid -> {"state": PowerState value, "spec": GuestSpec fields, "boots": int,
        #: "console": [lines]}
        self._guests: dict[str, dict[str, Any]] = {}
        self._load()

    # --- persistence --------------------------------------------------------------------

    @property
    def _state_file(self) -> Path | None:
        return self.instances_dir / STATE_FILE if self.instances_dir else None

    def _load(self) -> None:
        path = self._state_file
        if path is None:
            return
        try:
            self._guests = json.loads(path.read_text())
        except FileNotFoundError:
            self._guests = {}

    def _save(self) -> None:
        path = self._state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self._guests, indent=1, sort_keys=True))
        tmp.replace(path)

    def _get(self, uuid: str) -> dict[str, Any] | None:
        self._load()
        return self._guests.get(uuid)

    def _set(self, uuid: str, state: PowerState) -> None:
        self._guests[uuid]["state"] = int(state)

    def _boot(self, uuid: str, spec: GuestSpec | None = None) -> None:
        guest = self._guests.setdefault(uuid, {"boots": 0, "console": []})
        if spec is not None:
            guest["spec"] = {"name": spec.name, "vcpus": spec.vcpus,
                             "memory_mib": spec.memory_mib,
                             "disks": [f"{d.kind}:{d.source}" for d in spec.disks],
                             "nics": [nic.port_id for nic in spec.nics],
                             "macs": [nic.mac for nic in spec.nics]}
            # The volumes it starts with; a volume's size is its file's, else 1 GiB.
            guest["volumes"] = {d.volume_id: _fake_volume(d)
                                for d in spec.disks if d.volume_id}
        guest["boots"] += 1
        guest["state"] = int(PowerState.RUNNING)
        guest["started"] = time.time()
        guest["console"] += [
            f"[    0.000000] Linux version 6.1.0-fake (fake guest {uuid})",
            f"[    0.100000] DMI: OpenStack Foundation OpenStack Nova, serial {uuid}",
            f"fake-init: boot {guest['boots']} of {uuid}: started",
        ]

    def _log(self, uuid: str, line: str) -> None:
        self._guests[uuid]["console"].append(f"fake-init: {line}")

    # --- the interface ------------------------------------------------------------------

    def host_info(self) -> HostInfo:
        return HostInfo(hypervisor_type="QEMU", hypervisor_version=FAKE_VERSION,
                        accel=self.accel, vcpus=self.vcpus, memory_mib=self.memory_mib,
                        cpu_info={"arch": "x86_64", "model": "fake", "vendor": "fake",
                                  "topology": {"cells": 1, "sockets": 1,
                                               "cores": self.vcpus, "threads": 1},
                                  "features": []})

    def list_guests(self) -> dict[str, PowerState]:
        with self._lock:
            self._load()
            return {uuid: PowerState(g["state"]) for uuid, g in sorted(self._guests.items())}

    def power_state(self, uuid: str) -> PowerState:
        with self._lock:
            guest = self._get(uuid)
            return PowerState(guest["state"]) if guest else PowerState.NOSTATE

    def spawn(self, spec: GuestSpec) -> None:
        with self._lock:
            guest = self._get(spec.uuid)
            state = PowerState(guest["state"]) if guest else PowerState.NOSTATE
            if state in (PowerState.RUNNING, PowerState.PAUSED):
                return
            if state == PowerState.SUSPENDED:
                self._set(spec.uuid, PowerState.RUNNING)  # start restores saved memory
                self._log(spec.uuid, "resumed")
            else:
                self._boot(spec.uuid, spec)
            self._save()

    def power_off(self, uuid: str, timeout: float = 0) -> None:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] == PowerState.SHUTDOWN:
                return
            self._log(uuid, "powered off")
            self._set(uuid, PowerState.SHUTDOWN)
            self._save()

    def reboot(self, spec: GuestSpec, hard: bool, timeout: float = 0) -> None:
        with self._lock:
            self._get(spec.uuid)
            if spec.uuid in self._guests:
                self._log(spec.uuid, f"{'hard' if hard else 'soft'} reboot")
            self._boot(spec.uuid, spec)
            self._save()

    def pause(self, uuid: str) -> None:
        self._move(uuid, "pause", {PowerState.RUNNING: PowerState.PAUSED,
                                   PowerState.PAUSED: PowerState.PAUSED})

    def unpause(self, uuid: str) -> None:
        self._move(uuid, "unpause", {PowerState.PAUSED: PowerState.RUNNING,
                                     PowerState.RUNNING: PowerState.RUNNING})

    def suspend(self, uuid: str) -> None:
        self._move(uuid, "suspend", {PowerState.RUNNING: PowerState.SUSPENDED,
                                     PowerState.PAUSED: PowerState.SUSPENDED,
                                     PowerState.SUSPENDED: PowerState.SUSPENDED})

    def resume(self, spec: GuestSpec) -> None:
        with self._lock:
            guest = self._get(spec.uuid)
            state = PowerState(guest["state"]) if guest else PowerState.NOSTATE
            if state in (PowerState.RUNNING, PowerState.PAUSED):
                return
            if state != PowerState.SUSPENDED:
                raise HypervisorError(f"Cannot resume guest {spec.uuid}: "
                                      "it has no saved state (it was not suspended)")
            self._log(spec.uuid, "resumed")
            self._set(spec.uuid, PowerState.RUNNING)
            self._save()

    def rescue(self, spec: GuestSpec, rescue_disk: GuestDisk) -> None:
        """A new boot from the rescue spec; the guest records ``rescue_disk`` as the
        disk it booted from (``rescued``) until ``unrescue``."""
        with self._lock:
            self._get(spec.uuid)
            if spec.uuid in self._guests:
                self._log(spec.uuid, f"rescue: booting from {rescue_disk.source}")
            self._boot(spec.uuid, rescue_spec(spec, rescue_disk))
            self._guests[spec.uuid]["rescued"] = f"{rescue_disk.kind}:{rescue_disk.source}"
            self._save()

    def unrescue(self, spec: GuestSpec) -> None:
        with self._lock:
            self._get(spec.uuid)
            if spec.uuid in self._guests:
                self._log(spec.uuid, "unrescue: booting from its own disk")
                self._guests[spec.uuid].pop("rescued", None)
            self._boot(spec.uuid, spec)
            self._save()

    def rescued(self, uuid: str) -> str | None:
        """The rescue disk (``kind:source``) the guest booted from, if rescued."""
        with self._lock:
            guest = self._get(uuid)
            return guest.get("rescued") if guest else None

    def destroy(self, uuid: str) -> None:
        with self._lock:
            if self._get(uuid) is None:
                return
            del self._guests[uuid]
            self._save()

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        with self._lock:
            guest = self._get(uuid)
            if guest is None:
                raise HypervisorError(f"No guest {uuid} on this host")
            console: list[str] = guest["console"]
            if lines is not None:
                console = console[-lines:] if lines > 0 else []
            return "".join(line + "\n" for line in console)

    def diagnostics(self, uuid: str) -> GuestDiagnostics:
        """The fake's own figures: its configured vCPUs and memory, the seconds since
        it (re)booted as uptime and as each vCPU's time, its disks and NICs (by
        MAC) with counters that stay 0, as nothing reads or sends."""
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] not in (PowerState.RUNNING,
                                                       PowerState.PAUSED):
                raise HypervisorError(f"Cannot get diagnostics of guest {uuid}: it is "
                                      "not running")
            spec = guest.get("spec", {})
            uptime = max(int(time.time() - float(guest.get("started") or time.time())), 0)
            return GuestDiagnostics(
                power_state=int(guest["state"]), hypervisor="fake", hypervisor_os="linux",
                uptime=uptime, memory_max_mib=int(spec.get("memory_mib", 0)),
                memory_used_mib=int(spec.get("memory_mib", 0)),
                cpus=[CpuStats(id=i, time=uptime * 1_000_000_000)
                      for i in range(int(spec.get("vcpus", 1)))],
                disks=[DiskStats(name=f"disk{i}", read_bytes=0, read_requests=0,
                                 write_bytes=0, write_requests=0, errors_count=0)
                       for i, _ in enumerate(spec.get("disks", []))],
                nics=[NicStats(mac_address=mac, name=f"tap{i}", rx_octets=0, rx_errors=0,
                               rx_drop=0, rx_packets=0, tx_octets=0, tx_errors=0,
                               tx_drop=0, tx_packets=0)
                      for i, mac in enumerate(spec.get("macs", []))])

    def serial_socket(self, uuid: str) -> Path:
        """Where QemuDriver's socket would be; nothing listens there."""
        base = self.instances_dir or Path("/nonexistent/fake-hypervisor")
        return base / uuid / "console.sock"

    # --- volumes ---------------------------------------------------------------------------

    def attach_volume(self, uuid: str, disk: GuestDisk) -> None:
        if not disk.volume_id:
            raise HypervisorError("Only a volume (a disk with a volume id) can be hot-plugged")
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] not in (PowerState.RUNNING, PowerState.PAUSED):
                raise HypervisorError(f"Cannot attach volume {disk.volume_id} to guest "
                                      f"{uuid}: it is not running")
            volumes = guest.setdefault("volumes", {})
            if disk.volume_id in volumes:
                return
            volumes[disk.volume_id] = _fake_volume(disk)
            guest["spec"]["disks"].append(f"{disk.kind}:{disk.source}")
            self._log(uuid, f"virtio-blk {disk.serial} attached"
                            + (f" throttled {_limits_text(disk)}" if disk.io_limits else ""))
            self._save()

    def detach_volume(self, uuid: str, volume_id: str, timeout: float = 30.0) -> None:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or volume_id not in guest.get("volumes", {}):
                return
            gone = guest["volumes"].pop(volume_id)
            with_kind = [d for d in guest["spec"]["disks"] if d.endswith(":" + gone["source"])]
            for entry in with_kind[:1]:
                guest["spec"]["disks"].remove(entry)
            self._log(uuid, f"virtio-blk {gone['serial']} detached")
            self._save()

    def attached_volumes(self, uuid: str) -> dict[str, int]:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] not in (PowerState.RUNNING, PowerState.PAUSED):
                return {}
            return {v: int(info["size"]) for v, info in guest.get("volumes", {}).items()}

    def volume_io_limits(self, uuid: str) -> dict[str, dict[str, int]]:
        """Volume id -> the I/O limits its disk got (fake only, for tests)."""
        with self._lock:
            guest = self._get(uuid) or {}
            return {v: dict(info.get("io_limits") or {})
                    for v, info in guest.get("volumes", {}).items()}

    def resize_volume(self, uuid: str, volume_id: str, size_bytes: int) -> None:
        with self._lock:
            guest = self._get(uuid)
            volumes = guest.get("volumes", {}) if guest else {}
            if volume_id not in volumes:
                raise HypervisorError(f"Volume {volume_id} is not attached to guest {uuid}")
            if volumes[volume_id]["size"] < size_bytes:
                volumes[volume_id]["size"] = size_bytes
                self._log(uuid, f"virtio-blk {volumes[volume_id]['serial']} capacity "
                                f"{size_bytes} bytes")
                self._save()

    # --- interfaces -----------------------------------------------------------------------

    def attach_nic(self, uuid: str, nic: GuestNic) -> None:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] not in (PowerState.RUNNING, PowerState.PAUSED):
                raise HypervisorError(f"Cannot attach port {nic.port_id} to guest {uuid}: "
                                      "it is not running")
            spec = guest["spec"]
            if nic.port_id in spec["nics"]:
                return
            spec["nics"].append(nic.port_id)
            spec["macs"].append(nic.mac)
            self._log(uuid, f"virtio-net {nic.mac} attached")
            self._save()

    def detach_nic(self, uuid: str, port_id: str, timeout: float = 30.0) -> None:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or port_id not in guest["spec"]["nics"]:
                return
            spec = guest["spec"]
            index = spec["nics"].index(port_id)
            spec["nics"].pop(index)
            mac = spec["macs"].pop(index)
            self._log(uuid, f"virtio-net {mac} detached")
            self._save()

    def attached_nics(self, uuid: str) -> list[str]:
        with self._lock:
            guest = self._get(uuid)
            if guest is None or guest["state"] not in (PowerState.RUNNING, PowerState.PAUSED):
                return []
            return list(guest.get("spec", {}).get("nics", []))

    def _move(self, uuid: str, verb: str, moves: dict[PowerState, PowerState]) -> None:
        with self._lock:
            guest = self._get(uuid)
            state = PowerState(guest["state"]) if guest else PowerState.NOSTATE
            if state not in moves:
                raise HypervisorError(f"Cannot {verb} guest {uuid}: it is not running")
            if moves[state] != state:
                self._log(uuid, verb)
                self._set(uuid, moves[state])
                self._save()


def _fake_size(disk: GuestDisk) -> int:
    """A fake volume's size: its file's apparent size if there is one, else 1 GiB."""
    try:
        return os.stat(disk.source).st_size if disk.kind == "file" else 1 << 30
    except OSError:
        return 1 << 30


def _fake_volume(disk: GuestDisk) -> dict[str, Any]:
    """What the fake guest keeps of a volume: where it is, its serial and size, and the
    I/O limits a real driver would throttle it to (tests read them)."""
    return {"source": disk.source, "serial": disk.serial, "size": _fake_size(disk),
            "io_limits": dict(disk.io_limits)}


def _limits_text(disk: GuestDisk) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(disk.io_limits.items()))

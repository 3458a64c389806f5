"""QEMU guests: daemonized ``qemu-system-x86_64`` processes, one runtime dir each.

Every guest lives in ``<instances_dir>/<uuid>/``::

    spec.json        the GuestSpec it was last started with
    qemu.pid         QEMU's pidfile (``-daemonize -pidfile``)
    qmp.sock         QMP (status, pause, reset, save, quit)
    console.sock     the serial console (server, no wait; for remote consoles)
    console.log      everything the serial console printed, appended across restarts
    qemu.log         what QEMU itself said during its current run (``-D``)
    saved-state      the guest's memory while it is suspended
    volumes.json     the attached volumes' hot-plug slots (PCIe root ports)
    nics.json        the NICs' slots (PCIe root ports of their own), by port id

QEMU daemonizes (and starts its own session), so guests outlive the agent: a new
``QemuDriver`` over the same directory finds them through the pidfiles. A pidfile is
trusted only if ``/proc/<pid>/cmdline`` carries the guest's uuid as an argument, which
guards against PID reuse after a host reboot; the driver never signals any other process.

Sockets are created with paths relative to the runtime dir (QEMU runs with that working
directory until it daemonizes) so that deep directories do not hit the 107-byte limit on
unix socket paths.

The accelerator (``kvm``, ``tcg`` or ``auto``) is described in ``docs/design/hypervisor.md``:
``auto`` boots a kernel under KVM once per host and falls back to TCG unless it works.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from onestack.drivers.hypervisor import qemu_diagnostics
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
from onestack.drivers.hypervisor.qmp import QmpClient, QmpError
from onestack.hostlink import capabilities as caps
from onestack.hostlink.diagnostics import GuestDiagnostics

log = logging.getLogger(__name__)

PIDFILE = "qemu.pid"
QMP_SOCKET = "qmp.sock"
CONSOLE_SOCKET = "console.sock"
CONSOLE_LOG = "console.log"
QEMU_LOG = "qemu.log"
SPEC_FILE = "spec.json"
SAVED_STATE = "saved-state"
SAVED_STATE_PARTIAL = "saved-state.partial"
VOLUMES_FILE = "volumes.json"
NICS_FILE = "nics.json"
#: Everything ``destroy`` removes; anything else (a disk someone put there) is left alone.
RUNTIME_FILES = (PIDFILE, QMP_SOCKET, CONSOLE_SOCKET, CONSOLE_LOG, QEMU_LOG, SPEC_FILE,
                 SAVED_STATE, SAVED_STATE_PARTIAL, VOLUMES_FILE, NICS_FILE)
#: The accelerator probe's verdict, beside the instances dir (one per host).
ACCEL_PROBE_FILE = "accel-probe.json"

MACHINE = "q35"
START_TIMEOUT = 60.0  # QEMU's parent exits once the daemon has initialised
EXIT_TIMEOUT = 10.0  # after ``quit`` or SIGKILL
QMP_TIMEOUT = 10.0
SAVE_TIMEOUT = 600.0  # memory to saved-state and back
#: Free PCIe root ports every guest gets for volume hot-plug (q35's root bus has no
#: hot-plug; each hot-plugged device needs a port of its own), besides one per volume
#: it boots with.
HOTPLUG_PORTS = 8
#: Free PCIe root ports every guest gets for NIC hot-plug (``attach_nic``), besides one
#: per NIC it starts with (every NIC is on a root port of its own, so each can be
#: unplugged); their chassis numbers start at ``NIC_CHASSIS_BASE`` (the volumes' ports
#: count from 1).
NIC_HOTPLUG_PORTS = 4
NIC_CHASSIS_BASE = 128
#: A NIC's QEMU names: its device and its netdev, by port id.
NIC_DEVICE_PREFIX = "nic-"
NIC_NETDEV_PREFIX = "net-"
#: A volume's QEMU names: its device (``-device ... id=``) and block node.
VOLUME_DEVICE_PREFIX = "volume-"
#: How long a hot unplug waits for the guest to release the device.
DETACH_TIMEOUT = 30.0
#: A graceful power off presses the ACPI power button again after this many seconds.
ACPI_REPRESS_INTERVAL = 5.0
#: How long the KVM probe may take to show a booted kernel.
PROBE_TIMEOUT = 20.0
#: Serial console lines that show a kernel ran to (nearly) the end of its boot.
PROBE_BOOTED = ("ONESTACK-TEST: init started", "Kernel panic", "VFS: ", "Run /init",
                "Freeing unused kernel")
#: What QEMU prints when KVM cannot run the guest.
KVM_FAILURES = ("KVM internal error", "emulation failure", "failed to set MSR",
                "kvm_buf_set_msrs")

SMBIOS_TYPE1_FIELDS = ("manufacturer", "product", "version", "serial", "uuid", "sku",
                       "family")

#: QMP run states (``query-status``) to Nova power states.
RUN_STATES = {
    "running": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "prelaunch": PowerState.PAUSED,
    "inmigrate": PowerState.PAUSED,
    "postmigrate": PowerState.PAUSED,
    "finish-migrate": PowerState.PAUSED,
    "save-vm": PowerState.PAUSED,
    "restore-vm": PowerState.PAUSED,
    "io-error": PowerState.PAUSED,
    "watchdog": PowerState.PAUSED,
    "debug": PowerState.PAUSED,
    "colo": PowerState.PAUSED,
    "suspended": PowerState.SUSPENDED,  # the guest's own S3 sleep
    "shutdown": PowerState.SHUTDOWN,
    "guest-panicked": PowerState.CRASHED,
    "internal-error": PowerState.CRASHED,
}
#: Run states of a process that holds no usable guest: ``spawn`` replaces it.
DEAD_RUN_STATES = ("shutdown", "guest-panicked", "internal-error")


def _opt(value: str | Path) -> str:
    """A value for QEMU's ``key=value,...`` option syntax (commas are doubled)."""
    return str(value).replace(",", ",,")


def _rbd_escape(value: str) -> str:
    """A value in QEMU's ``rbd:`` file name, where ``:`` separates options."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def spec_to_json(spec: GuestSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["config_drive"] = str(spec.config_drive) if spec.config_drive else None
    return data


def spec_from_json(data: dict[str, Any]) -> GuestSpec:
    data = dict(data)
    if "disk_path" in data:  # a guest started before disks were typed
        data["disks"] = [{"kind": "file", "source": str(data.pop("disk_path")),
                          "format": data.pop("disk_format", "qcow2")}]
    data["disks"] = [GuestDisk(**disk) for disk in data.get("disks", [])]
    if data.get("config_drive"):
        data["config_drive"] = Path(data["config_drive"])
    data["nics"] = [GuestNic(**nic) for nic in data.get("nics", [])]
    return GuestSpec(**data)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _tail_lines(path: Path, lines: int | None) -> str:
    """The file's text, or only its last ``lines`` lines (read from the end)."""
    try:
        with open(path, "rb") as f:
            if lines is None:
                return f.read().decode(errors="replace")
            if lines <= 0:
                return ""
            end = f.seek(0, os.SEEK_END)
            size, data = 8192, b""
            while True:
                start = max(0, end - size)
                f.seek(start)
                data = f.read(end - start)
                if start == 0 or data.count(b"\n") > lines:
                    break
                size *= 2
    except FileNotFoundError:
        return ""
    text = data.decode(errors="replace")
    keep = text.splitlines(keepends=True)[-lines:]
    return "".join(keep)


def _last_lines(path: Path, count: int = 8) -> str:
    return " / ".join(line.strip() for line in _tail_lines(path, count).splitlines()
                      if line.strip())


def _process_args(pid: int) -> list[bytes]:
    """``/proc/<pid>/cmdline`` split into arguments ([] for a gone or zombie process)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.rstrip(b"\0").split(b"\0") if raw else []


def qemu_version(binary: str) -> tuple[int, int, int]:
    """(major, minor, micro) from ``<binary> --version``."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise HypervisorError(f"cannot run {binary} --version: {exc}") from exc
    match = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise HypervisorError(f"cannot read the QEMU version from {out.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def _meminfo_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _cpu_info() -> dict[str, Any]:
    """Nova's ``cpu_info`` shape, from /proc/cpuinfo."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if not line.strip():
                break  # the first processor is enough
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    count = os.cpu_count() or 1
    return {
        "arch": platform.machine(),
        "model": fields.get("model name", ""),
        "vendor": fields.get("vendor_id", ""),
        "topology": {"cells": 1, "sockets": 1, "cores": count, "threads": 1},
        "features": sorted(fields.get("flags", "").split()),
    }


def _direct_io_works(path: Path) -> bool:
    """Whether ``path`` can be opened with O_DIRECT (tmpfs cannot): ``cache=none``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True


class QemuDriver(HypervisorDriver):
    """Real guests under QEMU (KVM or TCG); see the module docstring for the layout.

    ``accel``: ``kvm``, ``tcg`` or ``auto`` (probe once per host, cached in
    ``<instances_dir>/../accel-probe.json``). ``name_prefix`` is put before the uuid in
    QEMU's ``-name guest=`` (tests give each host one). ``probe_kernel``: what the KVM
    probe boots, a kernel (or a bootable ``.qcow2`` disk); default: the newest
    ``/boot/vmlinuz-*``, else the test image if it is in the build cache.
    """

    name = "qemu"
    capabilities: ClassVar[dict[str, bool]] = {
        caps.PAUSE: True, caps.SUSPEND: True, caps.SNAPSHOT: True, caps.RESIZE: True,
        caps.SERIAL_CONSOLE: True, caps.CONFIG_DRIVE: True, caps.RBD_DISKS: True,
        caps.LIVE_MIGRATION: False, caps.ATTACH_INTERFACE: True,
        caps.VOLUME_HOTPLUG: True, caps.DIAGNOSTICS: True, caps.RESCUE: True,
    }

    def __init__(self, instances_dir: Path, accel: str = "auto", name_prefix: str = "",
                 qemu_binary: str | None = None, probe_kernel: Path | None = None,
                 ceph_conf: str = "", ceph_user: str = "") -> None:
        if accel not in ("auto", "kvm", "tcg"):
            raise ValueError(f"accel must be auto, kvm or tcg, not {accel!r}")
        self.instances_dir = Path(instances_dir).resolve()
        self.requested_accel = accel
        self.name_prefix = name_prefix
        self.qemu_binary = qemu_binary
        self.probe_kernel = probe_kernel
        #: This host's Ceph client (``[ceph] conf``, ``user``), for an rbd disk that
        #: names none of its own.
        self.ceph_conf, self.ceph_user = ceph_conf, ceph_user
        #: Why ``accel`` is what it is (for logs and ``onestack admin`` output).
        self.accel_reason = ""
        self._accel: str | None = None
        self._version: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # guards _guest_locks
        self._accel_lock = threading.Lock()
        self._guest_locks: dict[str, threading.RLock] = {}

    # --- host ---------------------------------------------------------------------------

    @property
    def binary(self) -> str:
        if self.qemu_binary:
            return self.qemu_binary
        name = f"qemu-system-{platform.machine()}"
        found = shutil.which(name)
        if not found:
            raise HypervisorError(f"{name} not found; install the qemu-system-x86 package")
        self.qemu_binary = found
        return found

    @property
    def accel(self) -> str:
        """The accelerator guests get (``auto`` resolved, probing on first use)."""
        with self._accel_lock:
            if self._accel is None:
                self._accel, self.accel_reason = self._resolve_accel()
                log.info("hypervisor accelerator: %s (%s)", self._accel, self.accel_reason)
            return self._accel

    def host_info(self) -> HostInfo:
        if self._version is None:
            self._version = qemu_version(self.binary)
        major, minor, micro = self._version
        return HostInfo(hypervisor_type="QEMU",
                        hypervisor_version=major * 1_000_000 + minor * 1_000 + micro,
                        accel=self.accel, vcpus=os.cpu_count() or 1,
                        memory_mib=_meminfo_mib(), cpu_info=_cpu_info())

    # --- guests -------------------------------------------------------------------------

    def list_guests(self) -> dict[str, PowerState]:
        guests: dict[str, PowerState] = {}
        if not self.instances_dir.is_dir():
            return guests
        for entry in sorted(self.instances_dir.iterdir()):
            if entry.is_dir() and (entry / SPEC_FILE).is_file():
                guests[entry.name] = self.power_state(entry.name)
        return guests

    def power_state(self, uuid: str) -> PowerState:
        gdir = self._dir(uuid)
        if not gdir.is_dir():
            return PowerState.NOSTATE
        if self._pid(uuid) is not None:
            status = self._run_state(uuid)
            if status is not None:
                return RUN_STATES.get(status, PowerState.NOSTATE)
            if self._pid(uuid) is not None:
                # Alive, but the monitor did not answer (busy with another client).
                log.warning("guest %s: QMP did not answer; assuming it runs", uuid)
                return PowerState.RUNNING
        if (gdir / SAVED_STATE).is_file():
            return PowerState.SUSPENDED
        return PowerState.SHUTDOWN

    def spawn(self, spec: GuestSpec) -> None:
        with self._guest_lock(spec.uuid):
            pid = self._pid(spec.uuid)
            if pid is not None:
                status = self._run_state(spec.uuid)
                if status not in DEAD_RUN_STATES:
                    return
                log.info("guest %s: replacing its QEMU (state %s)", spec.uuid, status)
                self._force_off(spec.uuid, pid)
            if (self._dir(spec.uuid) / SAVED_STATE).is_file():
                self._restore(spec)  # like libvirt's managed save: start = restore
            else:
                self._start(spec)

    def power_off(self, uuid: str, timeout: float = 0) -> None:
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            if not gdir.is_dir():
                return
            # A suspended guest's saved memory is its power: off means dropping it.
            (gdir / SAVED_STATE).unlink(missing_ok=True)
            (gdir / SAVED_STATE_PARTIAL).unlink(missing_ok=True)
            pid = self._pid(uuid)
            if pid is None:
                return
            if timeout > 0 and self._acpi_shutdown(uuid, pid, timeout):
                return
            self._force_off(uuid, pid)

    def reboot(self, spec: GuestSpec, hard: bool, timeout: float = 0) -> None:
        uuid = spec.uuid
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            pid = self._pid(uuid)
            status = self._run_state(uuid) if pid is not None else None
            if pid is not None and (status is None or status in DEAD_RUN_STATES
                                    or self._saved_spec(uuid) != spec):
                # Crashed, unreachable, or the spec changed (new NICs, resize): a fresh
                # process is the only way to apply it.
                self._force_off(uuid, pid)
                pid = None
            if pid is None:
                (gdir / SAVED_STATE).unlink(missing_ok=True)
                self._start(spec)
                return
            if hard:
                try:
                    with self._qmp(uuid) as qmp:
                        qmp.execute("system_reset")
                        if status != "running":
                            qmp.execute("cont")
                except QmpError as exc:
                    raise self._error(uuid, f"Hard reboot failed: {exc}") from exc
                return
            if status != "running" or not self._acpi_shutdown(uuid, pid, timeout):
                if status == "running":
                    log.info("guest %s ignored the ACPI shutdown for %s s; forcing it off",
                             uuid, timeout)
                self._force_off(uuid, pid)
            self._start(spec)

    def pause(self, uuid: str) -> None:
        self._simple_command(uuid, "stop", "Pause")

    def unpause(self, uuid: str) -> None:
        self._simple_command(uuid, "cont", "Unpause")

    def suspend(self, uuid: str) -> None:
        """Save memory with a migration to ``exec:cat > saved-state.partial``, then quit.

        QEMU 7.2 has no ``file:`` migration URI (8.2 does); ``exec:`` works everywhere.
        """
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            pid = self._pid(uuid)
            if pid is None:
                if (gdir / SAVED_STATE).is_file():
                    return
                raise HypervisorError(f"Cannot suspend guest {uuid}: it is not running")
            partial = gdir / SAVED_STATE_PARTIAL
            partial.unlink(missing_ok=True)
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            was = None
            try:
                with self._qmp(uuid) as qmp:
                    was = qmp.execute("query-status")["status"]
                    qmp.execute("stop")
                    qmp.execute("migrate-set-parameters", {"max-bandwidth": 64 << 30})
                    qmp.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(partial))}"})
                    self._wait_migration(qmp, uuid)
            except (QmpError, HypervisorError) as exc:
                partial.unlink(missing_ok=True)
                if was == "running":
                    with contextlib.suppress(QmpError), self._qmp(uuid) as qmp:
                        qmp.execute("cont")
                raise self._error(uuid, f"Suspend failed: {exc}") from exc
            partial.replace(gdir / SAVED_STATE)
            self._force_off(uuid, pid)

    def resume(self, spec: GuestSpec) -> None:
        with self._guest_lock(spec.uuid):
            if self._pid(spec.uuid) is not None:
                return
            if not (self._dir(spec.uuid) / SAVED_STATE).is_file():
                raise HypervisorError(f"Cannot resume guest {spec.uuid}: "
                                      "it has no saved state (it was not suspended)")
            self._restore(spec)

    def rescue(self, spec: GuestSpec, rescue_disk: GuestDisk) -> None:
        """QEMU quits (no ACPI shutdown: Nova's rescue destroys the domain too) and
        starts again with the rescue disk as ``disk0`` (bootindex 0) and the guest's
        own disks after it; ``spec.json`` holds the rescue spec meanwhile, so a
        restarted agent adopts the rescued guest as it is."""
        self._restart_with(rescue_spec(spec, rescue_disk))

    def unrescue(self, spec: GuestSpec) -> None:
        self._restart_with(spec)

    def _restart_with(self, spec: GuestSpec) -> None:
        with self._guest_lock(spec.uuid):
            pid = self._pid(spec.uuid)
            if pid is not None:
                self._force_off(spec.uuid, pid)
            (self._dir(spec.uuid) / SAVED_STATE).unlink(missing_ok=True)
            self._start(spec)

    def destroy(self, uuid: str) -> None:
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            if not gdir.is_dir():
                return
            pid = self._pid(uuid)
            if pid is not None:
                self._force_off(uuid, pid)
            for name in RUNTIME_FILES:
                (gdir / name).unlink(missing_ok=True)
            try:
                gdir.rmdir()
            except OSError:
                log.warning("guest %s: left %s in place (files that are not the "
                            "hypervisor's: %s)", uuid, gdir,
                            ", ".join(p.name for p in gdir.iterdir()))
        with self._lock:
            self._guest_locks.pop(uuid, None)

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        gdir = self._dir(uuid)
        if not gdir.is_dir():
            raise HypervisorError(f"No guest {uuid} on this host")
        return _tail_lines(gdir / CONSOLE_LOG, lines)

    def diagnostics(self, uuid: str) -> GuestDiagnostics:
        """Measured from the guest's QEMU and this host (``qemu_diagnostics``)."""
        pid = self._pid(uuid)
        spec = self._saved_spec(uuid)
        if pid is None or spec is None:
            raise HypervisorError(f"Cannot get diagnostics of guest {uuid}: it is not "
                                  "running")
        try:
            with self._qmp(uuid) as qmp:
                status = str(qmp.execute("query-status")["status"])
                cpus = qmp.execute("query-cpus-fast")
                blockstats = qmp.execute("query-blockstats")
        except QmpError as exc:
            raise self._error(uuid, f"Diagnostics failed: {exc}") from exc
        return qemu_diagnostics.collect(
            pid=pid, power_state=int(RUN_STATES.get(status, PowerState.NOSTATE)),
            hypervisor="kvm" if self.accel == "kvm" else "qemu",
            memory_mib=spec.memory_mib, cpus=list(cpus or []),
            blockstats=list(blockstats or []),
            nics=[(nic.mac, nic.tap) for nic in spec.nics])

    def serial_socket(self, uuid: str) -> Path:
        return self._dir(uuid) / CONSOLE_SOCKET

    # --- volumes --------------------------------------------------------------------------

    def attach_volume(self, uuid: str, disk: GuestDisk) -> None:
        """``blockdev-add`` the volume's node, then ``device_add`` a virtio-blk-pci on a
        free root port with the volume's serial; the spec file gains the disk so a
        restart keeps it. A disk with ``io_limits`` first gets its ``throttle-group``
        (``object-add``), and its node sits under a ``throttle`` filter node in that
        group, which the device opens."""
        if not disk.volume_id:
            raise HypervisorError("Only a volume (a disk with a volume id) can be hot-plugged")
        with self._guest_lock(uuid):
            if self._pid(uuid) is None:
                raise HypervisorError(f"Cannot attach volume {disk.volume_id} to guest "
                                      f"{uuid}: it is not running")
            gdir = self._dir(uuid)
            ports = self._volume_ports(uuid)
            node, device = _volume_names(disk.volume_id)
            try:
                with self._qmp(uuid) as qmp:
                    if disk.volume_id in _plugged_volumes(qmp):
                        return
                    used = set(ports.values())
                    port = next((p for p in _port_ids(self._port_count(uuid))
                                 if p not in used), None)
                    if port is None:
                        raise HypervisorError(
                            f"Guest {uuid} has no free hot-plug slot for volume "
                            f"{disk.volume_id} (it has {len(ports)} volume(s) attached); "
                            "stop and start it to get more.")
                    top, blockdev = _volume_blockdev(disk)
                    group = _throttle_group(disk)
                    if group is not None:
                        with contextlib.suppress(QmpError):  # a half-made attempt's
                            qmp.execute("blockdev-del", {"node-name": top})
                        with contextlib.suppress(QmpError):
                            qmp.execute("object-del", {"id": group["id"]})
                        qmp.execute("object-add", group)
                    try:
                        _plug(qmp, ("blockdev-del", {"node-name": top}),
                              ("blockdev-add", blockdev),
                              {"driver": "virtio-blk-pci", "id": device, "drive": top,
                               "bus": port, "serial": disk.serial})
                    except QmpError:
                        if group is not None:
                            with contextlib.suppress(QmpError):
                                qmp.execute("object-del", {"id": group["id"]})
                        raise
            except QmpError as exc:
                raise self._error(uuid, f"Attaching volume {disk.volume_id} failed: "
                                  f"{exc}") from exc
            ports[disk.volume_id] = port
            _write_json(gdir / VOLUMES_FILE, ports)
            self._update_spec(uuid, add=disk)
            log.info("guest %s: volume %s attached on %s", uuid, disk.volume_id, port)

    def detach_volume(self, uuid: str, volume_id: str,
                      timeout: float = DETACH_TIMEOUT) -> None:
        """``device_del``, wait for ``DEVICE_DELETED`` (the guest released it), then
        ``blockdev-del`` (of its throttle node, if it has one, then of its node) and
        ``object-del`` of its throttle group; the spec file loses the disk."""
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            if not gdir.is_dir():
                return
            node, device = _volume_names(volume_id)
            throttle, group = _throttle_names(volume_id)
            if self._pid(uuid) is not None:
                self._unplug(uuid, device, lambda qmp: volume_id in _plugged_volumes(qmp),
                             [("blockdev-del", {"node-name": throttle}),
                              ("blockdev-del", {"node-name": node}),
                              ("object-del", {"id": group})], timeout,
                             f"volume {volume_id}", " (is it still booting, or is the disk "
                             "in use?)")
            ports = self._volume_ports(uuid)
            if ports.pop(volume_id, None) is not None:
                _write_json(gdir / VOLUMES_FILE, ports)
            self._update_spec(uuid, remove=volume_id)
            log.info("guest %s: volume %s detached", uuid, volume_id)

    def attached_volumes(self, uuid: str) -> dict[str, int]:
        """From QMP ``query-block``: each volume device and the size of its node."""
        if self._pid(uuid) is None:
            return {}
        try:
            with self._qmp(uuid) as qmp:
                return _plugged_volumes(qmp)
        except QmpError as exc:
            raise HypervisorError(f"Cannot list the volumes of guest {uuid}: {exc}") from exc

    def volume_io_limits(self, uuid: str) -> dict[str, dict[str, int]]:
        """From QMP: each attached volume's I/O limits as its throttle group holds them
        (``qom-get /objects/<group> limits``, in Cinder's keys); {} for one without."""
        if self._pid(uuid) is None:
            return {}
        out: dict[str, dict[str, int]] = {}
        back = {qemu: cinder for cinder, qemu in THROTTLE_LIMITS.items()}
        try:
            with self._qmp(uuid) as qmp:
                for volume_id, root in _volume_roots(qmp).items():
                    throttle, group = _throttle_names(volume_id)
                    limits = qmp.execute("qom-get", {"path": f"/objects/{group}",
                                                     "property": "limits"}) \
                        if root == throttle else {}
                    out[volume_id] = {back[k]: int(v) for k, v in limits.items()
                                      if k in back and v}
        except QmpError as exc:
            raise HypervisorError(f"Cannot read the volume limits of guest {uuid}: "
                                  f"{exc}") from exc
        return out

    def resize_volume(self, uuid: str, volume_id: str, size_bytes: int) -> None:
        """``block_resize`` of the volume's node: QEMU grows the file (or the RBD
        image) and the guest's virtio-blk sees a capacity change."""
        node, _ = _volume_names(volume_id)
        with self._guest_lock(uuid):
            try:
                with self._qmp(uuid) as qmp:
                    current = _plugged_volumes(qmp).get(volume_id)
                    if current is None:
                        raise HypervisorError(f"Volume {volume_id} is not attached to "
                                              f"guest {uuid}")
                    if current >= size_bytes:
                        return
                    # the device's node (a throttle filter's truncate reaches the file)
                    top = _volume_roots(qmp).get(volume_id, node)
                    qmp.execute("block_resize", {"node-name": top, "size": size_bytes})
            except QmpError as exc:
                raise self._error(uuid, f"Resizing volume {volume_id} failed: {exc}") from exc
        log.info("guest %s: volume %s grown to %d bytes", uuid, volume_id, size_bytes)

    def _volume_ports(self, uuid: str) -> dict[str, str]:
        try:
            data = json.loads((self._dir(uuid) / VOLUMES_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _port_count(self, uuid: str) -> int:
        spec = self._saved_spec(uuid)
        return _hotplug_port_count(spec) if spec is not None else 0

    def _update_spec(self, uuid: str, add: GuestDisk | None = None,
                     remove: str | None = None) -> None:
        """The saved spec with a volume added or removed (what the next start uses, and
        what ``reboot`` compares with)."""
        path = self._dir(uuid) / SPEC_FILE
        spec = self._saved_spec(uuid)
        if spec is None:
            return
        gone = add.volume_id if add is not None else remove
        disks = [d for d in spec.disks if not (d.volume_id and d.volume_id == gone)]
        if add is not None:
            disks.append(add)
        spec.disks = disks
        _write_json(path, spec_to_json(spec))

    def _volume_args(self, spec: GuestSpec) -> list[str]:
        """The hot-plug root ports, and each volume as a ``-blockdev`` node (under a
        ``throttle`` node and its ``-object throttle-group`` when it has I/O limits) and
        a virtio-blk-pci with its serial: a volume the guest boots from on the root
        bus, the others on root ports (so they can be unplugged)."""
        args: list[str] = []
        for i, port in enumerate(_port_ids(_hotplug_port_count(spec))):
            args += ["-device", f"pcie-root-port,id={port},chassis={i + 1}"]
        ports = _boot_volume_ports(spec)
        for disk in spec.disks:
            if not disk.volume_id:
                continue
            if disk.kind == "file" and not Path(disk.source).exists():
                raise HypervisorError(f"Volume {disk.volume_id}: {disk.source} does not exist")
            _, device = _volume_names(disk.volume_id)
            top, blockdev = _volume_blockdev(disk)
            group = _throttle_group(disk)
            if group is not None:
                args += ["-object", json.dumps(group, sort_keys=True)]
            args += ["-blockdev", json.dumps(blockdev, sort_keys=True)]
            where = f",bus={ports[disk.volume_id]}" if disk.volume_id in ports else ""
            boot = f",bootindex={disk.boot_index}" if disk.boot_index is not None else ""
            args += ["-device", f"virtio-blk-pci,id={device},drive={top},"
                                f"serial={_opt(disk.serial)}{where}{boot}"]
        return args

    def _unplug(self, uuid: str, device: str, plugged: Callable[[QmpClient], bool],
                backend_del: list[tuple[str, dict[str, Any]]], timeout: float, what: str,
                hint: str) -> None:
        """Hot-unplug: ``device_del`` (when ``plugged`` says the device is there), wait
        for ``DEVICE_DELETED`` (the guest let go of it), then delete its backend (block
        nodes and a throttle group, a netdev): each command in turn, one that finds
        nothing to delete is no error."""
        try:
            with self._qmp(uuid) as qmp:
                if plugged(qmp):
                    try:
                        qmp.execute("device_del", {"id": device})
                    except QmpError as exc:
                        if "in progress" not in str(exc):  # asked before
                            raise
                    if qmp.wait_event("DEVICE_DELETED", timeout, device=device) is None:
                        raise HypervisorError(f"Guest {uuid} did not release {what} "
                                              f"within {timeout:.0f} s{hint}")
            with self._qmp(uuid) as qmp:
                for command in backend_del:
                    with contextlib.suppress(QmpError):
                        qmp.execute(*command)
        except QmpError as exc:
            raise self._error(uuid, f"Detaching {what} failed: {exc}") from exc

    # --- interfaces ----------------------------------------------------------------------

    def attach_nic(self, uuid: str, nic: GuestNic) -> None:
        """``netdev_add`` the NIC's tap (made and bridged by the network driver), then
        ``device_add`` a virtio-net-pci with its MAC on a free NIC root port; the spec
        file gains the NIC so a restart keeps it."""
        with self._guest_lock(uuid):
            if self._pid(uuid) is None:
                raise HypervisorError(f"Cannot attach port {nic.port_id} to guest {uuid}: "
                                      "it is not running")
            gdir = self._dir(uuid)
            slots = self._nic_ports(uuid)
            netdev, device = _nic_names(nic.port_id)
            try:
                with self._qmp(uuid) as qmp:
                    if nic.port_id in _plugged_nics(qmp):
                        return
                    used = set(slots.values())
                    spec = self._saved_spec(uuid)
                    count = _nic_port_count(spec) if spec is not None else 0
                    slot = next((p for p in _nic_port_ids(count) if p not in used), None)
                    if slot is None:
                        raise HypervisorError(
                            f"Guest {uuid} has no free hot-plug slot for port {nic.port_id} "
                            f"(it has {len(slots)} NIC(s)); stop and start it to get more.")
                    _plug(qmp, ("netdev_del", {"id": netdev}),
                          ("netdev_add", {"type": "tap", "id": netdev, "ifname": nic.tap,
                                          "script": "no", "downscript": "no"}),
                          {"driver": "virtio-net-pci", "id": device, "netdev": netdev,
                           "mac": nic.mac, "bus": slot, "host_mtu": int(nic.mtu)})
            except QmpError as exc:
                raise self._error(uuid, f"Attaching port {nic.port_id} failed: {exc}") from exc
            slots[nic.port_id] = slot
            _write_json(gdir / NICS_FILE, slots)
            self._update_spec_nics(uuid, add=nic)
            log.info("guest %s: port %s attached on %s", uuid, nic.port_id, slot)

    def detach_nic(self, uuid: str, port_id: str, timeout: float = DETACH_TIMEOUT) -> None:
        """``device_del``, wait for ``DEVICE_DELETED`` (the guest let go), then
        ``netdev_del`` (QEMU closes the tap); the spec file loses the NIC."""
        with self._guest_lock(uuid):
            gdir = self._dir(uuid)
            if not gdir.is_dir():
                return
            netdev, device = _nic_names(port_id)
            if self._pid(uuid) is not None:
                self._unplug(uuid, device, lambda qmp: port_id in _plugged_nics(qmp),
                             [("netdev_del", {"id": netdev})], timeout, f"port {port_id}",
                             " (is it still booting?)")
            slots = self._nic_ports(uuid)
            if slots.pop(port_id, None) is not None:
                _write_json(gdir / NICS_FILE, slots)
            self._update_spec_nics(uuid, remove=port_id)
            log.info("guest %s: port %s detached", uuid, port_id)

    def attached_nics(self, uuid: str) -> list[str]:
        """From QMP ``qom-list /machine/peripheral``: the port of each NIC device."""
        if self._pid(uuid) is None:
            return []
        if not (self._dir(uuid) / NICS_FILE).is_file():
            # started before NICs had slots of their own: its NICs are the spec's
            spec = self._saved_spec(uuid)
            return [n.port_id for n in spec.nics] if spec is not None else []
        try:
            with self._qmp(uuid) as qmp:
                return sorted(_plugged_nics(qmp))
        except QmpError as exc:
            raise HypervisorError(f"Cannot list the NICs of guest {uuid}: {exc}") from exc

    def _nic_ports(self, uuid: str) -> dict[str, str]:
        try:
            data = json.loads((self._dir(uuid) / NICS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _update_spec_nics(self, uuid: str, add: GuestNic | None = None,
                          remove: str | None = None) -> None:
        path = self._dir(uuid) / SPEC_FILE
        spec = self._saved_spec(uuid)
        if spec is None:
            return
        gone = add.port_id if add is not None else remove
        spec.nics = [n for n in spec.nics if n.port_id != gone]
        if add is not None:
            spec.nics.append(add)
        _write_json(path, spec_to_json(spec))

    # --- processes ----------------------------------------------------------------------

    def _dir(self, uuid: str) -> Path:
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise HypervisorError(f"Invalid guest uuid {uuid!r}")
        return self.instances_dir / uuid

    @contextlib.contextmanager
    def _guest_lock(self, uuid: str) -> Iterator[None]:
        with self._lock:
            lock = self._guest_locks.setdefault(uuid, threading.RLock())
        with lock:
            yield

    def _pid(self, uuid: str) -> int | None:
        """The guest's QEMU PID if its pidfile names a live process that is this guest."""
        try:
            pid = int((self._dir(uuid) / PIDFILE).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid > 0 and self._is_guest(pid, uuid) else None

    @staticmethod
    def _is_guest(pid: int, uuid: str) -> bool:
        return uuid.encode() in _process_args(pid)

    def _wait_gone(self, pid: int, uuid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._is_guest(pid, uuid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _qmp(self, uuid: str, timeout: float = QMP_TIMEOUT) -> QmpClient:
        return QmpClient(self._dir(uuid) / QMP_SOCKET, timeout)

    def _run_state(self, uuid: str) -> str | None:
        """QMP's run state, or None when the monitor does not answer."""
        try:
            with self._qmp(uuid, timeout=5) as qmp:
                return str(qmp.execute("query-status")["status"])
        except QmpError as exc:
            log.debug("guest %s: query-status failed: %s", uuid, exc)
            return None

    def _saved_spec(self, uuid: str) -> GuestSpec | None:
        try:
            return spec_from_json(json.loads((self._dir(uuid) / SPEC_FILE).read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _error(self, uuid: str, message: str) -> HypervisorError:
        detail = _last_lines(self._dir(uuid) / QEMU_LOG)
        return HypervisorError(f"{message}: {detail}" if detail else message)

    def _simple_command(self, uuid: str, command: str, what: str) -> None:
        with self._guest_lock(uuid):
            if self._pid(uuid) is None:
                raise HypervisorError(f"Cannot {what.lower()} guest {uuid}: it is not running")
            try:
                with self._qmp(uuid) as qmp:
                    qmp.execute(command)
            except QmpError as exc:
                raise self._error(uuid, f"{what} failed: {exc}") from exc

    def _acpi_shutdown(self, uuid: str, pid: int, timeout: float) -> bool:
        """Press the ACPI power button, again every ``ACPI_REPRESS_INTERVAL`` seconds;
        True if the guest's QEMU exited within ``timeout``.

        A guest still booting has nothing listening to the button yet and loses the
        press (Nova's libvirt driver resends its shutdown request for the same reason).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._qmp(uuid) as qmp:
                    if qmp.execute("query-status")["status"] != "running":
                        return False  # a paused guest cannot hear the button
                    qmp.execute("system_powerdown")
            except QmpError as exc:
                if self._wait_gone(pid, uuid, 0):
                    return True  # powered off since the last press
                log.info("guest %s: ACPI shutdown not possible: %s", uuid, exc)
                return False
            left = deadline - time.monotonic()
            if self._wait_gone(pid, uuid, min(left, ACPI_REPRESS_INTERVAL)):
                return True
            if left <= ACPI_REPRESS_INTERVAL:
                return False

    def _force_off(self, uuid: str, pid: int) -> None:
        """QMP ``quit`` (QEMU flushes its disks), else SIGKILL to the verified PID."""
        try:
            with self._qmp(uuid, timeout=5) as qmp:
                qmp.execute("quit")
        except QmpError as exc:
            log.info("guest %s: QMP quit failed (%s); killing PID %d", uuid, exc, pid)
        if self._wait_gone(pid, uuid, EXIT_TIMEOUT):
            return
        if self._is_guest(pid, uuid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, uuid, EXIT_TIMEOUT):
            raise HypervisorError(f"QEMU (PID {pid}) of guest {uuid} does not die")

    def _drive_args(self, spec: GuestSpec) -> list[str]:
        """``-drive``/``-device`` pairs for the guest's disks, chosen by their kind: a
        file is checked and opened with O_DIRECT where the filesystem allows it; an
        ``rbd`` image is opened by QEMU's RBD client (raw, writeback cache)."""
        if not spec.disks:
            raise HypervisorError(f"Guest {spec.uuid} has no disk to boot from")
        args: list[str] = self._volume_args(spec)
        for i, disk in enumerate(spec.disks):
            if disk.volume_id:
                continue  # on the command line as -blockdev (_volume_args)
            if disk.kind == "file":
                path = Path(disk.source).resolve()
                if not path.exists():
                    raise HypervisorError(f"The {'boot ' if i == 0 else ''}disk {path} "
                                          "does not exist")
                cache = "none" if _direct_io_works(path) else "writeback"
                source = f"file={_opt(path)},format={disk.format}"
            elif disk.kind == "rbd":
                user, conf = disk.user or self.ceph_user, disk.conf or self.ceph_conf
                options = (f":id={_rbd_escape(user)}" if user else "") + \
                    (f":conf={_rbd_escape(conf)}" if conf else "")
                source = f"file={_opt(f'rbd:{disk.source}{options}')},format=raw"
                cache = "writeback"
            else:
                raise HypervisorError(f"This hypervisor cannot open a {disk.kind} disk")
            readonly = ",readonly=on" if disk.read_only else ""
            args += ["-drive", f"{source},if=none,id=disk{i},cache={cache},discard=unmap"
                               f"{readonly}"]
            boot = f",bootindex={disk.boot_index}" if disk.boot_index is not None else ""
            args += ["-device", f"virtio-blk-pci,drive=disk{i},id=virtio-disk{i}{boot}"]
        return args

    def _command_line(self, spec: GuestSpec, accel: str, incoming: Path | None) -> list[str]:
        gdir = self._dir(spec.uuid)
        smbios = {"manufacturer": "OpenStack Foundation", "product": "OpenStack Nova",
                  "serial": spec.uuid, "uuid": spec.uuid, "family": "Virtual Machine"}
        smbios.update(spec.smbios)
        unknown = sorted(set(smbios) - set(SMBIOS_TYPE1_FIELDS))
        if unknown:
            raise HypervisorError(f"Unknown SMBIOS type 1 fields: {', '.join(unknown)} "
                                  f"(known: {', '.join(SMBIOS_TYPE1_FIELDS)})")
        drives = self._drive_args(spec)
        args = [
            self.binary,
            "-name", f"guest={_opt(self.name_prefix + spec.uuid)}",
            "-uuid", spec.uuid,
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-machine", f"{MACHINE},accel={accel}",
            "-cpu", "host" if accel == "kvm" else "max",
            "-smp", str(spec.vcpus), "-m", str(spec.memory_mib),
            "-rtc", "base=utc",
            "-smbios", "type=1," + ",".join(f"{k}={_opt(v)}" for k, v in smbios.items()),
            "-qmp", f"unix:{QMP_SOCKET},server=on,wait=off",
            "-chardev", (f"socket,id=console0,path={CONSOLE_SOCKET},server=on,wait=off,"
                         f"logfile={_opt(gdir / CONSOLE_LOG)},logappend=on"),
            "-serial", "chardev:console0",
            *drives,
        ]
        if spec.config_drive:
            args += ["-drive", (f"file={_opt(Path(spec.config_drive).resolve())},format=raw,"
                                "if=none,id=cdrom0,media=cdrom,readonly=on"),
                     "-device", "ide-cd,drive=cdrom0,id=config-drive"]
        args += _nic_args(spec)
        args += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                 "-device", "virtio-rng-pci,rng=rng0"]
        if incoming is not None:
            args += ["-incoming", f"exec:cat {shlex.quote(str(incoming))}"]
        args += ["-msg", "timestamp=on", "-D", str(gdir / QEMU_LOG),
                 "-pidfile", str(gdir / PIDFILE), "-daemonize"]
        return args

    def _start(self, spec: GuestSpec, incoming: Path | None = None) -> int:
        """Start QEMU for ``spec``; return its PID once the daemon runs."""
        gdir = self._dir(spec.uuid)
        # Private: the console log and saved memory may hold the guest's secrets, and the
        # sockets give control of it.
        gdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        gdir.chmod(0o700)
        accel = self.accel
        args = self._command_line(spec, accel, incoming)
        _write_json(gdir / SPEC_FILE, spec_to_json(spec))
        _write_json(gdir / VOLUMES_FILE, _boot_volume_ports(spec))
        _write_json(gdir / NICS_FILE, _boot_nic_ports(spec))
        for name in (PIDFILE, QMP_SOCKET, CONSOLE_SOCKET):
            (gdir / name).unlink(missing_ok=True)
        log.debug("guest %s: %s", spec.uuid, shlex.join(args))
        qemu_log = gdir / QEMU_LOG
        # QEMU writes its messages to -D's file; errors found before it opens it (bad
        # options) go to stderr, which is the same file. No pipes: the daemon would keep
        # them open.
        with open(qemu_log, "wb") as out:
            try:
                proc = subprocess.Popen(args, cwd=gdir, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=out, start_new_session=True)
            except OSError as exc:
                raise HypervisorError(f"QEMU failed to start: {exc}") from exc
            try:
                rc = proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise self._error(spec.uuid, "QEMU did not start within "
                                  f"{START_TIMEOUT:.0f} s") from None
        if rc != 0:
            raise self._error(spec.uuid, f"QEMU failed to start (exit status {rc})")
        pid = self._pid(spec.uuid)
        if pid is None:
            raise self._error(spec.uuid, "QEMU started but exited at once")
        log.info("guest %s: QEMU started (PID %d, %s%s)", spec.uuid, pid, accel,
                 ", restoring saved state" if incoming else "")
        return pid

    def _restore(self, spec: GuestSpec) -> None:
        """Start from ``saved-state`` (incoming migration), continue, drop the file."""
        uuid = spec.uuid
        saved = self._dir(uuid) / SAVED_STATE
        pid = self._start(spec, incoming=saved)
        deadline = time.monotonic() + SAVE_TIMEOUT
        while True:
            status = self._run_state(uuid)
            if status is None and self._pid(uuid) is None:
                raise self._error(uuid, "Restoring the saved state failed")
            if status not in (None, "inmigrate"):
                break
            if time.monotonic() > deadline:
                self._force_off(uuid, pid)
                raise HypervisorError(f"Restoring guest {uuid} took over {SAVE_TIMEOUT} s")
            time.sleep(0.1)
        if status != "running":
            try:
                with self._qmp(uuid) as qmp:
                    qmp.execute("cont")
            except QmpError as exc:
                raise self._error(uuid, f"Resuming after restore failed: {exc}") from exc
        saved.unlink(missing_ok=True)

    def _wait_migration(self, qmp: QmpClient, uuid: str) -> None:
        deadline = time.monotonic() + SAVE_TIMEOUT
        while time.monotonic() < deadline:
            info = qmp.execute("query-migrate")
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                raise HypervisorError(f"saving memory {status}: "
                                      f"{info.get('error-desc', 'no reason given')}")
            time.sleep(0.1)
        with contextlib.suppress(QmpError):
            qmp.execute("migrate_cancel")
        raise HypervisorError(f"saving the memory of guest {uuid} took over "
                              f"{SAVE_TIMEOUT:.0f} s")

    # --- accelerator --------------------------------------------------------------------

    def _resolve_accel(self) -> tuple[str, str]:
        """(accel, why) for ``requested_accel``; ``auto`` probes once per host."""
        if self.requested_accel != "auto":
            return self.requested_accel, "configured"
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "tcg", "no usable /dev/kvm"
        cache = self.instances_dir.parent / ACCEL_PROBE_FILE
        key = self._probe_key()
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache.with_name(ACCEL_PROBE_FILE + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one probe per host, not one per process
            try:
                cached = json.loads(cache.read_text())
            except (OSError, ValueError):
                cached = {}
            if cached.get("key") == key and cached.get("accel") in ("kvm", "tcg"):
                return cached["accel"], f"{cached.get('reason', '')} (probed {cache})"
            target = self._probe_target()
            if target is None:
                # Not cached: a kernel may be there next time.
                return "tcg", ("no kernel to test KVM with (no /boot/vmlinuz-*, no probe "
                               "image given); using TCG")
            started = time.monotonic()
            works, detail = probe_kvm(self.binary, target)
            accel = "kvm" if works else "tcg"
            reason = (f"a kernel booted under KVM ({detail})" if works
                      else f"KVM cannot run a guest here: {detail}")
            _write_json(cache, {"accel": accel, "reason": reason, "key": key,
                                "probe": str(target),
                                "seconds": round(time.monotonic() - started, 1),
                                "probed_at": datetime.now(UTC).isoformat()})
            return accel, reason

    def _probe_key(self) -> dict[str, str]:
        """What the probe's verdict depends on: this QEMU and this host kernel."""
        version = ".".join(map(str, self._version or qemu_version(self.binary)))
        return {"qemu": f"{self.binary} {version}", "host_kernel": platform.release(),
                "cpu": _cpu_info()["model"]}

    def _probe_target(self) -> Path | None:
        """A kernel, else a bootable qcow2 disk, for the KVM probe."""
        if self.probe_kernel:
            return Path(self.probe_kernel)
        kernels = [k for k in Path("/boot").glob("vmlinuz-*") if os.access(k, os.R_OK)]
        if kernels:
            return max(kernels, key=lambda k: k.stat().st_mtime)
        return None

# --- NICs ----------------------------------------------------------------------------------


def _plug(qmp: QmpClient, backend_del: tuple[str, dict[str, Any]],
          backend_add: tuple[str, dict[str, Any]], device: dict[str, Any]) -> None:
    """Hot-plug: add a device's backend (a block node, a netdev; first deleting what a
    half-made earlier attempt left), then the device; the backend goes again if the
    device cannot be added."""
    with contextlib.suppress(QmpError):
        qmp.execute(*backend_del)
    qmp.execute(*backend_add)
    try:
        qmp.execute("device_add", device)
    except QmpError:
        with contextlib.suppress(QmpError):
            qmp.execute(*backend_del)
        raise


def _nic_names(port_id: str) -> tuple[str, str]:
    """(netdev id, device id) of a port's NIC."""
    return NIC_NETDEV_PREFIX + port_id, NIC_DEVICE_PREFIX + port_id


def _nic_port_ids(count: int) -> list[str]:
    return [f"nicslot{i}" for i in range(count)]


def _nic_port_count(spec: GuestSpec) -> int:
    """One root port per NIC the guest starts with, plus ``NIC_HOTPLUG_PORTS`` free."""
    return len(spec.nics) + NIC_HOTPLUG_PORTS


def _boot_nic_ports(spec: GuestSpec) -> dict[str, str]:
    return dict(zip([n.port_id for n in spec.nics], _nic_port_ids(len(spec.nics)),
                    strict=True))


def _nic_args(spec: GuestSpec) -> list[str]:
    """The NICs' root ports, and each NIC (a tap opened by name, a virtio-net-pci with
    the port's MAC and MTU) on one of them, in the spec's order (the guest's eth0,
    eth1...); every one can be unplugged (``detach_nic``)."""
    args: list[str] = []
    slots = _nic_port_ids(_nic_port_count(spec))
    for i, slot in enumerate(slots):
        args += ["-device", f"pcie-root-port,id={slot},chassis={NIC_CHASSIS_BASE + i}"]
    for nic, slot in zip(spec.nics, slots, strict=False):
        netdev, device = _nic_names(nic.port_id)
        args += ["-netdev", f"tap,id={netdev},ifname={_opt(nic.tap)},script=no,downscript=no",
                 "-device", (f"virtio-net-pci,netdev={netdev},id={device},mac={nic.mac},"
                             f"host_mtu={nic.mtu},bus={slot}")]
    return args


def _plugged_nics(qmp: QmpClient) -> set[str]:
    """The port ids of the NIC devices the guest has (``/machine/peripheral/nic-<id>``)."""
    found = set()
    for child in qmp.execute("qom-list", {"path": "/machine/peripheral"}):
        name = str(child.get("name", ""))
        if name.startswith(NIC_DEVICE_PREFIX) and "virtio-net" in str(child.get("type", "")):
            found.add(name[len(NIC_DEVICE_PREFIX):])
    return found


# --- volumes -------------------------------------------------------------------------------


def _volume_names(volume_id: str) -> tuple[str, str]:
    """(block node name, device id) of a volume: node names are at most 31 characters,
    so the node takes the id's hex digits."""
    return "vol" + volume_id.replace("-", "")[:28], VOLUME_DEVICE_PREFIX + volume_id


def _port_ids(count: int) -> list[str]:
    return [f"hotplug{i}" for i in range(count)]


def _hotplug_port_count(spec: GuestSpec) -> int:
    """One root port per volume the guest starts with, plus ``HOTPLUG_PORTS`` free."""
    return HOTPLUG_PORTS + sum(1 for d in spec.disks
                               if d.volume_id and d.boot_index is None)


def _boot_volume_ports(spec: GuestSpec) -> dict[str, str]:
    """The root port of each (non-boot) volume the guest starts with, in spec order."""
    volumes = [d.volume_id for d in spec.disks if d.volume_id and d.boot_index is None]
    return dict(zip(volumes, _port_ids(len(volumes)), strict=True))


def _blockdev(disk: GuestDisk, node: str) -> dict[str, Any]:
    """A volume's ``blockdev-add`` arguments: a file (qcow2 or raw; O_DIRECT where the
    filesystem allows it) or an RBD image opened by QEMU's own librbd client."""
    if disk.kind == "file":
        path = Path(disk.source)
        direct = _direct_io_works(path) if path.exists() else False
        protocol: dict[str, Any] = {"driver": "file", "filename": str(path)}
    elif disk.kind == "rbd":
        pool, _, image = disk.source.partition("/")
        if not pool or not image:
            raise HypervisorError(f"Volume {disk.volume_id}: {disk.source!r} is not "
                                  "<pool>/<image>")
        direct = False
        protocol = {"driver": "rbd", "pool": pool, "image": image}
        if disk.user:
            protocol["user"] = disk.user
        if disk.conf:
            protocol["conf"] = disk.conf
    else:
        raise HypervisorError(f"This hypervisor cannot open a {disk.kind} volume")
    fmt = disk.format if disk.format in ("qcow2", "raw") else "raw"
    return {"driver": fmt, "node-name": node, "read-only": disk.read_only,
            "discard": "unmap", "cache": {"direct": direct, "no-flush": False},
            "file": protocol}


def _throttle_names(volume_id: str) -> tuple[str, str]:
    """(throttle node name, throttle group id) of a volume with I/O limits."""
    digits = volume_id.replace("-", "")
    return "thr" + digits[:28], "qos" + digits


#: Cinder's front-end QoS keys -> QEMU's throttle limits (``ThrottleLimits``).
THROTTLE_LIMITS = {
    "total_bytes_sec": "bps-total", "read_bytes_sec": "bps-read",
    "write_bytes_sec": "bps-write", "total_iops_sec": "iops-total",
    "read_iops_sec": "iops-read", "write_iops_sec": "iops-write",
    "total_bytes_sec_max": "bps-total-max", "read_bytes_sec_max": "bps-read-max",
    "write_bytes_sec_max": "bps-write-max", "total_iops_sec_max": "iops-total-max",
    "read_iops_sec_max": "iops-read-max", "write_iops_sec_max": "iops-write-max",
    "size_iops_sec": "iops-size",
}


def _throttle_group(disk: GuestDisk) -> dict[str, Any] | None:
    """The ``object-add`` (and ``-object``) arguments of a volume's throttle group, or
    None when it has no I/O limits."""
    limits = {THROTTLE_LIMITS[k]: int(v) for k, v in disk.io_limits.items()
              if k in THROTTLE_LIMITS and int(v) > 0}
    if not limits:
        return None
    return {"qom-type": "throttle-group", "id": _throttle_names(disk.volume_id)[1],
            "limits": limits}


def _volume_blockdev(disk: GuestDisk) -> tuple[str, dict[str, Any]]:
    """(the node the device opens, its ``blockdev-add`` arguments): the volume's node,
    or a ``throttle`` node in the volume's throttle group over it (one tree: deleting
    the throttle node deletes the volume's node too)."""
    node, _ = _volume_names(disk.volume_id)
    blockdev = _blockdev(disk, node)
    if _throttle_group(disk) is None:
        return node, blockdev
    throttle, group = _throttle_names(disk.volume_id)
    return throttle, {"driver": "throttle", "node-name": throttle, "throttle-group": group,
                      "read-only": disk.read_only, "file": blockdev}


def _volume_backends(qmp: QmpClient) -> dict[str, dict[str, Any]]:
    """Volume id -> ``query-block``'s ``inserted`` of every volume device the guest has
    (a device added with ``drive=<node>`` shows as ``/machine/peripheral/<id>/...``)."""
    found: dict[str, dict[str, Any]] = {}
    prefix = f"/machine/peripheral/{VOLUME_DEVICE_PREFIX}"
    for backend in qmp.execute("query-block"):
        qdev = str(backend.get("qdev", ""))
        if not qdev.startswith(prefix):
            continue
        found[qdev[len(prefix):].split("/", 1)[0]] = backend.get("inserted") or {}
    return found


def _plugged_volumes(qmp: QmpClient) -> dict[str, int]:
    """Volume id -> size in bytes of every volume device the guest has."""
    return {volume_id: int((inserted.get("image") or {}).get("virtual-size", 0))
            for volume_id, inserted in _volume_backends(qmp).items()}


def _volume_roots(qmp: QmpClient) -> dict[str, str]:
    """Volume id -> the node its device opens (its throttle node, or its own)."""
    return {volume_id: str(inserted["node-name"])
            for volume_id, inserted in _volume_backends(qmp).items()
            if inserted.get("node-name")}


def probe_kvm(binary: str, target: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot ``target`` (a kernel, or a qcow2 disk) under KVM; (it works, what happened).

    A kernel alone boots to "VFS: Unable to mount root fs" and panics (``-no-reboot``
    makes QEMU exit then); the test image prints its init marker. Either shows the
    kernel ran through its whole boot. KVM failures show as QEMU refusing to start
    (``-cpu host`` it cannot set up), QMP run state ``internal-error``, or "emulation
    failure" on stderr.
    """
    with tempfile.TemporaryDirectory(prefix="onestack-kvm-probe-") as tmp:
        work = Path(tmp)
        serial, stderr_path = work / "serial.log", work / "qemu.log"
        args = [binary, "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
                "-machine", f"{MACHINE},accel=kvm", "-cpu", "host", "-m", "256", "-smp", "1",
                "-no-reboot", "-serial", f"file:{serial}",
                "-qmp", f"unix:{work / 'qmp.sock'},server=on,wait=off"]
        if target.suffix == ".qcow2":
            args += ["-drive", f"file={_opt(target)},format=qcow2,if=virtio,snapshot=on"]
        else:
            args += ["-kernel", str(target), "-append", "console=ttyS0 panic=-1"]
        with open(stderr_path, "wb") as err:
            try:
                proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            except OSError as exc:
                return False, f"cannot run {binary}: {exc}"
        try:
            return _watch_probe(proc, work, serial, stderr_path, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _watch_probe(proc: subprocess.Popen[bytes], work: Path, serial: Path, stderr_path: Path,
                 timeout: float) -> tuple[bool, str]:
    started = time.monotonic()
    next_status = started + 0.5

    def read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    while True:
        err, out = read(stderr_path), read(serial)
        failure = next((f for f in KVM_FAILURES if f in err), None)
        if failure:
            lines = [line.strip() for line in err.splitlines()
                     if any(f in line for f in KVM_FAILURES) or "error" in line]
            return False, f"QEMU reported {failure!r}: {' / '.join(lines[:3])}"
        booted = next((m for m in PROBE_BOOTED if m in out), None)
        if booted:
            return True, f"{booted!r} after {time.monotonic() - started:.1f} s"
        if proc.poll() is not None:
            lines = [line.strip() for line in err.splitlines() if line.strip()]
            return False, (f"QEMU exited with status {proc.returncode} before the kernel "
                           f"booted: {' / '.join(lines[-3:]) or 'no message'}")
        now = time.monotonic()
        if now >= next_status:
            next_status = now + 0.5
            with contextlib.suppress(QmpError), QmpClient(work / "qmp.sock", 2) as qmp:
                status = qmp.execute("query-status")["status"]
                if status in ("internal-error", "guest-panicked", "shutdown"):
                    return False, f"the guest stopped in state {status!r}"
        if now - started > timeout:
            return False, f"no kernel boot messages within {timeout:.0f} s under KVM"
        time.sleep(0.1)

"""A running QEMU guest's diagnostics, read from the guest's own QEMU and this host's
kernel, not estimated:

- vCPUs: QMP ``query-cpus-fast`` gives each vCPU's host thread; its CPU time is that
  thread's ``utime + stime`` in ``/proc/<pid>/task/<tid>/stat``;
- disks: QMP ``query-blockstats`` (bytes and requests read and written, failed
  requests), one entry per disk the guest has (named by its QEMU device id);
- NICs: the tap device's counters in ``/sys/class/net/<tap>/statistics``, turned to the
  guest's side (what the tap sent, the guest received), as libvirt reports them;
- memory: the configured size, and the QEMU process's resident memory (``VmRSS``) as
  what the guest holds on the host (there is no balloon device to ask the guest);
- uptime: seconds since the QEMU process started (``/proc/<pid>/stat`` field 22).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from onestack.hostlink.diagnostics import CpuStats, DiskStats, GuestDiagnostics, NicStats

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NIC_FIELDS = ("bytes", "packets", "errors", "dropped")


def _stat_fields(path: Path) -> list[str]:
    """A ``/proc/.../stat`` line's fields after the command name (field 3 on)."""
    text = path.read_text()
    return text[text.rindex(")") + 2:].split()


def thread_cpu_ns(pid: int, tid: int) -> int | None:
    try:
        fields = _stat_fields(Path(f"/proc/{pid}/task/{tid}/stat"))
    except (OSError, ValueError):
        return None
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15
    return (utime + stime) * 1_000_000_000 // _TICKS


def process_uptime(pid: int) -> int | None:
    try:
        start_ticks = int(_stat_fields(Path(f"/proc/{pid}/stat"))[19])  # field 22
        host_up = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(int(host_up - start_ticks / _TICKS), 0)


def process_rss_mib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tap_counters(tap: str, sysfs: Path = Path("/sys/class/net")) -> dict[str, int | None]:
    """The guest's view of its tap: ``rx_*`` is what the tap transmitted."""
    out: dict[str, int | None] = {}
    for guest_side, tap_side in (("rx", "tx"), ("tx", "rx")):
        for name in _NIC_FIELDS:
            key = f"{guest_side}_{'drop' if name == 'dropped' else name}"
            if name == "bytes":
                key = f"{guest_side}_octets"
            try:
                out[key] = int((sysfs / tap / "statistics" / f"{tap_side}_{name}")
                               .read_text())
            except (OSError, ValueError):
                out[key] = None
    return out


def disk_name(entry: dict[str, Any]) -> str:
    """A blockstats entry's name: its ``-drive`` id, else the device id in its qdev
    path (``/machine/peripheral/<id>/virtio-backend``)."""
    if entry.get("device"):
        return str(entry["device"])
    parts = str(entry.get("qdev") or "").split("/")
    if "peripheral" in parts and parts.index("peripheral") + 1 < len(parts):
        return parts[parts.index("peripheral") + 1]
    return str(entry.get("node-name") or "")


def disk_stats(blockstats: list[dict[str, Any]]) -> list[DiskStats]:
    disks = []
    for entry in blockstats:
        stats = entry.get("stats")
        name = disk_name(entry)
        if not isinstance(stats, dict) or not name or not (entry.get("qdev")
                                                           or entry.get("device")):
            continue
        failed = [stats.get(k) for k in ("failed_rd_operations", "failed_wr_operations",
                                         "failed_flush_operations")]
        disks.append(DiskStats(
            name=name, read_bytes=stats.get("rd_bytes"),
            read_requests=stats.get("rd_operations"), write_bytes=stats.get("wr_bytes"),
            write_requests=stats.get("wr_operations"),
            errors_count=sum(int(f) for f in failed if f is not None)
            if any(f is not None for f in failed) else None))
    return disks


def collect(*, pid: int, power_state: int, hypervisor: str, memory_mib: int,
            cpus: list[dict[str, Any]], blockstats: list[dict[str, Any]],
            nics: list[tuple[str, str]]) -> GuestDiagnostics:
    """``cpus``: QMP ``query-cpus-fast``; ``blockstats``: ``query-blockstats``;
    ``nics``: (mac, tap) in the guest's NIC order."""
    return GuestDiagnostics(
        power_state=power_state, hypervisor=hypervisor, hypervisor_os="linux",
        uptime=process_uptime(pid), memory_max_mib=memory_mib,
        memory_used_mib=process_rss_mib(pid),
        cpus=[CpuStats(id=int(c.get("cpu-index", i)),
                       time=thread_cpu_ns(pid, int(c["thread-id"]))
                       if c.get("thread-id") else None)
              for i, c in enumerate(cpus)],
        disks=disk_stats(blockstats),
        nics=[NicStats(mac_address=mac, name=tap, **tap_counters(tap))
              for mac, tap in nics])

"""This machine's ``uptime`` line, as the os-hypervisors uptime route answers it."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path


def local_uptime() -> str:
    """What ``uptime`` prints on this machine (Nova's libvirt driver returns exactly
    that); built from /proc when the command is missing."""
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5,
                             env={"LANG": "C", "PATH": "/usr/bin:/bin"}, check=True)
        return out.stdout.rstrip("\n")
    except (OSError, subprocess.SubprocessError):
        seconds = float(Path("/proc/uptime").read_text().split()[0])
        load = Path("/proc/loadavg").read_text().split()[:3]
        days, rest = divmod(int(seconds), 86400)
        now = dt.datetime.now().strftime("%H:%M:%S")
        return (f" {now} up {days} days, {rest // 3600}:{rest % 3600 // 60:02d},  "
                f"load average: {', '.join(load)}")

"""Ending daemons OneStack started (dnsmasq, QEMU) without ever hitting a stranger.

Daemons are found through pidfiles, and PIDs are reused: a pidfile left by a process
that died long ago may name someone else's process now. So a process is signalled only
through a pidfd opened first and only while its command line is still the one the
caller checked: once the pidfd is open, the PID cannot be handed to another process
behind our back, and a signal to a process that has exited meanwhile goes nowhere.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path


def cmdline(pid: int) -> list[str]:
    """A live process's argument list ([] if it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def read_pidfile(path: Path) -> int | None:
    """The PID in a pidfile (first word), None if missing or not a positive number."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def end_process(pid: int, argv: list[str], timeout: float = 5.0) -> bool:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``timeout`` seconds; each
    only while it runs ``argv`` (its command line as the caller checked it). True when
    it is gone (or was never that process)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if cmdline(pid) != argv:
                return True  # gone, a zombie, or not that process any more
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            if _wait_exit(fd, pid, timeout):
                return True
        return False
    finally:
        os.close(fd)


def _wait_exit(fd: int, pid: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:
        # A pidfd is readable once the process has exited (a zombie too).
        if poller.poll(50) or not cmdline(pid):
            return True
        if time.monotonic() > deadline:
            return False

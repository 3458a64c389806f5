"""``<state-dir>/server.lock``: which ``onestack up`` runs on a state directory, and
the host settings its host objects were made with.

``onestack up`` holds an exclusive ``flock`` on the file for as long as it runs (the
kernel drops it with the process, even after ``kill -9``; guests and dnsmasq never
inherit it) and writes its PID and its ``[host]`` naming and drivers into it. So a
second ``up`` on the same directory, and ``onestack down``, can tell that a server
runs there; and ``onestack down --purge`` removes host objects by the prefix and
drivers they were made with, even when those came from the environment of the ``up``
that made them rather than from ``onestack.toml``.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from onestack.common.config import HostConfig

LOCK_FILE = "server.lock"
#: The ``[host]`` settings recorded: what names and makes the host's objects.
RECORDED = ("name_prefix", "hypervisor_driver", "storage_driver", "network_driver", "l2_driver",
            "dhcp_driver", "l3_driver", "firewall_driver")


class ServerRunning(Exception):
    """A server holds the state directory's lock."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"A OneStack server{f' (PID {pid})' if pid else ''} is running "
                         f"on {state_dir}")


def hold(state_dir: Path, host: HostConfig) -> int:
    """Take the lock for this process and record its PID and host settings; returns the
    file descriptor, to keep open for as long as the server runs. Raises
    ``ServerRunning`` if another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _parse(os.pread(fd, 65536, 0)).get("pid")
        os.close(fd)
        raise ServerRunning(state_dir, pid if isinstance(pid, int) else None) from None
    record = {"pid": os.getpid(), "host": {k: getattr(host, k) for k in RECORDED}}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record, indent=1).encode() + b"\n", 0)
    os.fsync(fd)
    return fd


def running(state_dir: Path) -> int | None:
    """The PID of the server running on ``state_dir`` (0 if it did not say), or None if
    none runs there."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _parse(os.pread(fd, 65536, 0)).get("pid")
            return pid if isinstance(pid, int) else 0
        return None
    finally:
        os.close(fd)  # drops a shared lock taken above


def recorded_host(state_dir: Path) -> dict[str, str]:
    """The host settings the last ``onestack up`` recorded ({} if none did)."""
    try:
        host = _parse((state_dir / LOCK_FILE).read_bytes()).get("host")
    except OSError:
        return {}
    if not isinstance(host, dict):
        return {}
    return {k: v for k, v in host.items() if k in RECORDED and isinstance(v, str)}


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

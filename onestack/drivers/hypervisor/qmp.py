"""A small synchronous QMP client (QEMU's JSON monitor protocol over a unix socket).

The driver's QMP use is a handful of short request/response exchanges (``query-status``,
``stop``, ``cont``, ``system_reset``, ``migrate``, ``quit``, the volume hot-plug's
``blockdev-add``/``device_add``/``device_del``), one connection per operation, so a
blocking socket and ``json`` are all it needs; asynchronous events that arrive in
between are kept in ``QmpClient.events``, and ``wait_event`` waits for one (a hot
unplug's ``DEVICE_DELETED``).

QEMU's QMP socket serves one client at a time: keep connections short.

Unix socket paths are limited to 107 bytes; longer paths (deep test directories) are
reached through ``/proc/self/fd/<dirfd>/<name>``, which the kernel resolves without the
limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

#: sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_PATH = 107


class QmpError(Exception):
    """QEMU answered with an error, or the monitor could not be reached."""

    def __init__(self, message: str, error_class: str = "") -> None:
        self.error_class = error_class
        super().__init__(message)


def connect_unix(path: Path, timeout: float) -> socket.socket:
    """A connected stream socket to ``path``, however long the path is."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(path)) <= MAX_UNIX_PATH:
            sock.connect(os.fspath(path))
        else:
            dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
            try:
                sock.connect(f"/proc/self/fd/{dirfd}/{path.name}")
            finally:
                os.close(dirfd)
    except BaseException:
        sock.close()
        raise
    return sock


class QmpClient:
    """One QMP session: connect, negotiate capabilities, ``execute`` commands.

    Use as a context manager::

        with QmpClient(path) as qmp:
            status = qmp.execute("query-status")["status"]
    """

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        try:
            self._sock = connect_unix(path, timeout)
        except OSError as exc:
            raise QmpError(f"cannot connect to QMP socket {path}: {exc}") from exc
        self._file = self._sock.makefile("rwb")
        try:
            greeting = self._read()
            if "QMP" not in greeting:
                raise QmpError(f"unexpected QMP greeting: {greeting}")
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except (OSError, TimeoutError) as exc:
            raise QmpError(f"QMP read from {self.path} failed: {exc}") from exc
        if not line:
            raise QmpError(f"QMP connection {self.path} closed by QEMU")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QmpError(f"bad QMP message {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise QmpError(f"bad QMP message {line[:200]!r}")
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command``; return its ``return`` value or raise ``QmpError``.

        ``quit`` may close the connection before answering; that counts as success.
        """
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
        except (OSError, TimeoutError) as exc:
            raise QmpError(f"QMP write to {self.path} failed: {exc}") from exc
        while True:
            try:
                message = self._read()
            except QmpError:
                if command == "quit":
                    return {}
                raise
            if "event" in message:
                self.events.append(message)
                continue
            if "error" in message:
                error = message["error"]
                raise QmpError(f"QMP {command}: {error.get('desc', error)}",
                               error.get("class", ""))
            if "return" in message:
                return message["return"]

    def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any] | None:
        """The first event ``name`` whose ``data`` has these items (kept ones first, then
        arriving ones); None if none came within ``timeout`` seconds."""
        def matches(event: dict[str, Any]) -> bool:
            found = event.get("data") or {}
            return event.get("event") == name and all(found.get(k) == v
                                                      for k, v in data.items())

        for event in self.events:
            if matches(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._sock.settimeout(left)
                try:
                    message = self._read()
                except QmpError as exc:
                    if isinstance(exc.__cause__, TimeoutError):
                        return None
                    raise
                if "event" not in message:
                    continue
                if matches(message):
                    return message
                self.events.append(message)
        finally:
            self._sock.settimeout(self.timeout)

"""``HostDirectory``: the server's handles on its hosts, by host name.

The assembly puts the in-process host's handle here; the HTTP transport puts one per
remote host that connects. Services ask it for a host and get a ``ServerToHost`` (or
None: the host is not reachable from this server process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from onestack.hostlink.interfaces import ServerToHost


class HostDirectory:
    def __init__(self) -> None:
        self._hosts: dict[str, ServerToHost] = {}
        self._lock = threading.Lock()

    def add(self, handle: ServerToHost) -> None:
        with self._lock:
            self._hosts[handle.host] = handle

    def remove(self, host: str) -> None:
        with self._lock:
            self._hosts.pop(host, None)

    def get(self, host: str | None) -> ServerToHost | None:
        if not host:
            return None
        with self._lock:
            return self._hosts.get(host)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._hosts)

    def __contains__(self, host: object) -> bool:
        with self._lock:
            return host in self._hosts

    def notify(self, host: str | None) -> None:
        """Wake ``host`` (if this server has a handle on it); never raises."""
        handle = self.get(host)
        if handle is None:
            return
        try:
            handle.wake()
        except Exception:  # a host that cannot be woken converges at its next poll
            pass

    def notifier(self) -> Callable[[str | None], None]:
        return self.notify

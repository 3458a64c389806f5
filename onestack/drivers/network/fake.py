"""What the in-memory network drivers share: a record of calls, injected failures, and
their state kept in a JSON file under the state directory (so a restarted agent finds
its networks, routers and rules again).

Each fake (``l2/fake.py``, ``dhcp/fake.py``, ``l3/fake.py``, ``firewall/fake.py``)
validates its input as the real driver does, so the API tests meet the same refusals.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from onestack.drivers.network.base import DhcpHost, NetworkDriverError, NetworkSpec, SubnetSpec


class FakeRecord:
    """Calls, failures and the persisted state of one fake driver. ``interface``: the
    driver's abstract class (``fail_next`` accepts only its methods)."""

    def __init__(self, interface: type, state_dir: Path | None, file_name: str) -> None:
        self._interface = interface
        self._path = Path(state_dir) / file_name if state_dir is not None else None
        self.lock = threading.RLock()
        #: (method, id) of every call, in order.
        self.calls: list[tuple[str, str]] = []
        self._failures: dict[str, str] = {}

    def fail_next(self, method: str, message: str = "injected failure") -> None:
        """Make the next call of ``method`` raise NetworkDriverError."""
        if not callable(getattr(self._interface, method, None)):
            raise ValueError(f"no driver method {method!r}")
        self._failures[method] = message

    def enter(self, method: str, id_: str) -> None:
        """Record a call; raise if a failure was injected for it."""
        self.calls.append((method, id_))
        message = self._failures.pop(method, None)
        if message is not None:
            raise NetworkDriverError(message)

    def load(self) -> dict[str, Any] | None:
        if self._path is None or not self._path.exists():
            return None
        data: dict[str, Any] = json.loads(self._path.read_text())
        return data

    def save(self, data: dict[str, Any]) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self._path)

    def forget(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def network_from_dict(data: dict[str, Any]) -> NetworkSpec:
    data = dict(data)
    data["subnets"] = [SubnetSpec(**s) for s in data.get("subnets", [])]
    data["hosts"] = [DhcpHost(**h) for h in data.get("hosts", [])]
    return NetworkSpec(**data)

"""An in-memory network driver for tests and for running without root.

It keeps what the Linux driver would make (networks with their DHCP hosts, ports with
their taps) and, given a ``state_dir``, persists it to ``<state_dir>/network-fake.json``
so a restarted agent finds its networks again. Specs are validated as the Linux driver
validates them. Tests can look at ``networks``, ``ports``, ``hosts()`` and ``calls``, and
make the next call of a method fail with ``fail_next``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriver,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)
from onestack.drivers.network.dnsmasq import check_mac, hosts_file, opts_file
from onestack.drivers.network.names import Names, check_id

STATE_FILE = "network-fake.json"


def _network_from_dict(data: dict[str, Any]) -> NetworkSpec:
    data = dict(data)
    data["subnets"] = [SubnetSpec(**s) for s in data.get("subnets", [])]
    data["hosts"] = [DhcpHost(**h) for h in data.get("hosts", [])]
    return NetworkSpec(**data)


class FakeNetwork(NetworkDriver):
    name = "fake"

    def __init__(self, state_dir: Path | None = None, name_prefix: str = "",
                 **_ignored: object) -> None:
        self.names = Names(name_prefix)
        self._path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self._lock = threading.RLock()
        #: Network id -> the last spec ensured.
        self.networks: dict[str, NetworkSpec] = {}
        #: Port id -> its spec, while plugged.
        self.ports: dict[str, PortSpec] = {}
        #: (method, id) of every call, in order.
        self.calls: list[tuple[str, str]] = []
        self._failures: dict[str, str] = {}
        if self._path is not None and self._path.exists():
            data = json.loads(self._path.read_text())
            self.networks = {k: _network_from_dict(v) for k, v in data["networks"].items()}
            self.ports = {k: PortSpec(**v) for k, v in data["ports"].items()}

    # -- test helpers -----------------------------------------------------------------

    def fail_next(self, method: str, message: str = "injected failure") -> None:
        """Make the next call of ``method`` (e.g. "plug_port") raise NetworkDriverError."""
        if not callable(getattr(NetworkDriver, method, None)):
            raise ValueError(f"no driver method {method!r}")
        self._failures[method] = message

    def hosts(self, network_id: str) -> list[DhcpHost]:
        """The DHCP hosts the network's dnsmasq would serve now ([] if none)."""
        spec = self.networks.get(network_id)
        return list(spec.hosts) if spec else []

    # -- the interface ----------------------------------------------------------------

    def _enter(self, method: str, id_: str) -> None:
        self.calls.append((method, id_))
        message = self._failures.pop(method, None)
        if message is not None:
            raise NetworkDriverError(message)

    def _save(self) -> None:
        if self._path is None:
            return
        data = {"networks": {k: asdict(v) for k, v in self.networks.items()},
                "ports": {k: asdict(v) for k, v in self.ports.items()}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self._path)

    def ensure_network(self, spec: NetworkSpec) -> None:
        with self._lock:
            self._enter("ensure_network", spec.id)
            try:
                check_id("network", spec.id)
                if spec.dhcp_mac:
                    check_mac(spec.dhcp_mac)
                hosts_file(spec)
                opts_file(spec)
            except ValueError as exc:
                raise NetworkDriverError(f"network {spec.id}: {exc}") from exc
            self.networks[spec.id] = spec
            self._save()

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            self._enter("delete_network", network_id)
            if self.networks.pop(network_id, None) is not None:
                self._save()

    def plug_port(self, port: PortSpec) -> str:
        with self._lock:
            self._enter("plug_port", port.id)
            try:
                check_id("port", port.id)
                check_mac(port.mac)
            except ValueError as exc:
                raise NetworkDriverError(f"port {port.id}: {exc}") from exc
            if port.network_id not in self.networks:
                raise NetworkDriverError(f"network {port.network_id} has no bridge "
                                         f"({self.names.bridge(port.network_id)}) on this host")
            self.ports[port.id] = port
            self._save()
            return self.tap_name(port.id)

    def unplug_port(self, port_id: str) -> None:
        with self._lock:
            self._enter("unplug_port", port_id)
            if self.ports.pop(port_id, None) is not None:
                self._save()

    def tap_name(self, port_id: str) -> str:
        return self.names.tap(port_id)

    def list_networks(self) -> list[str]:
        with self._lock:
            return sorted(self.networks)

    def list_ports(self) -> list[str]:
        with self._lock:
            return sorted(self.ports)

    def metadata_socket(self, network_id: str) -> socket.socket | None:
        return None

    def cleanup(self) -> None:
        with self._lock:
            self._enter("cleanup", "")
            self.networks.clear()
            self.ports.clear()
            if self._path is not None:
                self._path.unlink(missing_ok=True)

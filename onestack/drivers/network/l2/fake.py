"""An in-memory L2 driver: the networks and taps the Linux one would make, kept in
``<state_dir>/network-l2-fake.json``. Tests look at ``networks``, ``ports`` and
``record.calls``, and make a call fail with ``record.fail_next``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from onestack.drivers.network.base import NetworkDriverError, NetworkSpec, PortSpec
from onestack.drivers.network.fake import FakeRecord, network_from_dict
from onestack.drivers.network.l2.base import L2Driver
from onestack.drivers.network.names import Names, check_id, check_mac

STATE_FILE = "network-l2-fake.json"


class FakeL2(L2Driver):
    name = "fake"
    capabilities = {"vxlan_networks": True, "vlan_networks": True,
                    "flat_networks": True}

    def __init__(self, state_dir: Path | None = None, name_prefix: str = "",
                 **_ignored: object) -> None:
        self.names = Names(name_prefix)
        self.record = FakeRecord(L2Driver, state_dir, STATE_FILE)
        #: Network id -> the last spec ensured.
        self.networks: dict[str, NetworkSpec] = {}
        #: Port id -> its spec, while plugged.
        self.ports: dict[str, PortSpec] = {}
        data = self.record.load()
        if data is not None:
            self.networks = {k: network_from_dict(v) for k, v in data["networks"].items()}
            self.ports = {k: PortSpec(**v) for k, v in data["ports"].items()}

    def _save(self) -> None:
        self.record.save({"networks": {k: asdict(v) for k, v in self.networks.items()},
                          "ports": {k: asdict(v) for k, v in self.ports.items()}})

    def ensure_network(self, spec: NetworkSpec) -> None:
        with self.record.lock:
            self.record.enter("ensure_network", spec.id)
            try:
                check_id("network", spec.id)
            except ValueError as exc:
                raise NetworkDriverError(f"network {spec.id}: {exc}") from exc
            self.networks[spec.id] = spec
            self._save()

    def delete_network(self, network_id: str) -> None:
        with self.record.lock:
            self.record.enter("delete_network", network_id)
            if self.networks.pop(network_id, None) is not None:
                self._save()

    def bridge_name(self, network_id: str) -> str:
        return self.names.bridge(network_id)

    def plug_port(self, port: PortSpec) -> str:
        with self.record.lock:
            self.record.enter("plug_port", port.id)
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
        with self.record.lock:
            self.record.enter("unplug_port", port_id)
            if self.ports.pop(port_id, None) is not None:
                self._save()

    def tap_name(self, port_id: str) -> str:
        return self.names.tap(port_id)

    def list_networks(self) -> list[str]:
        with self.record.lock:
            return sorted(self.networks)

    def list_ports(self) -> list[str]:
        with self.record.lock:
            return sorted(self.ports)

    def cleanup(self) -> None:
        with self.record.lock:
            self.record.enter("cleanup", "")
            self.networks.clear()
            self.ports.clear()
            self.record.forget()

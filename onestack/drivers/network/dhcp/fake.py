"""An in-memory DHCP driver: the hosts each network's dnsmasq would serve, kept in
``<state_dir>/network-dhcp-fake.json``. It refuses the specs the Linux one refuses
(``DhcpDriver.check``) and has no metadata socket. Tests look at ``networks`` and
``hosts()``, and make a call fail with ``record.fail_next``."""

from __future__ import annotations

import socket
from dataclasses import asdict
from pathlib import Path

from onestack.drivers.network.base import DhcpHost, NetworkSpec
from onestack.drivers.network.dhcp.base import DhcpDriver
from onestack.drivers.network.fake import FakeRecord, network_from_dict

STATE_FILE = "network-dhcp-fake.json"


class FakeDhcp(DhcpDriver):
    name = "fake"
    capabilities = {"dhcpv4": True, "slaac": True, "dhcpv6_stateless": True,
                    "dhcpv6_stateful": True, "metadata_service": False}

    def __init__(self, state_dir: Path | None = None, **_ignored: object) -> None:
        self.record = FakeRecord(DhcpDriver, state_dir, STATE_FILE)
        #: Network id -> the last spec served (networks with a DHCP port only).
        self.networks: dict[str, NetworkSpec] = {}
        data = self.record.load()
        if data is not None:
            self.networks = {k: network_from_dict(v) for k, v in data["networks"].items()}

    def hosts(self, network_id: str) -> list[DhcpHost]:
        """The DHCP hosts the network's dnsmasq would serve now ([] if none)."""
        spec = self.networks.get(network_id)
        return list(spec.hosts) if spec else []

    def _save(self) -> None:
        self.record.save({"networks": {k: asdict(v) for k, v in self.networks.items()}})

    def ensure_dhcp(self, spec: NetworkSpec) -> None:
        with self.record.lock:
            self.record.enter("ensure_dhcp", spec.id)
            self.check(spec)
            if spec.dhcp_mac:
                self.networks[spec.id] = spec
            else:
                self.networks.pop(spec.id, None)
            self._save()

    def remove_dhcp(self, network_id: str) -> None:
        with self.record.lock:
            self.record.enter("remove_dhcp", network_id)
            if self.networks.pop(network_id, None) is not None:
                self._save()

    def list_networks(self) -> list[str]:
        with self.record.lock:
            return sorted(self.networks)

    def metadata_socket(self, network_id: str) -> socket.socket | None:
        return None

    def cleanup(self) -> None:
        with self.record.lock:
            self.record.enter("cleanup", "")
            self.networks.clear()
            self.record.forget()

"""An in-memory firewall driver: the rule sets of this host's ports, kept in
``<state_dir>/network-firewall-fake.json``. It refuses what a real backend refuses and
claims every capability (the API tests exercise all of them). Tests look at ``ports``
and ``group_members``, and make a call fail with ``record.fail_next``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.fake import FakeRecord
from onestack.drivers.network.firewall.base import (
    AddressPair,
    FirewallDriver,
    PortRules,
    SecurityGroupRule,
)
from onestack.drivers.network.firewall.check import check_ports

STATE_FILE = "network-firewall-fake.json"


def port_rules_from_dict(data: dict[str, Any]) -> PortRules:
    data = dict(data)
    data["rules"] = [SecurityGroupRule(**r) for r in data.get("rules", [])]
    data["allowed_address_pairs"] = [AddressPair(**p)
                                     for p in data.get("allowed_address_pairs", [])]
    return PortRules(**data)


class FakeFirewall(FirewallDriver):
    name = "fake"
    capabilities = {"security_groups": True, "stateful_firewall": True, "remote_group": True,
                    "ipv6_filtering": True, "anti_spoofing": True,
                    "allowed_address_pairs": True, "port_security": True}

    def __init__(self, state_dir: Path | None = None, **_ignored: object) -> None:
        self.record = FakeRecord(FirewallDriver, state_dir, STATE_FILE)
        #: Port id -> its rule set, as last applied.
        self.ports: dict[str, PortRules] = {}
        self.group_members: dict[str, list[str]] = {}
        data = self.record.load()
        if data is not None:
            self.ports = {k: port_rules_from_dict(v) for k, v in data["ports"].items()}
            self.group_members = data["group_members"]

    def apply(self, ports: list[PortRules], group_members: dict[str, list[str]]) -> None:
        with self.record.lock:
            self.record.enter("apply", "")
            try:
                check_ports(ports, group_members)
            except ValueError as exc:
                raise NetworkDriverError(f"firewall: {exc}") from exc
            self.ports = {p.port_id: p for p in ports}
            self.group_members = {k: list(v) for k, v in group_members.items()}
            self.record.save({"ports": {k: asdict(v) for k, v in self.ports.items()},
                              "group_members": self.group_members})

    def list_ports(self) -> list[str]:
        with self.record.lock:
            return sorted(self.ports)

    def cleanup(self) -> None:
        with self.record.lock:
            self.record.enter("cleanup", "")
            self.ports.clear()
            self.group_members.clear()
            self.record.forget()

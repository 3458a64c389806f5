"""The firewall that filters nothing (Neutron's ``NoopFirewallDriver``): what a Linux
host runs until the real backend comes with the datapath issue. It declares no
capability, so the host reports that its ports are not filtered; it still refuses
malformed rule sets, so nothing the real one would refuse gets through today."""

from __future__ import annotations

from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.firewall.base import FirewallDriver, PortRules
from onestack.drivers.network.firewall.check import check_ports


class NoopFirewall(FirewallDriver):
    name = "noop"
    capabilities = {"security_groups": False, "stateful_firewall": False, "remote_group": False,
                    "ipv6_filtering": False, "anti_spoofing": False,
                    "allowed_address_pairs": False, "port_security": False}

    def __init__(self, **_ignored: object) -> None:
        pass

    def apply(self, ports: list[PortRules], group_members: dict[str, list[str]]) -> None:
        try:
            check_ports(ports, group_members)
        except ValueError as exc:
            raise NetworkDriverError(f"firewall: {exc}") from exc

    def list_ports(self) -> list[str]:
        return []

    def cleanup(self) -> None:
        pass

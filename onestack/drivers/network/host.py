"""This host's network: the L2, DHCP, L3 and firewall drivers together.

The agent calls the drivers through this one object, which knows the order the datapath
needs them in: a network's bridge before its DHCP port, DHCP gone before the bridge,
and at teardown routers and filters before DHCP and bridges. Each driver stays
reachable (``l2``, ``dhcp``, ``l3``, ``firewall``) for what concerns it alone.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from onestack.drivers.network.base import NetworkDriverError, NetworkSpec, PortSpec
from onestack.drivers.network.dhcp.base import DhcpDriver
from onestack.drivers.network.firewall.base import FirewallDriver
from onestack.drivers.network.l2.base import L2Driver
from onestack.drivers.network.l3.base import L3Driver


@dataclass
class HostNetwork:
    l2: L2Driver
    dhcp: DhcpDriver
    l3: L3Driver
    firewall: FirewallDriver

    @property
    def kinds(self) -> dict[str, L2Driver | DhcpDriver | L3Driver | FirewallDriver]:
        return {"l2": self.l2, "dhcp": self.dhcp, "l3": self.l3, "firewall": self.firewall}

    def drivers(self) -> dict[str, str]:
        """Each kind's driver name (``{"l2": "linux", ...}``)."""
        return {kind: driver.name for kind, driver in self.kinds.items()}

    @property
    def capabilities(self) -> dict[str, bool]:
        """The four drivers' declared capabilities in one dict (their names do not
        overlap), for the host to report."""
        merged: dict[str, bool] = {}
        for driver in self.kinds.values():
            merged.update(driver.capabilities)
        return merged

    # -- networks and ports -------------------------------------------------------------

    def ensure_network(self, spec: NetworkSpec) -> None:
        """The network's bridge, then its DHCP (or none without a DHCP port). A spec DHCP
        would refuse is refused before the bridge is touched."""
        self.dhcp.check(spec)
        self.l2.ensure_network(spec)
        self.dhcp.ensure_dhcp(spec)

    def delete_network(self, network_id: str) -> None:
        """DHCP (dnsmasq, namespace, leases), then the bridge."""
        self.dhcp.remove_dhcp(network_id)
        self.l2.delete_network(network_id)

    def plug_port(self, port: PortSpec) -> str:
        return self.l2.plug_port(port)

    def unplug_port(self, port_id: str) -> None:
        self.l2.unplug_port(port_id)

    def tap_name(self, port_id: str) -> str:
        return self.l2.tap_name(port_id)

    def list_networks(self) -> list[str]:
        """Network ids with a bridge or DHCP here. A bridge without an alias gives only
        a shortened id: it is dropped when a full id starting with it is known."""
        ids = set(self.l2.list_networks()) | set(self.dhcp.list_networks())
        return sorted(i for i in ids if not any(o != i and o.startswith(i) for o in ids))

    def list_ports(self) -> list[str]:
        return self.l2.list_ports()

    def metadata_socket(self, network_id: str) -> socket.socket | None:
        return self.dhcp.metadata_socket(network_id)

    def cleanup(self) -> None:
        """Remove everything this host made (teardown, ``onestack down --purge``):
        routers, filters, DHCP, then bridges and taps; every kind is tried, and the
        errors are raised together."""
        errors = []
        for kind in ("l3", "firewall", "dhcp", "l2"):
            try:
                self.kinds[kind].cleanup()
            except NetworkDriverError as exc:
                errors.append(f"{kind}: {exc}")
        if errors:
            raise NetworkDriverError("; ".join(errors))

"""The DHCP driver interface: DHCPv4, IPv6 router advertisements and DHCPv6, and the
metadata address, per network.

The Linux backend runs dnsmasq in a ``<p>qdhcp-<net>`` namespace joined to the network's
bridge (made by the L2 driver, which must have run first) by a veth pair carrying the
DHCP port's MAC and addresses and 169.254.169.254/32. Only the hosts in the spec get
leases; leases of hosts that left it are released. Every method is idempotent; failures
raise ``NetworkDriverError``.
"""

from __future__ import annotations

import abc
import ipaddress
import socket
from typing import ClassVar

from onestack.drivers.network.base import NetworkDriverError, NetworkSpec
from onestack.drivers.network.dhcp.dnsmasq import hosts_file, opts_file
from onestack.drivers.network.names import check_id, check_mac


class DhcpDriver(abc.ABC):
    name: str = ""
    #: What this backend can do (the host reports it): ``dhcpv4``, ``slaac``,
    #: ``dhcpv6_stateless``, ``dhcpv6_stateful``, ``metadata_service``
    #: (``metadata_socket`` gives a socket guests reach). Names are unique across the
    #: network kinds (``HostNetwork`` merges them).
    capabilities: ClassVar[dict[str, bool]] = {}

    def check(self, spec: NetworkSpec) -> None:
        """Refuse a spec that cannot be served (bad ids, MACs or addresses) before
        anything is touched; every backend refuses the same specs."""
        try:
            check_id("network", spec.id)
            if spec.dhcp_mac:
                check_mac(spec.dhcp_mac)
            for host in spec.hosts:
                check_mac(host.mac)
            for raw in spec.dhcp_ips:
                ipaddress.ip_address(raw)
            hosts_file(spec)
            opts_file(spec)
        except ValueError as exc:
            raise NetworkDriverError(f"network {spec.id}: {exc}") from exc

    @abc.abstractmethod
    def ensure_dhcp(self, spec: NetworkSpec) -> None:
        """Serve the network as the spec says: with a DHCP port (``dhcp_mac``), its
        namespace, addresses and dnsmasq (hosts rewritten and reloaded when changed, stale
        leases released); without one, all of that removed. The network's bridge must
        exist."""

    @abc.abstractmethod
    def remove_dhcp(self, network_id: str) -> None:
        """Stop serving the network: dnsmasq, the namespace (once no process of ours is
        left in it), the veth and the leases."""

    @abc.abstractmethod
    def list_networks(self) -> list[str]:
        """Network ids served (with a DHCP namespace) on this host."""

    @abc.abstractmethod
    def metadata_socket(self, network_id: str) -> socket.socket | None:
        """A listening TCP socket on 169.254.169.254:80 inside the network's DHCP
        namespace (None if this backend has none). The caller serves it; the peer
        address of each connection is the guest's fixed IP on that network."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove everything DHCP this host (its name prefix, its state directory) made:
        at teardown only."""

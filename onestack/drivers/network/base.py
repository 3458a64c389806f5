"""The host network driver interface: bridges, taps, DHCP and the metadata address.

Names follow Neutron's (``brq<net[:11]>``, ``tap<port[:11]>``, ``qdhcp-<net>``), preceded
by the host's ``name_prefix`` (interface names are cut to Linux's 15 characters by
shortening the id part). Per network: a bridge; a ``qdhcp-`` namespace joined to it by a
veth pair, holding the DHCP port's addresses and 169.254.169.254/32, with dnsmasq serving
DHCPv4 (static host entries only, ``--no-ping``, the network MTU, a classless route to
the metadata address via the DHCP port) and IPv6 router advertisements for SLAAC subnets.
Per port: a persistent tap on the bridge, which QEMU opens by name.

Routers, floating IPs and security groups come later (the datapath issue) and hook onto
the same bridges and taps. Every method is idempotent. Failures raise
``NetworkDriverError``.
"""

from __future__ import annotations

import abc
import socket
from dataclasses import dataclass, field


class NetworkDriverError(Exception):
    """A host network operation failed; the message is shown to the user in ``fault``."""


@dataclass
class SubnetSpec:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    #: IPv6 only: Neutron's modes ("slaac", "dhcpv6-stateless", "dhcpv6-stateful" or None).
    ipv6_ra_mode: str | None = None
    ipv6_address_mode: str | None = None
    dns_nameservers: list[str] = field(default_factory=list)
    #: [{"destination": cidr, "nexthop": ip}]
    host_routes: list[dict[str, str]] = field(default_factory=list)


@dataclass
class DhcpHost:
    """A static DHCP entry: one port's MAC and its fixed addresses."""

    port_id: str
    mac: str
    ips: list[str]
    hostname: str = ""


@dataclass
class NetworkSpec:
    id: str
    mtu: int
    subnets: list[SubnetSpec]
    #: The network's DHCP port (device_owner "network:dhcp"); None: no DHCP here.
    dhcp_mac: str | None = None
    dhcp_ips: list[str] = field(default_factory=list)
    #: Every compute port on the network that should get a lease.
    hosts: list[DhcpHost] = field(default_factory=list)


@dataclass
class PortSpec:
    id: str
    network_id: str
    mac: str
    mtu: int


class NetworkDriver(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def ensure_network(self, spec: NetworkSpec) -> None:
        """Create or update the network's bridge, DHCP namespace and dnsmasq (its host
        list is rewritten and dnsmasq reloaded when it changed)."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove the bridge, the namespace, dnsmasq and its leases."""

    @abc.abstractmethod
    def plug_port(self, port: PortSpec) -> str:
        """Create the port's tap on its network's bridge (the network must exist);
        returns the tap's name."""

    @abc.abstractmethod
    def unplug_port(self, port_id: str) -> None:
        """Remove the tap (and any DHCP lease of its MAC is released by the next
        ``ensure_network`` without that host)."""

    @abc.abstractmethod
    def tap_name(self, port_id: str) -> str: ...

    @abc.abstractmethod
    def list_networks(self) -> list[str]:
        """Network ids with a bridge or DHCP namespace on this host (to find leftovers)."""

    @abc.abstractmethod
    def list_ports(self) -> list[str]:
        """Port ids (11-character prefixes are enough) with a tap on this host."""

    @abc.abstractmethod
    def metadata_socket(self, network_id: str) -> socket.socket | None:
        """A listening TCP socket on 169.254.169.254:80 inside the network's DHCP
        namespace (None if this backend has none). The caller serves it; the peer
        address of each connection is the guest's fixed IP on that network."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove everything this host (its name prefix) created: at teardown only."""

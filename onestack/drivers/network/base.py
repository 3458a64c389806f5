"""What the host network drivers share: the network and port specs they are given, and
their one error.

The host's network is four drivers, one per concern, as Neutron keeps ``agent/l2``,
``agent/dhcp``, ``agent/l3`` and its firewall drivers apart (``host.py`` puts them
together in the order the datapath needs):

    l2/        bridges, taps, VXLAN between hosts              ``L2Driver``
    dhcp/      dnsmasq, router advertisements, the ``qdhcp-``  ``DhcpDriver``
               namespace and the metadata address
    l3/        routers: ``qrouter-`` namespaces, SNAT,         ``L3Driver``
               floating IPs
    firewall/  security groups per port                       ``FirewallDriver``

Each has ``base.py`` (the interface), ``linux.py`` (the real one, where there is one) and
``fake.py`` (in memory, for tests and running without root). Names follow Neutron's
(``names.py``); every method is idempotent; failures raise ``NetworkDriverError``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from onestack.drivers.network.dhcp.base import DhcpDriver
    from onestack.drivers.network.firewall.base import FirewallDriver
    from onestack.drivers.network.l2.base import L2Driver
    from onestack.drivers.network.l3.base import L3Driver


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
    #: Addresses the host itself holds on the network's bridge ("203.0.113.1/24"): the
    #: external network's gateway in the all-in-one mode, so the host's shell reaches
    #: floating IPs. Empty: the bridge has no address (every tenant network).
    host_addresses: list[str] = field(default_factory=list)
    #: Masquerade what comes from the subnets of ``host_addresses`` and leaves by
    #: another interface of the host (its default route): guests behind routers reach
    #: beyond the host. Off unless ``[host] external_masquerade``.
    masquerade: bool = False
    #: A real interface of the host joined to the network's bridge (the flat provider
    #: mapping of the external network, ``[host] external_interface``): never created,
    #: renamed or deleted, only enslaved, and released (``nomaster``) at removal.
    uplink: str = ""
    #: "flat", "vxlan", ... and the segment (VNI) where it has one: a ``vxlan`` network
    #: with a VNI gets a VXLAN device on its bridge (where the L2 driver has a tunnel
    #: address), flooding to ``peers``.
    network_type: str = "flat"
    segmentation_id: int | None = None
    #: Tunnel addresses of the other hosts that have a port on the network (the VXLAN
    #: device's head-end replication list: one all-zero FDB entry each).
    peers: list[str] = field(default_factory=list)
    #: MAC -> tunnel address of the network's ports on those hosts (l2population's
    #: unicast entries: their frames go to that host alone instead of every peer).
    remote_macs: dict[str, str] = field(default_factory=dict)


@dataclass
class PortSpec:
    id: str
    network_id: str
    mac: str
    mtu: int


class NetworkDriver(Protocol):
    """What the agent calls: the host's network as a whole. ``host.HostNetwork`` (the
    four drivers together, built by ``network.load``) is the implementation; see it and
    each kind's ``base.py`` for what the methods do. Routers and security groups are
    reached through their drivers (``l3``, ``firewall``)."""

    l2: L2Driver
    dhcp: DhcpDriver
    l3: L3Driver
    firewall: FirewallDriver

    @property
    def capabilities(self) -> dict[str, bool]: ...

    def ensure_network(self, spec: NetworkSpec) -> None: ...

    def delete_network(self, network_id: str) -> None: ...

    def plug_port(self, port: PortSpec) -> str: ...

    def unplug_port(self, port_id: str) -> None: ...

    def tap_name(self, port_id: str) -> str: ...

    def list_networks(self) -> list[str]: ...

    def list_ports(self) -> list[str]: ...

    def metadata_socket(self, network_id: str) -> socket.socket | None: ...

    def cleanup(self) -> None: ...

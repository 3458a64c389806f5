"""The L3 driver interface: Neutron's routers on this host.

A router is a namespace ``<p>qrouter-<router>`` with a ``qr-<port>`` link on each tenant
subnet it is attached to and a ``qg-<port>`` link on the external network, each a veth
whose other end joins the network's bridge (made by the L2 driver first). Inside it:
forwarding on, the default route via the external subnet's gateway, the static routes
(``router set --route``), SNAT of tenant IPv4 to the gateway address (``enable_snat``),
and each floating IP as a 1:1 DNAT + SNAT to its fixed address (the floating address
sits on ``qg-`` so the router answers ARP for it). IPv6 is routed, never NATed: the
router advertises its tenant IPv6 prefixes on their ``qr-`` legs (router
advertisements with a non-zero router lifetime, so guests take it as their default
router), and, where the host itself is the external network's gateway, the host routes
each of those prefixes via the gateway port's IPv6 address. On legs whose network has no
DHCP (so no metadata listener of its own), 169.254.169.254:80 is redirected to a socket
in the router's namespace (``metadata_socket``) that the agent's metadata proxy serves.

``ensure_router`` is level-triggered: the spec is the whole router, whatever it does not
name (ports, routes, floating IPs) is removed, and NAT rules are replaced in one
transaction, so no packet ever meets half of them. Every method is idempotent; failures
raise ``NetworkDriverError``.
"""

from __future__ import annotations

import abc
import socket
from dataclasses import dataclass, field
from typing import ClassVar

#: The port, in each router's namespace, that guests' metadata requests are redirected
#: to (the proxy's listening socket).
METADATA_PORT = 9697


@dataclass
class RouterAdvert:
    """An IPv6 prefix a ``qr-`` leg advertises (the subnet's ``ipv6_ra_mode``)."""

    prefix: str
    #: "slaac" (A flag: addresses by SLAAC) or "dhcpv6-stateless" (A and O flags).
    mode: str = "slaac"
    dns_nameservers: list[str] = field(default_factory=list)


@dataclass
class RouterPort:
    """One port of a router: ``qr-`` on a tenant network, ``qg-`` on the external one."""

    id: str
    network_id: str
    mac: str
    #: Its addresses with their subnets' prefix lengths ("10.0.0.1/24", "fd00::1/64").
    addresses: list[str]
    mtu: int = 1500
    #: ``qr-`` only: the IPv6 prefixes advertised on this leg.
    advertise: list[RouterAdvert] = field(default_factory=list)
    #: ``qr-`` only: redirect 169.254.169.254:80 arriving here to the metadata socket
    #: (the network has no DHCP namespace to answer it).
    metadata: bool = False


@dataclass
class Route:
    """A static route (``router set --route destination=...,gateway=...``)."""

    destination: str
    nexthop: str


@dataclass
class FloatingIp:
    """A floating IP associated with a fixed address behind this router."""

    floating_ip: str
    fixed_ip: str
    id: str = ""


@dataclass
class RouterSpec:
    id: str
    #: Ports on tenant subnets (``router add subnet``).
    interfaces: list[RouterPort] = field(default_factory=list)
    #: The port on the external network; None: no gateway (no SNAT, no floating IPs).
    gateway: RouterPort | None = None
    #: The external subnets' gateway addresses: the router's default routes (one per IP
    #: version at most).
    external_gateways: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    #: Translate tenant IPv4 leaving by the gateway port to the gateway's address.
    enable_snat: bool = True
    floating_ips: list[FloatingIp] = field(default_factory=list)
    #: The host (the calling namespace) holds the external network's IPv6 gateway: it
    #: routes each tenant IPv6 prefix of the router via the gateway port's IPv6 address.
    host_ipv6_routes: bool = False


class L3Driver(abc.ABC):
    name: str = ""
    #: What this backend can do (the host reports it; the API refuses what no host
    #: can do): ``routers`` (routing between a router's subnets), ``static_routes``,
    #: ``snat``, ``floating_ips`` (1:1 DNAT + SNAT, with hairpin), ``ipv6_routing``.
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def ensure_router(self, spec: RouterSpec) -> None:
        """Create or update the router to be exactly the spec (the networks of its ports
        must have their bridges)."""

    @abc.abstractmethod
    def remove_router(self, router_id: str) -> None:
        """Remove the router: its namespace, ports and rules."""

    @abc.abstractmethod
    def list_routers(self) -> list[str]:
        """Router ids with a namespace on this host (to find leftovers)."""

    def metadata_socket(self, router_id: str) -> socket.socket | None:
        """A TCP socket bound in the router's namespace to ``METADATA_PORT``, where the
        legs with ``metadata`` send guests' requests (None: this backend has none). The
        caller owns it (the metadata proxy serves it)."""
        return None

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove every router this host (its name prefix) made: at teardown only."""

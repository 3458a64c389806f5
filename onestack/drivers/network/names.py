"""Names of the links and namespaces the Linux network driver makes (Neutron's, prefixed).

    <p>brq<net>     the network's bridge (host namespace)
    <p>tap<port>    a port's persistent tap, on the bridge (host namespace)
    <p>dh-<net>     the DHCP veth's bridge end (host namespace)
    <p>ns-<net>     the DHCP veth's other end, inside the DHCP namespace
    <p>qdhcp-<net>  the DHCP namespace (full network id: namespace names may be long)
    <p>qrouter-<r>  a router's namespace (full router id)
    <p>qr-<port>    a router's port on a tenant network, inside its namespace
    <p>qg-<port>    a router's port on the external network, inside its namespace
    <p>rt-<port>    the bridge end of a router port's veth (host namespace)
    <p>vx-<net>     the network's VXLAN device, on its bridge (host namespace)

``<p>`` is the host's name prefix ("" in production, a few characters per simulated host
in tests). Interface names are limited to 15 characters, so the id part is cut to
``min(11, 15 - len(p) - 3)`` characters (11 as in Neutron when there is no prefix). The
full id is kept in the link's alias (``ip link set ... alias <id>``), so listings give
full ids back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Linux's IFNAMSIZ minus the terminating NUL.
IFNAME_MAX = 15
#: Neutron's id length in interface names.
ID_CHARS = 11
#: The shortest id part we accept (a longer prefix would make collisions likely).
MIN_ID_CHARS = 6

BRIDGE = "brq"
TAP = "tap"
DHCP_BRIDGE_END = "dh-"
DHCP_NAMESPACE_END = "ns-"
DHCP_NAMESPACE = "qdhcp-"
ROUTER_NAMESPACE = "qrouter-"
ROUTER_INTERNAL = "qr-"
ROUTER_GATEWAY = "qg-"
ROUTER_BRIDGE_END = "rt-"
VXLAN = "vx-"

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")
_PREFIX = re.compile(r"^[0-9A-Za-z_-]*$")


def check_id(kind: str, value: str) -> str:
    """Refuse ids that could not safely become a link name or a path component."""
    if not _ID.match(value):
        raise ValueError(f"invalid {kind} id {value!r}: letters, digits, '-' and '_' only")
    return value


def check_mac(mac: str) -> str:
    """The MAC in lower case; refuses anything but six colon-separated octets."""
    value = mac.lower()
    if not _MAC.match(value):
        raise ValueError(f"invalid MAC address {mac!r}")
    return value


@dataclass(frozen=True)
class Names:
    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"invalid name prefix {self.prefix!r}")
        if self.id_chars < MIN_ID_CHARS:
            raise ValueError(f"name prefix {self.prefix!r} is too long: at most "
                             f"{IFNAME_MAX - 3 - MIN_ID_CHARS} characters")

    @property
    def id_chars(self) -> int:
        """How much of an id fits in an interface name after the prefix and the kind."""
        return min(ID_CHARS, IFNAME_MAX - len(self.prefix) - 3)

    def _link(self, kind: str, id_: str) -> str:
        return f"{self.prefix}{kind}{id_[:self.id_chars]}"

    def bridge(self, network_id: str) -> str:
        return self._link(BRIDGE, network_id)

    def tap(self, port_id: str) -> str:
        return self._link(TAP, port_id)

    def dhcp_bridge_end(self, network_id: str) -> str:
        return self._link(DHCP_BRIDGE_END, network_id)

    def dhcp_namespace_end(self, network_id: str) -> str:
        return self._link(DHCP_NAMESPACE_END, network_id)

    def dhcp_namespace(self, network_id: str) -> str:
        return f"{self.prefix}{DHCP_NAMESPACE}{network_id}"

    def router_namespace(self, router_id: str) -> str:
        return f"{self.prefix}{ROUTER_NAMESPACE}{router_id}"

    def router_internal(self, port_id: str) -> str:
        return self._link(ROUTER_INTERNAL, port_id)

    def router_gateway(self, port_id: str) -> str:
        return self._link(ROUTER_GATEWAY, port_id)

    def router_bridge_end(self, port_id: str) -> str:
        return self._link(ROUTER_BRIDGE_END, port_id)

    def vxlan(self, network_id: str) -> str:
        return self._link(VXLAN, network_id)

    def namespace_router(self, name: str) -> str | None:
        """The router id of one of our router namespaces, else None."""
        head = self.prefix + ROUTER_NAMESPACE
        if name.startswith(head) and len(name) > len(head):
            return name[len(head):]
        return None

    def link_id(self, kind: str, name: str) -> str | None:
        """The (possibly shortened) id in a link name of this kind and prefix, else None."""
        head = self.prefix + kind
        if name.startswith(head) and len(name) > len(head):
            return name[len(head):]
        return None

    def namespace_network(self, name: str) -> str | None:
        """The network id of one of our DHCP namespaces, else None."""
        head = self.prefix + DHCP_NAMESPACE
        if name.startswith(head) and len(name) > len(head):
            return name[len(head):]
        return None

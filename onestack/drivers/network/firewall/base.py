"""The firewall driver interface: security groups and anti-spoofing, per port.

The agent hands over the whole firewall of its host's ports at once (``apply``): each
port with its addresses, its allowed address pairs and the rules of all its security
groups, plus the members of every group a rule names as its remote group. The backend
replaces what it had in one transaction (no port is ever half-filtered) and removes the
filtering of ports it was not given. Neutron's semantics: stateful, default deny
ingress, established and related traffic allowed, egress as the rules say; a port with
``port_security_enabled`` false is not filtered at all (nor protected from spoofing).
Every method is idempotent; failures raise ``NetworkDriverError``.

Linux: nftables' bridge family has no conntrack on this kernel, so ``linux.py`` filters
with br_netfilter + iptables-nft ``physdev`` matches and conntrack, as Neutron's Linux
bridge agent does (docs/design/host-network.md says why, and what else would work).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class SecurityGroupRule:
    """One Neutron security group rule (``direction`` as seen from the port)."""

    #: "ingress" or "egress".
    direction: str
    #: "IPv4" or "IPv6".
    ethertype: str = "IPv4"
    #: "tcp", "udp", "icmp", "ipv6-icmp", another protocol's name or number; None: any.
    protocol: str | None = None
    #: TCP/UDP port range, or for ICMP the type (min) and code (max); None: any.
    port_range_min: int | None = None
    port_range_max: int | None = None
    #: Peers by prefix or by security group (at most one of the two; neither: any peer).
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass(frozen=True)
class AddressPair:
    """An allowed address pair: the port may also send from ``ip_address`` (an address
    or a prefix) with ``mac_address`` (None: the port's own MAC)."""

    ip_address: str
    mac_address: str | None = None


@dataclass
class PortRules:
    """The firewall of one port on this host."""

    port_id: str
    network_id: str
    mac: str
    #: Its fixed addresses.
    ips: list[str]
    #: The rules of all its security groups (duplicates allowed, they are merged).
    rules: list[SecurityGroupRule] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    allowed_address_pairs: list[AddressPair] = field(default_factory=list)
    #: False: no filtering and no anti-spoofing for this port.
    port_security_enabled: bool = True


class FirewallDriver(abc.ABC):
    name: str = ""
    #: What this backend can do (the host reports it): ``security_groups`` (it filters
    #: at all), ``stateful_firewall`` (conntrack), ``remote_group``, ``ipv6_filtering``,
    #: ``anti_spoofing``, ``allowed_address_pairs``, ``port_security`` (the per-port off
    #: switch). Names are unique across the network kinds (``HostNetwork`` merges them).
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def apply(self, ports: list[PortRules], group_members: dict[str, list[str]]) -> None:
        """Make the firewall of this host's ports exactly ``ports``, in one transaction.
        ``group_members``: for each security group some rule names as its remote group,
        the addresses of its member ports (on any host)."""

    @abc.abstractmethod
    def list_ports(self) -> list[str]:
        """Port ids this backend filters now (to find leftovers)."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove everything this host (its name prefix) made: at teardown only."""

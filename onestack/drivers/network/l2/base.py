"""The L2 driver interface: one bridge per network, one tap per port.

Bridges are named ``<p>brq<net[:11]>`` and taps ``<p>tap<port[:11]>`` (``names.py``);
the DHCP and L3 drivers join their ports to a network by its bridge's name
(``bridge_name``). A tap is persistent and QEMU opens it by name. A ``vxlan`` network
reaches the other hosts that have it (``NetworkSpec.peers``) through a VXLAN device on
its bridge; VLAN uplinks belong here when they come. Every method is idempotent;
failures raise ``NetworkDriverError``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from onestack.drivers.network.base import NetworkSpec, PortSpec


class L2Driver(abc.ABC):
    name: str = ""
    #: What this backend can do (the host reports it): ``vxlan_networks`` (networks
    #: reach other hosts), ``vlan_networks`` and ``flat_networks`` (provider uplinks).
    #: Names are unique across the network kinds (``HostNetwork`` merges them).
    capabilities: ClassVar[dict[str, bool]] = {}

    @abc.abstractmethod
    def ensure_network(self, spec: NetworkSpec) -> None:
        """Create or update the network's bridge (its MTU, host addresses, uplink) and,
        for a ``vxlan`` network with peers, its VXLAN device flooding to exactly those
        peers; a changed MTU reaches the taps on it too."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove the bridge (whatever is still on it is detached, not deleted)."""

    @abc.abstractmethod
    def bridge_name(self, network_id: str) -> str:
        """The name of the network's bridge, which other drivers' ports join."""

    @abc.abstractmethod
    def plug_port(self, port: PortSpec) -> str:
        """Create the port's tap on its network's bridge (the network must exist);
        returns the tap's name."""

    @abc.abstractmethod
    def unplug_port(self, port_id: str) -> None:
        """Remove the port's tap."""

    @abc.abstractmethod
    def tap_name(self, port_id: str) -> str: ...

    @abc.abstractmethod
    def list_networks(self) -> list[str]:
        """Network ids with a bridge on this host (full ids where the link's alias has
        them, else the shortened id of the name)."""

    @abc.abstractmethod
    def list_ports(self) -> list[str]:
        """Port ids (11-character prefixes are enough) with a tap on this host."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Remove every bridge and tap with this host's name prefix: at teardown only."""

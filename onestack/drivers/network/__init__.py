"""Host network drivers by kind and name, and the shorthand that picks all four.

    kind      names
    l2        linux (bridges, taps), fake
    dhcp      linux (dnsmasq in qdhcp- namespaces), fake
    l3        linux (qrouter- namespaces, nftables NAT), noop, fake
    firewall  linux (br_netfilter, iptables-nft physdev, conntrack), noop, fake

``[host] network_driver`` (``linux`` or ``fake``) picks a driver for each kind
(``SHORTHANDS``); ``l2_driver``, ``dhcp_driver``, ``l3_driver`` and ``firewall_driver``
override one kind.
"""

from __future__ import annotations

from typing import Any

from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriver,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)
from onestack.drivers.network.host import HostNetwork
from onestack.drivers.registry import load_driver

DRIVERS: dict[str, dict[str, str]] = {
    "l2": {
        "linux": "onestack.drivers.network.l2.linux:LinuxL2",
        "fake": "onestack.drivers.network.l2.fake:FakeL2",
    },
    "dhcp": {
        "linux": "onestack.drivers.network.dhcp.linux:LinuxDhcp",
        "fake": "onestack.drivers.network.dhcp.fake:FakeDhcp",
    },
    "l3": {
        "linux": "onestack.drivers.network.l3.linux:LinuxL3",
        "noop": "onestack.drivers.network.l3.noop:NoopL3",
        "fake": "onestack.drivers.network.l3.fake:FakeL3",
    },
    "firewall": {
        "linux": "onestack.drivers.network.firewall.linux:LinuxFirewall",
        "noop": "onestack.drivers.network.firewall.noop:NoopFirewall",
        "fake": "onestack.drivers.network.firewall.fake:FakeFirewall",
    },
}

#: ``network_driver`` -> the driver of each kind.
SHORTHANDS: dict[str, dict[str, str]] = {
    "linux": {"l2": "linux", "dhcp": "linux", "l3": "linux", "firewall": "linux"},
    "fake": {"l2": "fake", "dhcp": "fake", "l3": "fake", "firewall": "fake"},
}


def load_kind(kind: str, name: str, **kwargs: Any) -> Any:
    """The ``kind`` driver called ``name``, built with ``kwargs`` (see its __init__;
    every driver takes ``state_dir`` and ``name_prefix`` and ignores what it does not
    use)."""
    if kind not in DRIVERS:
        raise ValueError(f"unknown network driver kind {kind!r} "
                         f"(known: {', '.join(DRIVERS)})")
    return load_driver(f"{kind} network", DRIVERS[kind], name, **kwargs)


def load(network_driver: str, *, l2: str = "", dhcp: str = "", l3: str = "",
              firewall: str = "", **kwargs: Any) -> HostNetwork:
    """The host's four network drivers: each kind's name if given, else what the
    ``network_driver`` shorthand names for it."""
    try:
        names = dict(SHORTHANDS[network_driver])
    except KeyError:
        raise ValueError(f"unknown network driver {network_driver!r} "
                         f"(known: {', '.join(sorted(SHORTHANDS))})") from None
    for kind, name in (("l2", l2), ("dhcp", dhcp), ("l3", l3), ("firewall", firewall)):
        if name:
            names[kind] = name
    return HostNetwork(l2=load_kind("l2", names["l2"], **kwargs),
                       dhcp=load_kind("dhcp", names["dhcp"], **kwargs),
                       l3=load_kind("l3", names["l3"], **kwargs),
                       firewall=load_kind("firewall", names["firewall"], **kwargs))


__all__ = ["DRIVERS", "SHORTHANDS", "DhcpHost", "HostNetwork", "NetworkDriver",
           "NetworkDriverError",
           "NetworkSpec", "PortSpec", "SubnetSpec", "load", "load_kind"]

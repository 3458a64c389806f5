"""Host network drivers by name: ``linux`` (bridges, namespaces, dnsmasq) and ``fake``."""

from __future__ import annotations

import importlib

from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriver,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)

DRIVERS = {
    "linux": "onestack.drivers.network.linux:LinuxNetwork",
    "fake": "onestack.drivers.network.fake:FakeNetwork",
}


def load(name: str, **kwargs) -> NetworkDriver:
    try:
        module, _, cls = DRIVERS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown network driver {name!r} "
                         f"(known: {', '.join(sorted(DRIVERS))})") from None
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["DRIVERS", "DhcpHost", "NetworkDriver", "NetworkDriverError", "NetworkSpec",
           "PortSpec", "SubnetSpec", "load"]

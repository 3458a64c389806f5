"""Host network drivers by name: ``linux`` (bridges, namespaces, dnsmasq) and ``fake``."""

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
from onestack.drivers.registry import load_driver

DRIVERS = {
    "linux": "onestack.drivers.network.linux:LinuxNetwork",
    "fake": "onestack.drivers.network.fake:FakeNetwork",
}


def load(name: str, **kwargs: Any) -> NetworkDriver:
    """The network driver called ``name``, built with ``kwargs`` (see its __init__)."""
    driver: NetworkDriver = load_driver("network", DRIVERS, name, **kwargs)
    return driver


__all__ = ["DRIVERS", "DhcpHost", "NetworkDriver", "NetworkDriverError", "NetworkSpec",
           "PortSpec", "SubnetSpec", "load"]

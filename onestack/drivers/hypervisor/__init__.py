"""Hypervisor drivers by name: ``qemu`` (real guests) and ``fake`` (API tests)."""

from __future__ import annotations

import importlib

from onestack.drivers.hypervisor.base import (
    GuestNic,
    GuestSpec,
    HostInfo,
    HypervisorDriver,
    HypervisorError,
    PowerState,
)

DRIVERS = {
    "qemu": "onestack.drivers.hypervisor.qemu:QemuDriver",
    "fake": "onestack.drivers.hypervisor.fake:FakeDriver",
}


def load(name: str, **kwargs) -> HypervisorDriver:
    """The driver called ``name``, built with ``kwargs`` (see each driver's __init__)."""
    try:
        module, _, cls = DRIVERS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown hypervisor driver {name!r} "
                         f"(known: {', '.join(sorted(DRIVERS))})") from None
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["DRIVERS", "GuestNic", "GuestSpec", "HostInfo", "HypervisorDriver",
           "HypervisorError", "PowerState", "load"]

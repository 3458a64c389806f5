"""Hypervisor drivers by name: ``qemu`` (real guests) and ``fake`` (API tests)."""

from __future__ import annotations

from typing import Any

from onestack.drivers.hypervisor.base import (
    GuestDisk,
    GuestNic,
    GuestSpec,
    HostInfo,
    HypervisorDriver,
    HypervisorError,
    PowerState,
)
from onestack.drivers.registry import load_driver

DRIVERS = {
    "qemu": "onestack.drivers.hypervisor.qemu:QemuDriver",
    "fake": "onestack.drivers.hypervisor.fake:FakeDriver",
}


def load(name: str, **kwargs: Any) -> HypervisorDriver:
    """The hypervisor driver called ``name``, built with ``kwargs`` (see its __init__)."""
    driver: HypervisorDriver = load_driver("hypervisor", DRIVERS, name, **kwargs)
    return driver


__all__ = ["DRIVERS", "GuestDisk", "GuestNic", "GuestSpec", "HostInfo", "HypervisorDriver",
           "HypervisorError", "PowerState", "load"]

"""Storage drivers by name: ``local`` (qcow2 overlays), ``rbd`` (RBD clones in Ceph) and
``fake`` (API tests)."""

from __future__ import annotations

from typing import Any

from onestack.drivers.registry import load_driver
from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError

DRIVERS = {
    "local": "onestack.drivers.storage.local:LocalStorage",
    "rbd": "onestack.drivers.storage.rbd:RbdStorage",
    "fake": "onestack.drivers.storage.fake:FakeStorage",
}


def load(name: str, **kwargs: Any) -> StorageDriver:
    """The storage driver called ``name``, built with ``kwargs`` (see its __init__)."""
    driver: StorageDriver = load_driver("storage", DRIVERS, name, **kwargs)
    return driver


__all__ = ["DRIVERS", "Disk", "ImageSource", "StorageDriver", "StorageError", "load"]

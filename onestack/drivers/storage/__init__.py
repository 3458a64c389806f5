"""Storage drivers by name: ``local`` (qcow2 overlays) and ``fake`` (API tests)."""

from __future__ import annotations

import importlib

from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError

DRIVERS = {
    "local": "onestack.drivers.storage.local:LocalStorage",
    "fake": "onestack.drivers.storage.fake:FakeStorage",
}


def load(name: str, **kwargs) -> StorageDriver:
    try:
        module, _, cls = DRIVERS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown storage driver {name!r} "
                         f"(known: {', '.join(sorted(DRIVERS))})") from None
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["DRIVERS", "Disk", "ImageSource", "StorageDriver", "StorageError", "load"]

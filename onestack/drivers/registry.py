"""Drivers by name: each kind keeps a dict ``name -> "module:Class"`` and loads through
``load_driver`` (modules are imported only when chosen, so a backend's dependencies are
needed only where it runs)."""

from __future__ import annotations

import importlib
from typing import Any


def load_driver(kind: str, drivers: dict[str, str], name: str, **kwargs: Any) -> Any:
    """Build the ``kind`` driver called ``name`` with ``kwargs``."""
    try:
        module, _, cls = drivers[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown {kind} driver {name!r} "
                         f"(known: {', '.join(sorted(drivers))})") from None
    return getattr(importlib.import_module(module), cls)(**kwargs)

"""A revert stack for multi-step changes.

Every step that takes a resource registers its undo; if the block fails the undos run in
reverse order, and only ``success()`` disarms them::

    with Reverter() as revert:
        disk = clone_image(...)
        revert.add(delete_disk, disk)
        tap = plug_port(...)
        revert.add(unplug_port, tap)
        revert.success()
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Reverter:
    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._ok = False

    def add(self, undo: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        def run(*exc: object) -> None:
            try:
                undo(*args, **kwargs)
            except Exception:  # an undo that fails must not hide the original error
                log.exception("revert step %s failed", getattr(undo, "__name__", undo))

        self._stack.push(lambda *exc: run())

    def success(self) -> None:
        self._ok = True
        self._stack.pop_all()

    def __enter__(self) -> Reverter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._ok:
            self._stack.close()

"""(placeholder: being written)"""

from __future__ import annotations

from typing import Any


class Scheduler:
    def __init__(self, compute: Any) -> None:
        self.compute = compute

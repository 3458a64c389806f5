"""/v3 routes for assignments (being written)."""

from __future__ import annotations

routes: list = []

"""/v3 routes for roles (being written)."""

from __future__ import annotations

routes: list = []

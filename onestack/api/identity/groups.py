"""/v3 routes for groups (being written)."""

from __future__ import annotations

routes: list = []

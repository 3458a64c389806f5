"""/v3 routes for users (being written)."""

from __future__ import annotations

routes: list = []

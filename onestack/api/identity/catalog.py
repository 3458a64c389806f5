"""/v3 routes for catalog (being written)."""

from __future__ import annotations

routes: list = []

"""/v3 routes for app_creds (being written)."""

from __future__ import annotations

routes: list = []

"""/v3/projects"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.api.identity.common import self_link
from onestack.db.models import Project


def render_project(request: Request, p: Project) -> dict[str, Any]:
    return {**p.extra, "id": p.id, "name": p.name, "domain_id": p.domain_id,
            "parent_id": p.parent_id or p.domain_id, "description": p.description,
            "enabled": p.enabled, "is_domain": False, "tags": [t.name for t in p.tags],
            "options": {}, "links": self_link(request, f"projects/{p.id}")}


routes: list = []

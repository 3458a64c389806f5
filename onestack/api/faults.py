"""Rendering errors: the one place an exception becomes an HTTP response.

Each service has its own fault body; which one is chosen by the service the request
was for (the first segment of its path). Identity's is Keystone's:
``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from onestack.common.errors import OneStackError


def keystone_body(exc: OneStackError) -> dict[str, Any]:
    return {"error": {"code": exc.status, "title": exc.title, "message": exc.message}}


#: First path segment -> body builder. Services other than identity add theirs.
RENDERERS: dict[str, Callable[[OneStackError], dict[str, Any]]] = {}


def render_error(exc: OneStackError, path: str, public_url: str = "") -> Response:
    segment = path.lstrip("/").split("/", 1)[0]
    body = RENDERERS.get(segment, keystone_body)(exc)
    headers = dict(exc.headers)
    if exc.status == 401 and segment not in RENDERERS:
        headers.setdefault("WWW-Authenticate", f'Keystone uri="{public_url}"')
    return Response(json.dumps(body), status_code=exc.status, headers=headers,
                    media_type="application/json")

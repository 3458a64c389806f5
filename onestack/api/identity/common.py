"""Shapes shared by the Identity API modules."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.api.common import base_url


def self_link(request: Request, path: str) -> dict[str, str]:
    return {"self": f"{base_url(request)}/v3/{path}"}


def list_links(request: Request) -> dict[str, Any]:
    url = f"{base_url(request)}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    return {"self": url, "previous": None, "next": None}


def identity(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.identity


def filters(request: Request, *names: str) -> dict[str, Any]:
    """Equality filters from the query string (``enabled`` understood as a boolean)."""
    out: dict[str, Any] = {}
    for name in names:
        value = request.query_params.get(name)
        if value is None:
            continue
        if name == "enabled":
            out[name] = value.lower() not in ("0", "false", "no", "off")
        else:
            out[name] = value
    return out

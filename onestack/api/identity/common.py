"""Shapes shared by the Identity API modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, StrictStr
from starlette.requests import Request

from onestack.api.common import base_url

if TYPE_CHECKING:
    from onestack.services.identity.service import Identity


def storable(value: str) -> str:
    """Refuse text no database column can hold: NUL characters, unpaired surrogates.

    ``read_json`` already refuses them anywhere in a body; models say it again so that
    values from elsewhere (query strings) get the same check."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


#: A string a column can store.
Text = Annotated[StrictStr, AfterValidator(storable)]


def self_link(request: Request, path: str) -> dict[str, str]:
    return {"self": f"{base_url(request)}/v3/{path}"}


def list_links(request: Request) -> dict[str, Any]:
    url = f"{base_url(request)}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    return {"self": url, "previous": None, "next": None}


def identity(request: Request) -> Identity:
    """The ``Identity`` service of the app."""
    service: Identity = request.app.state.identity
    return service


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

"""The coarse access level of a route, declared beside it and checked before the
request body is read.

OpenStack's default ("secure RBAC") policies give every API call one of a few
levels, and so do our routes:

- ``reader``: a token scoped to a project (any role on it implies ``reader``), or an
  administrator's;
- ``member``: the ``member`` role on the token's project (``admin`` implies it), or an
  administrator;
- ``admin``: the ``admin`` role.

The level only says who may call the route at all. Which rows the caller sees (other
projects' resources are a 404) and which attributes only administrators may set are
the services' business, beside the operation. Checking the level first means a
reader's write is refused the same way whatever its body holds (or lacks).
``tests/api/policy_table.toml`` lists the expected outcome of every route for every
kind of caller; ``tests/api/test_policy_table.py`` holds the app to it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from onestack.api.common import caller
from onestack.services.identity.context import ValidatedToken

Endpoint = Callable[[Request], Awaitable[Response]]
Denied = Callable[[str], Exception]

LEVELS = ("reader", "member", "admin")


def allows(level: str, ctx: ValidatedToken) -> bool:
    """Whether a caller holding ``ctx`` reaches a route of ``level``."""
    if ctx.is_admin:
        return True
    if level == "admin" or ctx.project_id is None:
        return False
    if level == "member":
        return "member" in ctx.role_names
    return level == "reader"


def guard(level: str | dict[str, str], denied: Denied, rule: str | None = None
          ) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint so that callers below ``level`` get ``denied(rule)`` (the
    service's own 403) before anything else happens; ``rule`` defaults to the
    endpoint's name. For an endpoint serving several methods, ``level`` may be a
    dict: method -> level."""
    by_method = level if isinstance(level, dict) else None
    for name in (list(level.values()) if isinstance(level, dict) else [level]):
        if name not in LEVELS:
            raise ValueError(f"unknown access level {name!r}")

    def wrap(endpoint: Endpoint) -> Endpoint:
        name = rule or endpoint.__name__

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            wanted = by_method[request.method if request.method != "HEAD" else "GET"] \
                if by_method is not None else level
            assert isinstance(wanted, str)
            if not allows(wanted, caller(request)):
                raise denied(name)
            return await endpoint(request)

        guarded.access = level  # type: ignore[attr-defined]
        return guarded
    return wrap

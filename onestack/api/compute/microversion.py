"""Compute microversions: negotiation, the echo headers, and comparisons in handlers.

A client asks with ``OpenStack-API-Version: compute 2.79`` (or the legacy
``X-OpenStack-Nova-API-Version: 2.79``); ``latest`` means our maximum; no header means
2.1. A version outside [MIN, MAX] is refused with 406. Every response under /compute
echoes the version it was served at, with ``Vary`` on both request headers, and carries
the request id as ``x-compute-request-id`` too.

Handlers read the negotiated version with ``version(request)`` and compare it with
tuples: ``if version(request) >= (2, 47): ...``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onestack.api.faults import render_error
from onestack.common.errors import MethodNotAllowed, NotAcceptable, NotFound, OneStackError
from onestack.common.logging import request_id_var

MIN_VERSION = (2, 1)
#: The highest microversion whose semantics are implemented (see docs/compute.md).
MAX_VERSION = (2, 96)

_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def as_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def parse_header(headers: Any) -> tuple[int, int]:
    """The version asked for, or raise NotAcceptable."""
    wanted: str | None = None
    new_style = headers.get("openstack-api-version")
    if new_style:
        for item in new_style.split(","):
            service, _, value = item.strip().partition(" ")
            if service.lower() == "compute":
                wanted = value.strip()
                break
    if wanted is None:
        wanted = headers.get("x-openstack-nova-api-version")
    if not wanted:
        return MIN_VERSION
    if wanted.lower() == "latest":
        return MAX_VERSION
    m = _VERSION.match(wanted.strip())
    if not m:
        raise NotAcceptable(f"Invalid API version request: {wanted!r}; expected a version "
                            f"such as 2.1, or 'latest'.")
    asked = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= asked <= MAX_VERSION:
        raise NotAcceptable(f"Version {wanted} is not supported by the API. Minimum is "
                            f"{as_text(MIN_VERSION)} and maximum is {as_text(MAX_VERSION)}.")
    return asked


def version(request: Request) -> tuple[int, int]:
    """The microversion this request is served at."""
    return request.scope.get("compute_version", MIN_VERSION)


def _full_path(scope: Scope) -> str:
    """The request's path. Starlette's ``Mount`` keeps the whole path in ``path`` (and
    the mount point in ``root_path``); older versions strip it: join them only then."""
    root, path = scope.get("root_path", ""), scope["path"]
    return path if path.startswith(root) else root + path


class MicroversionMiddleware:
    """Negotiates the version for every request under /compute and echoes it back.

    Errors raised by handlers are rendered here (Nova's fault body) so that they carry
    the version headers too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            negotiated = parse_header(Headers(scope=scope))
        except NotAcceptable as exc:
            response = render_error(exc, _full_path(scope))
            await response(scope, receive, self._echo(send, MIN_VERSION))
            return
        scope["compute_version"] = negotiated
        started = False
        echo = self._echo(send, negotiated)

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await echo(message)

        try:
            await self.app(scope, receive, tracking_send)
        except (OneStackError, HTTPException) as exc:
            if started:
                raise
            if isinstance(exc, HTTPException):
                method, path = scope["method"], _full_path(scope)
                if exc.status_code == 405:
                    exc = MethodNotAllowed(f"Method {method} is not allowed on {path}.")
                else:
                    exc = NotFound(f"The resource could not be found: {method} {path}.")
            response = render_error(exc, "/compute")
            await response(scope, receive, echo)

    @staticmethod
    def _echo(send: Send, negotiated: tuple[int, int]) -> Send:
        text = as_text(negotiated)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"openstack-api-version", f"compute {text}".encode()),
                            (b"x-openstack-nova-api-version", text.encode()),
                            (b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
                request_id = request_id_var.get()
                if request_id:
                    # Nova's own name for the request id (the outer middleware adds
                    # x-openstack-request-id); instance actions are found by it.
                    headers.append((b"x-compute-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

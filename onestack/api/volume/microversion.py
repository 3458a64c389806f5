"""Block Storage microversions, Cinder's fault body, and URLs without a project id.

A client asks with ``OpenStack-API-Version: volume 3.59``; ``latest`` means our
maximum; no header means 3.0. A version outside [MIN, MAX] (or a malformed one) is
refused with 406. Every response under /volume echoes ``OpenStack-API-Version:
volume <version>`` with ``Vary: OpenStack-API-Version``. (Cinder never had a legacy
``X-OpenStack-Volume-API-Version`` header; it is not read.)

Cinder's URLs carry the project id (``/v3/{project_id}/volumes``); from 3.67 it may be
left out. Every such URL is accepted here whatever the version (a client that leaves it
out is one that knows it may): the middleware inserts ``-`` for it, and handlers read
``-`` as the token's own project.

Handlers compare versions with tuples: ``if version(request) >= (3, 42): ...``.
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

MIN_VERSION = (3, 0)
#: The highest microversion whose semantics are implemented (docs/volume.md).
MAX_VERSION = (3, 70)
#: What a URL without a project id gets in its place.
OWN_PROJECT = "-"
#: First segments after /v3/ that are collections, not project ids.
COLLECTIONS = frozenset((
    "volumes", "snapshots", "types", "qos-specs", "os-quota-sets", "limits", "attachments",
    "volume-transfers", "os-volume-transfer", "os-availability-zone", "os-services",
    "messages", "backups", "extensions", "scheduler-stats", "os-hosts", "capabilities",
    "os-quota-class-sets", "group_types", "groups", "group_snapshots"))

_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def as_text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def parse_header(headers: Any) -> tuple[int, int]:
    """The version asked for, or raise NotAcceptable."""
    wanted: str | None = None
    for item in (headers.get("openstack-api-version") or "").split(","):
        service, _, value = item.strip().partition(" ")
        if service.lower() == "volume":
            wanted = value.strip()
            break
    if not wanted:
        return MIN_VERSION
    if wanted.lower() == "latest":
        return MAX_VERSION
    m = _VERSION.match(wanted)
    if not m:
        raise NotAcceptable(f"API Version String {wanted} is of invalid format. Must be of "
                            "format MajorNum.MinorNum.")
    asked = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= asked <= MAX_VERSION:
        raise NotAcceptable(f"Version {wanted} is not supported by the API. Minimum is "
                            f"{as_text(MIN_VERSION)} and maximum is {as_text(MAX_VERSION)}.")
    return asked


def version(request: Request) -> tuple[int, int]:
    """The microversion this request is served at."""
    return request.scope.get("volume_version", MIN_VERSION)


def require(request: Request, minimum: tuple[int, int]) -> None:
    """A route that exists only from ``minimum``: Cinder's 404 below it."""
    if version(request) < minimum:
        raise NotFound(f"The resource could not be found: {request.url.path} needs "
                       f"microversion {as_text(minimum)} or later (this request is "
                       f"{as_text(version(request))}).")


def _full_path(scope: Scope) -> str:
    root, path = scope.get("root_path", ""), scope["path"]
    return path if path.startswith(root) else root + path


def _with_project(scope: Scope) -> Scope:
    """``/volume/v3/volumes/...`` -> ``/volume/v3/-/volumes/...``."""
    path: str = scope["path"]
    head, sep, rest = path.partition("/v3/")
    if not sep or head not in ("", "/volume") or rest.split("/", 1)[0] not in COLLECTIONS:
        return scope
    new_path = f"{head}/v3/{OWN_PROJECT}/{rest}"
    return {**scope, "path": new_path, "raw_path": new_path.encode(),
            "volume_url_without_project": True}


def project_in_url(request: Request) -> bool:
    """Whether the client's URL carried a project id (links answer in its form)."""
    return not request.scope.get("volume_url_without_project", False)


def _empty_id(scope: Scope) -> bool:
    """``/v3/{project}/volumes/`` (an item URL with an empty id): Cinder's 404, not
    the collection."""
    path: str = scope["path"]
    _, sep, rest = path.partition("/v3/")
    return bool(sep) and path.endswith("/") and rest.count("/") >= 2


class MicroversionMiddleware:
    """Negotiates the version for every request under /volume, echoes it, and renders
    errors raised by handlers (Cinder's fault body) so that they carry the headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            negotiated = parse_header(Headers(scope=scope))
        except NotAcceptable as exc:
            response = render_error(exc, "/volume")
            await response(scope, receive, self._echo(send, MIN_VERSION))
            return
        scope = _with_project(scope)
        scope["volume_version"] = negotiated
        if _empty_id(scope):
            response = render_error(NotFound(
                f"The resource could not be found: {scope['method']} "
                f"{_full_path(scope)} names no resource."), "/volume")
            await response(scope, receive, self._echo(send, negotiated))
            return
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
            response = render_error(exc, "/volume")
            await response(scope, receive, echo)

    @staticmethod
    def _echo(send: Send, negotiated: tuple[int, int]) -> Send:
        text = as_text(negotiated)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"openstack-api-version", f"volume {text}".encode()),
                            (b"vary", b"OpenStack-API-Version")]
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

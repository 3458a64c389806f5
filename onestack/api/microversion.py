"""Microversion negotiation, as Compute and Block Storage share it.

A client asks with ``OpenStack-API-Version: <service> <major>.<minor>`` (a
comma-separated list may name several services; a service may also read a legacy
header of its own); ``latest`` means the service's maximum; no version means its
minimum. A malformed version, or one outside [minimum, maximum], is refused with 406.
Every response under the service's mount echoes the version it was served at, with
``Vary`` on the request headers that were read.

A service describes what differs in a ``Microversions`` (its name, range, legacy
header, the text for a malformed version, the request-id header it adds) and mounts a
subclass of ``MicroversionMiddleware`` that names it. The middleware also renders the
errors handlers raise, in the service's fault body (``api.faults``, chosen by the
mount point), so that they carry the version headers too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onestack.api.faults import render_error
from onestack.common.errors import MethodNotAllowed, NotAcceptable, NotFound, OneStackError
from onestack.common.logging import request_id_var

Version = tuple[int, int]

_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def as_text(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


def full_path(scope: Scope) -> str:
    """The request's path. Starlette's ``Mount`` keeps the whole path in ``path`` (and
    the mount point in ``root_path``); older versions strip it: join them only then."""
    root, path = scope.get("root_path", ""), scope["path"]
    return path if path.startswith(root) else root + path


@dataclass(frozen=True)
class Microversions:
    """One service's microversions."""

    #: The name in ``OpenStack-API-Version``, the mount point (``/<service>``) and the
    #: scope key the negotiated version is kept under (``<service>_version``).
    service: str
    minimum: Version
    maximum: Version
    #: The 406 message for a malformed version; ``{wanted}`` is what was asked.
    malformed: str
    #: A header read when ``OpenStack-API-Version`` names no version for the service,
    #: and echoed too (as spelt here, in ``Vary``).
    legacy_header: str | None = None
    #: A header that carries the request id as well (the service's own name for it).
    request_id_header: str | None = None
    scope_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope_key", f"{self.service}_version")

    def parse_header(self, headers: Any) -> Version:
        """The version asked for, or raise NotAcceptable."""
        wanted: str | None = None
        for item in (headers.get("openstack-api-version") or "").split(","):
            service, _, value = item.strip().partition(" ")
            if service.lower() == self.service:
                wanted = value.strip()
                break
        if wanted is None and self.legacy_header is not None:
            wanted = headers.get(self.legacy_header.lower())
        if not wanted:
            return self.minimum
        if wanted.lower() == "latest":
            return self.maximum
        m = _VERSION.match(wanted.strip())
        if not m:
            raise NotAcceptable(self.malformed.format(wanted=wanted))
        asked = (int(m.group(1)), int(m.group(2)))
        if not self.minimum <= asked <= self.maximum:
            raise NotAcceptable(f"Version {wanted} is not supported by the API. Minimum is "
                                f"{as_text(self.minimum)} and maximum is "
                                f"{as_text(self.maximum)}.")
        return asked

    def version(self, request: Request) -> Version:
        """The microversion this request is served at."""
        version: Version = request.scope.get(self.scope_key, self.minimum)
        return version

    def echo_headers(self, negotiated: Version) -> list[tuple[bytes, bytes]]:
        """The headers every response carries: the version served, and ``Vary``."""
        text = as_text(negotiated)
        headers = [(b"openstack-api-version", f"{self.service} {text}".encode())]
        vary = "OpenStack-API-Version"
        if self.legacy_header is not None:
            headers.append((self.legacy_header.lower().encode(), text.encode()))
            vary += f", {self.legacy_header}"
        headers.append((b"vary", vary.encode()))
        return headers


class MicroversionMiddleware:
    """Negotiates the version for every request under the service's mount and echoes it
    back; renders the errors handlers raise (and Starlette's 404 and 405) in the
    service's fault body so that they carry the version headers.

    A service subclasses it, naming its ``Microversions`` in ``api``; ``route`` and
    ``refuse`` let it rewrite a request's scope or answer it at once (both after the
    version is negotiated).
    """

    api: ClassVar[Microversions]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def route(self, scope: Scope) -> Scope:
        """The scope the request is served with (this one, unless a service rewrites
        its path)."""
        return scope

    def refuse(self, scope: Scope) -> OneStackError | None:
        """An error to answer with instead of serving the request, if any."""
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = self.api
        mount = f"/{api.service}"
        try:
            negotiated = api.parse_header(Headers(scope=scope))
        except NotAcceptable as exc:
            response = render_error(exc, mount)
            await response(scope, receive, self._echo(send, api.minimum))
            return
        scope = self.route(scope)
        scope[api.scope_key] = negotiated
        echo = self._echo(send, negotiated)
        refusal = self.refuse(scope)
        if refusal is not None:
            await render_error(refusal, mount)(scope, receive, echo)
            return
        started = False

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
                method, path = scope["method"], full_path(scope)
                if exc.status_code == 405:
                    exc = MethodNotAllowed(f"Method {method} is not allowed on {path}.")
                else:
                    exc = NotFound(f"The resource could not be found: {method} {path}.")
            response = render_error(exc, mount)
            await response(scope, receive, echo)

    def _echo(self, send: Send, negotiated: Version) -> Send:
        added = self.api.echo_headers(negotiated)
        request_id_header = self.api.request_id_header

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *added]
                if request_id_header is not None:
                    request_id = request_id_var.get()
                    if request_id:
                        headers.append((request_id_header.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

"""The server's end of the HTTP host transport, mounted at ``/hostlink/v1``.

Remote agents call ``HostToServer`` here (``onestack.hostlink.http`` is their client):
one ``POST /hostlink/v1/<call>`` route per call of the interface, plus the streamed
image download and snapshot upload. These routes are for hosts only: no Keystone
token opens them (an administrator's neither); every request carries
``Authorization: OneStack-Host <host>:<secret>`` (401 without a valid one), and a host
may only name itself and act on its own instances, ports, images and snapshots (403,
``onestack.services.compute.hostscope``).

A host's ``register`` call says where its own listener is; the server then keeps an
``HttpHost`` handle on it (console output, uptime, capabilities, wake-up).
"""

from __future__ import annotations

import logging
import os
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route

from onestack.api.common import loads_json, read_body
from onestack.common.errors import OneStackError
from onestack.hostlink.credentials import CredentialStore, parse_host_authorization
from onestack.hostlink.http import (
    PREFIX,
    HttpHost,
    call_path,
    decode_args,
    encode_result,
    error_response,
    json_calls,
)
from onestack.hostlink.interfaces import HostToServer
from onestack.hostlink.types import HostReport
from onestack.services.compute.hostscope import HostScope

log = logging.getLogger(__name__)

#: Access "level" of these routes in tests/api/policy_table.toml: a host credential.
ACCESS = "host"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HostLink:
    """What the routes need, built once per app from its services."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.config = services.config
        self.credentials = CredentialStore(self.config.state_dir)
        self.scope = HostScope(services.db)
        self.handles: dict[str, HttpHost] = {}
        self.digests: dict[str, str] = {}

    @property
    def server_side(self) -> HostToServer:
        """The server's ``HostToServer``: the host service (``services.hosts``)."""
        hosts: HostToServer = self.services.hosts
        return hosts

    def authenticate(self, request: Request) -> str:
        parsed = parse_host_authorization(request.headers.get("authorization"))
        if parsed is None or not self.credentials.verify(*parsed):
            raise Refused(401, "A host credential is required (Authorization: "
                          "OneStack-Host <host>:<secret>).")
        return parsed[0]

    def check(self, host: str, args: dict[str, Any]) -> None:
        """The call names only ``host`` and what is on it."""
        for name, value in args.items():
            allowed = True
            if name == "host":
                allowed = value == host
            elif name == "report":
                allowed = isinstance(value, HostReport) and value.host == host
            elif name == "uuid":
                allowed = self.scope.owns_instance(host, value)
            elif name == "port_ids":
                allowed = self.scope.owns_ports(host, list(value))
            if not allowed:
                raise Refused(403, f"Host {host} may not act on this {name}.")

    def attach(self, host: str, endpoint: str | None) -> None:
        """Keep a handle on the host's listener in ``compute.host_links`` (a new one if
        it moved, or if the host's credential was rotated: the key changed)."""
        secret_digest = self.credentials.digest_of(host)
        if not endpoint or secret_digest is None:
            return
        current = self.handles.get(host)
        if current is not None and (current.endpoint, self.digests.get(host)) == \
                (endpoint, secret_digest):
            return
        handle = HttpHost(host, endpoint, secret_digest)
        self.handles[host] = handle
        self.digests[host] = secret_digest
        self.services.compute.host_links.add(handle)   # replaces the older handle
        if current is not None:
            current.close()
        log.info("host %s: its listener is at %s", host, endpoint)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()
        self.digests.clear()


def _link(request: Request) -> HostLink:
    state = request.app.state
    link = getattr(state, "hostlink", None)
    if link is None:
        link = state.hostlink = HostLink(state.services)
    return link


Handler = Callable[[Request, HostLink, str], Any]


def _endpoint(handler: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        link = _link(request)
        try:
            host = link.authenticate(request)
            return await handler(request, link, host)
        except Refused as exc:
            return error_response(exc.status, str(exc))
        except FileNotFoundError as exc:
            return error_response(404, exc)
        except ValueError as exc:
            return error_response(400, exc)
        except OneStackError as exc:
            return error_response(exc.status, exc)
        except Exception as exc:
            log.exception("host call %s failed", request.url.path)
            return error_response(500, exc)

    endpoint.access = ACCESS  # type: ignore[attr-defined]
    return endpoint


def _json_call(name: str) -> Callable[[Request], Any]:
    async def call(request: Request, link: HostLink, host: str) -> Response:
        raw = await read_body(request)   # 413 over MAX_BODY, as every JSON route
        body = loads_json(raw) if raw else {}
        endpoint = body.pop("endpoint", None) if name == "register" and \
            isinstance(body, dict) else None
        args = decode_args(HostToServer, name, body)

        def checked_call() -> Any:   # one thread hop for both
            link.check(host, args)
            return getattr(link.server_side, name)(**args)

        result = await run_in_threadpool(checked_call)
        if name == "register" and isinstance(endpoint, str):
            link.attach(host, endpoint)
        return JSONResponse(encode_result(HostToServer, name, result))

    call.__name__ = name
    return _endpoint(call)


async def _open_image(request: Request, link: HostLink, host: str) -> Response:
    image_id = request.path_params["image_id"]
    allowed = await run_in_threadpool(link.scope.may_read_image, host, image_id)
    if not allowed:
        raise Refused(403, f"No instance on host {host} uses image {image_id}.")
    chunks = link.server_side.open_image(image_id)
    first = await run_in_threadpool(next, chunks, b"")   # errors before the 200

    def rest() -> Iterator[bytes]:
        if first:
            yield first
        yield from chunks

    return StreamingResponse(rest(), media_type="application/octet-stream")


async def _upload_snapshot(request: Request, link: HostLink, host: str) -> Response:
    image_id = request.path_params["image_id"]
    allowed = await run_in_threadpool(link.scope.may_upload_snapshot, host, image_id)
    if not allowed:
        raise Refused(403, f"No instance on host {host} takes a snapshot into {image_id}.")
    spool = Path(link.config.state_dir) / "tmp"
    spool.mkdir(mode=0o700, exist_ok=True)
    path = spool / f"snapshot-{uuidlib.uuid4()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
        await run_in_threadpool(link.server_side.upload_snapshot, image_id, path)
    finally:
        path.unlink(missing_ok=True)
    return Response(status_code=204)


def _routes() -> list[BaseRoute]:
    calls: list[BaseRoute] = [Route(call_path(name), _json_call(name), methods=["POST"])
                              for name in json_calls(HostToServer)]
    return [*calls,
            Route("/images/{image_id}", _endpoint(_open_image), methods=["GET"]),
            Route("/images/{image_id}/snapshot", _endpoint(_upload_snapshot),
                  methods=["PUT"])]


routes: list[BaseRoute] = [Mount(PREFIX, routes=_routes())]

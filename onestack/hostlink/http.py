"""The HTTP transport: both interfaces of the host boundary over HTTP/1.1 and JSON.

Host -> server (``HostToServer``): ``HttpServerLink`` is what a remote agent calls. Each
call is ``POST <server>/hostlink/v1/<call>`` (``desired_state`` -> ``/desired-state``)
with the arguments as a JSON object, encoded and decoded by the interface's own type
hints (``onestack.hostlink.codec``); the answer is ``{"result": ...}``. Image bytes are
streamed (``GET /images/{id}``) and so is a snapshot (``PUT /images/{id}/snapshot``),
never base64 in JSON. The server's routes are ``onestack.api.hostlink``. Every request
carries the host's credential (``onestack.hostlink.credentials``).

Server -> host (``ServerToHost``): the agent serves a small ASGI app (``host_app``) on a
port of its own, and says where in each ``register`` call (``endpoint``). The server
reaches it with ``HttpHost`` (console output, serial endpoint, uptime, capabilities,
wake-up), authenticated by a key derived from the host's credential. ``wake`` never
waits for the host: it is sent from a background thread, and a host that misses it
converges at its next poll anyway. The guest's serial console is relayed over a
WebSocket of the listener; ``open_serial`` opens a serial endpoint of either kind.

Errors are ``{"error": {"code", "type", "message"}}``. A refusal (401/403) is
``HostLinkRefused``; a call the other side could not serve is ``HostLinkError`` with
the status and the other side's message; a missing image or console is
``FileNotFoundError`` on both sides; a host that cannot be reached is
``HostUnreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from onestack.hostlink.codec import from_wire, to_wire
from onestack.hostlink.credentials import (
    SCHEME_SERVER,
    digest,
    host_authorization,
    server_key,
)
from onestack.hostlink.interfaces import HostToServer, HostUnreachable, ServerToHost
from onestack.hostlink.types import HostReport, HostState, SerialEndpoint

log = logging.getLogger(__name__)

PREFIX = "/hostlink/v1"
#: Calls that move bytes, not JSON: they have routes of their own.
STREAMED = frozenset({"open_image", "upload_snapshot"})
CHUNK = 1 << 20


class HostLinkError(RuntimeError):
    """The other side answered a call with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class HostLinkRefused(HostLinkError, PermissionError):
    """The other side refused the credential (401) or the call (403)."""


# -- the calls, from the interface ---------------------------------------------------------


def call_path(name: str) -> str:
    return "/" + name.replace("_", "-")


def json_calls(interface: type = HostToServer) -> list[str]:
    """The calls of ``interface`` that carry JSON (every method but the streamed ones)."""
    return [name for name, member in vars(interface).items()
            if not name.startswith("_") and inspect.isfunction(member)
            and name not in STREAMED]


@functools.cache
def call_hints(interface: type, name: str) -> tuple[dict[str, Any], bool, Any]:
    """A call's parameter hints (in order), whether it takes ``**kwargs``, and its
    return hint."""
    method = getattr(interface, name)
    hints = typing.get_type_hints(method)
    params: dict[str, Any] = {}
    var_keyword = False
    for pname, param in inspect.signature(method).parameters.items():
        if pname == "self":
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        else:
            params[pname] = hints.get(pname, Any)
    return params, var_keyword, hints.get("return", Any)


def encode_args(interface: type, name: str, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> dict[str, Any]:
    params, _, _ = call_hints(interface, name)
    body = {pname: to_wire(value) for pname, value in zip(params, args, strict=False)}
    body.update({key: to_wire(value) for key, value in kwargs.items()})
    return body


def decode_args(interface: type, name: str, body: Any) -> dict[str, Any]:
    """The keyword arguments of a call from its JSON body; ValueError if they do not
    fit the call."""
    params, var_keyword, _ = call_hints(interface, name)
    if not isinstance(body, dict):
        raise ValueError("the arguments must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in params:
            try:
                out[key] = from_wire(params[key], value)
            except (TypeError, KeyError, AttributeError) as exc:
                raise ValueError(f"argument {key}: {exc}") from None
        elif var_keyword:
            out[key] = value
        else:
            raise ValueError(f"{name} takes no argument {key!r}")
    return out


def encode_result(interface: type, name: str, value: Any) -> Any:
    return {"result": to_wire(value)}


def decode_result(interface: type, name: str, body: Any) -> Any:
    _, _, returns = call_hints(interface, name)
    if returns is None or returns is type(None):
        return None
    return from_wire(returns, body["result"])


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        kind, message = error.get("type", ""), error.get("message", "")
    except Exception:
        kind, message = "", response.text[:500]
    if response.status_code in (401, 403):
        raise HostLinkRefused(response.status_code, message)
    if response.status_code == 404 and kind == "FileNotFoundError":
        raise FileNotFoundError(message)
    raise HostLinkError(response.status_code, message)


def error_response(status: int, exc: BaseException | str) -> JSONResponse:
    kind = type(exc).__name__ if isinstance(exc, BaseException) else "Refused"
    return JSONResponse({"error": {"code": status, "type": kind, "message": str(exc)}},
                        status_code=status)


# -- host -> server ----------------------------------------------------------------------------


class HttpServerLink:
    """``HostToServer`` over HTTP: what a remote agent calls. ``endpoint``: the URL of
    this host's own listener (``host_app``), sent with every ``register``."""

    def __init__(self, server_url: str, host: str, secret: str, *,
                 endpoint: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.host = host
        self.endpoint = endpoint
        self._client = httpx.Client(
            base_url=server_url.rstrip("/") + PREFIX, timeout=timeout, transport=transport,
            headers={"Authorization": host_authorization(host, secret)})

    def close(self) -> None:
        self._client.close()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        body = encode_args(HostToServer, name, args, kwargs)
        try:
            response = self._client.post(call_path(name), json=body)
        except httpx.HTTPError as exc:
            raise HostLinkError(0, f"{name}: the server did not answer: {exc}") from exc
        _raise_for(response)
        return decode_result(HostToServer, name, response.json())

    def register(self, report: HostReport) -> None:
        body = {"report": to_wire(report), "endpoint": self.endpoint}
        try:
            response = self._client.post(call_path("register"), json=body)
        except httpx.HTTPError as exc:
            raise HostLinkError(0, f"register: the server did not answer: {exc}") from exc
        _raise_for(response)

    def desired_state(self, host: str) -> HostState:
        result: HostState = self._call("desired_state", host)
        return result

    def existing_networks(self, network_ids: list[str]) -> list[str]:
        result: list[str] = self._call("existing_networks", network_ids)
        return result

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        result: dict[str, bytes] = self._call("config_drive_files", uuid)
        return result

    def open_image(self, image_id: str) -> Iterator[bytes]:
        with self._client.stream("GET", f"/images/{image_id}") as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            yield from response.iter_bytes(CHUNK)

    def upload_snapshot(self, image_id: str, path: Path) -> None:
        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        response = self._client.put(
            f"/images/{image_id}/snapshot", content=chunks(),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(path.stat().st_size)})
        _raise_for(response)

    def start_event(self, uuid: str, event: str) -> None:
        self._call("start_event", uuid, event)

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        return bool(self._call("finish_task", uuid, expected_task_state, event=event,
                               **changes))

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        return bool(self._call("fail_task", uuid, expected_task_state, message, event=event,
                               details=details, vm_state=vm_state))

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        self._call("report_power", uuid, power_state, vm_state)

    def set_port_status(self, port_ids: list[str], status: str) -> None:
        self._call("set_port_status", port_ids, status)

    def report_routers(self, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
        self._call("report_routers", host, applied, failed)

    def instance_deleted(self, uuid: str) -> None:
        self._call("instance_deleted", uuid)

    def report_attachments(self, uuid: str, attachment_ids: list[str]) -> None:
        self._call("report_attachments", uuid, attachment_ids)

    def volume_extended(self, uuid: str, volume_id: str, size_gb: int,
                        error: str | None) -> None:
        self._call("volume_extended", uuid, volume_id, size_gb, error)

    def metadata_secret(self) -> bytes:
        result: bytes = self._call("metadata_secret")
        return result

    def instance_for_address(self, network_id: str, ip: str) -> tuple[str, str] | None:
        result: tuple[str, str] | None = self._call("instance_for_address", network_id, ip)
        return result


# -- server -> host ----------------------------------------------------------------------------


class HttpHost:
    """``ServerToHost`` over HTTP: the server's handle on a remote host's listener.
    ``secret_digest``: the host's credential as the server keeps it."""

    def __init__(self, host: str, endpoint: str, secret_digest: str, *,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._host = host
        self.endpoint = endpoint
        self._key = server_key(secret_digest)
        self._client = httpx.Client(
            base_url=endpoint.rstrip("/"), timeout=timeout, transport=transport,
            headers={"Authorization": f"{SCHEME_SERVER} {self._key}"})
        self._waker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wake-{host}")
        self._wake_pending = threading.Event()

    @property
    def host(self) -> str:
        return self._host

    def close(self) -> None:
        self._waker.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self._client.get(path, params={k: v for k, v in params.items()
                                                      if v is not None})
        except httpx.HTTPError as exc:
            raise HostUnreachable(f"host {self._host} at {self.endpoint}: {exc}") from exc
        _raise_for(response)
        return response

    def wake(self) -> None:
        if self._wake_pending.is_set():
            return   # one wake-up already on its way covers this change too
        self._wake_pending.set()
        try:
            self._waker.submit(self._send_wake)
        except RuntimeError:   # closed
            pass

    def _send_wake(self) -> None:
        self._wake_pending.clear()
        try:
            self._client.post("/wake", timeout=2.0)
        except httpx.HTTPError as exc:
            log.debug("host %s: wake-up not delivered (%s); it polls", self._host, exc)

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        return self._get(f"/console/{uuid}", lines=lines).text

    def serial_endpoint(self, uuid: str) -> SerialEndpoint:
        """The host's WebSocket relay of the guest's serial console (the host's own
        endpoint is a unix socket on its machine, of no use here); ``open_serial``
        connects to it."""
        self._get(f"/serial/{uuid}")   # the guest has one (FileNotFoundError if not)
        base = self.endpoint.rstrip("/")
        scheme, _, rest = base.partition("://")
        ws = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
        return SerialEndpoint(kind="websocket", address=f"{ws}/serial/{uuid}/ws",
                              token=self._key)

    def diagnostics(self, uuid: str) -> dict[str, Any]:
        return dict(self._get(f"/diagnostics/{uuid}").json())

    def uptime(self) -> str:
        return self._get("/uptime").text

    def capabilities(self) -> dict[str, bool]:
        return {str(k): bool(v) for k, v in self._get("/capabilities").json().items()}


def host_app(handle: ServerToHost, secret: str) -> Starlette:
    """The agent's listener: ``handle`` (the agent) served to the server, which proves
    itself with the key derived from this host's ``secret``."""
    expected = f"{SCHEME_SERVER} {server_key(digest(secret))}"

    def authorized(endpoint: Callable[[Request], Response]
                   ) -> Callable[[Request], Any]:
        async def guarded(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return error_response(401, "The server's key is missing or wrong.")
            try:
                return await _in_thread(endpoint, request)
            except FileNotFoundError as exc:
                return error_response(404, exc)
            except Exception as exc:
                log.exception("server -> host call %s failed", request.url.path)
                return error_response(500, exc)
        return guarded

    def wake(request: Request) -> Response:
        handle.wake()
        return Response(status_code=204)

    def console(request: Request) -> Response:
        lines = request.query_params.get("lines")
        return PlainTextResponse(handle.console_log(request.path_params["uuid"],
                                                    int(lines) if lines else None))

    def serial(request: Request) -> Response:
        return JSONResponse(to_wire(handle.serial_endpoint(request.path_params["uuid"])))

    def uptime(request: Request) -> Response:
        return PlainTextResponse(handle.uptime())

    def diagnostics(request: Request) -> Response:
        return JSONResponse(handle.diagnostics(request.path_params["uuid"]))

    def capabilities(request: Request) -> Response:
        return JSONResponse(handle.capabilities())

    async def serial_ws(websocket: WebSocket) -> None:
        given = websocket.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            await websocket.close(code=1008)
            return
        try:
            endpoint = await _in_thread_call(handle.serial_endpoint,
                                             websocket.path_params["uuid"])
            if endpoint.kind != "unix":
                raise FileNotFoundError(f"no local serial socket ({endpoint.kind})")
            reader, writer = await asyncio.open_unix_connection(endpoint.address)
        except Exception as exc:
            log.warning("serial console of %s: %s", websocket.path_params["uuid"], exc)
            await websocket.close(code=1011)
            return
        await websocket.accept()
        await relay(websocket, reader, writer)

    routes: list[BaseRoute] = [
        Route("/wake", authorized(wake), methods=["POST"]),
        Route("/console/{uuid}", authorized(console), methods=["GET"]),
        Route("/serial/{uuid}", authorized(serial), methods=["GET"]),
        Route("/uptime", authorized(uptime), methods=["GET"]),
        Route("/diagnostics/{uuid}", authorized(diagnostics), methods=["GET"]),
        Route("/capabilities", authorized(capabilities), methods=["GET"]),
        WebSocketRoute("/serial/{uuid}/ws", serial_ws),
    ]
    return Starlette(routes=routes)


async def _in_thread(endpoint: Callable[[Request], Response], request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(endpoint, request)


async def _in_thread_call(func: Callable[[str], SerialEndpoint], arg: str) -> SerialEndpoint:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, arg)


# -- serial consoles ---------------------------------------------------------------------------


class SerialStream:
    """What a serial console is read from and written to, whichever its endpoint: the
    subset of asyncio's StreamReader/StreamWriter a relay uses."""

    async def read(self, n: int) -> bytes:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def wait_closed(self) -> None:
        raise NotImplementedError


class _UnixSerial(SerialStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()


class _WebSocketSerial(SerialStream):
    def __init__(self, connection: Any) -> None:
        self._ws = connection
        self._pending: list[bytes] = []

    async def read(self, n: int) -> bytes:
        import websockets

        try:
            message = await self._ws.recv()
        except websockets.ConnectionClosed:
            return b""
        return message if isinstance(message, bytes) else str(message).encode()

    def write(self, data: bytes) -> None:
        self._pending.append(data)

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        for data in pending:
            await self._ws.send(data)

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        await self._ws.close()


async def open_serial(endpoint: SerialEndpoint) -> SerialStream:
    """Connect to a guest's serial console: a unix socket on this machine (the
    in-process host), or a remote host's WebSocket relay (``HttpHost``)."""
    if endpoint.kind == "unix":
        reader, writer = await asyncio.open_unix_connection(endpoint.address)
        return _UnixSerial(reader, writer)
    from websockets.asyncio.client import connect

    connection = await connect(
        endpoint.address, open_timeout=10, max_size=None,
        additional_headers={"Authorization": f"{SCHEME_SERVER} {endpoint.token}"})
    return _WebSocketSerial(connection)


async def relay(websocket: WebSocket, reader: Any, writer: Any, chunk: int = 4096) -> None:
    """Bytes both ways between an accepted ``websocket`` and a stream (asyncio's
    reader/writer or a ``SerialStream`` as both), until either side ends."""

    async def to_guest() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            writer.write(data)
            await writer.drain()

    async def to_client() -> None:
        while True:
            data = await reader.read(chunk)
            if not data:
                return
            await websocket.send_bytes(data)

    tasks = [asyncio.create_task(to_guest()), asyncio.create_task(to_client())]
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect,
                                     ConnectionError, RuntimeError):
                await task
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        if websocket.application_state == WebSocketState.CONNECTED and \
                websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()

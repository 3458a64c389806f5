"""Remote consoles: ``POST /v2.1/servers/{id}/remote-consoles`` (2.6+; the legacy
``os-getSerialConsole`` action is in server_actions) and the websocket they point to.

Only the serial console exists (there is no VNC or SPICE server on the hosts). Its URL
is ``ws://<public host>/compute/serial-console?token=<token>``; the token is short-lived
(``CONSOLE_TOKEN_TTL``) and the websocket relays bytes both ways between the client and
the guest's serial port, where the host's handle says it is
(``compute.host_links.get(host).serial_endpoint(uuid)``: a unix socket of this machine,
or a remote host's WebSocket relay; ``hostlink.http.open_serial`` opens either). The
subprotocol ``binary`` (what websockify clients ask for) is accepted.
"""

from __future__ import annotations

import contextlib
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from onestack.api.common import base_url, caller, json_response, read_json
from onestack.api.compute.common import check_object, compute, only_keys
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import member
from onestack.common.errors import BadRequest, InvalidField, NotFound
from onestack.hostlink.http import open_serial, relay
from onestack.services.compute import Compute

log = logging.getLogger(__name__)

PROTOCOLS = ("vnc", "spice", "serial", "rdp")
TYPES = ("novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5")
CHUNK = 4096


def console_url(request: Request, token: str) -> str:
    """The websocket URL of a console token, on the public URL."""
    url = base_url(request)
    if url.startswith("https://"):
        url = "wss://" + url[len("https://"):]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://"):]
    return f"{url}/compute/serial-console?token={token}"


async def create_console(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    if v < (2, 6):
        raise NotFound("The resource could not be found.")
    body = await read_json(request)
    only_keys("body", body, ("remote_console",), required=("remote_console",))
    console = check_object("remote_console", body["remote_console"])
    only_keys("remote_console", console, ("protocol", "type"), required=("protocol", "type"))
    protocols = PROTOCOLS + (("mks",) if v >= (2, 8) else ())
    types = TYPES + (("webmks",) if v >= (2, 8) else ())
    protocol, kind = console["protocol"], console["type"]
    if protocol not in protocols:
        raise InvalidField("remote_console/protocol", f"{protocol!r} is not one of "
                           f"{list(protocols)}")
    if kind not in types:
        raise InvalidField("remote_console/type", f"{kind!r} is not one of {list(types)}")
    if protocol != "serial":
        raise BadRequest(f"Unavailable console type {protocol if protocol == 'rdp' else kind}.")
    if kind != "serial":
        raise BadRequest(f"Invalid console type {kind}")
    server_id = request.path_params["server_id"]
    token = compute(request).actions.serial_console(ctx, server_id)
    return json_response({"remote_console": {"protocol": protocol, "type": kind,
                                             "url": console_url(request, token)}})


async def serial_console(websocket: WebSocket) -> None:
    """Relay a serial console between the websocket and the guest's serial port."""
    token = websocket.query_params.get("token") or ""
    service: Compute = websocket.app.state.compute
    endpoint = await run_in_threadpool(service.actions.console_endpoint, token) \
        if token else None
    if endpoint is None:
        await websocket.close(code=1008)
        return
    try:
        reader = writer = await open_serial(endpoint)
    except Exception as exc:   # OSError, or the remote relay's refusal
        log.warning("serial console %s: %s", endpoint.address, exc)
        await websocket.close(code=1011)
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="binary" if "binary" in offered else None)
    try:
        await relay(websocket, reader, writer, CHUNK)
    finally:
        if websocket.application_state == WebSocketState.CONNECTED and \
                websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()


routes = [
    Route("/v2.1/servers/{server_id}/remote-consoles", member(create_console), methods=["POST"]),
    WebSocketRoute("/serial-console", serial_console),
]

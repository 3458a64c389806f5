"""/v2.1/servers/{server_id}/ips and /ips/{network_label}: a server's addresses by
network (without the ``OS-EXT-IPS`` attributes the server body has)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import compute, server_id
from onestack.api.compute.policy import reader
from onestack.api.compute.render import render_addresses
from onestack.common.errors import NotFound


async def list_ips(request: Request) -> Response:
    ctx = caller(request)
    view = compute(request).servers.get(ctx, server_id(request))
    return json_response({"addresses": render_addresses(view, extended=False)})


async def show_ips(request: Request) -> Response:
    ctx = caller(request)
    view = compute(request).servers.get(ctx, server_id(request))
    label = request.path_params["network_label"]
    addresses = render_addresses(view, extended=False)
    if label not in addresses:
        raise NotFound("Instance is not a member of specified network")
    return json_response({label: addresses[label]})


routes = [
    Route("/v2.1/servers/{server_id}/ips", reader(list_ips), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/ips/{network_label}", reader(show_ips), methods=["GET"]),
]

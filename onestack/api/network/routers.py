"""/v2.0/routers, with add/remove_router_interface and add/remove_extraroutes"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.network.common import (
    Bool,
    Id,
    Name,
    Tag,
    changes_of,
    networking,
    parse_member,
    project_of,
    read_and_delete,
    read_member,
    show,
    standard,
)
from onestack.api.network.policy import member, reader
from onestack.common.errors import InvalidField
from onestack.db.models import Router
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page
from onestack.services.network.routers import InterfaceInfo


class RouterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = ""
    description: Name = ""
    admin_state_up: Bool = True
    #: Checked by the service (network, enable_snat, external_fixed_ips).
    external_gateway_info: dict[str, Any] | None = None
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class RouterUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    admin_state_up: Bool | None = None
    external_gateway_info: dict[str, Any] | None = None
    #: ``[{"destination": CIDR, "nexthop": IP}]``, checked by the service (Neutron's
    #: messages for a malformed one).
    routes: Any = None


def render_router(router: Router, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    """A router as Neutron shows it. ``availability_zones``: the zone of the host that
    runs it (none until one does). ``ha`` and ``distributed`` (always false: one host
    runs each router, in one namespace) are shown to admins only, as Neutron's policy
    has it."""
    body = standard(router, page)
    extra = page.extra.get(router.id, {})
    body.update({
        "admin_state_up": router.admin_state_up, "status": router.status,
        "external_gateway_info": extra.get("external_gateway_info"),
        "routes": extra.get("routes", []),
        "availability_zones": extra.get("availability_zones", []),
        "availability_zone_hints": [],
    })
    if ctx.is_admin:
        body.update({"ha": False, "distributed": False})
    return body


def render_interface(info: InterfaceInfo) -> dict[str, Any]:
    return {"id": info.router_id, "tenant_id": info.project_id,
            "project_id": info.project_id, "port_id": info.port_id,
            "network_id": info.network_id,
            "subnet_id": info.subnet_ids[0] if info.subnet_ids else None,
            "subnet_ids": info.subnet_ids}


async def create_router(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(RouterCreate, await read_member(request, "router"), "router")
    page = networking(request).routers.create(
        ctx, project_id=project_of(data), name=data.name, description=data.description,
        admin_state_up=data.admin_state_up, external_gateway_info=data.external_gateway_info,
        tags=data.tags)
    return show(request, "router", render_router(page.one(), page, ctx), status=201)


list_routers, get_router, delete_router = read_and_delete(
    "router", "routers", "router_id", render_router,
    list_call=lambda net: net.routers.list, get_call=lambda net: net.routers.get,
    delete_call=lambda net: net.routers.delete)


async def update_router(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(RouterUpdate, await read_member(request, "router"), "router")
    page = networking(request).routers.update(ctx, request.path_params["router_id"],
                                              changes_of(data, "router", (
                                                  "name", "description", "admin_state_up")))
    return show(request, "router", render_router(page.one(), page, ctx))


async def _interface_body(request: Request) -> tuple[Any, Any]:
    body = await read_json(request)
    unknown = set(body) - {"subnet_id", "port_id"}
    if unknown:
        raise InvalidField(sorted(unknown)[0], "is not an attribute of a router interface")
    for key in ("subnet_id", "port_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidField(key, f"{body[key]!r} is not a string")
    return body.get("subnet_id"), body.get("port_id")


async def add_interface(request: Request) -> Response:
    ctx = caller(request)
    subnet_id, port_id = await _interface_body(request)
    info = networking(request).routers.add_interface(
        ctx, request.path_params["router_id"], subnet_id, port_id)
    return json_response(render_interface(info))


async def remove_interface(request: Request) -> Response:
    ctx = caller(request)
    subnet_id, port_id = await _interface_body(request)
    info = networking(request).routers.remove_interface(
        ctx, request.path_params["router_id"], subnet_id, port_id)
    return json_response(render_interface(info))


async def _change_routes(request: Request, add: bool) -> Response:
    ctx = caller(request)
    body = await read_member(request, "router")
    if set(body) != {"routes"}:
        raise InvalidField("router", "must hold exactly one attribute: routes")
    page = networking(request).routers.change_routes(
        ctx, request.path_params["router_id"], body["routes"], add=add)
    return show(request, "router", render_router(page.one(), page, ctx))


async def add_extraroutes(request: Request) -> Response:
    return await _change_routes(request, add=True)


async def remove_extraroutes(request: Request) -> Response:
    return await _change_routes(request, add=False)


_ONE = "/v2.0/routers/{router_id}"

routes = [
    Route("/v2.0/routers", member(create_router), methods=["POST"]),
    Route("/v2.0/routers", reader(list_routers, "get_router"), methods=["GET"]),
    Route(_ONE, reader(get_router), methods=["GET"]),
    Route(_ONE, member(update_router), methods=["PUT"]),
    Route(_ONE, member(delete_router), methods=["DELETE"]),
    Route(f"{_ONE}/add_router_interface",
          member(add_interface, "add_router_interface"), methods=["PUT"]),
    Route(f"{_ONE}/remove_router_interface",
          member(remove_interface, "remove_router_interface"), methods=["PUT"]),
    Route(f"{_ONE}/add_extraroutes", member(add_extraroutes), methods=["PUT"]),
    Route(f"{_ONE}/remove_extraroutes", member(remove_extraroutes), methods=["PUT"]),
]

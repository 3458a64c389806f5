"""/v2.0/floatingips"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller
from onestack.api.network.common import (
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
from onestack.db.models import FloatingIP
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page
from onestack.services.network.floating_ips import status_of


class FloatingIPCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    floating_network_id: Id
    floating_ip_address: Name | None = None
    subnet_id: Id | None = None
    port_id: Id | None = None
    fixed_ip_address: Name | None = None
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class FloatingIPUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port_id: Id | None = None
    fixed_ip_address: Name | None = None
    description: Name | None = None


def render_floating_ip(fip: FloatingIP, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(fip, page)
    associated = fip.fixed_port_id is not None
    body.update({
        "floating_ip_address": fip.floating_ip_address,
        "floating_network_id": fip.floating_network_id,
        "router_id": fip.router_id if associated else None,
        "port_id": fip.fixed_port_id,
        "fixed_ip_address": fip.fixed_ip_address if associated else None,
        "status": status_of(fip),
        "port_details": page.extra.get(fip.id, {}).get("port_details"),
    })
    return body


async def create_floating_ip(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(FloatingIPCreate, await read_member(request, "floatingip"),
                        "floatingip")
    page = networking(request).floating_ips.create(
        ctx, project_id=project_of(data), floating_network_id=data.floating_network_id,
        floating_ip_address=data.floating_ip_address, subnet_id=data.subnet_id,
        port_id=data.port_id, fixed_ip_address=data.fixed_ip_address,
        description=data.description, tags=data.tags)
    return show(request, "floatingip", render_floating_ip(page.one(), page, ctx), status=201)


list_floating_ips, get_floating_ip, delete_floating_ip = read_and_delete(
    "floatingip", "floatingips", "floatingip_id", render_floating_ip,
    list_call=lambda net: net.floating_ips.list, get_call=lambda net: net.floating_ips.get,
    delete_call=lambda net: net.floating_ips.delete)


async def update_floating_ip(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(FloatingIPUpdate, await read_member(request, "floatingip"),
                        "floatingip")
    page = networking(request).floating_ips.update(
        ctx, request.path_params["floatingip_id"],
        changes_of(data, "floatingip", ("description",)))
    return show(request, "floatingip", render_floating_ip(page.one(), page, ctx))


routes = [
    Route("/v2.0/floatingips", member(create_floating_ip, "create_floatingip"), methods=["POST"]),
    Route("/v2.0/floatingips", reader(list_floating_ips, "get_floatingip"), methods=["GET"]),
    Route("/v2.0/floatingips/{floatingip_id}",
          reader(get_floating_ip, "get_floatingip"), methods=["GET"]),
    Route("/v2.0/floatingips/{floatingip_id}",
          member(update_floating_ip, "update_floatingip"), methods=["PUT"]),
    Route("/v2.0/floatingips/{floatingip_id}",
          member(delete_floating_ip, "delete_floatingip"), methods=["DELETE"]),
]

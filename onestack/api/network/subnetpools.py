"""/v2.0/subnetpools (Neutron's ``subnet_allocation`` and ``default-subnetpools``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller
from onestack.api.network.common import (
    Bool,
    Id,
    Int,
    Name,
    Tag,
    networking,
    parse_member,
    project_of,
    read_and_delete,
    read_member,
    show,
    standard,
)
from onestack.api.network.policy import member, reader
from onestack.common.errors import BadRequest
from onestack.db.models import SubnetPool
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page


class SubnetPoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefixes: list[Name]
    name: Name = ""
    description: Name = ""
    default_prefixlen: Int | None = None
    min_prefixlen: Int | None = None
    max_prefixlen: Int | None = None
    shared: Bool = False
    is_default: Bool = False
    default_quota: Int | None = None
    address_scope_id: Id | None = None
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class SubnetPoolUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    prefixes: list[Name] | None = None
    default_prefixlen: Int | None = None
    min_prefixlen: Int | None = None
    max_prefixlen: Int | None = None
    is_default: Bool | None = None
    default_quota: Int | None = None
    address_scope_id: Id | None = None


def render_subnetpool(pool: SubnetPool, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(pool, page)
    body.update({
        "prefixes": list(pool.prefixes), "ip_version": pool.ip_version,
        "default_prefixlen": pool.default_prefixlen, "min_prefixlen": pool.min_prefixlen,
        "max_prefixlen": pool.max_prefixlen, "shared": pool.shared,
        "is_default": pool.is_default, "default_quota": pool.default_quota,
        "address_scope_id": None,
    })
    return body


async def create_subnetpool(request: Request) -> Response:
    ctx = caller(request)
    raw = await read_member(request, "subnetpool")
    data = parse_member(SubnetPoolCreate, raw, "subnetpool")
    page = networking(request).subnetpools.create(
        ctx, prefixes=data.prefixes, name=data.name, description=data.description,
        default_prefixlen=data.default_prefixlen, min_prefixlen=data.min_prefixlen,
        max_prefixlen=data.max_prefixlen, shared=data.shared, is_default=data.is_default,
        default_quota=data.default_quota, address_scope_id=data.address_scope_id,
        project_id=project_of(data), tags=data.tags)
    return show(request, "subnetpool", render_subnetpool(page.one(), page, ctx), status=201)


list_subnetpools, get_subnetpool, delete_subnetpool = read_and_delete(
    "subnetpool", "subnetpools", "subnetpool_id", render_subnetpool,
    list_call=lambda net: net.subnetpools.list, get_call=lambda net: net.subnetpools.get,
    delete_call=lambda net: net.subnetpools.delete)


async def update_subnetpool(request: Request) -> Response:
    ctx = caller(request)
    raw = await read_member(request, "subnetpool")
    for attr in ("ip_version", "shared", "project_id", "tenant_id"):
        if attr in raw:
            raise BadRequest(f"Cannot update read-only attribute {attr}")
    data = parse_member(SubnetPoolUpdate, raw, "subnetpool")
    changes = data.model_dump(exclude_unset=True)
    for attr in ("name", "description", "prefixes", "is_default"):
        if attr in changes and changes[attr] is None:
            raise BadRequest(f"Invalid input for {attr}. Reason: None is not allowed.")
    page = networking(request).subnetpools.update(
        ctx, request.path_params["subnetpool_id"], changes)
    return show(request, "subnetpool", render_subnetpool(page.one(), page, ctx))


routes = [
    Route("/v2.0/subnetpools", member(create_subnetpool), methods=["POST"]),
    Route("/v2.0/subnetpools", reader(list_subnetpools, "get_subnetpool"), methods=["GET"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", reader(get_subnetpool), methods=["GET"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", member(update_subnetpool), methods=["PUT"]),
    Route("/v2.0/subnetpools/{subnetpool_id}", member(delete_subnetpool),
          methods=["DELETE"]),
]

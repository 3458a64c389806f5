"""/v2.0/networks"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
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
    create_one_or_many,
    networking,
    parse_member,
    project_of,
    read_and_delete,
    read_member,
    show,
    standard,
)
from onestack.api.network.policy import member, reader
from onestack.db.models import Network
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page
from onestack.services.network.networks import Provider


class NetworkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = ""
    description: Name = ""
    admin_state_up: Bool = True
    shared: Bool = False
    external: Bool = Field(False, alias="router:external")
    mtu: Int | None = None
    port_security_enabled: Bool = True
    network_type: Name | None = Field(None, alias="provider:network_type")
    physical_network: Name | None = Field(None, alias="provider:physical_network")
    segmentation_id: Int | None = Field(None, alias="provider:segmentation_id")
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None
    is_default: Bool = False


class NetworkUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    admin_state_up: Bool | None = None
    shared: Bool | None = None
    external: Bool | None = Field(None, alias="router:external")
    mtu: Int | None = None
    port_security_enabled: Bool | None = None
    is_default: Bool | None = None


def render_network(network: Network, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(network, page)
    body.update({
        "admin_state_up": network.admin_state_up, "status": network.status,
        "subnets": [s.id for s in network.subnets], "shared": network.shared,
        "router:external": network.external, "mtu": network.mtu,
        "port_security_enabled": network.port_security_enabled,
    })
    if network.external:  # Neutron's auto-allocated-topology attribute
        body["is_default"] = network.is_default
    if ctx.is_admin:
        body.update({"provider:network_type": network.network_type,
                     "provider:physical_network": network.physical_network,
                     "provider:segmentation_id": network.segmentation_id})
    return body


async def create_network(request: Request) -> Response:
    ctx = caller(request)
    service = networking(request).networks

    def create(raw: dict[str, Any]) -> dict[str, Any]:
        data = parse_member(NetworkCreate, raw, "network")
        page = service.create(
            ctx, name=data.name, description=data.description,
            admin_state_up=data.admin_state_up, shared=data.shared, external=data.external,
            mtu=data.mtu, port_security_enabled=data.port_security_enabled,
            provider=Provider(data.network_type, data.physical_network,
                              data.segmentation_id),
            project_id=project_of(data), tags=data.tags, is_default=data.is_default)
        return render_network(page.one(), page, ctx)

    return await create_one_or_many(request, "network", "networks", create,
                                    lambda id_: service.delete(ctx, id_))


list_networks, get_network, delete_network = read_and_delete(
    "network", "networks", "network_id", render_network,
    list_call=lambda net: net.networks.list, get_call=lambda net: net.networks.get,
    delete_call=lambda net: net.networks.delete)


async def update_network(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(NetworkUpdate, await read_member(request, "network"), "network")
    page = networking(request).networks.update(ctx, request.path_params["network_id"],
                                               data.model_dump(exclude_unset=True))
    return show(request, "network", render_network(page.one(), page, ctx))


routes = [
    Route("/v2.0/networks", member(create_network), methods=["POST"]),
    Route("/v2.0/networks", reader(list_networks, "get_network"), methods=["GET"]),
    Route("/v2.0/networks/{network_id}", reader(get_network), methods=["GET"]),
    Route("/v2.0/networks/{network_id}", member(update_network), methods=["PUT"]),
    Route("/v2.0/networks/{network_id}", member(delete_network), methods=["DELETE"]),
]

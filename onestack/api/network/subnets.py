"""/v2.0/subnets"""

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
from onestack.common.errors import BadRequest
from onestack.db.models import Subnet
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page
from onestack.services.network.subnets import UNSET

Address = Name


class PoolBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Address
    end: Address


class HostRouteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Address
    nexthop: Address


class SubnetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network_id: Id
    ip_version: Int
    cidr: Address | None = None
    name: Name = ""
    description: Name = ""
    gateway_ip: Address | None = None
    allocation_pools: list[PoolBody] | None = None
    dns_nameservers: list[Address] | None = None
    host_routes: list[HostRouteBody] | None = None
    enable_dhcp: Bool = True
    ipv6_ra_mode: Name | None = None
    ipv6_address_mode: Name | None = None
    subnetpool_id: Id | None = None
    use_default_subnetpool: Bool = False
    prefixlen: Int | None = None
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class SubnetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    gateway_ip: Address | None = None
    allocation_pools: list[PoolBody] | None = None
    dns_nameservers: list[Address] | None = None
    host_routes: list[HostRouteBody] | None = None
    enable_dhcp: Bool | None = None


def render_subnet(subnet: Subnet, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(subnet, page)
    body.update({
        "network_id": subnet.network_id, "ip_version": subnet.ip_version,
        "cidr": subnet.cidr, "gateway_ip": subnet.gateway_ip,
        "allocation_pools": [{"start": p.first_ip, "end": p.last_ip}
                             for p in subnet.allocation_pools],
        "dns_nameservers": [d.address for d in subnet.dns_nameservers],
        "host_routes": [{"destination": r.destination, "nexthop": r.nexthop}
                        for r in subnet.host_routes],
        "enable_dhcp": subnet.enable_dhcp, "ipv6_ra_mode": subnet.ipv6_ra_mode,
        "ipv6_address_mode": subnet.ipv6_address_mode,
        "subnetpool_id": subnet.subnetpool_id,
        "router:external": subnet.network.external,
    })
    return body


async def create_subnet(request: Request) -> Response:
    ctx = caller(request)
    service = networking(request).subnets

    def create(raw: dict[str, Any]) -> dict[str, Any]:
        data = parse_member(SubnetCreate, raw, "subnet")
        pooled = bool(data.subnetpool_id or data.use_default_subnetpool)
        if data.cidr is None and not pooled:
            raise BadRequest("Invalid input for operation: a cidr must be specified in the "
                             "absence of a subnet pool.", fault="InvalidInput")
        if data.prefixlen is not None and not pooled:
            raise BadRequest("Invalid input for operation: prefixlen may only be given with a "
                             "subnet pool.", fault="InvalidInput")
        dump = data.model_dump(exclude_unset=True)
        page = service.create(
            ctx, network_id=data.network_id, cidr=data.cidr, ip_version=data.ip_version,
            name=data.name, description=data.description,
            gateway_ip=raw["gateway_ip"] if "gateway_ip" in raw else UNSET,
            allocation_pools=dump.get("allocation_pools"),
            dns_nameservers=data.dns_nameservers, host_routes=dump.get("host_routes"),
            enable_dhcp=data.enable_dhcp, ipv6_ra_mode=data.ipv6_ra_mode,
            ipv6_address_mode=data.ipv6_address_mode, project_id=project_of(data),
            tags=data.tags, subnetpool_id=data.subnetpool_id,
            use_default_subnetpool=data.use_default_subnetpool, prefixlen=data.prefixlen)
        return render_subnet(page.one(), page, ctx)

    return await create_one_or_many(request, "subnet", "subnets", create,
                                    lambda id_: service.delete(ctx, id_))


list_subnets, get_subnet, delete_subnet = read_and_delete(
    "subnet", "subnets", "subnet_id", render_subnet,
    list_call=lambda net: net.subnets.list, get_call=lambda net: net.subnets.get,
    delete_call=lambda net: net.subnets.delete)


async def update_subnet(request: Request) -> Response:
    ctx = caller(request)
    raw = await read_member(request, "subnet")
    for attr in ("cidr", "ip_version", "network_id", "ipv6_ra_mode", "ipv6_address_mode",
                 "subnetpool_id", "prefixlen", "project_id", "tenant_id"):
        if attr in raw:
            raise BadRequest(f"Cannot update read-only attribute {attr}")
    data = parse_member(SubnetUpdate, raw, "subnet")
    changes = data.model_dump(exclude_unset=True)
    for attr in ("name", "description", "enable_dhcp"):
        if attr in changes and changes[attr] is None:
            raise BadRequest(f"Invalid input for {attr}. Reason: None is not allowed.")
    page = networking(request).subnets.update(ctx, request.path_params["subnet_id"], changes)
    return show(request, "subnet", render_subnet(page.one(), page, ctx))


routes = [
    Route("/v2.0/subnets", member(create_subnet), methods=["POST"]),
    Route("/v2.0/subnets", reader(list_subnets, "get_subnet"), methods=["GET"]),
    Route("/v2.0/subnets/{subnet_id}", reader(get_subnet), methods=["GET"]),
    Route("/v2.0/subnets/{subnet_id}", member(update_subnet), methods=["PUT"]),
    Route("/v2.0/subnets/{subnet_id}", member(delete_subnet), methods=["DELETE"]),
]

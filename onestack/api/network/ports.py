"""/v2.0/ports"""

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
from onestack.db.models import Port
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page

#: Lists of objects checked by the service (which knows Neutron's error types).
Objects = list[dict[str, Any]]


class PortCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network_id: Id
    name: Name = ""
    description: Name = ""
    admin_state_up: Bool = True
    mac_address: Name | None = None
    fixed_ips: Objects | None = None
    device_id: Name = ""
    device_owner: Name = ""
    security_groups: list[Id] | None = None
    port_security_enabled: Bool | None = None
    allowed_address_pairs: Objects | None = None
    extra_dhcp_opts: Objects | None = None
    host_id: Name | None = Field(None, alias="binding:host_id")
    profile: dict[str, Any] | None = Field(None, alias="binding:profile")
    vnic_type: Name | None = Field(None, alias="binding:vnic_type")
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class PortUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    admin_state_up: Bool | None = None
    mac_address: Name | None = None
    fixed_ips: Objects | None = None
    device_id: Name | None = None
    device_owner: Name | None = None
    security_groups: list[Id] | None = None
    port_security_enabled: Bool | None = None
    allowed_address_pairs: Objects | None = None
    extra_dhcp_opts: Objects | None = None
    host_id: Name | None = Field(None, alias="binding:host_id")
    profile: dict[str, Any] | None = Field(None, alias="binding:profile")
    vnic_type: Name | None = Field(None, alias="binding:vnic_type")


_BINDING = ("host_id", "profile", "vnic_type")


def _service_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Body attribute names -> the service's (``binding`` collects the binding:*)."""
    binding = {k: attrs.pop(k) for k in _BINDING if k in attrs}
    if binding:
        attrs["binding"] = binding
    if "security_groups" in attrs:
        attrs["security_group_ids"] = attrs.pop("security_groups")
    return attrs


def render_port(port: Port, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    """A port (a model or a plain row); addresses etc. come from the page's extras."""
    extra = page.extra
    body = standard(port, page)
    body.update({
        "network_id": port.network_id, "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up, "status": port.status,
        "device_id": port.device_id, "device_owner": port.device_owner,
        "fixed_ips": [{"subnet_id": s, "ip_address": a}
                      for s, a in extra["fixed_ips"].get(port.id, ())],
        "allowed_address_pairs": [{"ip_address": a, "mac_address": m}
                                  for a, m in extra["allowed_address_pairs"].get(port.id, ())],
        "extra_dhcp_opts": [{"opt_name": n, "opt_value": v, "ip_version": ver}
                            for n, v, ver in extra["extra_dhcp_opts"].get(port.id, ())],
        "security_groups": extra["security_groups"][port.id],
        "port_security_enabled": port.port_security_enabled,
        "binding:vnic_type": port.binding_vnic_type,
    })
    if ctx.is_admin:
        body.update({"binding:host_id": port.binding_host_id,
                     "binding:profile": port.binding_profile,
                     "binding:vif_type": port.binding_vif_type,
                     "binding:vif_details": port.binding_vif_details})
    return body


async def create_port(request: Request) -> Response:
    ctx = caller(request)
    service = networking(request).ports

    def create(raw: dict[str, Any]) -> dict[str, Any]:
        data = parse_member(PortCreate, raw, "port")
        attrs = _service_attrs(data.model_dump(
            exclude_unset=True, exclude={"network_id", "project_id", "tenant_id"}))
        for attr in ("name", "description", "admin_state_up", "device_id", "device_owner"):
            if attr in attrs and attrs[attr] is None:
                raise BadRequest(f"Invalid input for {attr}. Reason: None is not allowed.")
        page = service.create(ctx, network_id=data.network_id,
                              project_id=project_of(data), **attrs)
        return render_port(page.one(), page, ctx)

    return await create_one_or_many(request, "port", "ports", create,
                                    lambda id_: service.delete(ctx, id_))


list_ports, get_port, delete_port = read_and_delete(
    "port", "ports", "port_id", render_port,
    list_call=lambda net: net.ports.list, get_call=lambda net: net.ports.get,
    delete_call=lambda net: net.ports.delete)


async def update_port(request: Request) -> Response:
    ctx = caller(request)
    raw = await read_member(request, "port")
    for attr in ("network_id", "project_id", "tenant_id"):
        if attr in raw:
            raise BadRequest(f"Cannot update read-only attribute {attr}")
    data = parse_member(PortUpdate, raw, "port")
    changes = _service_attrs(data.model_dump(exclude_unset=True))
    page = networking(request).ports.update(ctx, request.path_params["port_id"], changes)
    return show(request, "port", render_port(page.one(), page, ctx))


routes = [
    Route("/v2.0/ports", member(create_port), methods=["POST"]),
    Route("/v2.0/ports", reader(list_ports, "get_port"), methods=["GET"]),
    Route("/v2.0/ports/{port_id}", reader(get_port), methods=["GET"]),
    Route("/v2.0/ports/{port_id}", member(update_port), methods=["PUT"]),
    Route("/v2.0/ports/{port_id}", member(delete_port), methods=["DELETE"]),
]

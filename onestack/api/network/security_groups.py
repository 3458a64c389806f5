"""/v2.0/security-groups and /v2.0/security-group-rules"""

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
from onestack.common.errors import BadRequest
from onestack.db.models import SecurityGroup, SecurityGroupRule
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import Page
from onestack.services.network.security_groups import RuleSpec


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = ""
    description: Name = ""
    stateful: Bool = True
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] | None = None


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: Name | None = None
    stateful: Bool | None = None


class RuleCreate(BaseModel):
    """Protocol, ports, prefix and ethertype are checked by the service (which knows
    Neutron's error types); here only their JSON types."""

    model_config = ConfigDict(extra="forbid")
    security_group_id: Id
    direction: Name
    ethertype: Name | None = "IPv4"
    protocol: Name | int | None = None
    port_range_min: int | Name | None = None
    port_range_max: int | Name | None = None
    remote_ip_prefix: Name | None = None
    remote_group_id: Id | None = None
    description: Name = ""
    project_id: Id | None = None
    tenant_id: Id | None = None


def render_rule(rule: SecurityGroupRule, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(rule, page)
    body.pop("tags", None)  # rules are not taggable
    body.update({
        "security_group_id": rule.security_group_id, "direction": rule.direction,
        "ethertype": rule.ethertype, "protocol": rule.protocol,
        "port_range_min": rule.port_range_min, "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix, "remote_group_id": rule.remote_group_id,
    })
    return body


def render_group(group: SecurityGroup, page: Page, ctx: ValidatedToken) -> dict[str, Any]:
    body = standard(group, page)
    rules = page.extra.get(group.id, {}).get("security_group_rules", [])
    body.update({"stateful": group.stateful,
                 "security_group_rules": [render_rule(r, Page([]), ctx) for r in rules]})
    return body


# -- groups --------------------------------------------------------------------------


async def create_group(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(GroupCreate, await read_member(request, "security_group"),
                        "security_group")
    page = networking(request).security_groups.create_group(
        ctx, project_id=project_of(data), name=data.name, description=data.description,
        stateful=data.stateful, tags=data.tags)
    return show(request, "security_group", render_group(page.one(), page, ctx), status=201)


list_groups, get_group, delete_group = read_and_delete(
    "security_group", "security_groups", "group_id", render_group,
    list_call=lambda net: net.security_groups.list_groups,
    get_call=lambda net: net.security_groups.get_group,
    delete_call=lambda net: net.security_groups.delete_group)


async def update_group(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(GroupUpdate, await read_member(request, "security_group"),
                        "security_group")
    page = networking(request).security_groups.update_group(
        ctx, request.path_params["group_id"],
        changes_of(data, "security_group", ("name", "description", "stateful")))
    return show(request, "security_group", render_group(page.one(), page, ctx))


# -- rules ---------------------------------------------------------------------------


def _check_port_values(data: RuleCreate) -> None:
    """A port number outside 0-65535 is refused as Neutron's attribute converter does
    (``Invalid value for port N``), before the service checks the range against the
    protocol."""
    for attr in ("port_range_min", "port_range_max"):
        value = getattr(data, attr)
        number = value if isinstance(value, int) else (
            int(value) if isinstance(value, str) and value.strip().lstrip("-").isdigit()
            else None)
        if number is not None and not 0 <= number <= 65535:
            raise BadRequest(f"Invalid input for {attr}. Reason: Invalid value for port "
                             f"{number}.")


async def create_rule(request: Request) -> Response:
    ctx = caller(request)
    data = parse_member(RuleCreate, await read_member(request, "security_group_rule"),
                        "security_group_rule")
    _check_port_values(data)
    spec = RuleSpec(
        security_group_id=data.security_group_id, direction=data.direction,
        ethertype=data.ethertype, protocol=data.protocol,
        port_range_min=data.port_range_min, port_range_max=data.port_range_max,
        remote_ip_prefix=data.remote_ip_prefix, remote_group_id=data.remote_group_id,
        description=data.description)
    page = networking(request).security_groups.create_rule(ctx, spec, project_of(data))
    return show(request, "security_group_rule", render_rule(page.one(), page, ctx), status=201)


list_rules, get_rule, delete_rule = read_and_delete(
    "security_group_rule", "security_group_rules", "rule_id", render_rule,
    list_call=lambda net: net.security_groups.list_rules,
    get_call=lambda net: net.security_groups.get_rule,
    delete_call=lambda net: net.security_groups.delete_rule)


routes = [
    Route("/v2.0/security-groups", member(create_group, "create_security_group"), methods=["POST"]),
    Route("/v2.0/security-groups", reader(list_groups, "get_security_group"), methods=["GET"]),
    Route("/v2.0/security-groups/{group_id}",
          reader(get_group, "get_security_group"), methods=["GET"]),
    Route("/v2.0/security-groups/{group_id}",
          member(update_group, "update_security_group"), methods=["PUT"]),
    Route("/v2.0/security-groups/{group_id}",
          member(delete_group, "delete_security_group"), methods=["DELETE"]),
    Route("/v2.0/security-group-rules",
          member(create_rule, "create_security_group_rule"), methods=["POST"]),
    Route("/v2.0/security-group-rules",
          reader(list_rules, "get_security_group_rule"), methods=["GET"]),
    Route("/v2.0/security-group-rules/{rule_id}",
          reader(get_rule, "get_security_group_rule"), methods=["GET"]),
    Route("/v2.0/security-group-rules/{rule_id}",
          member(delete_rule, "delete_security_group_rule"), methods=["DELETE"]),
]

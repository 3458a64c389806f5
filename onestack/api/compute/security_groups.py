"""Nova's security group proxies: /v2.1/os-security-groups, /v2.1/os-security-group-rules
and /v2.1/servers/{id}/os-security-groups.

Nova keeps no security groups of its own: these routes show and change the Networking
service's groups (``services.network.security_groups``) in Nova's shapes, so a group
made here is the Neutron group a port is put in and the host firewall enforces. What
Nova shows of a group is its ingress rules only (its API cannot express egress); a rule
made here is an ingress rule, IPv4 unless its CIDR is IPv6, as Nova makes it.

Neutron's refusals come back as Nova turns them: a group in use or a ``default`` group
is a 400 to delete, a duplicate rule a 400, and a Neutron conflict on create (over
quota, a second ``default``) a 403. The group and rule routes are gone from
microversion 2.36 (404, as Nova); the server's list of groups is not.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import compute, non_negative, query_param, server_id
from onestack.api.compute.microversion import as_text, version
from onestack.api.network.common import networking
from onestack.api.policy import Endpoint, guard
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound, OneStackError
from onestack.services.compute.policy import forbidden
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import ListQuery, Page
from onestack.services.network.security_groups import RuleSpec

#: The last microversion with the proxies (Nova's ``MAX_PROXY_API_SUPPORT_VERSION``).
MAX_PROXY_VERSION = (2, 35)
#: Nova's ``osapi_max_limit``.
_MAX_LIMIT = 1000
#: Nova's rule on the length of a group's name and description.
_MAX_TEXT = 255
#: The protocols a Nova rule may name.
_NOVA_PROTOCOLS = ("tcp", "udp", "icmp")


# -- access ---------------------------------------------------------------------------


def _denied(rule: str) -> Exception:
    return forbidden(f"os_compute_api:os-security-groups:{rule}")


def _route(path: str, method: str, level: str, rule: str, endpoint: Endpoint,
           proxy: bool = True) -> Route:
    """A route whose callers below ``level`` get Nova's 403 naming ``rule``; a proxy
    route answers 404 above 2.35 whoever calls (Nova routes by version first)."""
    guarded = guard(level, _denied, rule)(endpoint)
    if not proxy:
        return Route(path, guarded, methods=[method])

    @functools.wraps(guarded)
    async def gated(request: Request) -> Response:
        asked = version(request)
        if asked > MAX_PROXY_VERSION:
            raise NotFound(f"API version {as_text(asked)} is not supported on this method.")
        return await guarded(request)

    return Route(path, gated, methods=[method])


# -- input ---------------------------------------------------------------------------


def _uuid(value: Any, what: str = "Security group id") -> str:
    """Nova's ``validate_id``: anything that is not a UUID is a 400."""
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            return value
        except ValueError:
            pass
    raise BadRequest(f"{what} should be uuid")


def _member(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        raise BadRequest(f"Missing parameter {key}")
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                         f"{value!r} is not of type 'object'")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    """A required string of at most 255 characters (Nova's schema for ``name`` and
    ``description``; empty is allowed)."""
    if key not in data:
        raise BadRequest(f"Invalid input for field/attribute security_group. '{key}' is a "
                         "required property")
    value = data[key]
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                         f"{value!r} is not of type 'string'")
    if len(value) > _MAX_TEXT:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value[:40]}... "
                         f"is longer than {_MAX_TEXT} characters")
    return value


def _port(value: Any, protocol: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() \
            and len(value.strip()) <= 12:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if protocol == "icmp":
        raise BadRequest("Type and Code must be integers for ICMP protocol type")
    raise BadRequest("To and From ports must be integers")


def _cidr(value: Any) -> str:
    """Nova's ``parse_cidr``: none means anywhere (``0.0.0.0/0``); else a network with
    its prefix length (host bits allowed), possibly URL-quoted."""
    if not value:
        return "0.0.0.0/0"
    text = urllib.parse.unquote(value) if isinstance(value, str) else None
    if text is None or "/" not in text or not text.split("/", 1)[1]:
        raise BadRequest(f"{value!r} is not a valid IP network.")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(f"{value!r} is not a valid IP network.") from None
    address = text.split("/", 1)[0]
    if network.prefixlen == 0 and ipaddress.ip_address(address) != network.network_address:
        raise BadRequest(f"Bad prefix for network in cidr {text}")
    return text


def _rule_spec(parent_id: str, data: dict[str, Any], remote_group: str | None) -> RuleSpec:
    """The Neutron rule a Nova rule request stands for (Nova's ``_new_ingress_rule``).

    A rule from a CIDR needs a protocol and both ports. A rule from a group may give
    none of them (everything from the group); with only a protocol, TCP and UDP open
    every port and ICMP every type. Where Nova would quietly drop a protocol or ports
    it cannot use, this refuses instead."""
    protocol_in = data.get("ip_protocol")
    low_in, high_in = data.get("from_port"), data.get("to_port")
    cidr = None if remote_group is not None else _cidr(data.get("cidr"))
    if remote_group is not None and data.get("cidr"):
        raise BadRequest("Only one of cidr and group_id may be given.")
    if protocol_in is None or protocol_in == "":
        if low_in is not None or high_in is not None or remote_group is None:
            raise BadRequest("Not enough parameters to build a valid rule.")
        return RuleSpec(security_group_id=parent_id, direction="ingress", ethertype="IPv4",
                        remote_group_id=remote_group)
    protocol = str(protocol_in).lower()
    if protocol not in _NOVA_PROTOCOLS:
        raise BadRequest(f"Invalid IP protocol {protocol_in}.")
    if remote_group is not None and low_in is None and high_in is None:
        low_in, high_in = (-1, -1) if protocol == "icmp" else (1, 65535)
    if low_in is None or high_in is None:
        raise BadRequest("Not enough parameters to build a valid rule.")
    low, high = _port(low_in, protocol), _port(high_in, protocol)
    if protocol in ("tcp", "udp"):
        if low > high:
            raise BadRequest(f"Invalid port range {low}:{high}. Former value cannot be "
                             "greater than the later")
        if low < 1 or high > 65535:
            raise BadRequest(f"Invalid port range {low}:{high}. Valid {protocol.upper()} "
                             "ports should be between 1-65535")
    elif not (-1 <= low <= 255 and -1 <= high <= 255):
        raise BadRequest(f"Invalid port range {low}:{high}. For ICMP, the type:code must "
                         "be valid")
    ethertype = "IPv4"
    if cidr is not None and ipaddress.ip_network(cidr, strict=False).version == 6:
        ethertype = "IPv6"
    return RuleSpec(security_group_id=parent_id, direction="ingress", ethertype=ethertype,
                    protocol=protocol, port_range_min=None if low == -1 else low,
                    port_range_max=None if high == -1 else high, remote_ip_prefix=cidr,
                    remote_group_id=remote_group)


# -- Neutron's answers as Nova gives them ---------------------------------------------


def _as_bad_request(exc: OneStackError) -> BadRequest:
    return BadRequest(exc.message)


# -- rendering ------------------------------------------------------------------------


def _ports_of(rule: Any) -> tuple[int | None, int | None]:
    """Nova's ports of a Neutron rule: a protocol without ports is every port (TCP and
    UDP ``1``-``65535``, else ``-1``)."""
    low, high = rule.port_range_min, rule.port_range_max
    if rule.protocol and low is None and high is None:
        return (1, 65535) if rule.protocol.upper() in ("TCP", "UDP") else (-1, -1)
    return low, high


def render_rule(rule: Any, groups: dict[str, Any]) -> dict[str, Any] | None:
    """A Neutron rule in Nova's shape; None when the group it names is not visible
    (Nova leaves such rules out). ``groups``: id -> group, for the names."""
    low, high = _ports_of(rule)
    body: dict[str, Any] = {"id": rule.id, "parent_group_id": rule.security_group_id,
                            "ip_protocol": rule.protocol, "from_port": low, "to_port": high,
                            "group": {}, "ip_range": {}}
    if rule.remote_group_id:
        source = groups.get(rule.remote_group_id)
        if source is None:
            return None
        body["group"] = {"name": source.name, "tenant_id": source.project_id}
    else:
        anywhere = "::/0" if rule.ethertype == "IPv6" else "0.0.0.0/0"
        body["ip_range"] = {"cidr": rule.remote_ip_prefix or anywhere}
    return body


def _rules_of(page: Page, group: Any) -> list[Any]:
    rules = page.extra.get(group.id, {}).get("security_group_rules", [])
    return [r for r in rules if r.direction == "ingress"]


def _named_groups(request: Request, ctx: ValidatedToken, pages: Iterable[Page]
                  ) -> dict[str, Any]:
    """id -> group for every group the pages' groups and their ingress rules name (those
    the caller may see)."""
    known: dict[str, Any] = {}
    wanted: set[str] = set()
    pages = list(pages)
    for page in pages:
        for group in page.items:
            known[group.id] = group
    for page in pages:
        for group in page.items:
            wanted.update(r.remote_group_id for r in _rules_of(page, group)
                          if r.remote_group_id and r.remote_group_id not in known)
    if wanted:
        found = networking(request).security_groups.list_groups(
            ctx, ListQuery(filters={"id": sorted(wanted)}))
        known.update({g.id: g for g in found.items})
    return known


def render_group(group: Any, page: Page, groups: dict[str, Any]) -> dict[str, Any]:
    rules = [render_rule(r, groups) for r in _rules_of(page, group)]
    return {"id": group.id, "name": group.name, "description": group.description,
            "tenant_id": group.project_id, "rules": [r for r in rules if r is not None]}


def _render_page(request: Request, ctx: ValidatedToken, page: Page) -> list[dict[str, Any]]:
    groups = _named_groups(request, ctx, [page])
    return [render_group(g, page, groups) for g in page.items]


def _sorted(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(groups, key=lambda g: (g["tenant_id"], g["name"]))


def _one_group(request: Request, ctx: ValidatedToken, group_id: str) -> dict[str, Any]:
    page = networking(request).security_groups.get_group(ctx, group_id)
    return _render_page(request, ctx, page)[0]


# -- groups ----------------------------------------------------------------------------


async def list_security_groups(request: Request) -> Response:
    """The caller's project's groups; an administrator's ``all_tenants`` (any value)
    lists every project's. ``offset`` and ``limit`` page the list, which is sorted by
    project and name."""
    ctx = caller(request)
    offset_raw, limit_raw = query_param(request, "offset"), query_param(request, "limit")
    offset = non_negative("offset", offset_raw) if offset_raw is not None else 0
    limit = non_negative("limit", limit_raw) if limit_raw is not None else _MAX_LIMIT
    limit = min(limit or _MAX_LIMIT, _MAX_LIMIT)
    everyone = ctx.is_admin and "all_tenants" in request.query_params
    query = ListQuery() if everyone else ListQuery(
        filters={"tenant_id": [ctx.project_id or ""]})
    page = networking(request).security_groups.list_groups(ctx, query)
    groups = _sorted(_render_page(request, ctx, page))
    return json_response({"security_groups": groups[offset:offset + limit]})


async def show_security_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = _uuid(request.path_params["group_id"])
    return json_response({"security_group": _one_group(request, ctx, group_id)})


async def create_security_group(request: Request) -> Response:
    ctx = caller(request)
    data = _member(await read_json(request), "security_group")
    name, description = _text(data, "name"), _text(data, "description")
    try:
        page = networking(request).security_groups.create_group(
            ctx, project_id=None, name=name, description=description, stateful=True)
    except Conflict as exc:  # Nova: Neutron's 409 is SecurityGroupLimitExceeded
        raise Forbidden(exc.message) from None
    return json_response({"security_group": _render_page(request, ctx, page)[0]})


async def update_security_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = _uuid(request.path_params["group_id"])
    sgs = networking(request).security_groups
    sgs.get_group(ctx, group_id)  # 404 before the body, as Nova
    data = _member(await read_json(request), "security_group")
    name, description = _text(data, "name"), _text(data, "description")
    try:
        page = sgs.update_group(ctx, group_id, {"name": name, "description": description})
    except Conflict as exc:  # renaming a default group, or to "default"
        raise _as_bad_request(exc) from None
    return json_response({"security_group": _render_page(request, ctx, page)[0]})


async def delete_security_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = _uuid(request.path_params["group_id"])
    try:
        networking(request).security_groups.delete_group(ctx, group_id)
    except Conflict as exc:  # in use, or a project's default group
        raise _as_bad_request(exc) from None
    return Response(status_code=202)


async def no_group_id(request: Request) -> Response:
    """``os-security-groups/`` (an empty id): nothing is named (without this route the
    router would redirect to the list)."""
    raise NotFound("The resource could not be found: an empty security group id.")


# -- rules -----------------------------------------------------------------------------


async def create_security_group_rule(request: Request) -> Response:
    ctx = caller(request)
    data = _member(await read_json(request), "security_group_rule")
    if "parent_group_id" not in data:
        raise BadRequest("Invalid input for field/attribute security_group_rule. "
                         "'parent_group_id' is a required property")
    parent_id = _uuid(data["parent_group_id"])
    remote = data.get("group_id")
    if remote is not None:
        remote = _uuid(remote)
    sgs = networking(request).security_groups
    parent = sgs.get_group(ctx, parent_id).one()
    groups = {parent.id: parent}
    if remote is not None:
        groups[remote] = sgs.get_group(ctx, remote).one()
    spec = _rule_spec(parent.id, data, remote)
    try:
        page = sgs.create_rule(ctx, spec)
    except Conflict as exc:
        if exc.fault == "SecurityGroupRuleExists":
            raise BadRequest(f"This rule already exists in group {parent.id}") from None
        raise Forbidden(exc.message) from None  # over quota: Nova's limit exceeded
    except BadRequest as exc:
        raise _as_bad_request(exc) from None
    body = render_rule(page.one(), groups)
    return json_response({"security_group_rule": body})


async def delete_security_group_rule(request: Request) -> Response:
    ctx = caller(request)
    rule_id = _uuid(request.path_params["rule_id"], "Security group rule id")
    networking(request).security_groups.delete_rule(ctx, rule_id)
    return Response(status_code=202)


async def no_rule_id(request: Request) -> Response:
    raise NotFound("The resource could not be found: an empty security group rule id.")


# -- a server's groups ------------------------------------------------------------------


async def list_server_security_groups(request: Request) -> Response:
    """The groups of the server's ports (with their rules), sorted by project and
    name; a server the caller may not see is a 404."""
    ctx = caller(request)
    sid = server_id(request)
    compute(request).servers.get(ctx, sid)
    net = networking(request)
    ports = net.ports.list(ctx, ListQuery(filters={"device_id": [sid]}))
    by_port: dict[str, list[str]] = ports.extra.get("security_groups", {})
    ids = sorted({g for port in ports.items for g in by_port.get(port.id, [])})
    if not ids:
        return json_response({"security_groups": []})
    page = net.security_groups.list_groups(ctx, ListQuery(filters={"id": ids}))
    return json_response({"security_groups": _sorted(_render_page(request, ctx, page))})


routes = [
    _route("/v2.1/os-security-groups", "GET", "reader", "get", list_security_groups),
    _route("/v2.1/os-security-groups", "POST", "member", "create", create_security_group),
    _route("/v2.1/os-security-groups/{group_id}", "GET", "reader", "show",
           show_security_group),
    _route("/v2.1/os-security-groups/{group_id}", "PUT", "member", "update",
           update_security_group),
    _route("/v2.1/os-security-groups/{group_id}", "DELETE", "member", "delete",
           delete_security_group),
    *(_route("/v2.1/os-security-groups/", m, "reader", "show", no_group_id, proxy=False)
      for m in ("GET", "PUT", "DELETE")),
    _route("/v2.1/os-security-group-rules", "POST", "member", "rule:create",
           create_security_group_rule),
    _route("/v2.1/os-security-group-rules/{rule_id}", "DELETE", "member", "rule:delete",
           delete_security_group_rule),
    _route("/v2.1/os-security-group-rules/", "DELETE", "reader", "rule:delete", no_rule_id,
           proxy=False),
    _route("/v2.1/servers/{server_id}/os-security-groups", "GET", "reader", "list",
           list_server_security_groups, proxy=False),
]

"""/v2.1/os-server-groups (Nova's server groups)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    check_int,
    check_name,
    check_object,
    compute,
    non_negative,
    only_keys,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import member, reader
from onestack.common.errors import InvalidField
from onestack.services.compute.server_groups import GroupView

if TYPE_CHECKING:
    from onestack.services.compute.server_groups import ServerGroups


def _groups(request: Request) -> ServerGroups:
    return compute(request).server_groups


def render_group(request: Request, view: GroupView) -> dict[str, Any]:
    v = version(request)
    body: dict[str, Any] = {"id": view.id, "name": view.name}
    if v >= (2, 64):
        body["policy"] = view.policy
        body["rules"] = dict(view.rules)
    else:
        body["policies"] = [view.policy]
        body["metadata"] = {}
    body["members"] = list(view.members)
    if v >= (2, 13):
        body["project_id"] = view.project_id
        body["user_id"] = view.user_id
    return body


async def list_groups(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("all_projects", "limit", "offset"))
    raw_limit, raw_offset = query_param(request, "limit"), query_param(request, "offset")
    limit = non_negative("limit", raw_limit) if raw_limit is not None else 0
    offset = non_negative("offset", raw_offset) if raw_offset is not None else 0
    all_projects = request.scope.get("query_string") and "all_projects" in request.query_params
    views = _groups(request).list(ctx, all_projects=bool(all_projects),
                                  limit=min(limit or 1000, 1000), offset=offset)
    return json_response({"server_groups": [render_group(request, g) for g in views]})


async def show_group(request: Request) -> Response:
    ctx = caller(request)
    view = _groups(request).get(ctx, request.path_params["group_id"])
    return json_response({"server_group": render_group(request, view)})


def _parse_create(request: Request, body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    v = version(request)
    only_keys("body", body, ("server_group",), ("server_group",))
    data = check_object("server_group", body["server_group"])
    allowed_policies = ["anti-affinity", "affinity"]
    if v >= (2, 15):
        allowed_policies += ["soft-anti-affinity", "soft-affinity"]
    if v >= (2, 64):
        only_keys("server_group", data, ("name", "policy", "rules"), ("name", "policy"))
        policy_name = data["policy"]
        if policy_name not in allowed_policies:
            raise InvalidField("server_group/policy",
                               f"{policy_name!r} is not one of {allowed_policies}")
        rules = check_object("server_group/rules", data.get("rules", {}))
        only_keys("server_group/rules", rules, ("max_server_per_host",))
        if "max_server_per_host" in rules:
            rules = {"max_server_per_host": check_int(
                "server_group/rules/max_server_per_host", rules["max_server_per_host"], 1)}
    else:
        only_keys("server_group", data, ("name", "policies"), ("name", "policies"))
        policies = data["policies"]
        if not isinstance(policies, list) or len(policies) != 1:
            raise InvalidField("server_group/policies",
                               f"{policies!r} must be a list of exactly one policy")
        policy_name = policies[0]
        if policy_name not in allowed_policies:
            raise InvalidField("server_group/policies/0",
                               f"{policy_name!r} is not one of {allowed_policies}")
        rules = {}
    return check_name("server_group/name", data["name"]), policy_name, rules


async def create_group(request: Request) -> Response:
    ctx = caller(request)
    name, policy_name, rules = _parse_create(request, await read_json(request))
    view = _groups(request).create(ctx, name, policy_name, rules)
    return json_response({"server_group": render_group(request, view)})


async def delete_group(request: Request) -> Response:
    ctx = caller(request)
    _groups(request).delete(ctx, request.path_params["group_id"])
    return Response(status_code=204)


routes = [
    Route("/v2.1/os-server-groups", reader(list_groups), methods=["GET"]),
    Route("/v2.1/os-server-groups", member(create_group), methods=["POST"]),
    Route("/v2.1/os-server-groups/{group_id}", reader(show_group), methods=["GET"]),
    Route("/v2.1/os-server-groups/{group_id}", member(delete_group), methods=["DELETE"]),
]

"""/v3/groups and group membership"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import Text, filters, identity, list_links, self_link
from onestack.common.errors import InvalidField
from onestack.db.models import Group
from onestack.services.identity.context import ValidatedToken

GroupName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255,
                                             pattern=r"\S")]
Reference = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: GroupName
    domain_id: Reference | None = None
    description: Text | None = ""


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: GroupName | None = None
    domain_id: Reference | None = None
    description: Text | None = None


def render_group(request: Request, g: Group) -> dict[str, Any]:
    return {**g.extra, "id": g.id, "name": g.name, "domain_id": g.domain_id,
            "description": g.description, "links": self_link(request, f"groups/{g.id}")}


async def create_group(request: Request) -> Response:
    ctx = caller(request)
    identity(request).groups.authorize_create(ctx)  # before the body: a 403, not a 400
    body = parse(GroupCreate, body_part(await read_json(request), "group"), "group")
    group = identity(request).groups.create(
        ctx, name=body.name, domain_id=body.domain_id or ctx.domain_id or "default",
        description=body.description or "", extra=body.model_extra or {})
    return json_response({"group": render_group(request, group)}, status=201)


async def list_groups(request: Request) -> Response:
    ctx = caller(request)
    identity(request).groups.authorize_list(ctx)  # before the domain-scoped empty answer
    wanted = filters(request, "name", "domain_id")
    if ctx.domain_id is not None:
        # a domain-scoped token sees its own domain only, as in Keystone
        if wanted.setdefault("domain_id", ctx.domain_id) != ctx.domain_id:
            return json_response({"groups": [], "links": list_links(request)})
    groups = identity(request).groups.list(ctx, **wanted)
    return json_response({"groups": [render_group(request, g) for g in groups],
                          "links": list_links(request)})


async def get_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = request.path_params["group_id"]
    group = identity(request).groups.get(ctx, group_id)
    return json_response({"group": render_group(request, group)})


async def update_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = request.path_params["group_id"]
    identity(request).groups.authorize_update(ctx, group_id)  # before the body
    body = parse(GroupUpdate, body_part(await read_json(request), "group"), "group")
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidField("group", "at least one attribute must be given")
    for key in ("name", "domain_id"):
        if key in changes and changes[key] is None:
            raise InvalidField(f"group/{key}", "None is not allowed")
    group = identity(request).groups.update(ctx, group_id, changes)
    return json_response({"group": render_group(request, group)})


async def delete_group(request: Request) -> Response:
    ctx = caller(request)
    group_id = request.path_params["group_id"]
    identity(request).groups.delete(ctx, group_id)
    return no_content()


async def list_group_users(request: Request) -> Response:
    # imported here: the users module renders groups with this module's render_group
    from onestack.api.identity.users import render_user

    ctx = caller(request)
    group_id = request.path_params["group_id"]
    users = identity(request).groups.users(ctx, group_id, **filters(request, "name",
                                                                     "domain_id", "enabled"))
    return json_response({"users": [render_user(request, u) for u in users],
                          "links": list_links(request)})


def _membership(request: Request) -> tuple[ValidatedToken, str, str]:
    return caller(request), request.path_params["group_id"], request.path_params["user_id"]


async def add_user_to_group(request: Request) -> Response:
    ctx, group_id, user_id = _membership(request)
    identity(request).groups.add_user(ctx, group_id, user_id)
    return no_content()


async def check_user_in_group(request: Request) -> Response:
    ctx, group_id, user_id = _membership(request)
    identity(request).groups.check_user(ctx, group_id, user_id)
    return no_content()


async def remove_user_from_group(request: Request) -> Response:
    ctx, group_id, user_id = _membership(request)
    identity(request).groups.remove_user(ctx, group_id, user_id)
    return no_content()


routes = [
    Route("/v3/groups", create_group, methods=["POST"]),
    Route("/v3/groups", list_groups, methods=["GET"]),
    Route("/v3/groups/{group_id}", get_group, methods=["GET"]),
    Route("/v3/groups/{group_id}", update_group, methods=["PATCH"]),
    Route("/v3/groups/{group_id}", delete_group, methods=["DELETE"]),
    Route("/v3/groups/{group_id}/users", list_group_users, methods=["GET"]),
    Route("/v3/groups/{group_id}/users/{user_id}", add_user_to_group, methods=["PUT"]),
    Route("/v3/groups/{group_id}/users/{user_id}", check_user_in_group,
          methods=["GET", "HEAD"]),
    Route("/v3/groups/{group_id}/users/{user_id}", remove_user_from_group,
          methods=["DELETE"]),
]

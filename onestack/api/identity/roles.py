"""/v3/roles, implied roles (/v3/roles/{prior}/implies/...) and /v3/role_inferences"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import identity, list_links, self_link
from onestack.common.errors import BadRequest
from onestack.db.models import Role

ROLE_NAME = r"\S"  # at least one non-blank character, as Keystone's schema asks


class RoleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    immutable: StrictBool | None = None


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(min_length=1, max_length=255, pattern=ROLE_NAME)
    description: StrictStr | None = None
    domain_id: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    options: RoleOptions = RoleOptions()


class RoleUpdate(BaseModel):
    """Only the fields sent count (``exclude_unset``); name and options may not be null."""

    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(default="", min_length=1, max_length=255, pattern=ROLE_NAME)
    description: StrictStr | None = None
    domain_id: StrictStr | None = None
    options: RoleOptions = RoleOptions()
    id: StrictStr = ""


def render_role(request: Request, r: Role) -> dict[str, Any]:
    return {**(r.extra or {}), "id": r.id, "name": r.name, "domain_id": r.domain_id,
            "description": r.description or None, "options": dict(r.options or {}),
            "links": self_link(request, f"roles/{r.id}")}


def role_ref(request: Request, r: Role) -> dict[str, Any]:
    """A role as an inference rule shows it: id, name and link."""
    return {"id": r.id, "name": r.name, "links": self_link(request, f"roles/{r.id}")}


def query_value(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and "\x00" in value:
        raise BadRequest(f"Invalid value for query parameter {name!r}.")
    return value


# -- roles -------------------------------------------------------------------------

async def create_role(request: Request) -> Response:
    ctx = caller(request)
    identity(request).roles.authorize_create(ctx)  # before the body: a 403, not a 400
    body = parse(RoleCreate, body_part(await read_json(request), "role"), "role")
    # Keystone assigns the id itself; an id in the body is ignored
    extra = {k: v for k, v in (body.model_extra or {}).items() if k not in ("id", "links")}
    role = identity(request).roles.create(
        ctx, name=body.name, domain_id=body.domain_id, description=body.description or "",
        options=body.options.model_dump(exclude_unset=True), extra=extra)
    return json_response({"role": render_role(request, role)}, status=201)


async def list_roles(request: Request) -> Response:
    ctx = caller(request)
    roles = identity(request).roles.list(ctx, name=query_value(request, "name"),
                                         domain_id=query_value(request, "domain_id") or None)
    return json_response({"roles": [render_role(request, r) for r in roles],
                          "links": list_links(request)})


async def get_role(request: Request) -> Response:
    ctx = caller(request)
    role = identity(request).roles.get(ctx, request.path_params["role_id"])
    return json_response({"role": render_role(request, role)})


async def update_role(request: Request) -> Response:
    ctx = caller(request)
    identity(request).roles.authorize_update(ctx)  # before the body
    data = body_part(await read_json(request), "role")
    if not data:
        raise BadRequest("Invalid input for field 'role': {} does not have enough "
                         "properties.")
    body = parse(RoleUpdate, data, "role")
    changes = body.model_dump(exclude_unset=True)
    if "options" in changes:
        changes["options"] = body.options.model_dump(exclude_unset=True)
    changes.pop("links", None)
    role = identity(request).roles.update(ctx, request.path_params["role_id"], changes)
    return json_response({"role": render_role(request, role)})


async def delete_role(request: Request) -> Response:
    ctx = caller(request)
    identity(request).roles.delete(ctx, request.path_params["role_id"])
    return no_content()


# -- implied roles -----------------------------------------------------------------

def _inference(request: Request, prior: Role, implied: Role) -> dict[str, Any]:
    return {"role_inference": {"prior_role": role_ref(request, prior),
                               "implies": role_ref(request, implied)},
            "links": self_link(request, f"roles/{prior.id}/implies/{implied.id}")}


async def create_implied_role(request: Request) -> Response:
    ctx = caller(request)
    prior, implied = identity(request).roles.create_implied(
        ctx, request.path_params["prior_role_id"], request.path_params["implied_role_id"])
    return json_response(_inference(request, prior, implied), status=201)


async def get_implied_role(request: Request) -> Response:
    ctx = caller(request)
    prior, implied = identity(request).roles.get_implied(
        ctx, request.path_params["prior_role_id"], request.path_params["implied_role_id"])
    return json_response(_inference(request, prior, implied))


async def check_implied_role(request: Request) -> Response:
    ctx = caller(request)
    identity(request).roles.check_implied(ctx, request.path_params["prior_role_id"],
                                          request.path_params["implied_role_id"])
    return no_content()


async def delete_implied_role(request: Request) -> Response:
    ctx = caller(request)
    identity(request).roles.delete_implied(ctx, request.path_params["prior_role_id"],
                                           request.path_params["implied_role_id"])
    return no_content()


async def list_implied_roles(request: Request) -> Response:
    ctx = caller(request)
    prior, implied = identity(request).roles.list_implied(
        ctx, request.path_params["prior_role_id"])
    return json_response({
        "role_inference": {"prior_role": role_ref(request, prior),
                           "implies": [role_ref(request, r) for r in implied]},
        "links": self_link(request, f"roles/{prior.id}/implies")})


async def list_role_inferences(request: Request) -> Response:
    ctx = caller(request)
    rules = identity(request).roles.list_inferences(ctx)
    return json_response({"role_inferences": [
        {"prior_role": role_ref(request, prior),
         "implies": [role_ref(request, r) for r in implied]}
        for prior, implied in rules]})


_IMPLIES = "/v3/roles/{prior_role_id}/implies/{implied_role_id}"

routes = [
    Route("/v3/roles", create_role, methods=["POST"]),
    Route("/v3/roles", list_roles, methods=["GET"]),
    Route("/v3/roles/{role_id}", get_role, methods=["GET"]),
    Route("/v3/roles/{role_id}", update_role, methods=["PATCH"]),
    Route("/v3/roles/{role_id}", delete_role, methods=["DELETE"]),
    Route("/v3/roles/{prior_role_id}/implies", list_implied_roles, methods=["GET"]),
    Route(_IMPLIES, create_implied_role, methods=["PUT"]),
    Route(_IMPLIES, check_implied_role, methods=["HEAD"]),  # before GET, which adds HEAD
    Route(_IMPLIES, get_implied_role, methods=["GET"]),
    Route(_IMPLIES, delete_implied_role, methods=["DELETE"]),
    Route("/v3/role_inferences", list_role_inferences, methods=["GET"]),
]

"""/v3/policies and /v3/OS-EP-FILTER/endpoint_groups: stored for other programs"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.catalog import render_endpoint
from onestack.api.identity.common import Text, identity, list_links, self_link
from onestack.common.errors import InvalidField
from onestack.db.models.identity import EndpointGroup, PolicyBlob
from onestack.services.identity.policy import authorize

POLICY = "policy"
GROUP = "endpoint_group"


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    blob: Text
    type: Text = Field(max_length=255)


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    blob: Text | None = None
    type: Text | None = Field(default=None, max_length=255)


def _extra(body: BaseModel, root: str) -> dict[str, Any]:
    extra = {k: v for k, v in (body.model_extra or {}).items() if k != "links"}
    if "id" in extra:
        raise InvalidField(f"{root}/id", "is read-only")
    return extra


def render_policy(request: Request, p: PolicyBlob) -> dict[str, Any]:
    return {**(p.extra or {}), "id": p.id, "blob": p.blob, "type": p.type,
            "links": self_link(request, f"policies/{p.id}")}


async def create_policy(request: Request) -> Response:
    ctx = caller(request)
    service = identity(request).policies
    authorize(ctx, "identity:create_policy")  # before the body: a 403, whatever it holds
    body = parse(PolicyCreate, body_part(await read_json(request), POLICY), POLICY)
    policy = service.create(ctx, blob=body.blob, type_=body.type, extra=_extra(body, POLICY))
    return json_response({POLICY: render_policy(request, policy)}, status=201)


async def list_policies(request: Request) -> Response:
    policies = identity(request).policies.list_policies(caller(request),
                                               type_=request.query_params.get("type"))
    return json_response({"policies": [render_policy(request, p) for p in policies],
                          "links": list_links(request)})


async def get_policy(request: Request) -> Response:
    policy = identity(request).policies.get(caller(request), request.path_params["policy_id"])
    return json_response({POLICY: render_policy(request, policy)})


async def update_policy(request: Request) -> Response:
    ctx = caller(request)
    authorize(ctx, "identity:update_policy")
    body = parse(PolicyUpdate, body_part(await read_json(request), POLICY), POLICY)
    if "blob" in body.model_fields_set and body.blob is None or \
            "type" in body.model_fields_set and body.type is None:
        raise InvalidField(POLICY, "blob and type must not be null")
    policy = identity(request).policies.update(
        ctx, request.path_params["policy_id"], blob=body.blob, type_=body.type,
        extra=_extra(body, POLICY))
    return json_response({POLICY: render_policy(request, policy)})


async def delete_policy(request: Request) -> Response:
    identity(request).policies.delete(caller(request), request.path_params["policy_id"])
    return no_content()


# -- OS-EP-FILTER endpoint groups ---------------------------------------------------------


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=255)
    description: Text | None = None
    filters: dict[str, Any]


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, min_length=1, max_length=255)
    description: Text | None = None
    filters: dict[str, Any] | None = None


def render_group(request: Request, g: EndpointGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "description": g.description, "filters": g.filters,
            "links": self_link(request, f"OS-EP-FILTER/endpoint_groups/{g.id}")}


async def create_group(request: Request) -> Response:
    ctx = caller(request)
    authorize(ctx, "identity:create_endpoint_group")
    body = parse(GroupCreate, body_part(await read_json(request), GROUP), GROUP)
    group = identity(request).endpoint_groups.create(
        ctx, name=body.name, description=body.description or "", filters=body.filters)
    return json_response({GROUP: render_group(request, group)}, status=201)


async def list_groups(request: Request) -> Response:
    groups = identity(request).endpoint_groups.list_groups(caller(request),
                                                    name=request.query_params.get("name"))
    return json_response({"endpoint_groups": [render_group(request, g) for g in groups],
                          "links": list_links(request)})


async def get_group(request: Request) -> Response:
    group = identity(request).endpoint_groups.get(caller(request),
                                                  request.path_params["endpoint_group_id"])
    return json_response({GROUP: render_group(request, group)})


async def check_group(request: Request) -> Response:
    identity(request).endpoint_groups.get(caller(request),
                                          request.path_params["endpoint_group_id"])
    return Response(status_code=200)


async def update_group(request: Request) -> Response:
    ctx = caller(request)
    authorize(ctx, "identity:update_endpoint_group")
    body = parse(GroupUpdate, body_part(await read_json(request), GROUP), GROUP)
    if "filters" in body.model_fields_set and body.filters is None:
        raise InvalidField(f"{GROUP}/filters", "must not be null")
    group = identity(request).endpoint_groups.update(
        ctx, request.path_params["endpoint_group_id"], name=body.name,
        description=body.description, filters=body.filters)
    return json_response({GROUP: render_group(request, group)})


async def delete_group(request: Request) -> Response:
    identity(request).endpoint_groups.delete(caller(request),
                                             request.path_params["endpoint_group_id"])
    return no_content()


async def group_endpoints(request: Request) -> Response:
    endpoints = identity(request).endpoint_groups.endpoints(
        caller(request), request.path_params["endpoint_group_id"])
    return json_response({"endpoints": [render_endpoint(request, e) for e in endpoints],
                          "links": list_links(request)})


_GROUPS = "/v3/OS-EP-FILTER/endpoint_groups"
routes = [
    Route("/v3/policies", create_policy, methods=["POST"]),
    Route("/v3/policies", list_policies, methods=["GET"]),
    Route("/v3/policies/{policy_id}", get_policy, methods=["GET"]),
    Route("/v3/policies/{policy_id}", update_policy, methods=["PATCH"]),
    Route("/v3/policies/{policy_id}", delete_policy, methods=["DELETE"]),
    Route(_GROUPS, create_group, methods=["POST"]),
    Route(_GROUPS, list_groups, methods=["GET"]),
    Route(f"{_GROUPS}/{{endpoint_group_id}}", check_group, methods=["HEAD"]),
    Route(f"{_GROUPS}/{{endpoint_group_id}}", get_group, methods=["GET"]),
    Route(f"{_GROUPS}/{{endpoint_group_id}}", update_group, methods=["PATCH"]),
    Route(f"{_GROUPS}/{{endpoint_group_id}}", delete_group, methods=["DELETE"]),
    Route(f"{_GROUPS}/{{endpoint_group_id}}/endpoints", group_endpoints, methods=["GET"]),
]

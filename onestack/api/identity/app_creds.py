"""/v3/users/{user_id}/application_credentials and .../access_rules"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import Text, filters, identity, list_links, self_link
from onestack.db.models import ApplicationCredential

FIELD = "application_credential"


class RoleRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Text | None = None
    name: Text | None = None


class AppCredCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Text, Field(min_length=1, max_length=255)]
    description: Text | None = None
    secret: Text | None = None
    expires_at: Text | None = None
    roles: list[RoleRef] | None = None
    unrestricted: StrictBool | None = None
    access_rules: list[Any] | None = None


def render_app_cred(request: Request, cred: ApplicationCredential,
                    roles: dict[str, dict[str, Any]],
                    rules: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    expires = cred.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if cred.expires_at else None
    return {
        "id": cred.id, "name": cred.name, "description": cred.description or None,
        "expires_at": expires, "project_id": cred.project_id, "user_id": cred.user_id,
        "roles": [roles[rid] for rid in cred.roles if rid in roles],
        "unrestricted": cred.unrestricted,
        "access_rules": [(rules or {})[rid] for rid in cred.access_rules or []
                         if rid in (rules or {})],
        "links": self_link(request, f"users/{cred.user_id}/application_credentials/{cred.id}"),
    }


async def create_app_cred(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    service = identity(request).app_creds
    service.authorize_create(ctx, user_id)  # before the body: a 403, whatever it holds
    body = parse(AppCredCreate, body_part(await read_json(request), FIELD), FIELD)
    roles = [r.model_dump(exclude_none=True) for r in body.roles] if body.roles else None
    cred, secret = await service.create(
        ctx, user_id, name=body.name, description=body.description or "",
        secret=body.secret, expires_at=body.expires_at, roles=roles,
        unrestricted=bool(body.unrestricted), access_rules=body.access_rules)
    rendered = render_app_cred(request, cred, service.roles_of([cred]),
                               service.access_rules_of([cred]))
    return json_response({FIELD: {**rendered, "secret": secret}}, status=201)


async def list_app_creds(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    service = identity(request).app_creds
    creds = service.list(ctx, user_id, name=request.query_params.get("name"))
    roles, rules = service.roles_of(creds), service.access_rules_of(creds)
    return json_response({"application_credentials": [render_app_cred(request, c, roles,
                                                                      rules)
                                                      for c in creds],
                          "links": list_links(request)})


async def get_app_cred(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    service = identity(request).app_creds
    cred = service.get(ctx, user_id, request.path_params["cred_id"])
    return json_response({FIELD: render_app_cred(request, cred, service.roles_of([cred]),
                                                 service.access_rules_of([cred]))})


async def delete_app_cred(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    identity(request).app_creds.delete(ctx, user_id, request.path_params["cred_id"])
    return no_content()


def render_rule(request: Request, user_id: str, rule: dict[str, str]) -> dict[str, Any]:
    return {**rule, "links": self_link(request, f"users/{user_id}/access_rules/{rule['id']}")}


async def list_access_rules(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    rules = identity(request).app_creds.list_rules(
        ctx, user_id, **filters(request, "service", "method", "path"))
    return json_response({"access_rules": [render_rule(request, user_id, r)
                                           for r in rules],
                          "links": list_links(request)})


async def get_access_rule(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    rule = identity(request).app_creds.get_rule(ctx, user_id,
                                                request.path_params["rule_id"])
    return json_response({"access_rule": render_rule(request, user_id, rule)})


async def delete_access_rule(request: Request) -> Response:
    ctx = caller(request)
    identity(request).app_creds.delete_rule(ctx, request.path_params["user_id"],
                                            request.path_params["rule_id"])
    return no_content()


routes = [
    Route("/v3/users/{user_id}/application_credentials", create_app_cred, methods=["POST"]),
    Route("/v3/users/{user_id}/application_credentials", list_app_creds, methods=["GET"]),
    Route("/v3/users/{user_id}/application_credentials/{cred_id}", get_app_cred,
          methods=["GET"]),
    Route("/v3/users/{user_id}/application_credentials/{cred_id}", delete_app_cred,
          methods=["DELETE"]),
    Route("/v3/users/{user_id}/access_rules", list_access_rules, methods=["GET"]),
    Route("/v3/users/{user_id}/access_rules/{rule_id}", get_access_rule, methods=["GET"]),
    Route("/v3/users/{user_id}/access_rules/{rule_id}", delete_access_rule,
          methods=["DELETE"]),
]

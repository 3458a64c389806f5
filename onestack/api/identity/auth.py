"""/v3/auth: issue, validate, check and revoke tokens; what a token may reach."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import (
    caller,
    json_bytes_response,
    json_response,
    no_content,
    query_bool,
    read_json,
)
from onestack.api.identity.common import identity, list_links
from onestack.api.identity.domains import render_domain
from onestack.api.identity.oauth1 import signed_request
from onestack.api.identity.projects import render_project
from onestack.common.errors import Unauthorized
from onestack.services.identity.context import ValidatedToken


def _subject(request: Request, action: str) -> tuple[ValidatedToken, ValidatedToken]:
    ctx = caller(request)
    token = request.headers.get("x-subject-token")
    if not token:
        raise Unauthorized("X-Subject-Token is missing.")
    subject = identity(request).tokens.validate_subject(ctx, token, action)
    return ctx, subject


async def issue_token(request: Request) -> Response:
    tokens = identity(request).tokens
    source = request.client.host if request.client else None
    vt = await tokens.authenticate(await read_json(request), source=source,
                                   signed=await signed_request(request))
    body = tokens.render_json(vt, catalog=not query_bool(request, "nocatalog"))
    return json_bytes_response(body, status=201, headers={"X-Subject-Token": vt.token})


async def validate_token(request: Request) -> Response:
    _, subject = _subject(request, "validate")
    body = identity(request).tokens.render_json(subject,
                                                catalog=not query_bool(request, "nocatalog"))
    return json_bytes_response(body, headers={"X-Subject-Token": subject.token})


async def check_token(request: Request) -> Response:
    _, subject = _subject(request, "check")
    return Response(status_code=200, headers={"X-Subject-Token": subject.token})


async def revoke_token(request: Request) -> Response:
    ctx, subject = _subject(request, "revoke")
    identity(request).tokens.revoke(ctx, subject)
    return no_content()


async def auth_catalog(request: Request) -> Response:
    body = identity(request).tokens.catalog(caller(request))
    return json_response({"catalog": body, "links": list_links(request)})


async def auth_projects(request: Request) -> Response:
    projects = identity(request).tokens.projects(caller(request))
    return json_response({"projects": [render_project(request, p) for p in projects],
                          "links": list_links(request)})


async def auth_domains(request: Request) -> Response:
    domains = identity(request).tokens.domains(caller(request))
    return json_response({"domains": [render_domain(request, d) for d in domains],
                          "links": list_links(request)})


async def auth_system(request: Request) -> Response:
    systems = identity(request).tokens.systems(caller(request))
    return json_response({"system": systems, "links": list_links(request)})


routes = [
    Route("/v3/auth/tokens", issue_token, methods=["POST"]),
    Route("/v3/auth/tokens", check_token, methods=["HEAD"]),  # before GET, which adds HEAD
    Route("/v3/auth/tokens", validate_token, methods=["GET"]),
    Route("/v3/auth/tokens", revoke_token, methods=["DELETE"]),
    Route("/v3/auth/catalog", auth_catalog, methods=["GET"]),
    Route("/v3/auth/projects", auth_projects, methods=["GET"]),
    Route("/v3/auth/domains", auth_domains, methods=["GET"]),
    Route("/v3/auth/system", auth_system, methods=["GET"]),
]

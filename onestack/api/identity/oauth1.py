"""OS-OAUTH1: consumers, the delegation flow and a user's access tokens
(``services/identity/oauth1.py`` explains the flow)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import (
    body_part,
    caller,
    json_response,
    no_content,
    parse,
    read_body,
    read_json,
)
from onestack.api.identity.common import Text, identity, list_links, self_link
from onestack.common.errors import InvalidField, NotFound
from onestack.db.models import Role
from onestack.db.models.identity import OAuthAccessToken, OAuthConsumer
from onestack.services.identity.oauth1 import SignedRequest, render_expiry

BASE = "OS-OAUTH1"


class ConsumerCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    description: Text | None = None


class AuthorizeBody(BaseModel):
    roles: list[dict[str, Any]]


async def signed_request(request: Request) -> SignedRequest:
    """The request as its OAuth signature covers it: a form-encoded body's parameters
    are signed too (a JSON body is not)."""
    form: list[tuple[str, str]] = []
    if request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        form = parse_qsl((await read_body(request)).decode(errors="replace"),
                         keep_blank_values=True)
    return SignedRequest(method=request.method, url=str(request.url),
                         authorization=request.headers.get("authorization"), form=form)


def render_consumer(request: Request, c: OAuthConsumer, secret: bool = False
                    ) -> dict[str, Any]:
    body = {**c.extra, "id": c.id, "description": c.description,
            "links": self_link(request, f"{BASE}/consumers/{c.id}")}
    if secret:
        body["secret"] = c.secret
    return body


def render_access_token(request: Request, a: OAuthAccessToken) -> dict[str, Any]:
    link = self_link(request, f"users/{a.authorizing_user_id}/{BASE}/access_tokens/{a.id}")
    return {"id": a.id, "consumer_id": a.consumer_id, "project_id": a.project_id,
            "authorizing_user_id": a.authorizing_user_id,
            "expires_at": render_expiry(a.expires_at),
            "links": {**link, "roles": f"{link['self']}/roles"}}


def _form(values: dict[str, str]) -> Response:
    """The token endpoints answer form-encoded, as OAuth 1.0a clients read them."""
    return Response(urlencode(values), status_code=201,
                    media_type="application/x-www-form-urlencoded")


# -- consumers ---------------------------------------------------------------------

async def create_consumer(request: Request) -> Response:
    ctx = caller(request)
    identity(request).oauth1.authorize_write(ctx, "create")  # before the body
    body = parse(ConsumerCreate, body_part(await read_json(request), "consumer"),
                 "consumer")
    if "secret" in (body.model_extra or {}):
        raise InvalidField("consumer/secret", "is made by the server, not given")
    consumer = identity(request).oauth1.create_consumer(ctx, body.description,
                                                        body.model_extra or {})
    return json_response({"consumer": render_consumer(request, consumer, secret=True)},
                         status=201)


async def list_consumers(request: Request) -> Response:
    consumers = identity(request).oauth1.list_consumers(caller(request))
    return json_response({"consumers": [render_consumer(request, c) for c in consumers],
                          "links": list_links(request)})


async def get_consumer(request: Request) -> Response:
    consumer = identity(request).oauth1.get_consumer(caller(request),
                                                     request.path_params["consumer_id"])
    return json_response({"consumer": render_consumer(request, consumer)})


async def update_consumer(request: Request) -> Response:
    ctx = caller(request)
    identity(request).oauth1.authorize_write(ctx, "update")  # before the body
    body = parse(ConsumerCreate, body_part(await read_json(request), "consumer"),
                 "consumer")
    changes = body.model_dump(exclude_unset=True)
    for key in ("secret", "id"):
        if key in changes:
            raise InvalidField(f"consumer/{key}", "cannot be changed")
    consumer = identity(request).oauth1.update_consumer(
        ctx, request.path_params["consumer_id"], changes)
    return json_response({"consumer": render_consumer(request, consumer)})


async def delete_consumer(request: Request) -> Response:
    identity(request).oauth1.delete_consumer(caller(request),
                                             request.path_params["consumer_id"])
    return no_content()


# -- the flow (request token, authorize, access token) -----------------------------

async def request_token(request: Request) -> Response:
    token = identity(request).oauth1.request_token(
        await signed_request(request), request.headers.get("requested-project-id"))
    return _form({"oauth_token": token.id, "oauth_token_secret": token.secret,
                  "oauth_expires_at": render_expiry(token.expires_at) or ""})


async def authorize_request_token(request: Request) -> Response:
    ctx = caller(request)
    body = parse(AuthorizeBody, await read_json(request), "body")
    verifier = identity(request).oauth1.authorize_request_token(
        ctx, request.path_params["request_token_id"], body.roles)
    return json_response({"token": {"oauth_verifier": verifier}})


async def access_token(request: Request) -> Response:
    access = identity(request).oauth1.access_token(await signed_request(request))
    return _form({"oauth_token": access.id, "oauth_token_secret": access.secret,
                  "oauth_expires_at": render_expiry(access.expires_at) or ""})


# -- a user's access tokens --------------------------------------------------------

def _role(request: Request, role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "domain_id": role.domain_id,
            "links": self_link(request, f"roles/{role.id}")}


async def list_access_tokens(request: Request) -> Response:
    tokens = identity(request).oauth1.list_access_tokens(caller(request),
                                                         request.path_params["user_id"])
    return json_response({"access_tokens": [render_access_token(request, a)
                                            for a in tokens],
                          "links": list_links(request)})


async def get_access_token(request: Request) -> Response:
    access = identity(request).oauth1.get_access_token(
        caller(request), request.path_params["user_id"],
        request.path_params["access_token_id"])
    return json_response({"access_token": render_access_token(request, access)})


async def delete_access_token(request: Request) -> Response:
    identity(request).oauth1.delete_access_token(
        caller(request), request.path_params["user_id"],
        request.path_params["access_token_id"])
    return no_content()


async def list_access_token_roles(request: Request) -> Response:
    roles = identity(request).oauth1.access_token_roles(
        caller(request), request.path_params["user_id"],
        request.path_params["access_token_id"])
    return json_response({"roles": [_role(request, r) for r in roles],
                          "links": list_links(request)})


async def get_access_token_role(request: Request) -> Response:
    roles = identity(request).oauth1.access_token_roles(
        caller(request), request.path_params["user_id"],
        request.path_params["access_token_id"])
    role_id = request.path_params["role_id"]
    for role in roles:
        if role.id == role_id:
            return json_response({"role": _role(request, role)})
    raise NotFound(f"Could not find role: {role_id}.")


_TOKENS = "/v3/users/{user_id}/OS-OAUTH1/access_tokens"
routes = [
    Route(f"/v3/{BASE}/consumers", create_consumer, methods=["POST"]),
    Route(f"/v3/{BASE}/consumers", list_consumers, methods=["GET"]),
    Route(f"/v3/{BASE}/consumers/{{consumer_id}}", get_consumer, methods=["GET"]),
    Route(f"/v3/{BASE}/consumers/{{consumer_id}}", update_consumer, methods=["PATCH"]),
    Route(f"/v3/{BASE}/consumers/{{consumer_id}}", delete_consumer, methods=["DELETE"]),
    Route(f"/v3/{BASE}/request_token", request_token, methods=["POST"]),
    Route(f"/v3/{BASE}/authorize/{{request_token_id}}", authorize_request_token,
          methods=["PUT"]),
    Route(f"/v3/{BASE}/access_token", access_token, methods=["POST"]),
    Route(_TOKENS, list_access_tokens, methods=["GET"]),
    Route(f"{_TOKENS}/{{access_token_id}}", get_access_token, methods=["GET"]),
    Route(f"{_TOKENS}/{{access_token_id}}", delete_access_token, methods=["DELETE"]),
    Route(f"{_TOKENS}/{{access_token_id}}/roles", list_access_token_roles,
          methods=["GET"]),
    Route(f"{_TOKENS}/{{access_token_id}}/roles/{{role_id}}", get_access_token_role,
          methods=["GET"]),
]

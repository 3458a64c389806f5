"""/v3/users, a user's password, projects and groups"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import (
    body_part,
    caller,
    json_response,
    no_content,
    parse,
    read_json,
)
from onestack.api.identity.common import Text, filters, identity, list_links, self_link
from onestack.api.identity.groups import render_group
from onestack.api.identity.projects import render_project
from onestack.common.errors import InvalidField, Unauthorized
from onestack.db.models import User
from onestack.services.identity import compliance
from onestack.services.identity.base import isotime

#: Keystone's identity names: 1-255 characters, not only blanks.
IdentityName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255,
                                                pattern=r"\S")]
Reference = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
MfaRules = list[Annotated[list[Text], Field(min_length=1)]]


class UserOptions(BaseModel):
    """Keystone's user options; each may be null, which removes it."""

    model_config = ConfigDict(extra="forbid")
    ignore_change_password_upon_first_use: StrictBool | None = None
    ignore_password_expiry: StrictBool | None = None
    ignore_lockout_failure_attempts: StrictBool | None = None
    lock_password: StrictBool | None = None
    ignore_user_inactivity: StrictBool | None = None
    multi_factor_auth_enabled: StrictBool | None = None
    multi_factor_auth_rules: MfaRules | None = None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: IdentityName
    domain_id: Reference | None = None
    default_project_id: Reference | None = None
    description: Text | None = ""
    email: Text | None = None
    enabled: StrictBool = True
    password: Text | None = None
    options: UserOptions = UserOptions()


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: IdentityName | None = None
    domain_id: Reference | None = None
    default_project_id: Reference | None = None
    description: Text | None = None
    email: Text | None = None
    enabled: StrictBool | None = None
    password: Text | None = None
    options: UserOptions | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    original_password: Text
    password: Text


def render_user(request: Request, u: User) -> dict[str, Any]:
    inactive = compliance.is_inactive(request.app.state.config.identity, u)
    body = {**u.extra, "id": u.id, "name": u.name, "domain_id": u.domain_id,
            "enabled": u.enabled and not inactive, "description": u.description,
            "password_expires_at": isotime(u.password_expires_at),
            "options": u.options or {}, "links": self_link(request, f"users/{u.id}")}
    if u.default_project_id:
        body["default_project_id"] = u.default_project_id
    if u.email is not None:
        body["email"] = u.email
    return body


def _options(options: UserOptions | None) -> dict[str, Any]:
    return options.model_dump(exclude_unset=True) if options is not None else {}


async def create_user(request: Request) -> Response:
    ctx = caller(request)
    identity(request).users.authorize_create(ctx)  # before the body: a 403, not a 400
    body = parse(UserCreate, body_part(await read_json(request), "user"), "user")
    users = identity(request).users
    password_hash = None
    if body.password is not None:
        password_hash = await anyio.to_thread.run_sync(users.hash_new_password,
                                                        body.password)
    user = users.create(
        ctx, name=body.name, domain_id=body.domain_id or ctx.domain_id or "default",
        default_project_id=body.default_project_id, description=body.description or "",
        email=body.email, enabled=body.enabled, options=_options(body.options),
        extra=body.model_extra or {}, password_hash=password_hash)
    return json_response({"user": render_user(request, user)}, status=201)


async def list_users(request: Request) -> Response:
    ctx = caller(request)
    identity(request).users.authorize_list(ctx)  # before the domain-scoped empty answer
    wanted = filters(request, "name", "domain_id", "enabled")
    if ctx.domain_id is not None:
        # a domain-scoped token sees its own domain only, as in Keystone
        if wanted.setdefault("domain_id", ctx.domain_id) != ctx.domain_id:
            return json_response({"users": [], "links": list_links(request)})
    users = identity(request).users.list(ctx, **wanted)
    return json_response({"users": [render_user(request, u) for u in users],
                          "links": list_links(request)})


async def get_user(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    user = identity(request).users.get(ctx, user_id)
    return json_response({"user": render_user(request, user)})


async def update_user(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    identity(request).users.authorize_update(ctx, user_id)  # before the body
    body = parse(UserUpdate, body_part(await read_json(request), "user"), "user")
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidField("user", "at least one attribute must be given")
    for key in ("name", "enabled", "domain_id"):
        if key in changes and changes[key] is None:
            raise InvalidField(f"user/{key}", "None is not allowed")
    if "options" in changes:
        changes["options"] = _options(body.options)
    users = identity(request).users
    users.get(None, user_id)  # a 404 before the slow hash (the caller was checked above)
    kwargs: dict[str, Any] = {}
    if "password" in changes:
        password = changes.pop("password")
        kwargs["password_hash"] = None if password is None else \
            await anyio.to_thread.run_sync(users.hash_new_password, password)
    user = users.update(ctx, user_id, changes, **kwargs)
    return json_response({"user": render_user(request, user)})


async def delete_user(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    identity(request).users.delete(ctx, user_id)
    return no_content()


async def change_password(request: Request) -> Response:
    """A user's own password change. As in Keystone it may come without a token (a
    user whose password expired, or who must change an administrator's password
    before first use, cannot get one): the original password authenticates it, and
    failures count per client address like failed logins. With a token, the token's
    user must be allowed to change this password."""
    user_id = request.path_params["user_id"]
    users = identity(request).users
    ctx = caller(request) if request.headers.get("x-auth-token") else None
    if ctx is not None:
        users.authorize_change_password(ctx, user_id)  # before the body
    body = parse(PasswordChange, body_part(await read_json(request), "user"), "user")
    if ctx is not None:
        await users.change_password(ctx, user_id, body.original_password, body.password)
        return no_content()
    throttle = identity(request).tokens.failed_logins
    source = request.client.host if request.client else None
    throttle.check(source)
    try:
        await users.change_password(None, user_id, body.original_password, body.password)
    except Unauthorized:
        throttle.failed(source)
        raise
    return no_content()


async def list_user_projects(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    projects = identity(request).users.projects(
        ctx, user_id, **filters(request, "name", "domain_id", "enabled"))
    return json_response({"projects": [render_project(request, p) for p in projects],
                          "links": list_links(request)})


async def list_user_groups(request: Request) -> Response:
    ctx = caller(request)
    user_id = request.path_params["user_id"]
    groups = identity(request).groups.for_user(ctx, user_id, **filters(request, "name",
                                                                  "domain_id"))
    return json_response({"groups": [render_group(request, g) for g in groups],
                          "links": list_links(request)})


routes = [
    Route("/v3/users", create_user, methods=["POST"]),
    Route("/v3/users", list_users, methods=["GET"]),
    Route("/v3/users/{user_id}", get_user, methods=["GET"]),
    Route("/v3/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/v3/users/{user_id}", delete_user, methods=["DELETE"]),
    Route("/v3/users/{user_id}/password", change_password, methods=["POST"]),
    Route("/v3/users/{user_id}/projects", list_user_projects, methods=["GET"]),
    Route("/v3/users/{user_id}/groups", list_user_groups, methods=["GET"]),
]

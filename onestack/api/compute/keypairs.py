"""/v2.1/os-keypairs (Nova's key pairs)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    check_name,
    check_object,
    compute,
    limit_and_marker,
    next_links,
    nova_time,
    only_keys,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import reader
from onestack.common.errors import InvalidField
from onestack.services.compute.keypairs import KeyPairView

if TYPE_CHECKING:
    from onestack.services.compute.keypairs import KeyPairs

_NAME = re.compile(r"^[_\- a-zA-Z0-9]+$")
#: 2.92 also allows ``@`` and ``.``.
_NAME_V292 = re.compile(r"^[_\-@. a-zA-Z0-9]+$")


def _keypairs(request: Request) -> KeyPairs:
    return compute(request).keypairs


def _user_id(request: Request) -> str | None:
    """``?user_id=`` (2.10+): an administrator acting on another user's key pairs."""
    if version(request) < (2, 10):
        return None
    return query_param(request, "user_id")


def render_keypair(request: Request, keypair: KeyPairView, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"name": keypair.name, "public_key": keypair.public_key,
                            "fingerprint": keypair.fingerprint}
    if full:
        body.update({"user_id": keypair.user_id, "created_at": nova_time(keypair.created_at),
                     "deleted": False, "deleted_at": None, "id": keypair.id,
                     "updated_at": None})
    if version(request) >= (2, 2):
        body["type"] = keypair.type
    return body


async def list_keypairs(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    refuse_unknown_query(request, ("user_id", "limit", "marker"))
    limit: int | None = None
    marker = None
    if v >= (2, 35):
        limit, marker = limit_and_marker(request)
    keypairs = _keypairs(request).list(ctx, _user_id(request), limit, marker)
    out: dict[str, Any] = {"keypairs": [{"keypair": render_keypair(request, k, full=False)}
                                        for k in keypairs]}
    if v >= (2, 35):
        links = next_links(request, "os-keypairs", len(keypairs),
                           keypairs[-1].name if keypairs else None)
        if links:
            out["keypairs_links"] = links
    return json_response(out)


async def show_keypair(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    keypair = _keypairs(request).show(ctx, request.path_params["name"], _user_id(request))
    return json_response({"keypair": render_keypair(request, keypair, full=True)})


async def create_keypair(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    body = await read_json(request)
    only_keys("body", body, ("keypair",), ("keypair",))
    data = check_object("keypair", body["keypair"])
    allowed = ["name", "public_key"]
    if v >= (2, 2):
        allowed.append("type")
    if v >= (2, 10):
        allowed.append("user_id")
    only_keys("keypair", data, allowed, ("name", "public_key") if v >= (2, 92) else ("name",))
    name = check_name("keypair/name", data["name"])
    pattern = _NAME_V292 if v >= (2, 92) else _NAME
    if not pattern.match(name):
        raise InvalidField("keypair/name", f"{name!r} does not match '{pattern.pattern}'")
    key_type = data.get("type", "ssh")
    if key_type not in ("ssh", "x509"):
        raise InvalidField("keypair/type", f"{key_type!r} is not one of ['ssh', 'x509']")
    public_key = data.get("public_key")
    if "public_key" in data and not isinstance(public_key, str):
        raise InvalidField("keypair/public_key", f"{public_key!r} is not of type 'string'")
    user_id = data.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidField("keypair/user_id", f"{user_id!r} is not of type 'string'")
    # generating an RSA key takes a while: keep the event loop free
    keypair, private_key = await run_in_threadpool(
        _keypairs(request).create, ctx, name, key_type, public_key, user_id)
    out: dict[str, Any] = {"name": keypair.name, "public_key": keypair.public_key,
                           "fingerprint": keypair.fingerprint, "user_id": keypair.user_id}
    if private_key is not None:
        out["private_key"] = private_key
    if v >= (2, 2):
        out["type"] = keypair.type
    return json_response({"keypair": out}, status=201 if v >= (2, 2) else 200)


async def delete_keypair(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    _keypairs(request).delete(ctx, request.path_params["name"], _user_id(request))
    return Response(status_code=204 if version(request) >= (2, 2) else 202)


routes = [
    Route("/v2.1/os-keypairs", reader(list_keypairs), methods=["GET"]),
    Route("/v2.1/os-keypairs", reader(create_keypair), methods=["POST"]),
    Route("/v2.1/os-keypairs/{name}", reader(show_keypair), methods=["GET"]),
    Route("/v2.1/os-keypairs/{name}", reader(delete_keypair), methods=["DELETE"]),
]

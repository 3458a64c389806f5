"""OS-TRUST: trusts and the roles they delegate (``services/identity/trusts.py``
explains trusts and trust-scoped tokens)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, read_json
from onestack.api.identity.common import identity, list_links, self_link
from onestack.db.models import Role
from onestack.db.models.identity import Trust
from onestack.services.identity.trusts import render_expiry

BASE = "OS-TRUST/trusts"


def _role(request: Request, role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "domain_id": role.domain_id,
            "links": self_link(request, f"roles/{role.id}")}


def render_trust(request: Request, t: Trust, roles: list[Role] | None = None
                 ) -> dict[str, Any]:
    """A trust as Keystone shows it; lists leave its roles out."""
    body: dict[str, Any] = {
        "id": t.id, "trustor_user_id": t.trustor_user_id,
        "trustee_user_id": t.trustee_user_id, "project_id": t.project_id,
        "impersonation": t.impersonation, "expires_at": render_expiry(t.expires_at),
        "remaining_uses": t.remaining_uses, "allow_redelegation": t.allow_redelegation,
        "redelegation_count": t.redelegation_count,
        "redelegated_trust_id": t.redelegated_trust_id,
        "links": self_link(request, f"{BASE}/{t.id}"),
    }
    if roles is not None:
        body["roles"] = [_role(request, r) for r in roles]
        body["roles_links"] = {**self_link(request, f"{BASE}/{t.id}/roles"),
                               "previous": None, "next": None}
    return body


async def create_trust(request: Request) -> Response:
    ctx = caller(request)
    trusts = identity(request).trusts
    trusts.check_unrestricted(ctx)   # before the body
    body = body_part(await read_json(request), "trust")
    trust = trusts.create(ctx, body)
    roles = trusts.roles(None, trust.id)
    return json_response({"trust": render_trust(request, trust, roles)}, status=201)


async def list_trusts(request: Request) -> Response:
    q = request.query_params
    found = identity(request).trusts.list_trusts(
        caller(request), trustor_user_id=q.get("trustor_user_id"),
        trustee_user_id=q.get("trustee_user_id"))
    return json_response({"trusts": [render_trust(request, t) for t in found],
                          "links": list_links(request)})


async def get_trust(request: Request) -> Response:
    ctx = caller(request)
    trusts = identity(request).trusts
    trust = trusts.get(ctx, request.path_params["trust_id"])
    return json_response({"trust": render_trust(request, trust,
                                                trusts.roles(None, trust.id))})


async def delete_trust(request: Request) -> Response:
    identity(request).trusts.delete(caller(request), request.path_params["trust_id"])
    return no_content()


async def list_trust_roles(request: Request) -> Response:
    roles = identity(request).trusts.roles(caller(request), request.path_params["trust_id"])
    return json_response({"roles": [_role(request, r) for r in roles],
                          "links": list_links(request)})


async def get_trust_role(request: Request) -> Response:
    role = identity(request).trusts.role(caller(request), request.path_params["trust_id"],
                                         request.path_params["role_id"])
    if request.method == "HEAD":
        return Response(status_code=200)
    return json_response({"role": _role(request, role)})


routes = [
    Route(f"/v3/{BASE}", create_trust, methods=["POST"]),
    Route(f"/v3/{BASE}", list_trusts, methods=["GET"]),
    Route(f"/v3/{BASE}/", list_trusts, methods=["GET"]),
    Route(f"/v3/{BASE}/{{trust_id}}", get_trust, methods=["GET"]),
    Route(f"/v3/{BASE}/{{trust_id}}", delete_trust, methods=["DELETE"]),
    Route(f"/v3/{BASE}/{{trust_id}}/roles", list_trust_roles, methods=["GET"]),
    Route(f"/v3/{BASE}/{{trust_id}}/roles/{{role_id}}", get_trust_role, methods=["GET"]),
]

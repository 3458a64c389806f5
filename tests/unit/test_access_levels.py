"""The access-level decorators of Compute (``api.compute.policy``) and Block Storage
(``api.volume.common``): who passes each, the level a route declares, and the exact 403
each service answers with (the rule the refusal names)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from onestack.api.compute import policy as compute_policy
from onestack.api.faults import render_error
from onestack.api.volume import common as volume_common
from onestack.common.errors import OneStackError
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.tokens import TokenData

READER, MEMBER, ADMIN = "t-reader", "t-member", "t-admin"


def _token(token: str, roles: list[str]) -> ValidatedToken:
    data = TokenData(user_id="u", methods=("password",), expires_at=0.0, issued_at=0.0,
                     audit_ids=("a",), project_id="p")
    return ValidatedToken(token=token, data=data, user={"id": "u"},
                          roles=[{"id": r, "name": r} for r in roles])


class _Tokens:
    """The identity service's token validation, for three fixed tokens."""

    known = {READER: _token(READER, ["reader"]), MEMBER: _token(MEMBER, ["member", "reader"]),
             ADMIN: _token(ADMIN, ["admin", "member", "reader"])}

    def validate(self, token: str) -> ValidatedToken:
        return self.known[token]


def _client(decorate: Callable, name: str) -> TestClient:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"served": request.method})

    endpoint.__name__ = name
    guarded = decorate(endpoint)

    async def handler(request: Request) -> Response:
        try:
            return await guarded(request)
        except OneStackError as exc:
            return render_error(exc, request.url.path)

    app = Starlette(routes=[Route("/compute/x", handler, methods=["GET", "PUT", "POST",
                                                                   "DELETE", "HEAD"]),
                            Route("/volume/x", handler, methods=["GET", "PUT", "POST",
                                                                  "DELETE", "HEAD"])])
    app.state.identity = SimpleNamespace(tokens=_Tokens())
    return TestClient(app)


#: decorator name -> (level it declares, method -> lowest token allowed)
LEVELS = {
    "reader": ("reader", {"GET": READER, "POST": READER}),
    "member": ("member", {"GET": MEMBER, "POST": MEMBER}),
    "admin": ("admin", {"GET": ADMIN, "POST": ADMIN}),
    "reads_and_writes": ({"GET": "reader", "PUT": "member", "POST": "member",
                          "DELETE": "member"},
                         {"GET": READER, "HEAD": READER, "PUT": MEMBER, "POST": MEMBER,
                          "DELETE": MEMBER}),
    "reads_and_admin_writes": ({"GET": "reader", "PUT": "admin", "POST": "admin",
                                "DELETE": "admin"},
                               {"GET": READER, "PUT": ADMIN, "POST": ADMIN,
                                "DELETE": ADMIN}),
}
ORDER = (READER, MEMBER, ADMIN)

CASES = [
    (compute_policy, "compute", "list_servers", "os_compute_api:servers:index",
     ("reader", "member", "admin", "reads_and_writes")),
    (compute_policy, "compute", "not_in_rules", "os_compute_api:not_in_rules",
     ("reader", "member", "admin", "reads_and_writes")),
    (volume_common, "volume", "list_volumes", "volume:get_all", tuple(LEVELS)),
    (volume_common, "volume", "not_in_rules", "not_in_rules", tuple(LEVELS)),
]


@pytest.mark.parametrize("module, service, endpoint, rule, decorators", CASES)
def test_levels_and_refusals(module, service, endpoint, rule, decorators):
    for name in decorators:
        declared, lowest = LEVELS[name]
        decorate = getattr(module, name)
        client = _client(decorate, endpoint)
        wrapped = decorate(_named(endpoint))
        assert wrapped.access == declared, name
        assert wrapped.__name__ == endpoint
        for method, allowed_from in lowest.items():
            for token in ORDER:
                r = client.request(method, f"/{service}/x", headers={"X-Auth-Token": token})
                if ORDER.index(token) >= ORDER.index(allowed_from):
                    assert r.status_code == 200, (name, method, token)
                    continue
                assert r.status_code == 403, (name, method, token)
                if method == "HEAD":
                    continue
                message = f"Policy doesn't allow {rule} to be performed."
                expected = {"forbidden": {"code": 403, "message": message}} \
                    if service == "compute" else \
                    {"forbidden": {"message": message, "code": 403}}
                assert r.json() == expected
            r = client.request(method, f"/{service}/x")
            assert r.status_code == 401


def _named(name: str) -> Callable:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({})

    endpoint.__name__ = name
    return endpoint


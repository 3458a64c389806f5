"""/v2.0/quotas (Neutron's ``quotas``, ``quota_details`` and ``quota-check-limit``)"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content
from onestack.api.network.common import networking, read_member
from onestack.api.network.policy import admin, reader
from onestack.common.errors import InvalidField


def _project(request: Request) -> str:
    return request.path_params["project_id"]


async def list_quotas(request: Request) -> Response:
    ctx = caller(request)
    quotas = networking(request).quotas.list(ctx)
    return json_response({"quotas": [{**limits, "project_id": project, "tenant_id": project}
                                     for project, limits in quotas.items()]})


async def get_quota(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"quota": networking(request).quotas.get(ctx, _project(request))})


async def get_default_quota(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"quota": networking(request).quotas.defaults(ctx,
                                                                       _project(request))})


async def get_quota_details(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"quota": networking(request).quotas.details(ctx,
                                                                      _project(request))})


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.pop(name, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidField(f"quota/{name}", f"{value!r} is not a boolean")
    return value


async def update_quota(request: Request) -> Response:
    """``{"quota": {"port": 10, ...}}``; ``check_limit: true`` refuses a limit below the
    current usage, ``force: true`` (the default) does not."""
    ctx = caller(request)
    body = dict(await read_member(request, "quota"))
    check_limit = _flag(body, "check_limit")
    force = _flag(body, "force")
    for key in ("project_id", "tenant_id"):
        body.pop(key, None)
    limits = networking(request).quotas.update(ctx, _project(request), body,
                                               check_limit=check_limit and not force)
    return json_response({"quota": limits})


async def delete_quota(request: Request) -> Response:
    ctx = caller(request)
    networking(request).quotas.reset(ctx, _project(request))
    return no_content()


routes = [
    Route("/v2.0/quotas", admin(list_quotas, "get_quota"), methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", reader(get_quota), methods=["GET"]),
    Route("/v2.0/quotas/{project_id}", admin(update_quota), methods=["PUT"]),
    Route("/v2.0/quotas/{project_id}", admin(delete_quota), methods=["DELETE"]),
    Route("/v2.0/quotas/{project_id}/default",
          reader(get_default_quota, "get_quota"), methods=["GET"]),
    Route("/v2.0/quotas/{project_id}/details",
          reader(get_quota_details, "get_quota"), methods=["GET"]),
]

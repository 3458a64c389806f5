"""/v2.1/os-services (Nova's compute services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    check_bool,
    compute,
    nova_time,
    only_keys,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin
from onestack.common.errors import BadRequest, InvalidField, NotFound
from onestack.services.compute.hosts import ServiceView

if TYPE_CHECKING:
    from onestack.services.compute.hosts import Hosts


def _hosts(request: Request) -> Hosts:
    return compute(request).hosts


def render_service(request: Request, view: ServiceView) -> dict[str, Any]:
    v = version(request)
    service = view.service
    body: dict[str, Any] = {
        "id": service.uuid if v >= (2, 53) else service.id, "binary": service.binary,
        "host": service.host, "zone": view.zone,
        "status": "disabled" if service.disabled else "enabled",
        "state": "up" if view.up else "down", "updated_at": nova_time(view.updated_at),
        "disabled_reason": service.disabled_reason,
    }
    if v >= (2, 11):
        body["forced_down"] = service.forced_down
    return body


async def list_services(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("host", "binary"))
    views = _hosts(request).list_services(ctx, host=query_param(request, "host"),
                                          binary=query_param(request, "binary"))
    return json_response({"services": [render_service(request, s) for s in views]})


def _string(field: str, value: Any, max_length: int = 255) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise InvalidField(field, f"{value!r} must be a string of 1 to {max_length} "
                           "characters")
    return value


async def update_service(request: Request) -> Response:
    """From 2.53: ``PUT /os-services/{uuid}`` with ``status``, ``disabled_reason``,
    ``forced_down``. Before: ``PUT /os-services/{action}`` with ``host`` and
    ``binary`` (actions enable, disable, disable-log-reason, and force-down from 2.11)."""
    ctx = caller(request)
    v = version(request)
    body = await read_json(request)
    service_id = request.path_params["service_id"]
    if v >= (2, 53):
        only_keys("body", body, ("status", "disabled_reason", "forced_down"))
        status = body.get("status")
        if status is not None and status not in ("enabled", "disabled"):
            raise InvalidField("status", f"{status!r} is not one of ['enabled', 'disabled']")
        reason = body.get("disabled_reason")
        if reason is not None:
            reason = _string("disabled_reason", reason)
        forced = body.get("forced_down")
        if "forced_down" in body:
            forced = check_bool("forced_down", forced)
        view = _hosts(request).update_service(ctx, service_id, status=status,
                                              disabled_reason=reason, forced_down=forced)
        return json_response({"service": render_service(request, view)})
    return _legacy_update(request, ctx, service_id, body)


def _legacy_update(request: Request, ctx: Any, action: str, body: dict[str, Any]
                   ) -> Response:
    v = version(request)
    actions = ["enable", "disable", "disable-log-reason"]
    if v >= (2, 11):
        actions.append("force-down")
    allowed = ["host", "binary", "disabled_reason"] + (["forced_down"] if v >= (2, 11) else [])
    only_keys("body", body, allowed, ("host", "binary"))
    host = _string("host", body["host"])
    binary = _string("binary", body["binary"])
    if action not in actions:
        raise NotFound("Unknown action")
    out: dict[str, Any] = {"host": host, "binary": binary}
    if action == "enable":
        changes: dict[str, Any] = {"disabled": False, "disabled_reason": None}
        out["status"] = "enabled"
    elif action in ("disable", "disable-log-reason"):
        reason = None
        if action == "disable-log-reason":
            if "disabled_reason" not in body:
                raise BadRequest("Missing disabled reason field")
            reason = _string("disabled_reason", body["disabled_reason"])
        changes = {"disabled": True, "disabled_reason": reason}
        out["status"] = "disabled"
        if reason:
            out["disabled_reason"] = reason
    else:
        if "forced_down" not in body:
            raise BadRequest("Missing forced_down field")
        forced = check_bool("forced_down", body["forced_down"])
        changes = {"forced_down": forced}
        out["forced_down"] = forced
    _hosts(request).update_by_host(ctx, host, binary, changes)
    return json_response({"service": out})


async def delete_service(request: Request) -> Response:
    ctx = caller(request)
    _hosts(request).delete_service(ctx, request.path_params["service_id"],
                                   by_uuid=version(request) >= (2, 53))
    return Response(status_code=204)


routes = [
    Route("/v2.1/os-services", admin(list_services), methods=["GET"]),
    Route("/v2.1/os-services/{service_id}", admin(update_service), methods=["PUT"]),
    Route("/v2.1/os-services/{service_id}", admin(delete_service), methods=["DELETE"]),
]

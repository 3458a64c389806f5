"""The smaller Block Storage routes: availability zones, services (enable, disable,
freeze, thaw), hosts, backend capabilities, user messages
(3.3+), extensions and pools (backups are in ``backups.py``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import (
    admin,
    cinder_time,
    context,
    links,
    path_id,
    query,
    query_flag,
    reader,
    reads_and_writes,
    volumes,
)
from onestack.api.volume.microversion import require, version
from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import VolumeMessage
from onestack.services.volume.hosts import VolumeHosts, backend_host, capabilities


async def list_zones(request: Request) -> Response:
    context(request)
    zone = volumes(request).config.volume.default_availability_zone
    return json_response({"availabilityZoneInfo": [{"zoneName": zone,
                                                    "zoneState": {"available": True}}]})


def _hosts(request: Request) -> VolumeHosts:
    return VolumeHosts(volumes(request))


async def list_services(request: Request) -> Response:
    context(request)
    rows = _hosts(request).services(host=query(request, "host") or None,
                                    binary=query(request, "binary") or None)
    for row in rows:
        row["updated_at"] = cinder_time(row["updated_at"])
        if version(request) >= (3, 7):
            row["cluster"] = None
    return json_response({"services": rows})


async def service_action(request: Request) -> Response:
    """``PUT /os-services/{enable,disable,disable-log-reason,freeze,thaw}``."""
    context(request)
    action = path_id(request, "action")
    if action not in ("enable", "disable", "disable-log-reason", "freeze", "thaw"):
        raise NotFound(f"Unknown action {action!r} on os-services.")
    body = await read_json(request)
    hosts = _hosts(request)
    if action in ("freeze", "thaw"):
        hosts.set_frozen(body.get("host"), frozen=action == "freeze")
        return Response(status_code=200)
    if action == "disable-log-reason":
        reason = body.get("disabled_reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 255:
            raise BadRequest("Invalid input received: Disabled reason contains invalid "
                             "characters or is too long")
        return json_response(hosts.set_enabled(body.get("host"), body.get("binary"),
                                               enabled=False, reason=reason.strip()))
    shown = hosts.set_enabled(body.get("host"), body.get("binary"),
                              enabled=action == "enable")
    if action == "disable":
        shown.pop("disabled_reason")
    return json_response(shown)


async def list_hosts(request: Request) -> Response:
    context(request)
    rows = _hosts(request).hosts()
    for row in rows:
        row["last-update"] = cinder_time(row["last-update"])
    return json_response({"hosts": rows})


async def show_host(request: Request) -> Response:
    context(request)
    return json_response({"host": _hosts(request).host_usage(path_id(request, "host_name"))})


async def show_capabilities(request: Request) -> Response:
    context(request)
    return json_response(_hosts(request).show_capabilities(path_id(request, "host")))


def render_message(request: Request, msg: VolumeMessage) -> dict[str, Any]:
    return {"id": msg.id, "resource_type": msg.resource_type,
            "resource_uuid": msg.resource_uuid, "event_id": msg.event_id,
            "message_level": msg.message_level, "user_message": msg.user_message,
            "request_id": msg.request_id or "", "created_at": cinder_time(msg.created_at),
            "guaranteed_until": cinder_time(msg.expires_at),
            "links": links(request, "messages", msg.id)}


async def list_messages(request: Request) -> Response:
    require(request, (3, 3))
    ctx = context(request)
    found = volumes(request).list_messages(ctx)
    return json_response({"messages": [render_message(request, m) for m in found]})


async def message_item(request: Request) -> Response:
    require(request, (3, 3))
    ctx = context(request)
    message_id = path_id(request, "message_id")
    if request.method == "DELETE":
        volumes(request).delete_message(ctx, message_id)
        return Response(status_code=204)
    return json_response({"message": render_message(
        request, volumes(request).get_message(ctx, message_id))})


async def list_extensions(request: Request) -> Response:
    context(request)
    names = [("AvailabilityZones", "os-availability-zone"), ("Quotas", "os-quota-sets"),
             ("VolumeTransfer", "os-volume-transfer"), ("Types", "types"),
             ("QoSSpecs", "qos-specs"), ("VolumeActions", "os-volume-actions"),
             ("AdminActions", "os-admin-actions"), ("Services", "os-services"),
             ("UsedLimits", "os-used-limits"), ("VolumeTypeAccess",
                                                 "os-volume-type-access"),
             ("Hosts", "os-hosts"), ("QuotaClasses", "os-quota-class-sets"),
             ("Capabilities", "capabilities"), ("SchedulerStats", "scheduler-stats"),
             ("VolumeTypeEncryption", "encryption"), ("Backups", "backups"),
             ("BackupProjectAttribute", "os-backup-project-attr")]
    return json_response({"extensions": [
        {"name": name, "alias": alias, "description": f"{name} support.",
         "links": [], "namespace": "", "updated": "2013-01-01T00:00:00+00:00"}
        for name, alias in names]})


async def get_pools(request: Request) -> Response:
    context(request)
    service = volumes(request)
    pools = []
    for name, backend in sorted(service._backends.items()):
        body: dict[str, Any] = {"name": f"{backend_host(name)}#{name}"}
        if query_flag(request, "detail"):
            used, total = backend.usage()
            body["capabilities"] = {
                **capabilities(service, name),
                "total_capacity_gb": round(total / (1 << 30), 2),
                "free_capacity_gb": round((total - used) / (1 << 30), 2),
                "allocated_capacity_gb": None, "pool_name": name,
                "reserved_percentage": 0, "timestamp": None}
        pools.append(body)
    return json_response({"pools": pools})


routes = [
    Route("/v3/{project_id}/os-availability-zone", reader(list_zones), methods=["GET"]),
    Route("/v3/{project_id}/os-services", admin(list_services), methods=["GET"]),
    Route("/v3/{project_id}/os-services/{action}", admin(service_action), methods=["PUT"]),
    Route("/v3/{project_id}/os-hosts", admin(list_hosts), methods=["GET"]),
    Route("/v3/{project_id}/os-hosts/{host_name}", admin(show_host), methods=["GET"]),
    Route("/v3/{project_id}/capabilities/{host}", admin(show_capabilities),
          methods=["GET"]),
    Route("/v3/{project_id}/messages", reader(list_messages), methods=["GET"]),
    Route("/v3/{project_id}/messages/{message_id}", reads_and_writes(message_item),
          methods=["GET", "DELETE"]),
    Route("/v3/{project_id}/extensions", reader(list_extensions), methods=["GET"]),
    Route("/v3/{project_id}/scheduler-stats/get_pools", admin(get_pools), methods=["GET"]),
]

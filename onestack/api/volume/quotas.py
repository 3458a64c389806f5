"""/v3/{project_id}/os-quota-sets/{tenant_id}, /os-quota-class-sets/{class_name} and
/limits (Cinder's quotas)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response, read_json
from onestack.api.policy import guard
from onestack.api.volume.common import (
    admin,
    context,
    path_id,
    query_flag,
    reader,
    url_project,
    volumes,
)
from onestack.services.volume.common import forbidden, required_object


def _own_or_admin(request: Request, tenant_id: str) -> None:
    ctx = context(request)
    if not ctx.is_admin and tenant_id != ctx.project_id:
        raise forbidden("volume_extension:quotas:show")


async def quota_set(request: Request) -> Response:
    tenant_id = path_id(request, "tenant_id")
    quotas = volumes(request).quotas
    if request.method == "GET":
        _own_or_admin(request, tenant_id)
        return json_response({"quota_set": quotas.show(tenant_id,
                                                       usage=query_flag(request, "usage"))})
    context(request)
    if request.method == "DELETE":
        quotas.reset(tenant_id)
        return Response(status_code=200)
    body = await read_json(request)
    spec = required_object(body, "quota_set")
    spec = {k: v for k, v in spec.items() if k not in ("id", "tenant_id")}
    shown = quotas.update(tenant_id, spec)
    shown.pop("id", None)
    return json_response({"quota_set": shown})


async def quota_defaults(request: Request) -> Response:
    context(request)
    tenant_id = path_id(request, "tenant_id")
    quotas = volumes(request).quotas
    with quotas.db.session() as session:
        values = quotas.defaults(session)
    return json_response({"quota_set": {"id": tenant_id, **values}})


async def quota_class_set(request: Request) -> Response:
    """Administrators: a quota class's limits (``default`` is the one projects use)."""
    context(request)
    class_name = path_id(request, "class_name")
    quotas = volumes(request).quotas
    if request.method == "GET":
        return json_response({"quota_class_set": quotas.show_class(class_name)})
    body = await read_json(request)
    spec = required_object(body, "quota_class_set")
    spec = {k: v for k, v in spec.items() if k not in ("id", "class_name")}
    return json_response({"quota_class_set": quotas.update_class(class_name, spec)})


async def show_limits(request: Request) -> Response:
    ctx = context(request)
    project = url_project(request, ctx)
    quotas = volumes(request).quotas
    with quotas.db.session() as session:
        limit = quotas.limits(session, project)
        used = quotas.usage(session, project)
    absolute = {
        "maxTotalVolumes": limit["volumes"], "maxTotalSnapshots": limit["snapshots"],
        "maxTotalVolumeGigabytes": limit["gigabytes"], "maxTotalBackups": limit["backups"],
        "maxTotalBackupGigabytes": limit["backup_gigabytes"],
        "totalVolumesUsed": used["volumes"], "totalSnapshotsUsed": used["snapshots"],
        "totalGigabytesUsed": used["gigabytes"], "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }
    return json_response({"limits": {"rate": [], "absolute": absolute}})


def _denied(endpoint: str) -> Exception:
    return forbidden("volume_extension:quotas:update")


routes = [
    Route("/v3/{project_id}/os-quota-sets/{tenant_id}",
          guard({"GET": "reader", "PUT": "admin", "DELETE": "admin"}, _denied)(quota_set),
          methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/os-quota-sets/{tenant_id}/defaults", reader(quota_defaults),
          methods=["GET"]),
    Route("/v3/{project_id}/os-quota-class-sets/{class_name}", admin(quota_class_set),
          methods=["GET", "PUT"]),
    Route("/v3/{project_id}/limits", reader(show_limits), methods=["GET"]),
]

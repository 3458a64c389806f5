"""/v3/{project_id}/backups: volume backups (create, list, show, update (3.9), delete,
restore, the admin actions, export and import of records); the service is
``onestack.services.volume.backups``."""

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
    filters,
    links,
    member,
    path_id,
    query_flag,
    reader,
    volumes,
)
from onestack.api.volume.listing import paged_list
from onestack.api.volume.microversion import require, version
from onestack.common.errors import BadRequest, Forbidden
from onestack.db.models.volume_backups import VolumeBackup
from onestack.services.volume.backups import Backups, backups_of
from onestack.services.volume.common import field_error, one_action, required_object

SORT_KEYS = ("id", "name", "display_name", "status", "size", "object_count", "created_at",
             "updated_at", "volume_id", "data_timestamp")


def service(request: Request) -> Backups:
    return backups_of(volumes(request))


def render_summary(request: Request, b: VolumeBackup) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "links": links(request, "backups", b.id)}


def render_backup(request: Request, b: VolumeBackup, is_admin: bool,
                  dependent: bool) -> dict[str, Any]:
    """Cinder's backup detail view."""
    body: dict[str, Any] = {
        "id": b.id, "name": b.name, "description": b.description, "status": b.status,
        "size": b.size, "object_count": b.object_count,
        "availability_zone": b.availability_zone, "container": b.container,
        "created_at": cinder_time(b.created_at), "updated_at": cinder_time(b.updated_at),
        "fail_reason": b.fail_reason, "volume_id": b.volume_id,
        "links": links(request, "backups", b.id), "is_incremental": b.is_incremental,
        "has_dependent_backups": dependent, "snapshot_id": b.snapshot_id,
        "data_timestamp": cinder_time(b.data_timestamp),
    }
    v = version(request)
    if v >= (3, 18) and is_admin:
        body["os-backup-project-attr:project_id"] = b.project_id
    if v >= (3, 43):
        body["metadata"] = dict(b.metadata_ or {})
    if v >= (3, 56):
        body["user_id"] = b.user_id
    return body


async def _list(request: Request, detail: bool) -> Response:
    ctx = context(request)
    backups = service(request)
    wanted = filters(request)
    found = backups.list(ctx, wanted, all_tenants=query_flag(request, "all_tenants"))

    def render(page: list[VolumeBackup]) -> list[dict[str, Any]]:
        if detail:
            parents = backups.dependents([b.id for b in page])
            return [render_backup(request, b, ctx.is_admin, b.id in parents) for b in page]
        return [render_summary(request, b) for b in page]

    return paged_list(request, "backups", detail, found, SORT_KEYS, render,
                      volumes(request).config.volume.max_limit)


async def list_backups(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_backups_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def create_backup(request: Request) -> Response:
    ctx = context(request)
    spec = required_object(await read_json(request), "backup")
    backup = service(request).create(ctx, spec, with_metadata=version(request) >= (3, 43))
    body = render_summary(request, backup)
    if version(request) >= (3, 43):
        body["metadata"] = dict(backup.metadata_ or {})
    return json_response({"backup": body}, status=202)


async def show_backup(request: Request) -> Response:
    ctx = context(request)
    backups = service(request)
    backup = backups.get(ctx, path_id(request, "backup_id"))
    dependent = backup.id in backups.dependents([backup.id])
    return json_response({"backup": render_backup(request, backup, ctx.is_admin,
                                                   dependent)})


async def update_backup(request: Request) -> Response:
    require(request, (3, 9))
    ctx = context(request)
    backup_id = path_id(request, "backup_id")
    backups = service(request)
    backups.get(ctx, backup_id)
    spec = required_object(await read_json(request), "backup")
    allowed = {"name", "description"} | ({"metadata"} if version(request) >= (3, 43)
                                         else set())
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise BadRequest(f"Invalid input for field/attribute backup. Value: {spec}. "
                         f"Additional properties are not allowed ({', '.join(unknown)} "
                         "unexpected)")
    backup = backups.update(ctx, backup_id, spec)
    body = render_summary(request, backup)
    if version(request) >= (3, 43):
        body["metadata"] = dict(backup.metadata_ or {})
    return json_response({"backup": body})


async def delete_backup(request: Request) -> Response:
    ctx = context(request)
    service(request).delete(ctx, path_id(request, "backup_id"))
    return Response(status_code=202)


async def restore_backup(request: Request) -> Response:
    ctx = context(request)
    backup_id = path_id(request, "backup_id")
    backups = service(request)
    backups.get(ctx, backup_id)
    spec = required_object(await read_json(request), "restore")
    restored = backups.restore(ctx, backup_id, spec)
    return json_response({"restore": restored}, status=202)


async def backup_action(request: Request) -> Response:
    ctx = context(request)
    backup_id = path_id(request, "backup_id")
    backups = service(request)
    backups.get(ctx, backup_id)
    action, args = one_action(await read_json(request))
    if action not in ("os-reset_status", "os-force_delete"):
        raise BadRequest(f"There is no such action: {action}")
    if not ctx.is_admin:
        rule = "backup-reset_status" if action == "os-reset_status" else "force_delete"
        raise Forbidden(f"Policy doesn't allow backup:{rule} to be performed.")
    if action == "os-reset_status":
        if not isinstance(args, dict) or "status" not in args:
            raise field_error("os-reset_status", args, "'status' is a required property")
        backups.reset_status(ctx, backup_id, args["status"])
    else:
        backups.delete(ctx, backup_id, force=True)
    return Response(status_code=202)


async def export_record(request: Request) -> Response:
    ctx = context(request)
    record = service(request).export_record(ctx, path_id(request, "backup_id"))
    return json_response({"backup-record": record})


async def import_record(request: Request) -> Response:
    ctx = context(request)
    spec = required_object(await read_json(request), "backup-record")
    for key in ("backup_service", "backup_url"):
        if key not in spec:
            raise field_error("backup-record", spec, f"'{key}' is a required property")
    backup = service(request).import_record(ctx, spec["backup_service"], spec["backup_url"])
    return json_response({"backup": render_summary(request, backup)}, status=201)


routes = [
    Route("/v3/{project_id}/backups", reader(list_backups), methods=["GET"]),
    Route("/v3/{project_id}/backups", member(create_backup), methods=["POST"]),
    Route("/v3/{project_id}/backups/detail", reader(list_backups_detail), methods=["GET"]),
    Route("/v3/{project_id}/backups/import_record", admin(import_record),
          methods=["POST"]),
    Route("/v3/{project_id}/backups/{backup_id}", reader(show_backup), methods=["GET"]),
    Route("/v3/{project_id}/backups/{backup_id}", member(update_backup), methods=["PUT"]),
    Route("/v3/{project_id}/backups/{backup_id}", member(delete_backup),
          methods=["DELETE"]),
    Route("/v3/{project_id}/backups/{backup_id}/restore", member(restore_backup),
          methods=["POST"]),
    Route("/v3/{project_id}/backups/{backup_id}/action", member(backup_action),
          methods=["POST"]),
    Route("/v3/{project_id}/backups/{backup_id}/export_record", admin(export_record),
          methods=["GET"]),
]

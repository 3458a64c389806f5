"""/v3/{project_id}/snapshots: volume snapshots and their metadata."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import (
    cinder_time,
    context,
    filters,
    member,
    path_id,
    query_flag,
    reader,
    reads_and_writes,
    volumes,
)
from onestack.api.volume.listing import paged_list
from onestack.api.volume.metadata import MetadataOwner, metadata_answer, metadata_item_answer
from onestack.api.volume.microversion import version
from onestack.common.errors import BadRequest, Forbidden
from onestack.db.models import Snapshot
from onestack.services.volume import Volumes
from onestack.services.volume.common import field_error, one_action, required_object

SORT_KEYS = ("id", "name", "display_name", "status", "size", "created_at", "updated_at",
             "volume_id")


def render_snapshot(request: Request, snap: Snapshot, is_admin: bool,
                    extended: bool = True) -> dict[str, Any]:
    """Cinder's snapshot view; ``extended`` adds the extended snapshot attributes that
    Cinder's show and detail add (create, update and the plain list go without)."""
    body: dict[str, Any] = {
        "id": snap.id, "name": snap.name, "description": snap.description,
        "status": snap.status, "size": snap.size, "volume_id": snap.volume_id,
        "created_at": cinder_time(snap.created_at), "updated_at": cinder_time(snap.updated_at),
        "metadata": dict(snap.metadata_ or {}),
    }
    if extended:
        body["os-extended-snapshot-attributes:project_id"] = snap.project_id
        body["os-extended-snapshot-attributes:progress"] = snap.progress or (
            "100%" if snap.status == "available" else "0%")
    v = version(request)
    if v >= (3, 14):
        body["group_snapshot_id"] = snap.group_snapshot_id
    if v >= (3, 41):
        body["user_id"] = snap.user_id
    if v >= (3, 65):
        body["consumes_quota"] = True
    return body


async def _list(request: Request, detail: bool) -> Response:
    ctx = context(request)
    service = volumes(request)
    found = service.list_snapshots(ctx, filters(request),
                                   all_tenants=query_flag(request, "all_tenants"))

    def render(page: list[Snapshot]) -> list[dict[str, Any]]:
        return [render_snapshot(request, s, ctx.is_admin, extended=detail) for s in page]

    return paged_list(request, "snapshots", detail, found, SORT_KEYS, render,
                      service.config.volume.max_limit)


async def list_snapshots(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_snapshots_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def create_snapshot(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request)
    spec = required_object(body, "snapshot")
    if version(request) >= (3, 66) and "force" not in spec:
        spec = {**spec, "force": True}  # 3.66: in-use volumes need no force
    snap = volumes(request).create_snapshot(ctx, spec)
    return json_response({"snapshot": render_snapshot(request, snap, ctx.is_admin,
                                                      extended=False)}, status=202)


async def show_snapshot(request: Request) -> Response:
    ctx = context(request)
    snap = volumes(request).get_snapshot(ctx, path_id(request, "snapshot_id"))
    return json_response({"snapshot": render_snapshot(request, snap, ctx.is_admin)})


async def update_snapshot(request: Request) -> Response:
    ctx = context(request)
    snapshot_id = path_id(request, "snapshot_id")
    volumes(request).get_snapshot(ctx, snapshot_id)
    body = await read_json(request)
    spec = required_object(body, "snapshot")
    snap = volumes(request).update_snapshot(ctx, snapshot_id, spec)
    return json_response({"snapshot": render_snapshot(request, snap, ctx.is_admin,
                                                      extended=False)})


async def delete_snapshot(request: Request) -> Response:
    ctx = context(request)
    volumes(request).delete_snapshot(ctx, path_id(request, "snapshot_id"))
    return Response(status_code=202)


METADATA = MetadataOwner("Snapshot", "snapshot_id", Volumes.get_snapshot,
                         Volumes.set_snapshot_metadata, Volumes.delete_snapshot_metadata_key)


async def snapshot_metadata(request: Request) -> Response:
    return await metadata_answer(request, METADATA)


async def snapshot_metadata_item(request: Request) -> Response:
    return await metadata_item_answer(request, METADATA)


async def snapshot_action(request: Request) -> Response:
    ctx = context(request)
    snapshot_id = path_id(request, "snapshot_id")
    service = volumes(request)
    service.get_snapshot(ctx, snapshot_id)
    action, args = one_action(await read_json(request))
    if action == "os-update_snapshot_status":  # the owner's (Nova's, for Cinder)
        service.update_snapshot_status(ctx, snapshot_id, args)
        return Response(status_code=202)
    if action not in ("os-reset_status", "os-force_delete"):
        raise BadRequest(f"There is no such action: {action}")
    if not ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow volume_extension:snapshot_admin_actions:"
                        f"{action[3:]} to be performed.")
    if action == "os-reset_status":
        if not isinstance(args, dict) or "status" not in args:
            raise field_error("os-reset_status", args, "'status' is a required property")
        service.reset_snapshot_status(ctx, snapshot_id, args["status"])
    else:
        service.delete_snapshot(ctx, snapshot_id, force=True)
    return Response(status_code=202)


routes = [
    Route("/v3/{project_id}/snapshots", reader(list_snapshots), methods=["GET"]),
    Route("/v3/{project_id}/snapshots", member(create_snapshot), methods=["POST"]),
    Route("/v3/{project_id}/snapshots/detail", reader(list_snapshots_detail),
          methods=["GET"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}", reader(show_snapshot),
          methods=["GET"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}", member(update_snapshot),
          methods=["PUT"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}", member(delete_snapshot),
          methods=["DELETE"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}/metadata",
          reads_and_writes(snapshot_metadata), methods=["GET", "POST", "PUT"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}/metadata/{key}",
          reads_and_writes(snapshot_metadata_item), methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/snapshots/{snapshot_id}/action", member(snapshot_action),
          methods=["POST"]),
]

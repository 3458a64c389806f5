"""/v3/{project_id}/group_types (3.11+), /groups (3.13+) and /group_snapshots (3.14+):
Cinder's generic volume groups (onestack/services/volume/groups.py says what they
do here). Group types are read by every project-scoped caller and changed by
administrators; groups and group snapshots belong to a project's members; resetting a
status is for administrators."""

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
    path_id,
    query,
    query_flag,
    reader,
    reads_and_admin_writes,
    reads_and_writes,
    volumes,
)
from onestack.api.volume.microversion import require, version
from onestack.common.errors import BadRequest, NotFound
from onestack.db.models.volume_admin import GroupSnapshot, GroupType, VolumeGroup
from onestack.services.volume.common import field_error, forbidden, one_action
from onestack.services.volume.groups import Groups, GroupSnapshots, GroupTypes

TYPES, GROUPS, SNAPSHOTS, RESET_SNAPSHOT, RESET_GROUP = \
    (3, 11), (3, 13), (3, 14), (3, 19), (3, 20)


# -- group types ----------------------------------------------------------------------


def render_group_type(gt: GroupType) -> dict[str, Any]:
    return {"id": gt.id, "name": gt.name, "description": gt.description,
            "is_public": gt.is_public, "group_specs": dict(gt.group_specs or {})}


async def group_types(request: Request) -> Response:
    require(request, TYPES)
    ctx = context(request)
    service = GroupTypes(volumes(request))
    if request.method == "GET":
        found = service.list_types(ctx, query(request, "is_public"), query(request, "sort"))
        return json_response({"group_types": [render_group_type(t) for t in found]})
    body = await read_json(request)
    gt = service.create(body.get("group_type"))
    return json_response({"group_type": render_group_type(gt)}, status=202)


async def default_group_type(request: Request) -> Response:
    require(request, TYPES)
    context(request)
    raise NotFound("Default group type could not be found: this cloud sets none.")


async def group_type(request: Request) -> Response:
    require(request, TYPES)
    ctx = context(request)
    service = GroupTypes(volumes(request))
    type_id = path_id(request, "group_type_id")
    if request.method == "GET":
        return json_response({"group_type": render_group_type(service.get(ctx, type_id))})
    if request.method == "DELETE":
        service.delete(ctx, type_id)
        return Response(status_code=202)
    service.get(ctx, type_id)
    body = await read_json(request)
    return json_response({"group_type": render_group_type(
        service.update(ctx, type_id, body.get("group_type")))})


async def group_specs(request: Request) -> Response:
    require(request, TYPES)
    ctx = context(request)
    service = GroupTypes(volumes(request))
    type_id = path_id(request, "group_type_id")
    gt = service.get(ctx, type_id)
    if request.method == "GET":
        return json_response({"group_specs": dict(gt.group_specs or {})})
    body = await read_json(request)
    if "group_specs" not in body:
        raise field_error("group_specs", body, "'group_specs' is a required property")
    return json_response({"group_specs": service.set_specs(ctx, type_id,
                                                           body["group_specs"])},
                         status=202)


async def group_spec(request: Request) -> Response:
    require(request, TYPES)
    ctx = context(request)
    service = GroupTypes(volumes(request))
    type_id, key = path_id(request, "group_type_id"), path_id(request, "key")
    gt = service.get(ctx, type_id)
    if request.method == "GET":
        if key not in (gt.group_specs or {}):
            raise NotFound(f"Group Type {gt.id} has no specs with key {key}.")
        return json_response({key: gt.group_specs[key]})
    if request.method == "DELETE":
        service.delete_spec(ctx, type_id, key)
        return Response(status_code=202)
    body = await read_json(request)
    if key not in body or len(body) != 1:
        raise BadRequest("Request body and URI mismatch")
    service.set_specs(ctx, type_id, body)
    return json_response(body)


# -- groups ---------------------------------------------------------------------------


def render_group(request: Request, group: VolumeGroup, members: list[str]
                 ) -> dict[str, Any]:
    v = version(request)
    body: dict[str, Any] = {
        "id": group.id, "name": group.name, "description": group.description,
        "status": group.status, "availability_zone": group.availability_zone,
        "created_at": cinder_time(group.created_at), "group_type": group.group_type_id,
        "volume_types": list(group.volume_type_ids or [])}
    if v >= (3, 14):
        body["group_snapshot_id"] = group.group_snapshot_id
        body["source_group_id"] = group.source_group_id
    if v >= (3, 25):
        body["volumes"] = members
    if v >= (3, 38):
        body["replication_status"] = "disabled"
    return body


async def list_groups(request: Request) -> Response:
    require(request, GROUPS)
    ctx = context(request)
    found = Groups(volumes(request)).list_groups(ctx, query_flag(request, "all_tenants"))
    if request.url.path.endswith("/detail"):
        return json_response({"groups": [render_group(request, g, m) for g, m in found]})
    return json_response({"groups": [{"id": g.id, "name": g.name} for g, _ in found]})


async def create_group(request: Request) -> Response:
    require(request, GROUPS)
    ctx = context(request)
    body = await read_json(request)
    group = Groups(volumes(request)).create(ctx, body.get("group"))
    return json_response({"group": {"id": group.id, "name": group.name}}, status=202)


async def group_item(request: Request) -> Response:
    require(request, GROUPS)
    ctx = context(request)
    service = Groups(volumes(request))
    group_id = path_id(request, "group_id")
    if request.method == "GET":
        group, members = service.get(ctx, group_id)
        return json_response({"group": render_group(request, group, members)})
    service.get(ctx, group_id)
    body = await read_json(request)
    service.update(ctx, group_id, body.get("group"))
    return Response(status_code=202)


async def group_action(request: Request) -> Response:
    require(request, GROUPS)
    ctx = context(request)
    service = Groups(volumes(request))
    group_id = path_id(request, "group_id")
    service.get(ctx, group_id)
    action, args = one_action(await read_json(request))
    if action == "delete":
        if args is not None and not isinstance(args, dict):
            raise field_error("delete", args, "is not of type 'object'")
        service.delete(ctx, group_id, (args or {}).get("delete-volumes", False))
        return Response(status_code=202)
    if action == "reset_status":
        require(request, RESET_GROUP)
        if not ctx.is_admin:
            raise forbidden("group:reset_status")
        if not isinstance(args, dict):
            raise field_error("reset_status", args, "'status' is a required property")
        service.reset_status(ctx, group_id, args.get("status"))
        return Response(status_code=202)
    raise BadRequest(f"There is no such action: {action}")


async def groups_action(request: Request) -> Response:
    """``POST /groups/action`` with ``create-from-src`` (3.14+)."""
    require(request, GROUPS)
    ctx = context(request)
    action, args = one_action(await read_json(request))
    if action != "create-from-src":
        raise BadRequest(f"There is no such action: {action}")
    require(request, SNAPSHOTS)
    group = Groups(volumes(request)).create_from_source(ctx, args)
    return json_response({"group": {"id": group.id, "name": group.name}}, status=202)


# -- group snapshots ------------------------------------------------------------------


def render_group_snapshot(gsnap: GroupSnapshot) -> dict[str, Any]:
    return {"id": gsnap.id, "name": gsnap.name, "description": gsnap.description,
            "status": gsnap.status, "group_id": gsnap.group_id,
            "group_type_id": gsnap.group_type_id,
            "created_at": cinder_time(gsnap.created_at)}


async def list_group_snapshots(request: Request) -> Response:
    require(request, SNAPSHOTS)
    ctx = context(request)
    found = GroupSnapshots(volumes(request)).list_snapshots(
        ctx, query_flag(request, "all_tenants"))
    if request.url.path.endswith("/detail"):
        return json_response({"group_snapshots": [render_group_snapshot(g) for g in found]})
    return json_response({"group_snapshots": [{"id": g.id, "name": g.name}
                                              for g in found]})


async def create_group_snapshot(request: Request) -> Response:
    require(request, SNAPSHOTS)
    ctx = context(request)
    body = await read_json(request)
    gsnap = GroupSnapshots(volumes(request)).create(ctx, body.get("group_snapshot"))
    return json_response({"group_snapshot": {"id": gsnap.id, "name": gsnap.name,
                                             "group_type_id": gsnap.group_type_id}},
                         status=202)


async def group_snapshot_item(request: Request) -> Response:
    require(request, SNAPSHOTS)
    ctx = context(request)
    service = GroupSnapshots(volumes(request))
    gsnap_id = path_id(request, "group_snapshot_id")
    if request.method == "DELETE":
        service.delete(ctx, gsnap_id)
        return Response(status_code=202)
    return json_response({"group_snapshot": render_group_snapshot(
        service.get(ctx, gsnap_id))})


async def group_snapshot_action(request: Request) -> Response:
    require(request, RESET_SNAPSHOT)
    ctx = context(request)
    service = GroupSnapshots(volumes(request))
    gsnap_id = path_id(request, "group_snapshot_id")
    service.get(ctx, gsnap_id)
    action, args = one_action(await read_json(request))
    if action != "reset_status":
        raise BadRequest(f"There is no such action: {action}")
    if not isinstance(args, dict):
        raise field_error("reset_status", args, "'status' is a required property")
    service.reset_status(ctx, gsnap_id, args.get("status"))
    return Response(status_code=202)


P = "/v3/{project_id}"
routes = [
    Route(f"{P}/group_types", reads_and_admin_writes(group_types), methods=["GET", "POST"]),
    Route(f"{P}/group_types/default", reader(default_group_type), methods=["GET"]),
    Route(f"{P}/group_types/{{group_type_id}}", reads_and_admin_writes(group_type),
          methods=["GET", "PUT", "DELETE"]),
    Route(f"{P}/group_types/{{group_type_id}}/group_specs",
          reads_and_admin_writes(group_specs), methods=["GET", "POST"]),
    Route(f"{P}/group_types/{{group_type_id}}/group_specs/{{key}}",
          reads_and_admin_writes(group_spec), methods=["GET", "PUT", "DELETE"]),
    Route(f"{P}/groups", reads_and_writes(list_groups), methods=["GET"]),
    Route(f"{P}/groups", reads_and_writes(create_group), methods=["POST"]),
    Route(f"{P}/groups/detail", reads_and_writes(list_groups), methods=["GET"]),
    Route(f"{P}/groups/action", reads_and_writes(groups_action), methods=["POST"]),
    Route(f"{P}/groups/{{group_id}}", reads_and_writes(group_item), methods=["GET", "PUT"]),
    Route(f"{P}/groups/{{group_id}}/action", reads_and_writes(group_action),
          methods=["POST"]),
    Route(f"{P}/group_snapshots", reads_and_writes(list_group_snapshots), methods=["GET"]),
    Route(f"{P}/group_snapshots", reads_and_writes(create_group_snapshot),
          methods=["POST"]),
    Route(f"{P}/group_snapshots/detail", reads_and_writes(list_group_snapshots),
          methods=["GET"]),
    Route(f"{P}/group_snapshots/{{group_snapshot_id}}",
          reads_and_writes(group_snapshot_item), methods=["GET", "DELETE"]),
    Route(f"{P}/group_snapshots/{{group_snapshot_id}}/action",
          admin(group_snapshot_action), methods=["POST"]),
]

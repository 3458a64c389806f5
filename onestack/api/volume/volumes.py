"""/v3/{project_id}/volumes: volumes, their actions and metadata."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import (
    cinder_time,
    context,
    filters,
    links,
    member,
    path_id,
    query,
    query_flag,
    reader,
    reads_and_writes,
    volumes,
)
from onestack.api.volume.listing import paged_list, sort_value
from onestack.api.volume.metadata import MetadataOwner, metadata_answer, metadata_item_answer
from onestack.api.volume.microversion import version
from onestack.common.errors import BadRequest, Forbidden
from onestack.db.models import Volume, VolumeAttachment
from onestack.services.volume import Volumes
from onestack.services.volume.common import (
    NotImplementedFault,
    check_bool,
    field_error,
    one_action,
    required_object,
)

SORT_KEYS = ("id", "name", "status", "size", "availability_zone", "created_at",
             "updated_at", "bootable", "display_name", "volume_type", "project_id")
CREATE_KEYS = {"size", "availability_zone", "source_volid", "description", "multiattach",
               "snapshot_id", "backup_id", "name", "imageRef", "volume_type", "metadata",
               "consistencygroup_id", "display_name", "display_description", "image_id",
               "group_id", "source_replica", "scheduler_hints"}


def render_attachment(att: VolumeAttachment) -> dict[str, Any]:
    return {"server_id": att.instance_uuid, "attachment_id": att.id,
            "attached_at": cinder_time(att.attach_time), "host_name": att.attached_host,
            "volume_id": att.volume_id, "device": att.mountpoint, "id": att.volume_id}


#: Administrative metadata Cinder shows among a volume's metadata.
VISIBLE_ADMIN_METADATA = ("readonly", "attached_mode")


def visible_admin_metadata(vol: Volume) -> dict[str, str]:
    admin_meta = vol.admin_metadata or {}
    return {k: str(admin_meta[k]) for k in VISIBLE_ADMIN_METADATA if k in admin_meta}


def render_volume(request: Request, vol: Volume, attachments: list[VolumeAttachment],
                  type_names: dict[str, str], is_admin: bool,
                  extended: bool = True) -> dict[str, Any]:
    """Cinder's volume view. ``extended`` adds what Cinder's show/detail extensions add
    (tenant, migration and host attributes, image metadata); create and update answer
    with the plain view, as Cinder's do."""
    v = version(request)
    body: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description,
        "status": vol.status, "size": vol.size, "availability_zone": vol.availability_zone,
        "created_at": cinder_time(vol.created_at), "updated_at": cinder_time(vol.updated_at),
        "attachments": [render_attachment(a) for a in attachments
                        if a.attach_status == "attached"],
        "links": links(request, "volumes", vol.id),
        "metadata": {**dict(vol.metadata_ or {}), **visible_admin_metadata(vol)},
        "bootable": "true" if vol.bootable else "false", "encrypted": False,
        "multiattach": vol.multiattach, "replication_status": None,
        "consistencygroup_id": None, "snapshot_id": vol.snapshot_id,
        "source_volid": vol.source_volid, "user_id": vol.user_id,
        "volume_type": type_names.get(vol.volume_type_id or "", None),
    }
    if is_admin:
        body["migration_status"] = None
    if extended:
        body["os-vol-tenant-attr:tenant_id"] = vol.project_id
        if is_admin:
            body["os-vol-host-attr:host"] = f"onestack@{vol.backend}#{vol.backend}"
            body["os-vol-mig-status-attr:migstat"] = None
            body["os-vol-mig-status-attr:name_id"] = None
        if vol.image_metadata:
            body["volume_image_metadata"] = {k: str(val)
                                             for k, val in vol.image_metadata.items()}
    if v >= (3, 13):
        body["group_id"] = vol.group_id
    if v >= (3, 21):
        body["provider_id"] = None
    if v >= (3, 48):
        body["service_uuid"] = None
        body["shared_targets"] = False
    if v >= (3, 61) and is_admin:
        body["cluster_name"] = None
    if v >= (3, 63):
        body["volume_type_id"] = vol.volume_type_id
    if v >= (3, 64):
        body["encryption_key_id"] = None
    if v >= (3, 65):
        body["consumes_quota"] = True
    return body


def _one(request: Request, vol: Volume, is_admin: bool, extended: bool = True
         ) -> dict[str, Any]:
    service = volumes(request)
    atts = service.volume_attachments([vol.id])[vol.id]
    return render_volume(request, vol, atts, service.type_names(), is_admin, extended)


def _metadata_filter(request: Request, items: list[Volume]) -> list[Volume]:
    raw = query(request, "metadata")
    if not raw:
        return items
    try:
        wanted = json.loads(raw)
    except ValueError:
        try:
            import ast
            wanted = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise BadRequest(f"Invalid input received: metadata filter {raw!r} is not an "
                             "object.") from None
    if not isinstance(wanted, dict):
        raise BadRequest(f"Invalid input received: metadata filter {raw!r} is not an "
                         "object.")
    return [v for v in items if all((v.metadata_ or {}).get(k) == str(val)
                                    for k, val in wanted.items())]


async def _list(request: Request, detail: bool) -> Response:
    ctx = context(request)
    service = volumes(request)
    wanted = filters(request)
    wanted.pop("metadata", None)
    found = service.list_volumes(ctx, wanted, all_tenants=query_flag(request, "all_tenants"))
    found = _metadata_filter(request, found)
    types = service.type_names()

    def key_of(vol: Volume, key: str) -> Any:
        if key == "volume_type":
            return types.get(vol.volume_type_id or "")
        return sort_value(vol, key)

    def render(page: list[Volume]) -> list[dict[str, Any]]:
        if detail:
            atts = service.volume_attachments([v.id for v in page])
            return [render_volume(request, v, atts[v.id], types, ctx.is_admin)
                    for v in page]
        return [{"id": v.id, "name": v.name, "links": links(request, "volumes", v.id)}
                for v in page]

    return paged_list(request, "volumes", detail, found, SORT_KEYS, render,
                      service.config.volume.max_limit, key_of)


async def list_volumes(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_volumes_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def volume_summary(request: Request) -> Response:
    ctx = context(request)
    found = volumes(request).list_volumes(ctx, {},
                                          all_tenants=query_flag(request, "all_tenants"))
    body: dict[str, Any] = {"total_size": sum(v.size for v in found),
                            "total_count": len(found)}
    if version(request) >= (3, 36):
        meta: dict[str, list[str]] = {}
        for vol in found:
            for key, value in (vol.metadata_ or {}).items():
                meta.setdefault(key, [])
                if value not in meta[key]:
                    meta[key].append(value)
        body["metadata"] = meta
    return json_response({"volume-summary": body})


async def create_volume(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request)
    spec = required_object(body, "volume")
    unknown = set(spec) - CREATE_KEYS
    if unknown:
        raise field_error("volume", spec, f"Additional properties are not allowed "
                          f"({', '.join(repr(u) for u in sorted(unknown))} were unexpected)")
    if spec.get("backup_id") and version(request) >= (3, 47):  # before: ignored
        from onestack.services.volume.backups import backups_of

        vol = backups_of(volumes(request)).volume_from_backup(ctx, spec)
        return json_response({"volume": _one(request, vol, ctx.is_admin, extended=False)},
                             status=202)
    if spec.get("consistencygroup_id"):
        raise NotImplementedFault("Consistency groups (the pre-3.13 API) are not "
                                  "implemented by this cloud: use generic volume groups "
                                  "(group_id).")
    image = spec.get("imageRef") or spec.get("image_id")
    if image is not None and not isinstance(image, str):
        raise field_error("volume/imageRef", image, f"{image!r} is not of type 'string'")
    for key in ("snapshot_id", "source_volid", "volume_type", "availability_zone"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise field_error(f"volume/{key}", spec[key],
                              f"{spec[key]!r} is not of type 'string'")
    if "size" not in spec and not (spec.get("snapshot_id") or spec.get("source_volid")):
        raise field_error("volume", spec, "'size' is a required property")
    vol = volumes(request).create_volume(
        ctx, spec.get("size"), image_id=image or None,
        name=spec.get("name", spec.get("display_name")),
        description=spec.get("description", spec.get("display_description")),
        snapshot_id=spec.get("snapshot_id") or None,
        source_volid=spec.get("source_volid") or None,
        volume_type=spec.get("volume_type") or None,
        availability_zone=spec.get("availability_zone") or None,
        metadata=spec.get("metadata"), multiattach=spec.get("multiattach", False),
        project_id=ctx.project_id,
        group_id=spec.get("group_id") if version(request) >= (3, 13) else None)
    return json_response({"volume": _one(request, vol, ctx.is_admin, extended=False)},
                         status=202)


async def show_volume(request: Request) -> Response:
    ctx = context(request)
    vol = volumes(request).get_volume(ctx, path_id(request, "volume_id"))
    return json_response({"volume": _one(request, vol, ctx.is_admin)})


async def update_volume(request: Request) -> Response:
    ctx = context(request)
    volume_id = path_id(request, "volume_id")
    volumes(request).get_volume(ctx, volume_id)  # 404 before the body is read
    body = await read_json(request)
    spec = required_object(body, "volume")
    vol = volumes(request).update_volume(ctx, volume_id, spec)
    return json_response({"volume": _one(request, vol, ctx.is_admin, extended=False)})


async def delete_volume(request: Request) -> Response:
    ctx = context(request)
    cascade = check_bool(query(request, "cascade") or "false", "cascade")
    force = check_bool(query(request, "force") or "false", "force")
    if force and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow volume:force_delete to be performed.")
    volumes(request).delete_volume(ctx, path_id(request, "volume_id"), cascade=cascade,
                                   force=force)
    return Response(status_code=202)


# -- actions -----------------------------------------------------------------------------

#: Cinder actions this cloud does not carry out (501).
UNIMPLEMENTED_ACTIONS = {
    "os-migrate_volume": "Volume migration", "os-migrate_volume_completion":
    "Volume migration", "os-revert": "Reverting a volume to a snapshot",
    "os-reimage": "Re-imaging a volume", "os-enable_replication": "Replication",
    "os-disable_replication": "Replication", "os-failover_replication": "Replication",
    "os-list_replication_targets": "Replication", "os-promote-replica": "Replication",
    "os-reenable-replica": "Replication", "os-unmanage": "Unmanaging a volume",
    "os-initialize_connection": "Connecting through the legacy flow (use the "
    "attachments API, 3.27+)",
    "os-terminate_connection": "Connecting through the legacy flow (use the "
    "attachments API, 3.27+)",
}
ADMIN_ACTIONS = ("os-reset_status", "os-force_delete", "os-force_detach")


async def volume_action(request: Request) -> Response:
    ctx = context(request)
    volume_id = path_id(request, "volume_id")
    service = volumes(request)
    service.get_volume(ctx, volume_id)  # 404 before the body
    action, args = one_action(await read_json(request))
    if action in ADMIN_ACTIONS and not ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow volume_extension:volume_admin_actions:"
                        f"{action[3:]} to be performed.")
    if action in UNIMPLEMENTED_ACTIONS:
        raise NotImplementedFault(f"{UNIMPLEMENTED_ACTIONS[action]} is not implemented by "
                                  "this cloud.")
    legacy = service.attachments
    if action == "os-reserve":
        legacy.reserve(ctx, volume_id)
        return Response(status_code=202)
    if action == "os-unreserve":
        legacy.unreserve(ctx, volume_id)
        return Response(status_code=202)
    if action == "os-attach":
        legacy.legacy_attach(ctx, volume_id, args)
        return Response(status_code=202)
    if action == "os-detach":
        legacy.legacy_detach(ctx, volume_id, args)
        return Response(status_code=202)
    if action == "os-force_detach":
        # (admins) drop a bookkeeping attachment whatever the volume's status; one with
        # a live connection (the attachments API's) is refused, as Cinder refuses one
        # it cannot prove safe: delete that through compute or the attachments API
        if args is not None and not isinstance(args, dict):
            raise field_error("os-force_detach", args, "is not of type 'object'")
        legacy.legacy_detach(ctx, volume_id, {"attachment_id": (args or {}).get(
            "attachment_id")})
        return Response(status_code=202)
    if action == "os-begin_detaching":
        legacy.begin_detaching(ctx, volume_id)
        return Response(status_code=202)
    if action == "os-roll_detaching":
        legacy.roll_detaching(ctx, volume_id)
        return Response(status_code=202)
    if action == "os-set_image_metadata":
        if not isinstance(args, dict) or "metadata" not in args:
            raise field_error("os-set_image_metadata", args,
                              "'metadata' is a required property")
        meta = service.set_image_metadata(ctx, volume_id, args["metadata"])
        return json_response({"metadata": meta})
    if action == "os-unset_image_metadata":
        if not isinstance(args, dict) or "key" not in args:
            raise field_error("os-unset_image_metadata", args,
                              "'key' is a required property")
        service.unset_image_metadata(ctx, volume_id, args["key"])
        return Response(status_code=200)
    if action == "os-show_image_metadata":
        vol = service.get_volume(ctx, volume_id)
        return json_response({"metadata": {k: str(val) for k, val in
                                           (vol.image_metadata or {}).items()}})
    if action == "os-extend":
        if not isinstance(args, dict) or "new_size" not in args:
            raise field_error("os-extend", args, "'new_size' is a required property")
        service.extend(ctx, volume_id, args["new_size"],
                       attached_allowed=version(request) >= (3, 42))
        return Response(status_code=202)
    if action == "os-reset_status":
        if not isinstance(args, dict):
            raise field_error("os-reset_status", args, "is not of type 'object'")
        service.reset_status(ctx, volume_id, args)
        return Response(status_code=202)
    if action == "os-force_delete":
        service.delete_volume(ctx, volume_id, force=True)
        return Response(status_code=202)
    if action == "os-set_bootable":
        if not isinstance(args, dict) or "bootable" not in args:
            raise field_error("os-set_bootable", args, "'bootable' is a required property")
        service.set_bootable(ctx, volume_id, args["bootable"])
        return Response(status_code=200)
    if action == "os-update_readonly_flag":
        if not isinstance(args, dict):
            raise field_error("os-update_readonly_flag", args, "is not of type 'object'")
        service.set_readonly(ctx, volume_id, args.get("readonly"))
        return Response(status_code=202)
    if action == "os-retype":
        if not isinstance(args, dict) or "new_type" not in args:
            raise field_error("os-retype", args, "'new_type' is a required property")
        service.retype(ctx, volume_id, args["new_type"], args.get("migration_policy"))
        return Response(status_code=202)
    if action == "os-volume_upload_image":
        if not isinstance(args, dict):
            raise field_error("os-volume_upload_image", args, "is not of type 'object'")
        result = service.upload_to_image(ctx, volume_id, args)
        return json_response({"os-volume_upload_image": result}, status=202)
    raise BadRequest(f"There is no such action: {action}")


# -- metadata ----------------------------------------------------------------------------


METADATA = MetadataOwner("Volume", "volume_id", Volumes.get_volume, Volumes.set_metadata,
                         Volumes.delete_metadata_key)


async def volume_metadata(request: Request) -> Response:
    return await metadata_answer(request, METADATA)


async def volume_metadata_item(request: Request) -> Response:
    return await metadata_item_answer(request, METADATA)


routes = [
    Route("/v3/{project_id}/volumes", reader(list_volumes), methods=["GET"]),
    Route("/v3/{project_id}/volumes", member(create_volume), methods=["POST"]),
    Route("/v3/{project_id}/volumes/detail", reader(list_volumes_detail), methods=["GET"]),
    Route("/v3/{project_id}/volumes/summary", reader(volume_summary), methods=["GET"]),
    Route("/v3/{project_id}/volumes/{volume_id}", reader(show_volume), methods=["GET"]),
    Route("/v3/{project_id}/volumes/{volume_id}", member(update_volume), methods=["PUT"]),
    Route("/v3/{project_id}/volumes/{volume_id}", member(delete_volume),
          methods=["DELETE"]),
    Route("/v3/{project_id}/volumes/{volume_id}/action", member(volume_action),
          methods=["POST"]),
    Route("/v3/{project_id}/volumes/{volume_id}/metadata", reads_and_writes(volume_metadata),
          methods=["GET", "POST", "PUT"]),
    Route("/v3/{project_id}/volumes/{volume_id}/metadata/{key}",
          reads_and_writes(volume_metadata_item), methods=["GET", "PUT", "DELETE"]),
]

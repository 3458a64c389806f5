"""/v3/{project_id}/attachments (3.27+): the attachments API compute uses to attach
volumes (``services/volume/attachments.py`` holds the contract)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import (
    context,
    filters,
    member,
    path_id,
    query_flag,
    reader,
    reads_and_writes,
    sort_and_page,
    volumes,
)
from onestack.api.volume.microversion import require
from onestack.common.errors import BadRequest
from onestack.services.volume.common import field_error, required_object

SORT_KEYS = ("id", "status", "volume_id", "instance", "attached_at", "created_at")


def _summary(att: dict[str, Any]) -> dict[str, Any]:
    return {"id": att["id"], "status": att["status"], "instance": att["instance"],
            "volume_id": att["volume_id"]}


def _detail(att: dict[str, Any]) -> dict[str, Any]:
    return {k: att[k] for k in ("id", "status", "instance", "volume_id", "attached_at",
                                "detached_at", "attach_mode", "connection_info")}


async def _list(request: Request, detail: bool) -> Response:
    require(request, (3, 27))
    ctx = context(request)
    service = volumes(request)
    found = service.attachments.list_attachments(
        ctx, all_tenants=query_flag(request, "all_tenants"), filters=filters(request))
    page, _, _ = sort_and_page(request, found, SORT_KEYS,
                               lambda a, k: a.get("created_at" if k == "created_at" else k),
                               lambda a: a["id"], service.config.volume.max_limit)
    return json_response({"attachments": [(_detail if detail else _summary)(a)
                                          for a in page]})


async def list_attachments(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_attachments_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def create_attachment(request: Request) -> Response:
    require(request, (3, 27))
    ctx = context(request)
    body = await read_json(request)
    spec = required_object(body, "attachment")
    volume_id = spec.get("volume_uuid")
    if not isinstance(volume_id, str):
        raise field_error("attachment", spec, "'volume_uuid' is a required property")
    instance = spec.get("instance_uuid")
    if instance is not None and not isinstance(instance, str):
        raise field_error("attachment/instance_uuid", instance, "is not of type 'string'")
    mode = spec.get("mode")
    if mode is not None and mode not in ("rw", "ro"):
        raise BadRequest(f"Invalid input received: Invalid attachment mode {mode!r} was "
                         "requested (rw or ro).")
    att = volumes(request).attachments.attachment_create(
        ctx, volume_id, instance, spec.get("connector"), mode=mode)
    return json_response({"attachment": _detail(att)})


async def attachment_item(request: Request) -> Response:
    require(request, (3, 27))
    ctx = context(request)
    service = volumes(request).attachments
    attachment_id = path_id(request, "attachment_id")
    if request.method == "GET":
        return json_response({"attachment": _detail(service.get_attachment(ctx,
                                                                           attachment_id))})
    if request.method == "DELETE":
        service.attachment_delete(ctx, attachment_id)
        return json_response({"attachments": []})
    service.get_attachment(ctx, attachment_id)
    body = await read_json(request)
    spec = body.get("attachment")
    if not isinstance(spec, dict) or "connector" not in spec:
        raise field_error("attachment", spec, "'connector' is a required property")
    return json_response({"attachment": _detail(service.attachment_update(
        ctx, attachment_id, spec["connector"]))})


async def attachment_action(request: Request) -> Response:
    require(request, (3, 44))
    ctx = context(request)
    attachment_id = path_id(request, "attachment_id")
    service = volumes(request).attachments
    service.get_attachment(ctx, attachment_id)
    body = await read_json(request)
    if "os-complete" not in body:
        raise BadRequest(f"There is no such action: {', '.join(body) or 'none'}")
    service.attachment_complete(ctx, attachment_id)
    return Response(status_code=204)


routes = [
    Route("/v3/{project_id}/attachments", reader(list_attachments), methods=["GET"]),
    Route("/v3/{project_id}/attachments", member(create_attachment), methods=["POST"]),
    Route("/v3/{project_id}/attachments/detail", reader(list_attachments_detail),
          methods=["GET"]),
    Route("/v3/{project_id}/attachments/{attachment_id}", reads_and_writes(attachment_item),
          methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/attachments/{attachment_id}/action", member(attachment_action),
          methods=["POST"]),
]

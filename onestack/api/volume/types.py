"""/v3/{project_id}/types (volume types, extra specs, access, encryption specs) and
/qos-specs (front-end specs are applied by the compute host: docs/volume.md "QoS").
Reads for every project-scoped caller, changes for administrators."""

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
    reader,
    reads_and_admin_writes,
    volumes,
)
from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import QosSpecs, VolumeType
from onestack.db.models.volume_admin import VolumeTypeEncryption
from onestack.services.volume.common import field_error, one_action, required_object
from onestack.services.volume.encryption import TypeEncryption


def render_type(vt: VolumeType, is_admin: bool, view: str = "show") -> dict[str, Any]:
    """Cinder's views: ``show`` (and lists) has ``qos_specs_id`` for administrators;
    the answer to a create has no ``qos_specs_id``, to an update not the
    ``os-volume-type-access:is_public`` alias either."""
    body: dict[str, Any] = {"id": vt.id, "name": vt.name, "description": vt.description,
                            "is_public": vt.is_public,
                            "os-volume-type-access:is_public": vt.is_public,
                            "extra_specs": dict(vt.extra_specs or {})}
    if is_admin and view == "show":
        body["qos_specs_id"] = vt.qos_specs_id
    if view == "update":
        del body["os-volume-type-access:is_public"]
    return body


async def list_types(request: Request) -> Response:
    ctx = context(request)
    found = volumes(request).types.list_types(ctx, query(request, "is_public"))
    return json_response({"volume_types": [render_type(t, ctx.is_admin) for t in found]})


async def create_type(request: Request) -> Response:
    ctx = context(request)
    body = await read_json(request)
    spec = required_object(body, "volume_type")
    vt = volumes(request).types.create(spec)
    return json_response({"volume_type": render_type(vt, ctx.is_admin, "create")})


async def show_type(request: Request) -> Response:
    ctx = context(request)
    service = volumes(request).types
    type_id = path_id(request, "type_id")
    if request.method == "GET":
        return json_response({"volume_type": render_type(service.get(ctx, type_id),
                                                         ctx.is_admin)})
    if request.method == "DELETE":
        service.delete(ctx, type_id)
        return Response(status_code=202)
    service.get(ctx, type_id)
    body = await read_json(request)
    spec = required_object(body, "volume_type")
    return json_response({"volume_type": render_type(service.update(ctx, type_id, spec),
                                                     ctx.is_admin, "update")})


async def type_extra_specs(request: Request) -> Response:
    ctx = context(request)
    service = volumes(request).types
    type_id = path_id(request, "type_id")
    vt = service.get(ctx, type_id)
    if request.method == "GET":
        return json_response({"extra_specs": dict(vt.extra_specs or {})})
    body = await read_json(request)
    if not isinstance(body.get("extra_specs"), dict):
        raise field_error("extra_specs", body.get("extra_specs"),
                          "'extra_specs' is a required property (an object)")
    service.set_extra_specs(ctx, type_id, body["extra_specs"])
    return json_response({"extra_specs": body["extra_specs"]})


async def type_extra_spec(request: Request) -> Response:
    ctx = context(request)
    service = volumes(request).types
    type_id, key = path_id(request, "type_id"), path_id(request, "key")
    vt = service.get(ctx, type_id)
    if request.method == "GET":
        if key not in (vt.extra_specs or {}):
            raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
        return json_response({key: vt.extra_specs[key]})
    if request.method == "DELETE":
        service.delete_extra_spec(ctx, type_id, key)
        return Response(status_code=202)
    body = await read_json(request)
    if key not in body or len(body) != 1:
        raise BadRequest("Request body and URI mismatch")
    service.set_extra_specs(ctx, type_id, body)
    return json_response(body)


async def type_action(request: Request) -> Response:
    ctx = context(request)
    service = volumes(request).types
    type_id = path_id(request, "type_id")
    service.get(ctx, type_id)
    action, args = one_action(await read_json(request))
    if action not in ("addProjectAccess", "removeProjectAccess"):
        raise BadRequest(f"There is no such action: {action}")
    project = args.get("project") if isinstance(args, dict) else None
    service.change_access(ctx, type_id, project, add=action == "addProjectAccess")
    return Response(status_code=202)


async def type_access(request: Request) -> Response:
    ctx = context(request)
    access = volumes(request).types.access(ctx, path_id(request, "type_id"))
    return json_response({"volume_type_access": access})


def _encryption_fields(row: VolumeTypeEncryption) -> dict[str, Any]:
    return {"volume_type_id": row.volume_type_id, "encryption_id": row.encryption_id,
            "provider": row.provider, "cipher": row.cipher, "key_size": row.key_size,
            "control_location": row.control_location}


async def type_encryption(request: Request) -> Response:
    """``GET``: the type's encryption spec ({} without one); ``POST``: create it."""
    ctx = context(request)
    service = TypeEncryption(volumes(request))
    type_id = path_id(request, "type_id")
    if request.method == "GET":
        row = service.show(ctx, type_id)
        if row is None:
            return json_response({})
        return json_response({**_encryption_fields(row), "deleted": False,
                              "created_at": cinder_time(row.created_at),
                              "updated_at": cinder_time(row.updated_at),
                              "deleted_at": None})
    body = await read_json(request)
    row = service.create(ctx, type_id, body.get("encryption"))
    return json_response({"encryption": _encryption_fields(row)})


async def type_encryption_item(request: Request) -> Response:
    """``GET .../encryption/{key}`` (one field), ``PUT``/``DELETE``
    ``.../encryption/{encryption_id}``."""
    ctx = context(request)
    service = TypeEncryption(volumes(request))
    type_id, key = path_id(request, "type_id"), path_id(request, "key")
    if request.method == "GET":
        row = service.show(ctx, type_id)
        fields = _encryption_fields(row) if row is not None else {}
        if key not in fields:
            raise NotFound(f"Volume type encryption for type {type_id} has no {key}.")
        return json_response({key: fields[key]})
    if request.method == "DELETE":
        service.delete(ctx, type_id, key)
        return Response(status_code=202)
    body = await read_json(request)
    return json_response({"encryption": service.update(ctx, type_id, key,
                                                       body.get("encryption"))})


def render_qos(qos: QosSpecs) -> dict[str, Any]:
    return {"id": qos.id, "name": qos.name, "consumer": qos.consumer,
            "specs": dict(qos.specs or {})}


async def list_qos(request: Request) -> Response:
    context(request)
    return json_response({"qos_specs": [render_qos(q)
                                        for q in volumes(request).types.list_qos()]})


async def create_qos(request: Request) -> Response:
    context(request)
    body = await read_json(request)
    spec = required_object(body, "qos_specs")
    qos = volumes(request).types.create_qos(spec)
    return json_response({"qos_specs": render_qos(qos),
                          "links": links(request, "qos-specs", qos.id)})


async def qos_item(request: Request) -> Response:
    context(request)
    service = volumes(request).types
    qos_id = path_id(request, "qos_id")
    if request.method == "GET":
        return json_response({"qos_specs": render_qos(service.get_qos(qos_id)),
                              "links": links(request, "qos-specs", qos_id)})
    if request.method == "DELETE":
        force = (query(request, "force") or "").lower() in ("1", "true", "yes")
        service.delete_qos(qos_id, force=force)
        return Response(status_code=202)
    service.get_qos(qos_id)
    body = await read_json(request)
    spec = body.get("qos_specs")
    service.set_qos_keys(qos_id, spec)
    return json_response({"qos_specs": spec})  # the keys set, as Cinder answers


async def qos_delete_keys(request: Request) -> Response:
    context(request)
    service = volumes(request).types
    qos_id = path_id(request, "qos_id")
    service.get_qos(qos_id)
    body = await read_json(request)
    service.delete_qos_keys(qos_id, body.get("keys"))
    return Response(status_code=202)


async def qos_disassociate_all(request: Request) -> Response:
    context(request)
    volumes(request).types.disassociate_all(path_id(request, "qos_id"))
    return Response(status_code=202)


async def qos_associate(request: Request) -> Response:
    ctx = context(request)
    service = volumes(request).types
    qos_id = path_id(request, "qos_id")
    add = request.url.path.endswith("/associate")
    service.associate_qos(ctx, qos_id, query(request, "vol_type_id"), add=add)
    return Response(status_code=202)


async def qos_associations(request: Request) -> Response:
    context(request)
    return json_response({"qos_associations": volumes(request).types.qos_associations(
        path_id(request, "qos_id"))})


routes = [
    Route("/v3/{project_id}/types", reader(list_types), methods=["GET"]),
    Route("/v3/{project_id}/types", admin(create_type), methods=["POST"]),
    Route("/v3/{project_id}/types/{type_id}", reads_and_admin_writes(show_type),
          methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/types/{type_id}/extra_specs",
          reads_and_admin_writes(type_extra_specs), methods=["GET", "POST"]),
    Route("/v3/{project_id}/types/{type_id}/extra_specs/{key}",
          reads_and_admin_writes(type_extra_spec), methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/types/{type_id}/action", admin(type_action), methods=["POST"]),
    Route("/v3/{project_id}/types/{type_id}/os-volume-type-access", admin(type_access),
          methods=["GET"]),
    Route("/v3/{project_id}/types/{type_id}/encryption", admin(type_encryption),
          methods=["GET", "POST"]),
    Route("/v3/{project_id}/types/{type_id}/encryption/{key}", admin(type_encryption_item),
          methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/qos-specs", admin(list_qos), methods=["GET"]),
    Route("/v3/{project_id}/qos-specs", admin(create_qos), methods=["POST"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}", admin(qos_item),
          methods=["GET", "PUT", "DELETE"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}/associate", admin(qos_associate),
          methods=["GET"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}/disassociate", admin(qos_associate),
          methods=["GET"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}/associations", admin(qos_associations),
          methods=["GET"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}/delete_keys", admin(qos_delete_keys),
          methods=["PUT"]),
    Route("/v3/{project_id}/qos-specs/{qos_id}/disassociate_all",
          admin(qos_disassociate_all), methods=["GET"]),
]

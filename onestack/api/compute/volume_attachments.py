"""``/servers/{id}/os-volume_attachments`` (``openstack server add|remove volume``,
``openstack server volume list|show|update``): a server's volumes, hot-plugged into its
running guest (``services/compute/volume_attachments.py``).

Microversions as Nova: ``tag`` in requests from 2.49 and in answers from 2.70;
``delete_on_termination`` from 2.79; 2.89 drops ``id`` and adds ``attachment_id`` and
``bdm_uuid``. PUT is admin-only: the same volume with ``delete_on_termination`` (2.85)
changes that flag; a swap to another volume is a 501 (not done by this cloud).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import check_object, compute, server_id
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, member, reader
from onestack.common.errors import BadRequest
from onestack.services.compute import policy

#: Nova's tag limit (``tag`` of a block device mapping).
MAX_TAG_LENGTH = 60


def _view(request: Request, entry: dict[str, Any]) -> dict[str, Any]:
    v = version(request)
    body: dict[str, Any] = {"device": entry["device"], "serverId": entry["serverId"],
                            "volumeId": entry["volumeId"]}
    if v < (2, 89):
        body["id"] = entry["id"]
    if v >= (2, 70):
        body["tag"] = entry["tag"]
    if v >= (2, 79):
        body["delete_on_termination"] = entry["delete_on_termination"]
    if v >= (2, 89):
        body["attachment_id"] = entry["attachment_id"]
        body["bdm_uuid"] = entry["bdm_uuid"]
    return body


def _uuid_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise BadRequest(f"Invalid input for field/attribute volumeAttachment. Value: "
                         f"{body}. '{name}' is a required property")
    if not isinstance(value, str) or len(value.replace("-", "")) != 32 or not all(
            c in "0123456789abcdefABCDEF" for c in value.replace("-", "")):
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                         f"'{value}' is not a 'uuid'")
    return value


async def _attachment_body(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if "volumeAttachment" not in body:
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Value: None. "
                         "'volumeAttachment' is a required property")
    return check_object("volumeAttachment", body["volumeAttachment"])


async def list_volume_attachments(request: Request) -> Response:
    entries = compute(request).volume_attachments.index(caller(request), server_id(request))
    return json_response({"volumeAttachments": [_view(request, e) for e in entries]})


async def show_volume_attachment(request: Request) -> Response:
    entry = compute(request).volume_attachments.show(caller(request), server_id(request),
                                                     request.path_params["volume_id"])
    return json_response({"volumeAttachment": _view(request, entry)})


async def attach_volume(request: Request) -> Response:
    # another project's server is its 404 before the body is read
    compute(request).servers.get(caller(request), server_id(request))
    body = await _attachment_body(request)
    v = version(request)
    allowed = {"volumeId", "device"}
    if v >= (2, 49):
        allowed.add("tag")
    if v >= (2, 79):
        allowed.add("delete_on_termination")
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         f"properties are not allowed ({', '.join(repr(e) for e in extra)} "
                         f"{'was' if len(extra) == 1 else 'were'} unexpected)")
    volume_id = _uuid_field(body, "volumeId")
    device = body.get("device")
    if device is not None and not isinstance(device, str):
        raise BadRequest(f"Invalid input for field/attribute device. Value: {device}. "
                         f"{device!r} is not of type 'string', 'null'")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH
                            or "/" in tag or "," in tag):
        raise BadRequest(f"Invalid input for field/attribute tag. Value: {tag}.")
    delete = body.get("delete_on_termination", False)
    if not isinstance(delete, bool):
        raise BadRequest(f"Invalid input for field/attribute delete_on_termination. Value: "
                         f"{delete}. {delete!r} is not of type 'boolean'")
    entry = compute(request).volume_attachments.attach(
        caller(request), server_id(request), volume_id, device=device or None, tag=tag,
        delete_on_termination=delete)
    return json_response({"volumeAttachment": _view(request, entry)})


async def update_volume_attachment(request: Request) -> Response:
    policy.require_admin(caller(request), "os_compute_api:os-volumes-attachments:swap")
    body = await _attachment_body(request)
    new_volume = _uuid_field(body, "volumeId")
    delete = body.get("delete_on_termination")
    if delete is not None and (version(request) < (2, 85) or not isinstance(delete, bool)):
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         "properties are not allowed ('delete_on_termination' was "
                         "unexpected)" if version(request) < (2, 85) else
                         f"Invalid input for field/attribute delete_on_termination. Value: "
                         f"{delete}. {delete!r} is not of type 'boolean'")
    compute(request).volume_attachments.update(
        caller(request), server_id(request), request.path_params["volume_id"], new_volume,
        delete)
    return Response(status_code=202)


async def detach_volume(request: Request) -> Response:
    compute(request).volume_attachments.detach(caller(request), server_id(request),
                                               request.path_params["volume_id"])
    return Response(status_code=202)


_PATH = "/v2.1/servers/{server_id}/os-volume_attachments"

routes = [
    Route(_PATH, reader(list_volume_attachments), methods=["GET"]),
    Route(_PATH, member(attach_volume), methods=["POST"]),
    Route(f"{_PATH}/{{volume_id}}", reader(show_volume_attachment), methods=["GET"]),
    Route(f"{_PATH}/{{volume_id}}", admin(update_volume_attachment), methods=["PUT"]),
    Route(f"{_PATH}/{{volume_id}}", member(detach_volume), methods=["DELETE"]),
]

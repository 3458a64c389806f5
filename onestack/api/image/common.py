"""Shapes shared by the Image API modules: Glance's image and member bodies.

Glance's links (``self``, ``file``, ``schema``, ``first``, ``next``) are relative to
the endpoint (``/v2/images/...``); the clients resolve them against the catalog URL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from onestack.api.common import loads_json, read_body
from onestack.common.errors import BadRequest
from onestack.db.models import Image, ImageMember
from onestack.services.image import Images
from onestack.services.image.data import STORE_ID, WITH_DATA


def images(request: Request) -> Images:
    service: Images = request.app.state.images
    return service


def isotime(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def render_image(image: Image) -> dict[str, Any]:
    href = f"/v2/images/{image.id}"
    body: dict[str, Any] = {p.name: p.value for p in image.properties}
    body.update({
        "id": image.id, "name": image.name, "status": image.status,
        "visibility": image.visibility, "protected": image.protected,
        "os_hidden": image.os_hidden, "owner": image.owner,
        "disk_format": image.disk_format, "container_format": image.container_format,
        "size": image.size, "virtual_size": image.virtual_size, "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value,
        "min_disk": image.min_disk, "min_ram": image.min_ram,
        "tags": [t.tag for t in image.tags],
        "created_at": isotime(image.created_at), "updated_at": isotime(image.updated_at),
        "self": href, "file": f"{href}/file", "schema": "/v2/schemas/image",
    })
    if image.status in WITH_DATA:
        body["stores"] = STORE_ID
    return body


def render_member(member: ImageMember) -> dict[str, Any]:
    return {"image_id": member.image_id, "member_id": member.member_id,
            "status": member.status, "created_at": isotime(member.created_at),
            "updated_at": isotime(member.updated_at), "schema": "/v2/schemas/member"}


async def read_json_value(request: Request) -> Any:
    """The body as any JSON value (a PATCH body is a list); a 400 if it is not JSON."""
    raw = await read_body(request)
    if not raw:
        raise BadRequest("Body expected in request.")
    return loads_json(raw)


def media_type(request: Request) -> str | None:
    """The request's Content-Type without parameters, lower case; None if absent."""
    value = request.headers.get("content-type")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()

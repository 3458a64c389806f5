"""/v2/images: create, list, show, update (JSON patch), delete, tags, deactivate and
reactivate."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, caller, json_response, no_content, read_json
from onestack.api.image.common import images, media_type, read_json_value, render_image
from onestack.api.image.policy import member, reader
from onestack.common.errors import BadRequest, UnsupportedMediaType
from onestack.services.image.data import IMPORT_METHODS, STORE_ID
from onestack.services.image.service import Change

#: PATCH media types and the JSON-patch draft each follows (v2.0 is deprecated).
PATCH_TYPES = {"application/openstack-images-v2.1-json-patch": 10,
               "application/openstack-images-v2.0-json-patch": 4}
PATCH_OPS = ("add", "remove", "replace")


async def create_image(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    image = images(request).create(ctx, body)
    headers = {"Location": f"{base_url(request)}/image/v2/images/{image.id}",
               "OpenStack-image-import-methods": ",".join(IMPORT_METHODS),
               "OpenStack-image-store-ids": STORE_ID}
    return json_response(render_image(image), status=201, headers=headers)


async def list_images(request: Request) -> Response:
    ctx = caller(request)
    params = request.query_params.multi_items()
    page, next_marker = images(request).list(ctx, params)
    kept = [(k, v) for k, v in params if k != "marker"]
    body: dict[str, Any] = {
        "images": [render_image(i) for i in page],
        "first": "/v2/images" + (f"?{urlencode(kept)}" if kept else ""),
        "schema": "/v2/schemas/images",
    }
    if next_marker is not None:
        body["next"] = "/v2/images?" + urlencode([*kept, ("marker", next_marker)])
    return json_response(body)


async def show_image(request: Request) -> Response:
    ctx = caller(request)
    image = images(request).get(ctx, request.path_params["image_id"])
    return json_response(render_image(image))


def parse_patch(body: Any, draft: int) -> list[Change]:
    """Glance's subset of JSON patch: top-level paths only."""
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise BadRequest("Operations must be JSON objects.")
        if draft == 10:
            op = raw.get("op")
            if op not in PATCH_OPS:
                raise BadRequest(f"Invalid operation: `{op}`. It must be one of the "
                                 f"following: {', '.join(PATCH_OPS)}.")
            if "path" not in raw:
                raise BadRequest("Unable to find 'path' in JSON Schema change")
            pointer = raw["path"]
        else:
            present = [key for key in PATCH_OPS if key in raw]
            if len(present) != 1:
                raise BadRequest('Operation objects must contain exactly one member named '
                                 '"add", "remove", or "replace".')
            op = present[0]
            pointer = raw[op]
        path = decode_pointer(pointer)
        if op != "remove" and "value" not in raw:
            raise BadRequest(f'Operation "{op}" requires a member named "value".')
        changes.append(Change(op, path, raw.get("value")))
    return changes


def decode_pointer(pointer: Any) -> str:
    """``/name`` -> ``name``; only one level, with ``~0``/``~1`` escapes."""
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise BadRequest(f"Pointer `{pointer}` does not start with \"/\".")
    parts = pointer[1:].split("/")
    if len(parts) != 1 or not parts[0].strip():
        raise BadRequest(f"Invalid JSON pointer for this resource: '{pointer}'")
    token = parts[0]
    if "~" in token.replace("~0", "").replace("~1", ""):
        raise BadRequest(f"Pointer `{pointer}` contains \"~\" not part of a recognized "
                         "escape sequence.")
    return token.replace("~1", "/").replace("~0", "~").strip()


async def update_image(request: Request) -> Response:
    ctx = caller(request)
    draft = PATCH_TYPES.get(media_type(request) or "")
    if draft is None:
        allowed = ", ".join(sorted(PATCH_TYPES))
        raise UnsupportedMediaType(f"Image PATCH expects Content-Type one of: {allowed}",
                                   headers={"Accept-Patch": allowed})
    changes = parse_patch(await read_json_value(request), draft)
    image = images(request).update(ctx, request.path_params["image_id"], changes)
    return json_response(render_image(image))


async def delete_image(request: Request) -> Response:
    ctx = caller(request)
    images(request).delete(ctx, request.path_params["image_id"])
    return no_content()


async def add_tag(request: Request) -> Response:
    ctx = caller(request)
    images(request).add_tag(ctx, request.path_params["image_id"], request.path_params["tag"])
    return no_content()


async def delete_tag(request: Request) -> Response:
    ctx = caller(request)
    images(request).remove_tag(ctx, request.path_params["image_id"],
                               request.path_params["tag"])
    return no_content()


async def deactivate(request: Request) -> Response:
    ctx = caller(request)
    images(request).set_active(ctx, request.path_params["image_id"], active=False)
    return no_content()


async def reactivate(request: Request) -> Response:
    ctx = caller(request)
    images(request).set_active(ctx, request.path_params["image_id"], active=True)
    return no_content()


routes = [
    Route("/v2/images", member(create_image), methods=["POST"]),
    Route("/v2/images", reader(list_images), methods=["GET"]),
    Route("/v2/images/{image_id}", reader(show_image), methods=["GET"]),
    Route("/v2/images/{image_id}", member(update_image), methods=["PATCH"]),
    Route("/v2/images/{image_id}", member(delete_image), methods=["DELETE"]),
    Route("/v2/images/{image_id}/tags/{tag}", member(add_tag), methods=["PUT"]),
    Route("/v2/images/{image_id}/tags/{tag}", member(delete_tag), methods=["DELETE"]),
    Route("/v2/images/{image_id}/actions/deactivate", member(deactivate), methods=["POST"]),
    Route("/v2/images/{image_id}/actions/reactivate", member(reactivate), methods=["POST"]),
]

"""Nova's image proxy: ``/v2.1/images[/detail|/{image_id}]`` and
``/v2.1/images/{image_id}/metadata[/{key}]``, deprecated by Nova and kept for the
clients that still call them.

Every call goes to the Image service in process (``Compute.images``, the service behind
``/image/v2``), as the caller: what a caller sees, and whether it may delete an image or
change its properties, is the Image service's decision, exactly as Glance's is behind
Nova. This module only translates: Nova's query parameters into Glance's filters, the
image into Nova's view (statuses ``ACTIVE``/``SAVING``/``DELETED``/``ERROR``/``UNKNOWN``,
``minRam``, ``minDisk``, ``metadata`` holding the free-form properties, the ``server``
of a snapshot), the metadata calls into property changes, and the refusals into Nova's
words.

Nova removed the proxies from the API: the image routes answer 404 from microversion
2.36, the metadata routes from 2.39 (as Nova's ``MAX_PROXY_API_SUPPORT_VERSION`` and
its image-metadata cap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, caller, json_response, no_content, read_json
from onestack.api.compute.common import (
    TRUE_WORDS,
    api_root,
    compute,
    limit_and_marker,
    next_links,
    only_keys,
    resource_links,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.validation import check_metadata
from onestack.api.policy import Endpoint, guard
from onestack.common.errors import BadRequest, Forbidden, InvalidField, NotFound
from onestack.db.models import Image
from onestack.services.compute.quotas import OverQuota
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import Images
from onestack.services.image.fields import BASE
from onestack.services.image.service import Change

#: The last microversions that have the image routes and the metadata routes.
LAST_IMAGES = (2, 35)
LAST_METADATA = (2, 38)

#: Glance's statuses as Nova shows them (anything else is ``UNKNOWN``), and the
#: progress Nova reports for each.
STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING",
          "deleted": "DELETED", "pending_delete": "DELETED", "killed": "ERROR"}
PROGRESS = {"queued": 25, "saving": 50, "active": 100}

#: Nova's list filters and the Glance filter each becomes.
FILTERS = {"name": "name", "status": "status", "changes-since": "updated_at",
           "server": "instance_uuid", "type": "image_type", "minRam": "min_ram",
           "minDisk": "min_disk"}
#: Glance's own paging and sorting parameters: a ``property-<name>`` filter never sets
#: them (paging is this module's).
_PAGING = ("limit", "marker", "sort", "sort_key", "sort_dir")


def _images(request: Request) -> Images:
    return compute(request).images


def _image_id(request: Request) -> str:
    return str(request.path_params["image_id"])


# -- access ------------------------------------------------------------------------------

#: Nova's answer when the Image service refuses a change (its ``ImageNotAuthorized``).
_REFUSALS = {"delete_image": "You are not allowed to delete the image."}


def _denied(endpoint: str) -> Exception:
    return Forbidden(_REFUSALS.get(endpoint, "Not authorized to change this image's "
                                             "metadata."))


def proxy(level: str, last: tuple[int, int]) -> Callable[[Endpoint], Endpoint]:
    """A proxy route: 404 for every caller after microversion ``last`` (Nova has no such
    method there), then the access level (``reader`` for reads, ``member`` for the
    changes the Image service lets members make)."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        guarded = guard(level, _denied)(endpoint)

        async def handler(request: Request) -> Response:
            if version(request) > last:
                raise NotFound("The resource could not be found.")
            return await guarded(request)

        handler.__name__ = endpoint.__name__
        handler.__doc__ = endpoint.__doc__
        handler.access = level  # type: ignore[attr-defined]
        return handler
    return wrap


# -- the view ----------------------------------------------------------------------------


def _isotime(image: Image, name: str) -> str | None:
    moment = getattr(image, name)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def image_links(request: Request, image_id: str) -> list[dict[str, str]]:
    """``self`` and ``bookmark`` under /compute, and Nova's ``alternate``: the image
    under the Image service's endpoint."""
    return [*resource_links(request, "images", image_id),
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{base_url(request)}/image/images/{image_id}"}]


def render_basic(request: Request, image: Image) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "links": image_links(request, image.id)}


def render_image(request: Request, image: Image) -> dict[str, Any]:
    """Nova's detailed image view of a Glance image."""
    metadata = {p.name: p.value for p in image.properties}
    body: dict[str, Any] = {
        "id": image.id, "name": image.name,
        "minRam": int(image.min_ram or 0), "minDisk": int(image.min_disk or 0),
        "metadata": metadata,
        "created": _isotime(image, "created_at"), "updated": _isotime(image, "updated_at"),
        "status": STATUS.get(image.status, "UNKNOWN"),
        "progress": PROGRESS.get(image.status, 0),
        "OS-EXT-IMG-SIZE:size": int(image.size or 0),
        "links": image_links(request, image.id),
    }
    server = metadata.get("instance_uuid")
    if server is not None:
        root = api_root(request)
        body["server"] = {"id": server, "links": [
            {"rel": "self", "href": f"{root}/v2.1/servers/{server}"},
            {"rel": "bookmark", "href": f"{root}/servers/{server}"}]}
    disk_config = metadata.get("auto_disk_config")
    if disk_config is not None:
        auto = disk_config.strip().lower() in TRUE_WORDS
        body["OS-DCF:diskConfig"] = "AUTO" if auto else "MANUAL"
    return body


# -- images ------------------------------------------------------------------------------


def glance_filters(request: Request) -> list[tuple[str, str]]:
    """Nova's list filters as the Image service's query: ``status`` in Glance's case,
    ``changes-since`` as ``updated_at`` from that moment, ``server`` (an id or a link)
    as the snapshot's ``instance_uuid``, ``type`` as ``image_type``, ``property-<name>``
    as a property filter. Other parameters are ignored, as Nova ignores them."""
    out: list[tuple[str, str]] = []
    for name, value in request.query_params.items():
        if name in FILTERS:
            if name == "status":
                value = value.lower()
            elif name == "changes-since":
                value = f"gte:{value}"
            elif name == "server":
                value = value.rsplit("/", 1)[-1]
            out.append((FILTERS[name], value))
        elif name.startswith("property-") and name[len("property-"):] \
                and name[len("property-"):] not in _PAGING:
            out.append((name[len("property-"):], value))
    return out


def _list(request: Request, ctx: ValidatedToken) -> list[Image]:
    """One page of Nova's list: up to ``limit`` (at most 1000) images after ``marker``,
    gathered from as many of the Image service's pages as that takes."""
    limit, marker = limit_and_marker(request)
    filters = glance_filters(request)
    found: list[Image] = []
    while len(found) < limit:
        params = [*filters, ("limit", str(limit - len(found)))]
        if marker:
            params.append(("marker", marker))
        page, marker = _images(request).list(ctx, params)
        found += page
        if marker is None or not page:
            break
    return found


def _listing(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    found = _list(request, ctx)
    render = render_image if detail else render_basic
    body: dict[str, Any] = {"images": [render(request, image) for image in found]}
    links = next_links(request, "images/detail" if detail else "images", len(found),
                       found[-1].id if found else None)
    if links:
        body["images_links"] = links
    return json_response(body)


async def list_images(request: Request) -> Response:
    return _listing(request, detail=False)


async def list_images_detail(request: Request) -> Response:
    return _listing(request, detail=True)


def _get(request: Request, ctx: ValidatedToken) -> Image:
    try:
        return _images(request).get(ctx, _image_id(request))
    except NotFound:
        raise NotFound("Image not found.") from None


async def show_image(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"image": render_image(request, _get(request, ctx))})


async def delete_image(request: Request) -> Response:
    ctx = caller(request)
    try:
        _images(request).delete(ctx, _image_id(request))
    except NotFound:
        raise NotFound("Image not found.") from None
    except Forbidden:
        raise Forbidden(_REFUSALS["delete_image"]) from None
    return no_content()


async def delete_blank_image(request: Request) -> Response:
    """``DELETE /images/`` (an empty id): no such image, rather than the redirect to the
    list and its 405."""
    caller(request)
    raise NotFound("Image not found.")


# -- metadata ----------------------------------------------------------------------------


def _properties(image: Image) -> dict[str, str]:
    return {p.name: p.value for p in image.properties}


def _check_items(field: str, items: dict[str, str]) -> dict[str, str]:
    """Nova's metadata format, and no key that names one of the image's own fields
    (those are not metadata: ``name``, ``min_ram``, ``visibility``, ...)."""
    items = check_metadata(field, items)
    for key in items:
        if key in BASE:
            raise BadRequest(f"Invalid image metadata: '{key}' is a reserved image "
                             "attribute.")
    return items


def _check_quota(request: Request, ctx: ValidatedToken, count: int) -> None:
    """Nova's ``metadata_items`` limit on an image's properties."""
    service = compute(request)
    try:
        with service.db.session() as session:
            service.quotas.check(session, ctx.project_id, {"metadata_items": count})
    except OverQuota:
        raise Forbidden("Image metadata limit exceeded") from None


def _change(request: Request, ctx: ValidatedToken, changes: list[Change]) -> Image:
    if not changes:
        return _get(request, ctx)
    try:
        return _images(request).update(ctx, _image_id(request), changes)
    except NotFound:
        raise NotFound("Image not found.") from None


async def list_metadata(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"metadata": _properties(_get(request, ctx))})


async def show_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    key = request.path_params["key"]
    metadata = _properties(_get(request, ctx))
    if key not in metadata:
        raise NotFound("The resource could not be found.")
    return json_response({"meta": {key: metadata[key]}})


async def _metadata_body(request: Request) -> dict[str, str]:
    body = await read_json(request)
    only_keys("body", body, ("metadata",), required=("metadata",))
    return _check_items("metadata", body["metadata"])


async def create_metadata(request: Request) -> Response:
    """POST: add or change the given items, keep the others."""
    ctx = caller(request)
    items = await _metadata_body(request)
    current = _properties(_get(request, ctx))
    _check_quota(request, ctx, len(current.keys() | items.keys()))
    image = _change(request, ctx, [Change("add", k, v) for k, v in items.items()])
    return json_response({"metadata": _properties(image)})


async def replace_metadata(request: Request) -> Response:
    """PUT: the given items become the image's whole metadata."""
    ctx = caller(request)
    items = await _metadata_body(request)
    current = _properties(_get(request, ctx))
    _check_quota(request, ctx, len(items))
    changes = [Change("remove", k) for k in current if k not in items]
    changes += [Change("add", k, v) for k, v in items.items() if current.get(k) != v]
    _change(request, ctx, changes)
    return json_response({"metadata": items})


async def update_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    key = request.path_params["key"]
    body = await read_json(request)
    only_keys("body", body, ("meta",), required=("meta",))
    meta = _check_items("meta", body["meta"])
    if len(meta) != 1:
        raise InvalidField("meta", f"{meta!r} must have exactly one property")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    current = _properties(_get(request, ctx))
    _check_quota(request, ctx, len(current.keys() | {key}))
    _change(request, ctx, [Change("add", key, meta[key])])
    return json_response({"meta": meta})


async def delete_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    key = request.path_params["key"]
    if key not in _properties(_get(request, ctx)):
        raise NotFound("Invalid metadata key")
    _change(request, ctx, [Change("remove", key)])
    return no_content()


routes = [
    Route("/v2.1/images", proxy("reader", LAST_IMAGES)(list_images), methods=["GET"]),
    Route("/v2.1/images/detail", proxy("reader", LAST_IMAGES)(list_images_detail),
          methods=["GET"]),
    Route("/v2.1/images/", proxy("member", LAST_IMAGES)(delete_blank_image),
          methods=["DELETE"]),
    Route("/v2.1/images/{image_id}", proxy("reader", LAST_IMAGES)(show_image),
          methods=["GET"]),
    Route("/v2.1/images/{image_id}", proxy("member", LAST_IMAGES)(delete_image),
          methods=["DELETE"]),
    Route("/v2.1/images/{image_id}/metadata",
          proxy("reader", LAST_METADATA)(list_metadata), methods=["GET"]),
    Route("/v2.1/images/{image_id}/metadata",
          proxy("member", LAST_METADATA)(create_metadata), methods=["POST"]),
    Route("/v2.1/images/{image_id}/metadata",
          proxy("member", LAST_METADATA)(replace_metadata), methods=["PUT"]),
    Route("/v2.1/images/{image_id}/metadata/{key}",
          proxy("reader", LAST_METADATA)(show_metadata_item), methods=["GET"]),
    Route("/v2.1/images/{image_id}/metadata/{key}",
          proxy("member", LAST_METADATA)(update_metadata_item), methods=["PUT"]),
    Route("/v2.1/images/{image_id}/metadata/{key}",
          proxy("member", LAST_METADATA)(delete_metadata_item), methods=["DELETE"]),
]

"""Server metadata (``/servers/{id}/metadata[/{key}]``) and tags
(``/servers/{id}/tags[/{tag}]``, microversion 2.26 and later)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, loads_json, no_content, read_body, read_json
from onestack.api.compute.common import compute, only_keys, resource_links, server_id
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import member, reader
from onestack.api.compute.validation import check_metadata, check_tag, check_tags
from onestack.common.errors import BadRequest, InvalidField, NotFound


def _key(request: Request) -> str:
    return request.path_params["key"]


# -- metadata ----------------------------------------------------------------------------


async def list_metadata(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"metadata": compute(request).server_metadata.metadata(ctx,
                                                                        server_id(request))})


async def _set(request: Request, replace: bool) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    only_keys("body", body, ("metadata",), required=("metadata",))
    items = check_metadata("metadata", body["metadata"])
    rule = "update_all" if replace else "create"
    result = compute(request).server_metadata.set_metadata(
        ctx, server_id(request), items, replace=replace,
        rule=f"os_compute_api:server-metadata:{rule}")
    return json_response({"metadata": result})


async def create_metadata(request: Request) -> Response:
    return await _set(request, replace=False)


async def replace_metadata(request: Request) -> Response:
    return await _set(request, replace=True)


async def show_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    value = compute(request).server_metadata.metadata_item(ctx, server_id(request), _key(request))
    return json_response({"meta": {_key(request): value}})


async def update_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    only_keys("body", body, ("meta",), required=("meta",))
    meta = check_metadata("meta", body["meta"])
    if len(meta) != 1:
        raise InvalidField("meta", f"{meta!r} must have exactly one property")
    if _key(request) not in meta:
        raise BadRequest("Request body and URI mismatch")
    compute(request).server_metadata.set_metadata(ctx, server_id(request), meta, replace=False,
                                          rule="os_compute_api:server-metadata:update")
    return json_response({"meta": meta})


async def delete_metadata_item(request: Request) -> Response:
    ctx = caller(request)
    compute(request).server_metadata.delete_metadata_item(ctx, server_id(request), _key(request))
    return no_content()


# -- tags --------------------------------------------------------------------------------


def _tags_version(request: Request) -> None:
    if version(request) < (2, 26):
        raise NotFound("The resource could not be found.")


async def list_tags(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    return json_response({"tags": compute(request).server_metadata.tags(ctx, server_id(request))})


async def replace_tags(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    body = await read_json(request)
    only_keys("body", body, ("tags",), required=("tags",))
    tags = check_tags("tags", body["tags"])
    result = compute(request).server_metadata.set_tags(ctx, server_id(request), tags)
    return json_response({"tags": result})


async def delete_tags(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    compute(request).server_metadata.delete_tags(ctx, server_id(request))
    return no_content()


async def check_tag_exists(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    compute(request).server_metadata.has_tag(ctx, server_id(request), request.path_params["tag"])
    return no_content()


async def add_tag(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    raw = await read_body(request)
    if raw.strip():
        body = loads_json(raw)
        if body is not None:
            raise InvalidField("body", f"{body!r} is not of type 'null'")
    tag = request.path_params["tag"]
    sid = server_id(request)
    problem = None
    try:
        check_tag("tag", tag)
    except InvalidField:
        problem = (f"Tag '{tag}' is invalid. It must be a non empty string without "
                   "characters '/' and ','.")
    created = compute(request).server_metadata.add_tag(ctx, sid, tag, problem=problem)
    if not created:
        return no_content()
    location = f"{resource_links(request, 'servers', sid)[0]['href']}/tags/{tag}"
    return Response(status_code=201, headers={"Location": location})


async def delete_tag(request: Request) -> Response:
    ctx = caller(request)
    _tags_version(request)
    compute(request).server_metadata.delete_tag(ctx, server_id(request), request.path_params["tag"])
    return no_content()


routes = [
    Route("/v2.1/servers/{server_id}/metadata", reader(list_metadata), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/metadata", member(create_metadata), methods=["POST"]),
    Route("/v2.1/servers/{server_id}/metadata", member(replace_metadata), methods=["PUT"]),
    Route("/v2.1/servers/{server_id}/metadata/{key}", reader(show_metadata_item), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/metadata/{key}",
          member(update_metadata_item), methods=["PUT"]),
    Route("/v2.1/servers/{server_id}/metadata/{key}", member(delete_metadata_item),
          methods=["DELETE"]),
    Route("/v2.1/servers/{server_id}/tags", reader(list_tags), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/tags", member(replace_tags), methods=["PUT"]),
    Route("/v2.1/servers/{server_id}/tags", member(delete_tags), methods=["DELETE"]),
    Route("/v2.1/servers/{server_id}/tags/{tag}", reader(check_tag_exists), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/tags/{tag}", member(add_tag), methods=["PUT"]),
    Route("/v2.1/servers/{server_id}/tags/{tag}", member(delete_tag), methods=["DELETE"]),
]

"""/v2.0/{resources}/{id}/tags for every taggable resource (``standard-attr-tag``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content, read_json
from onestack.api.network.common import networking
from onestack.api.network.policy import member, reader
from onestack.common.errors import InvalidField


def _target(request: Request) -> tuple[str, str]:
    return request.path_params["collection"], request.path_params["resource_id"]


async def list_tags(request: Request) -> Response:
    ctx = caller(request)
    tags = networking(request).tags.list(ctx, *_target(request))
    return json_response({"tags": tags})


async def replace_tags(request: Request) -> Response:
    ctx = caller(request)
    tags = (await read_json(request)).get("tags")
    if not isinstance(tags, list):
        raise InvalidField("tags", "is a required property and must be an array")
    tags = networking(request).tags.replace(ctx, *_target(request), tags)
    return json_response({"tags": tags})


async def delete_tags(request: Request) -> Response:
    ctx = caller(request)
    networking(request).tags.replace(ctx, *_target(request), [])
    return no_content()


async def check_tag(request: Request) -> Response:
    ctx = caller(request)
    networking(request).tags.check(ctx, *_target(request), request.path_params["tag"])
    return no_content()


async def add_tag(request: Request) -> Response:
    ctx = caller(request)
    networking(request).tags.add(ctx, *_target(request), request.path_params["tag"])
    return Response(status_code=201)


async def delete_tag(request: Request) -> Response:
    ctx = caller(request)
    networking(request).tags.remove(ctx, *_target(request), request.path_params["tag"])
    return no_content()


_BASE = "/v2.0/{collection}/{resource_id}/tags"

routes = [
    Route(_BASE, reader(list_tags, "get_tags"), methods=["GET"]),
    Route(_BASE, member(replace_tags, "update_tags"), methods=["PUT"]),
    Route(_BASE, member(delete_tags, "delete_tags"), methods=["DELETE"]),
    Route(_BASE + "/{tag}", reader(check_tag, "get_tags"), methods=["GET"]),
    Route(_BASE + "/{tag}", member(add_tag, "create_tags"), methods=["PUT"]),
    Route(_BASE + "/{tag}", member(delete_tag, "delete_tags"), methods=["DELETE"]),
]

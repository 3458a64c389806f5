"""/v2/images/{id}/members: sharing images between projects."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content, read_json
from onestack.api.image.common import images, render_member
from onestack.api.image.policy import member, reader
from onestack.common.errors import BadRequest


async def add_member(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    if "member" not in body:
        raise BadRequest("Member to be added not specified")
    member = images(request).members.add(ctx, request.path_params["image_id"],
                                         body["member"])
    return json_response(render_member(member))


async def list_members(request: Request) -> Response:
    ctx = caller(request)
    members = images(request).members.list(ctx, request.path_params["image_id"])
    return json_response({"members": [render_member(m) for m in members],
                          "schema": "/v2/schemas/members"})


async def show_member(request: Request) -> Response:
    ctx = caller(request)
    member = images(request).members.get(ctx, request.path_params["image_id"],
                                         request.path_params["member_id"])
    return json_response(render_member(member))


async def update_member(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    if "status" not in body:
        raise BadRequest("Status not specified")
    member = images(request).members.update(ctx, request.path_params["image_id"],
                                            request.path_params["member_id"], body["status"])
    return json_response(render_member(member))


async def remove_member(request: Request) -> Response:
    ctx = caller(request)
    images(request).members.remove(ctx, request.path_params["image_id"],
                                   request.path_params["member_id"])
    return no_content()


routes = [
    Route("/v2/images/{image_id}/members", member(add_member), methods=["POST"]),
    Route("/v2/images/{image_id}/members", reader(list_members), methods=["GET"]),
    Route("/v2/images/{image_id}/members/{member_id}", reader(show_member), methods=["GET"]),
    Route("/v2/images/{image_id}/members/{member_id}", member(update_member), methods=["PUT"]),
    Route("/v2/images/{image_id}/members/{member_id}", member(remove_member), methods=["DELETE"]),
]

"""/v2/tasks: Glance's (deprecated, administrator-only) task API.

Its only user-visible task type is ``import`` from a URL (``input.import_from``). This
cloud does not fetch images from URLs (``web-download`` is not among its import methods,
see ``/v2/info/import``), so every task is refused with a 400 that says so, as Glance
refuses an import from a location it does not allow; no task is ever created, so the
list is empty and any task id is a 404. Images are imported with ``glance-direct``
(``PUT /v2/images/{id}/stage`` then ``POST /v2/images/{id}/import``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.image.common import images
from onestack.api.image.policy import admin, member, reader
from onestack.common.errors import BadRequest, InvalidField, NotFound

TASK_TYPES = ("import",)


async def create_task(request: Request) -> Response:
    body = await read_json(request)
    if body.get("type") not in TASK_TYPES:
        raise InvalidField("type", f"must be one of {', '.join(TASK_TYPES)}")
    task_input = body.get("input")
    if not isinstance(task_input, dict):
        raise InvalidField("input", "is a required object")
    source = task_input.get("import_from")
    if not isinstance(source, str) or not source:
        raise InvalidField("input/import_from", "is a required string (a URL)")
    raise BadRequest("Importing an image from a URL is not enabled on this cloud "
                     "(web-download is not an enabled import method); upload the data "
                     "with the glance-direct import instead.")


async def list_tasks(request: Request) -> Response:
    caller(request)
    return json_response({"tasks": [], "first": "/v2/tasks", "schema": "/v2/schemas/tasks"})


async def show_task(request: Request) -> Response:
    caller(request)
    raise NotFound(f"Task with the given id {request.path_params['task_id']} was not "
                   "found.")


_TASK = {
    "name": "task", "properties": {
        "id": {"type": "string", "description": "An identifier for the task"},
        "type": {"type": "string", "enum": list(TASK_TYPES)},
        "status": {"type": "string", "enum": ["pending", "processing", "success",
                                              "failure"]},
        "input": {"type": ["null", "object"]}, "result": {"type": ["null", "object"]},
        "owner": {"type": "string"}, "message": {"type": "string"},
        "expires_at": {"type": ["null", "string"]}, "created_at": {"type": "string"},
        "updated_at": {"type": "string"}, "self": {"type": "string"},
        "schema": {"type": "string"}}}


async def task_schema(request: Request) -> Response:
    caller(request)
    return json_response(_TASK)


async def tasks_schema(request: Request) -> Response:
    caller(request)
    return json_response({"name": "tasks", "properties": {
        "tasks": {"type": "array", "items": _TASK}, "first": {"type": "string"},
        "next": {"type": "string"}, "schema": {"type": "string"}}})


async def image_tasks(request: Request) -> Response:
    """``GET /v2/images/{id}/tasks`` (2.12): the tasks that worked on an image. Images
    arrive here through uploads, ``glance-direct`` imports and compute snapshots, none
    of which keeps a task record, so a visible image has none (an invisible one is a
    404)."""
    images(request).get(caller(request), request.path_params["image_id"])
    return json_response({"tasks": []})


async def empty_image_id(request: Request) -> Response:
    """``/v2/images/`` (an empty image id): Glance's 404, not the list."""
    caller(request)
    raise NotFound("No image found with ID ")


routes = [
    Route("/v2/tasks", admin(create_task), methods=["POST"]),
    Route("/v2/tasks", admin(list_tasks), methods=["GET"]),
    Route("/v2/tasks/{task_id}", admin(show_task), methods=["GET"]),
    Route("/v2/schemas/task", task_schema, methods=["GET"]),
    Route("/v2/schemas/tasks", tasks_schema, methods=["GET"]),
    Route("/v2/images/{image_id}/tasks", reader(image_tasks), methods=["GET"]),
    Route("/v2/images/", reader(empty_image_id), methods=["GET"]),
    Route("/v2/images/", member(empty_image_id), methods=["PATCH", "DELETE"]),
]

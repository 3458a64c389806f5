"""/v2/info: import methods, stores and the caller's quota usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.image.common import images
from onestack.api.image.policy import admin, reader
from onestack.common.errors import Forbidden
from onestack.services.image.data import IMPORT_METHODS, STORE_ID
from onestack.services.image.quotas import usage_report
from onestack.services.image.store import BUFFER_SIZE

STORE_DESCRIPTION = "Image files on the server's local file system"


async def import_info(request: Request) -> Response:
    caller(request)
    return json_response({"import-methods": {
        "description": "Import methods available.", "type": "array",
        "value": list(IMPORT_METHODS)}})


async def stores(request: Request) -> Response:
    caller(request)
    return json_response({"stores": [{"id": STORE_ID, "description": STORE_DESCRIPTION,
                                      "default": "true"}]})


async def stores_detail(request: Request) -> Response:
    ctx = caller(request)
    if not ctx.is_admin:
        raise Forbidden("You are not authorized to perform the requested action: "
                        "stores_info_detail.")
    service = images(request)
    return json_response({"stores": [{
        "id": STORE_ID, "type": "file", "description": STORE_DESCRIPTION, "default": "true",
        "properties": {"data_dir": str(service.store.root), "chunk_size": BUFFER_SIZE,
                       "thin_provisioning": False}}]})


async def usage(request: Request) -> Response:
    ctx = caller(request)
    return json_response({"usage": usage_report(images(request).quotas, ctx.project_id)})


routes = [
    Route("/v2/info/import", import_info, methods=["GET"]),
    Route("/v2/info/stores", stores, methods=["GET"]),
    Route("/v2/info/stores/detail", admin(stores_detail), methods=["GET"]),
    Route("/v2/info/usage", reader(usage), methods=["GET"]),
]

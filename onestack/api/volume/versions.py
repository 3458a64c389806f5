"""Block Storage version discovery: ``GET /volume/`` (300, every version) and
``GET /volume/v3`` (the one version with its microversion range). No token needed."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response
from onestack.api.volume.common import api_root
from onestack.api.volume.microversion import MAX_VERSION, MIN_VERSION, as_text

UPDATED = "2022-08-31T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.volume+json;version=3"


def _v3(request: Request) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": as_text(MAX_VERSION),
            "min_version": as_text(MIN_VERSION), "updated": UPDATED,
            "links": [{"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{api_root(request)}/v3/"}],
            "media-types": [{"base": "application/json", "type": MEDIA_TYPE}]}


async def list_versions(request: Request) -> Response:
    return json_response({"versions": [_v3(request)]}, status=300)


async def show_version(request: Request) -> Response:
    return json_response({"versions": [_v3(request)]})


routes = [
    Route("/", list_versions, methods=["GET"]),
    Route("/v3", show_version, methods=["GET"]),
    Route("/v3/", show_version, methods=["GET"]),
]

"""Compute version discovery: ``GET /compute/`` (every version) and
``GET /compute/v2.1/`` (the one version, with its microversion range). No token needed,
as in Nova."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response
from onestack.api.compute.common import api_root
from onestack.api.compute.microversion import MAX_VERSION, MIN_VERSION, as_text

UPDATED = "2013-07-23T11:33:21Z"
MEDIA_TYPE = "application/vnd.openstack.compute+json;version=2.1"
DOCS = "http://docs.openstack.org/"


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.1", "status": "CURRENT", "version": as_text(MAX_VERSION),
        "min_version": as_text(MIN_VERSION), "updated": UPDATED,
    }


async def list_versions(request: Request) -> Response:
    body = _version(request)
    body["links"] = [{"rel": "self", "href": f"{api_root(request)}/v2.1/"}]
    return json_response({"versions": [body]})


async def show_version(request: Request) -> Response:
    body = _version(request)
    body["links"] = [{"rel": "self", "href": f"{api_root(request)}/v2.1/"},
                     {"rel": "describedby", "type": "text/html", "href": DOCS}]
    body["media-types"] = [{"base": "application/json", "type": MEDIA_TYPE}]
    return json_response({"version": body})


routes = [
    Route("/", list_versions, methods=["GET"]),
    Route("/v2.1", show_version, methods=["GET"]),
    Route("/v2.1/", show_version, methods=["GET"]),
]

"""Compute version discovery: ``GET /compute/`` (every version) and
``GET /compute/v2.1/`` (the one version, with its microversion range). No token needed,
as in Nova.

Nova lists the legacy v2.0 first (``SUPPORTED``, no microversions), and clients such as
Tempest expect it there and follow its self link. OneStack lists it the same way and
answers its version document at ``/compute/v2/``; the v2.0 API itself (Nova's v2.1 code
in a compatibility mode) is not served: use v2.1.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import json_response
from onestack.api.compute.common import api_root
from onestack.api.compute.microversion import MAX_VERSION, MIN_VERSION, as_text

UPDATED = "2013-07-23T11:33:21Z"
V20_UPDATED = "2011-01-21T11:33:21Z"
V20_MEDIA_TYPE = "application/vnd.openstack.compute+json;version=2"
MEDIA_TYPE = "application/vnd.openstack.compute+json;version=2.1"
DOCS = "http://docs.openstack.org/"


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.1", "status": "CURRENT", "version": as_text(MAX_VERSION),
        "min_version": as_text(MIN_VERSION), "updated": UPDATED,
    }


def _v20() -> dict[str, Any]:
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": V20_UPDATED}


async def list_versions(request: Request) -> Response:
    legacy = _v20()
    legacy["links"] = [{"rel": "self", "href": f"{api_root(request)}/v2/"}]
    body = _version(request)
    body["links"] = [{"rel": "self", "href": f"{api_root(request)}/v2.1/"}]
    return json_response({"versions": [legacy, body]})


async def show_v20(request: Request) -> Response:
    body = _v20()
    body["links"] = [{"rel": "self", "href": f"{api_root(request)}/v2/"},
                     {"rel": "describedby", "type": "text/html", "href": DOCS}]
    body["media-types"] = [{"base": "application/json", "type": V20_MEDIA_TYPE}]
    return json_response({"version": body})


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
    Route("/v2", show_v20, methods=["GET"]),
    Route("/v2/", show_v20, methods=["GET"]),
]

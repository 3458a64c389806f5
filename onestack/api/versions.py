"""Version discovery for Identity at ``/`` and ``/v3`` (no token needed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, json_response

IDENTITY_VERSION = "v3.14"


def identity_version(base: str) -> dict:
    return {
        "id": IDENTITY_VERSION,
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.identity-v3+json"}],
    }


async def root(request: Request) -> Response:
    return json_response({"versions": {"values": [identity_version(base_url(request))]}},
                         status=300)


async def v3(request: Request) -> Response:
    return json_response({"version": identity_version(base_url(request))})


routes = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/v3", v3, methods=["GET", "HEAD"]),
    Route("/v3/", v3, methods=["GET", "HEAD"]),
]

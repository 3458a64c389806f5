"""Image API version discovery at ``/image`` (300, as Glance) and ``/image/versions``
(200). No token needed: the clients read it before they authenticate requests."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, json_response

#: Minor versions whose features the service has (2.9: ``/v2/info/usage``).
CURRENT = 9


def version_list(request: Request) -> dict[str, Any]:
    href = f"{base_url(request)}/image/v2/"
    versions = [{"id": f"v2.{minor}",
                 "status": "CURRENT" if minor == CURRENT else "SUPPORTED",
                 "links": [{"rel": "self", "href": href}]}
                for minor in range(CURRENT, -1, -1)]
    return {"versions": versions}


async def versions_choice(request: Request) -> Response:
    return json_response(version_list(request), status=300)


async def versions(request: Request) -> Response:
    return json_response(version_list(request))


root_routes = [Route("/image", versions_choice, methods=["GET", "HEAD"])]
routes = [
    Route("/", versions_choice, methods=["GET", "HEAD"]),
    Route("/versions", versions, methods=["GET", "HEAD"]),
    Route("/v2", versions, methods=["GET", "HEAD"]),
    Route("/v2/", versions, methods=["GET", "HEAD"]),
]

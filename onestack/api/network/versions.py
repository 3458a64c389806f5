"""Networking discovery: ``/network/`` (versions), ``/v2.0/`` (resources) and
``/v2.0/extensions``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, caller, json_response
from onestack.api.network.common import list_query
from onestack.api.network.extensions import EXTENSIONS, extension_body
from onestack.api.network.policy import reader
from onestack.common.errors import NotFound
from onestack.services.network.base import KINDS


def _root(request: Request) -> str:
    return f"{base_url(request)}/network"


async def list_versions(request: Request) -> Response:
    return json_response({"versions": [{
        "id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{_root(request)}/v2.0/"}]}]})


async def list_resources(request: Request) -> Response:
    caller(request)
    resources = [{"name": kind.member, "collection": kind.collection,
                  "links": [{"rel": "self",
                             "href": f"{_root(request)}/v2.0/{kind.collection}"}]}
                 for kind in KINDS.values()]
    return json_response({"resources": resources})


async def list_extensions(request: Request) -> Response:
    caller(request)
    return json_response({"extensions": [extension_body(*e) for e in EXTENSIONS]})


async def get_extension(request: Request) -> Response:
    caller(request)
    alias = request.path_params["alias"]
    for entry in EXTENSIONS:
        if entry[0] == alias:
            return json_response({"extension": extension_body(*entry)})
    raise NotFound(f"Extension with alias {alias} does not exist")


async def list_service_providers(request: Request) -> Response:
    """``GET /v2.0/service-providers`` (the ``service-type`` extension): the drivers
    configured per advanced service type. OneStack has one built-in implementation of
    each service (routers, floating IPs) and no selectable providers, which is what
    Neutron answers with no ``service_provider`` configured: an empty list."""
    caller(request)
    list_query(request)  # the paging and sorting parameters are checked as on every list
    return json_response({"service_providers": []})


routes = [
    Route("/", list_versions, methods=["GET"]),
    Route("/v2.0", list_resources, methods=["GET"]),
    Route("/v2.0/", list_resources, methods=["GET"]),
    Route("/v2.0/extensions", list_extensions, methods=["GET"]),
    Route("/v2.0/extensions/{alias}", get_extension, methods=["GET"]),
    Route("/v2.0/service-providers",
          reader(list_service_providers, "get_service_provider"), methods=["GET"]),
]

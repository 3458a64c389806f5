"""/v3/regions, /v3/services and /v3/endpoints"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import Text, filters, identity, list_links, self_link
from onestack.common.errors import InvalidField
from onestack.db.models import Endpoint, Region, Service

Name = Annotated[Text, Field(min_length=1, max_length=255)]
RegionId = Annotated[Text, Field(min_length=1, max_length=255, pattern=r"^[^/]+$")]
Url = Annotated[Text, Field(max_length=225, pattern=r"^[a-zA-Z0-9+.-]+:.+")]
Interface = Literal["public", "internal", "admin"]


class RegionBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: RegionId | None = None
    description: Text | None = None
    parent_region_id: Text | None = None


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Name
    name: Name | None = None
    description: Text | None = None
    enabled: StrictBool = True


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Text | None = None
    type: Name | None = None
    name: Name | None = None
    description: Text | None = None
    enabled: StrictBool | None = None


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    service_id: Text
    interface: Interface
    url: Url
    region_id: Text | None = None
    region: Text | None = None
    enabled: StrictBool = True


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Text | None = None
    service_id: Text | None = None
    interface: Interface | None = None
    url: Url | None = None
    region_id: Text | None = None
    region: Text | None = None
    enabled: StrictBool | None = None


def _extra(body: BaseModel) -> dict[str, Any]:
    """Attributes beyond the schema, kept as Keystone keeps them (never ``links``)."""
    return {k: v for k, v in (body.model_extra or {}).items() if k != "links"}


def _changes(body: BaseModel, root: str, path_id: str, not_null: tuple[str, ...] = ()
             ) -> dict[str, Any]:
    """The attributes a PATCH sets: at least one, no id change, no null where none fits."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k != "links"}
    if not changes:
        raise InvalidField(root, "must set at least one attribute")
    if "id" in changes:
        if changes.pop("id") != path_id:
            raise InvalidField(f"{root}/id", "cannot be changed")
    for key in not_null:
        if key in changes and changes[key] is None:
            raise InvalidField(f"{root}/{key}", "None is not a valid value")
    return changes


# -- rendering ----------------------------------------------------------------------------

def render_region(request: Request, r: Region) -> dict[str, Any]:
    return {**r.extra, "id": r.id, "description": r.description,
            "parent_region_id": r.parent_region_id, "links": self_link(request, f"regions/{r.id}")}


def render_service(request: Request, s: Service) -> dict[str, Any]:
    return {**s.extra, "id": s.id, "type": s.type, "name": s.name,
            "description": s.description, "enabled": s.enabled,
            "links": self_link(request, f"services/{s.id}")}


def render_endpoint(request: Request, e: Endpoint) -> dict[str, Any]:
    return {**e.extra, "id": e.id, "interface": e.interface, "region_id": e.region_id,
            "region": e.region_id, "service_id": e.service_id, "url": e.url,
            "enabled": e.enabled, "links": self_link(request, f"endpoints/{e.id}")}


# -- regions ------------------------------------------------------------------------------

async def _create_region(request: Request, path_id: str | None) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_create_region(ctx)  # before the body
    body = parse(RegionBody, body_part(await read_json(request), "region"), "region")
    region_id = body.id
    if path_id is not None:
        if len(path_id) > 255:
            raise InvalidField("region_id", "is longer than 255 characters")
        if region_id is not None and region_id != path_id:
            raise InvalidField("region/id", f"conflicting region IDs specified: "
                                            f"{path_id!r} != {region_id!r}")
        region_id = path_id
    region = identity(request).catalog.create_region(
        ctx, id=region_id, description=body.description or "",
        parent_region_id=body.parent_region_id, extra=_extra(body))
    return json_response({"region": render_region(request, region)}, status=201)


async def create_region(request: Request) -> Response:
    return await _create_region(request, None)


async def create_region_with_id(request: Request) -> Response:
    return await _create_region(request, request.path_params["region_id"])


async def list_regions(request: Request) -> Response:
    ctx = caller(request)
    regions = identity(request).catalog.list_regions(ctx, **filters(request, "parent_region_id"))
    return json_response({"regions": [render_region(request, r) for r in regions],
                          "links": list_links(request)})


async def get_region(request: Request) -> Response:
    ctx = caller(request)
    region = identity(request).catalog.get_region(ctx, request.path_params["region_id"])
    return json_response({"region": render_region(request, region)})


async def update_region(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_update_region(ctx)  # before the body
    region_id = request.path_params["region_id"]
    body = parse(RegionBody, body_part(await read_json(request), "region"), "region")
    region = identity(request).catalog.update_region(
        ctx, region_id, _changes(body, "region", region_id))
    return json_response({"region": render_region(request, region)})


async def delete_region(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.delete_region(ctx, request.path_params["region_id"])
    return no_content()


# -- services -----------------------------------------------------------------------------

async def create_service(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_create_service(ctx)  # before the body
    body = parse(ServiceCreate, body_part(await read_json(request), "service"), "service")
    service = identity(request).catalog.create_service(
        ctx, type=body.type, name=body.name or "", description=body.description or "",
        enabled=body.enabled, extra=_extra(body))
    return json_response({"service": render_service(request, service)}, status=201)


async def list_services(request: Request) -> Response:
    ctx = caller(request)
    services = identity(request).catalog.list_services(ctx, **filters(request, "type", "name"))
    return json_response({"services": [render_service(request, s) for s in services],
                          "links": list_links(request)})


async def get_service(request: Request) -> Response:
    ctx = caller(request)
    service = identity(request).catalog.get_service(ctx, request.path_params["service_id"])
    return json_response({"service": render_service(request, service)})


async def update_service(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_update_service(ctx)  # before the body
    service_id = request.path_params["service_id"]
    body = parse(ServiceUpdate, body_part(await read_json(request), "service"), "service")
    changes = _changes(body, "service", service_id, not_null=("type", "enabled"))
    for key in ("name", "description"):
        if key in changes and changes[key] is None:
            changes[key] = ""
    service = identity(request).catalog.update_service(ctx, service_id, changes)
    return json_response({"service": render_service(request, service)})


async def delete_service(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.delete_service(ctx, request.path_params["service_id"])
    return no_content()


# -- endpoints ----------------------------------------------------------------------------

async def create_endpoint(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_create_endpoint(ctx)  # before the body
    body = parse(EndpointCreate, body_part(await read_json(request), "endpoint"), "endpoint")
    endpoint = identity(request).catalog.create_endpoint(
        ctx, service_id=body.service_id, interface=body.interface, url=body.url,
        region_id=body.region_id, legacy_region=body.region, enabled=body.enabled,
        extra=_extra(body))
    return json_response({"endpoint": render_endpoint(request, endpoint)}, status=201)


async def list_endpoints(request: Request) -> Response:
    ctx = caller(request)
    endpoints = identity(request).catalog.list_endpoints(
        ctx, **filters(request, "service_id", "interface", "region_id"))
    return json_response({"endpoints": [render_endpoint(request, e) for e in endpoints],
                          "links": list_links(request)})


async def get_endpoint(request: Request) -> Response:
    ctx = caller(request)
    endpoint = identity(request).catalog.get_endpoint(ctx, request.path_params["endpoint_id"])
    return json_response({"endpoint": render_endpoint(request, endpoint)})


async def update_endpoint(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.authorize_update_endpoint(ctx)  # before the body
    endpoint_id = request.path_params["endpoint_id"]
    body = parse(EndpointUpdate, body_part(await read_json(request), "endpoint"), "endpoint")
    changes = _changes(body, "endpoint", endpoint_id,
                       not_null=("service_id", "interface", "url", "enabled"))
    endpoint = identity(request).catalog.update_endpoint(ctx, endpoint_id, changes)
    return json_response({"endpoint": render_endpoint(request, endpoint)})


async def delete_endpoint(request: Request) -> Response:
    ctx = caller(request)
    identity(request).catalog.delete_endpoint(ctx, request.path_params["endpoint_id"])
    return no_content()


routes = [
    Route("/v3/regions", create_region, methods=["POST"]),
    Route("/v3/regions", list_regions, methods=["GET"]),
    Route("/v3/regions/{region_id}", get_region, methods=["GET"]),
    Route("/v3/regions/{region_id}", create_region_with_id, methods=["PUT"]),
    Route("/v3/regions/{region_id}", update_region, methods=["PATCH"]),
    Route("/v3/regions/{region_id}", delete_region, methods=["DELETE"]),
    Route("/v3/services", create_service, methods=["POST"]),
    Route("/v3/services", list_services, methods=["GET"]),
    Route("/v3/services/{service_id}", get_service, methods=["GET"]),
    Route("/v3/services/{service_id}", update_service, methods=["PATCH"]),
    Route("/v3/services/{service_id}", delete_service, methods=["DELETE"]),
    Route("/v3/endpoints", create_endpoint, methods=["POST"]),
    Route("/v3/endpoints", list_endpoints, methods=["GET"]),
    Route("/v3/endpoints/{endpoint_id}", get_endpoint, methods=["GET"]),
    Route("/v3/endpoints/{endpoint_id}", update_endpoint, methods=["PATCH"]),
    Route("/v3/endpoints/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
]

"""/v2.1/os-availability-zone (Nova's availability zones)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import compute, nova_time
from onestack.api.compute.policy import admin, reader


async def list_zones(request: Request) -> Response:
    ctx = caller(request)
    zones = compute(request).hosts.availability_zones(ctx)
    return json_response({"availabilityZoneInfo": zones})


async def list_zones_detail(request: Request) -> Response:
    ctx = caller(request)
    zones = compute(request).hosts.availability_zones(ctx, detail=True)
    for zone in zones:
        for services in (zone["hosts"] or {}).values():
            for state in services.values():
                state["updated_at"] = nova_time(state["updated_at"])
    return json_response({"availabilityZoneInfo": zones})


routes = [
    Route("/v2.1/os-availability-zone", reader(list_zones), methods=["GET"]),
    Route("/v2.1/os-availability-zone/detail", admin(list_zones_detail), methods=["GET"]),
]

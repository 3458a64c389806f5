"""/v2.1/os-simple-tenant-usage (Nova's simple tenant usage)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import (
    compute,
    limit_and_marker,
    next_links,
    nova_time,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, reader
from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import utcnow
from onestack.services.compute.usage import ServerUsage, TenantUsage

_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def parse_time(raw: str | None) -> dt.datetime:
    """Nova's formats (``2012-10-08T21:10:44[.587336]``, ``2012-10-08 21:10:44.587336``),
    also any ISO 8601 time with a zone; naive UTC. Absent: now."""
    if not raw:
        return utcnow()
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt)
        except ValueError:
            pass
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest("Invalid datetime string: Datetime is in invalid format") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def render_server(usage: ServerUsage) -> dict[str, Any]:
    return {"instance_id": usage.instance_id, "name": usage.name,
            "tenant_id": usage.tenant_id, "flavor": usage.flavor, "hours": usage.hours,
            "memory_mb": usage.memory_mb, "local_gb": usage.local_gb, "vcpus": usage.vcpus,
            "started_at": nova_time(usage.started_at), "ended_at": nova_time(usage.ended_at),
            "state": usage.state, "uptime": usage.uptime}


def render_tenant(usage: TenantUsage, detailed: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": usage.tenant_id, "total_hours": usage.total_hours,
        "total_local_gb_usage": usage.total_local_gb_usage,
        "total_vcpus_usage": usage.total_vcpus_usage,
        "total_memory_mb_usage": usage.total_memory_mb_usage,
        "start": nova_time(usage.start), "stop": nova_time(usage.stop),
    }
    if detailed:
        body["server_usages"] = [render_server(s) for s in usage.server_usages]
    return body


def _window(request: Request) -> tuple[dt.datetime, dt.datetime]:
    start = parse_time(query_param(request, "start"))
    stop = parse_time(query_param(request, "end"))
    return start, stop


def _page(request: Request) -> tuple[int | None, str | None]:
    if version(request) >= (2, 40):
        return limit_and_marker(request)
    return None, None


def _query(request: Request, detailed: bool = True) -> list[str]:
    allowed = ["start", "end", "detailed"] if detailed else ["start", "end"]
    if version(request) >= (2, 40):
        allowed += ["limit", "marker"]
    return allowed


async def list_usage(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, _query(request))
    start, stop = _window(request)
    detailed = query_param(request, "detailed") == "1"
    limit, marker = _page(request)
    tenants, servers = compute(request).usage.report(ctx, start, stop, limit=limit,
                                                     marker=marker)
    out: dict[str, Any] = {"tenant_usages": [render_tenant(t, detailed) for t in tenants]}
    if version(request) >= (2, 40):
        links = next_links(request, "os-simple-tenant-usage", len(servers),
                           servers[-1].instance_id if servers else None)
        if links:
            out["tenant_usages_links"] = links
    return json_response(out)


async def show_usage(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, _query(request, detailed=False))
    tenant_id = request.path_params["tenant_id"]
    start, stop = _window(request)
    limit, marker = _page(request)
    tenants, servers = compute(request).usage.report(ctx, start, stop, tenant_id=tenant_id,
                                                     limit=limit, marker=marker)
    out: dict[str, Any] = {"tenant_usage": render_tenant(tenants[0], True) if tenants else {}}
    if version(request) >= (2, 40):
        links = next_links(request, f"os-simple-tenant-usage/{tenant_id}", len(servers),
                           servers[-1].instance_id if servers else None)
        if links:
            out["tenant_usage_links"] = links
    return json_response(out)


async def show_empty_tenant(request: Request) -> Response:
    """``os-simple-tenant-usage/``: an empty tenant id names no tenant (without this
    route the router would redirect to the list)."""
    raise NotFound("The resource could not be found: an empty tenant id.")


routes = [
    Route("/v2.1/os-simple-tenant-usage", admin(list_usage), methods=["GET"]),
    Route("/v2.1/os-simple-tenant-usage/{tenant_id}", reader(show_usage), methods=["GET"]),
    Route("/v2.1/os-simple-tenant-usage/", reader(show_empty_tenant), methods=["GET"]),
]

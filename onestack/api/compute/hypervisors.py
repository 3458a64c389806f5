"""/v2.1/os-hypervisors (Nova's hypervisors).

2.33 pages lists (limit/marker); 2.53 makes ids uuids and replaces the ``search`` and
``servers`` routes by ``hypervisor_hostname_pattern`` and ``with_servers``; 2.88 drops
the usage figures (and the statistics and uptime routes) and adds ``uptime``.

Also the deprecated /v2.1/os-hosts (``openstack host list|show``, which ask at 2.1):
list and show, until 2.42 (404 from 2.43, as in Nova); its update and power actions
are a 501.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    NotImplementedFault,
    compute,
    limit_and_marker,
    next_links,
    query_bool,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin
from onestack.common.errors import BadRequest, NotFound
from onestack.services.compute.hosts import HypervisorView

if TYPE_CHECKING:
    from onestack.services.compute.hosts import Hosts


def _hosts(request: Request) -> Hosts:
    return compute(request).hosts


def render_hypervisor(request: Request, view: HypervisorView, detail: bool,
                      with_servers: bool = False, servers: bool = False) -> dict[str, Any]:
    v = version(request)
    node, service = view.node, view.service
    uuids = v >= (2, 53)
    body: dict[str, Any] = {
        "id": node.uuid if uuids else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if view.up else "down",
        "status": "disabled" if service.disabled else "enabled",
    }
    if detail:
        body.update({
            "hypervisor_type": node.hypervisor_type,
            "hypervisor_version": node.hypervisor_version, "host_ip": node.host_ip,
            "service": {"id": service.uuid if uuids else service.id, "host": node.host,
                        "disabled_reason": service.disabled_reason},
        })
        if v < (2, 88):
            body.update({
                "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
                "vcpus_used": view.vcpus_used, "memory_mb_used": view.memory_mb_used,
                "local_gb_used": view.local_gb_used, "free_ram_mb": view.free_ram_mb,
                "free_disk_gb": view.free_disk_gb,
                "current_workload": view.current_workload, "running_vms": view.running_vms,
                "disk_available_least": view.free_disk_gb,
                "cpu_info": dict(node.cpu_info or {}) if v >= (2, 28)
                else json.dumps(node.cpu_info or {}),
            })
        else:
            body["uptime"] = _hosts(request).host_uptime(node.host)
    if view.servers and (servers or with_servers):
        body["servers"] = [{"name": name, "uuid": ident} for name, ident in view.servers]
    elif with_servers and v >= (2, 75):
        body["servers"] = []
    return body


def _list(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    v = version(request)
    allowed = ["limit", "marker"] if v >= (2, 33) else []
    if v >= (2, 53):
        allowed += ["hypervisor_hostname_pattern", "with_servers"]
    refuse_unknown_query(request, allowed, since=(2, 53))
    limit: int | None = None
    marker = None
    if v >= (2, 33):
        limit, marker = limit_and_marker(request)
    pattern = None
    with_servers = False
    if v >= (2, 53):
        pattern = query_param(request, "hypervisor_hostname_pattern")
        with_servers = query_bool(request, "with_servers")
        if pattern is not None and (query_param(request, "limit") is not None or marker):
            raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern "
                             "query parameter is not supported.")
    views = _hosts(request).list_hypervisors(
        ctx, detail=detail, pattern=pattern, limit=limit if pattern is None else None,
        marker=marker, marker_is_uuid=v >= (2, 53), with_servers=with_servers)
    bodies = [render_hypervisor(request, h, detail, with_servers) for h in views]
    out: dict[str, Any] = {"hypervisors": bodies}
    if v >= (2, 33) and pattern is None:
        links = next_links(request, "os-hypervisors/detail" if detail else "os-hypervisors",
                           len(bodies), str(bodies[-1]["id"]) if bodies else None)
        if links:
            out["hypervisors_links"] = links
    return json_response(out)


async def list_hypervisors(request: Request) -> Response:
    return _list(request, detail=False)


async def list_hypervisors_detail(request: Request) -> Response:
    return _list(request, detail=True)


async def show_hypervisor(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    refuse_unknown_query(request, ("with_servers",), since=(2, 53))
    with_servers = query_bool(request, "with_servers") if v >= (2, 53) else False
    view = _hosts(request).get_hypervisor(ctx, request.path_params["hypervisor_id"],
                                          by_uuid=v >= (2, 53), with_servers=with_servers)
    return json_response({"hypervisor": render_hypervisor(request, view, True, with_servers)})


def _before(request: Request, last: tuple[int, int]) -> None:
    """Routes Nova removed after microversion ``last``: 404 from then on."""
    if version(request) > last:
        raise NotFound("The resource could not be found.")


async def hypervisor_uptime(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 87))
    v = version(request)
    view = _hosts(request).uptime(ctx, request.path_params["hypervisor_id"],
                                  by_uuid=v >= (2, 53))
    body = render_hypervisor(request, view, detail=False)
    body["uptime"] = view.uptime
    return json_response({"hypervisor": body})


async def hypervisor_statistics(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 87))
    return json_response({"hypervisor_statistics": _hosts(request).statistics(ctx)})


async def search_hypervisors(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 52))
    views = _hosts(request).list_hypervisors(
        ctx, pattern=request.path_params["pattern"])
    return json_response({"hypervisors": [render_hypervisor(request, h, False)
                                          for h in views]})


async def hypervisor_servers(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 52))
    views = _hosts(request).list_hypervisors(
        ctx, pattern=request.path_params["pattern"], with_servers=True)
    return json_response({"hypervisors": [render_hypervisor(request, h, False, servers=True)
                                          for h in views]})


async def list_hosts(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 42))
    zone = request.query_params.get("zone") or None
    return json_response({"hosts": _hosts(request).list_hosts(ctx, zone)})


async def show_host(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 42))
    return json_response({"host": _hosts(request).host_resources(
        ctx, request.path_params["host_name"])})


_HOST_SETTINGS = ("enable", "disable")


async def host_action(request: Request) -> Response:
    ctx = caller(request)
    _before(request, (2, 42))
    if request.method == "PUT":
        # Nova's checks of the body come first: only status/maintenance_mode, each
        # enable or disable (any case of those three spellings), at least one of them.
        body = await read_json(request)
        for key, value in body.items():
            if key not in ("status", "maintenance_mode"):
                raise BadRequest(f"Invalid input for field/attribute host. Value: {body}. "
                                 f"Additional properties are not allowed ('{key}' was "
                                 "unexpected)")
            if not isinstance(value, str) or value not in {
                    v for word in _HOST_SETTINGS
                    for v in (word, word.capitalize(), word.upper())}:
                raise BadRequest(f"Invalid input for field/attribute {key}. Value: "
                                 f"{value!r}. It is not one of {list(_HOST_SETTINGS)}")
        if not body:
            raise BadRequest("Invalid update setting: one of status and maintenance_mode "
                             "is needed.")
    _hosts(request).host_resources(ctx, request.path_params["host_name"])  # 403/404 first
    raise NotImplementedFault("Host maintenance mode and power actions are not supported "
                              "by this cloud; disable the compute service instead.")


routes = [
    Route("/v2.1/os-hosts", admin(list_hosts), methods=["GET"]),
    Route("/v2.1/os-hosts/{host_name}", admin(show_host), methods=["GET"]),
    Route("/v2.1/os-hosts/{host_name}", admin(host_action), methods=["PUT"]),
    Route("/v2.1/os-hosts/{host_name}/{host_action}", admin(host_action), methods=["GET"]),
    Route("/v2.1/os-hypervisors", admin(list_hypervisors), methods=["GET"]),
    Route("/v2.1/os-hypervisors/detail", admin(list_hypervisors_detail), methods=["GET"]),
    Route("/v2.1/os-hypervisors/statistics", admin(hypervisor_statistics), methods=["GET"]),
    Route("/v2.1/os-hypervisors/{hypervisor_id}", admin(show_hypervisor), methods=["GET"]),
    Route("/v2.1/os-hypervisors/{hypervisor_id}/uptime", admin(hypervisor_uptime),
          methods=["GET"]),
    Route("/v2.1/os-hypervisors/{pattern}/search", admin(search_hypervisors), methods=["GET"]),
    Route("/v2.1/os-hypervisors/{pattern}/servers", admin(hypervisor_servers), methods=["GET"]),
]

"""/v2.0/auto-allocated-topology/{project_id} (Neutron's ``auto-allocated-topology``):
``GET`` returns the project's auto-allocated network, made on first use (``?fields=
dry-run`` only validates), ``DELETE`` tears the topology down. The service,
``services/network/auto_allocate.py``, has the rules."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content
from onestack.api.network.common import networking, wanted_fields
from onestack.api.network.policy import member

MEMBER = "auto_allocated_topology"


async def get_auto_allocated_topology(request: Request) -> Response:
    ctx = caller(request)
    body = networking(request).auto_allocation.get(
        ctx, request.path_params["project_id"], wanted_fields(request))
    return json_response({MEMBER: body})


async def delete_auto_allocated_topology(request: Request) -> Response:
    ctx = caller(request)
    networking(request).auto_allocation.delete(ctx, request.path_params["project_id"])
    return no_content()


routes = [
    Route("/v2.0/auto-allocated-topology/{project_id}",
          member(get_auto_allocated_topology), methods=["GET"]),
    Route("/v2.0/auto-allocated-topology/{project_id}",
          member(delete_auto_allocated_topology), methods=["DELETE"]),
]

"""/v2.0/agents and /v2.0/routers/{id}/l3-agents: the hosts' L3 and DHCP agents,
read-only, for administrators (``services/network/agents.py``). The ``agent`` and
``l3_agent_scheduler`` extensions are not listed: their writes (updating an agent,
moving a router) are not offered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.network.common import RESERVED, networking, only, wanted_fields
from onestack.api.network.policy import admin
from onestack.services.network.agents import Agent, Agents


def _time(value: dt.datetime | None) -> str | None:
    """Neutron's agent timestamps: ``2026-12-06 19:40:38``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


def render_agent(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id, "agent_type": agent.agent_type, "binary": agent.binary,
        "topic": agent.topic, "host": agent.host, "alive": agent.alive,
        "admin_state_up": agent.admin_state_up, "description": None,
        "availability_zone": agent.availability_zone,
        "created_at": _time(agent.created_at), "started_at": _time(agent.created_at),
        "heartbeat_timestamp": _time(agent.heartbeat_timestamp),
        "configurations": agent.configurations, "resources_synced": None,
        "resource_versions": {},
    }


def _service(request: Request) -> Agents:
    return Agents(networking(request))


async def list_agents(request: Request) -> Response:
    ctx = caller(request)
    filters: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in RESERVED:
            filters.setdefault(name, []).append(value)
    fields = wanted_fields(request)
    agents = _service(request).list_agents(ctx, filters)
    return json_response({"agents": [only(render_agent(a), fields) for a in agents]})


async def get_agent(request: Request) -> Response:
    ctx = caller(request)
    agent = _service(request).get(ctx, request.path_params["agent_id"])
    return json_response({"agent": only(render_agent(agent), wanted_fields(request))})


async def router_l3_agents(request: Request) -> Response:
    ctx = caller(request)
    agents = _service(request).router_agents(ctx, request.path_params["router_id"])
    return json_response({"agents": [{**render_agent(a), "ha_state": None}
                                     for a in agents]})


routes = [
    Route("/v2.0/agents", admin(list_agents, "get_agent"), methods=["GET"]),
    Route("/v2.0/agents/{agent_id}", admin(get_agent, "get_agent"), methods=["GET"]),
    Route("/v2.0/routers/{router_id}/l3-agents",
          admin(router_l3_agents, "get_l3-agents"), methods=["GET"]),
]

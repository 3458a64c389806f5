"""/v2.0/agents and /v2.0/routers/{id}/l3-agents: the hosts' L3 and DHCP agents,
read-only, for administrators (``services/network/agents.py``; the list is empty for
everyone else). The ``agent`` and
``l3_agent_scheduler`` extensions are not listed: their writes (updating an agent,
moving a router) are not offered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.network.common import list_query, listing, networking, only, wanted_fields
from onestack.api.network.policy import admin, reader
from onestack.services.network.agents import Agent, Agents
from onestack.services.network.base import ListQuery, Page


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


def _page(service: Agents, ctx: Any, agents: list[Agent], query: ListQuery) -> Page:
    """One page of ``agents`` (in their listed order): ``limit`` after ``marker``, or
    before it with ``page_reverse``; an unknown marker is a 404."""
    if query.page_reverse:
        agents = agents[::-1]
    if query.marker is not None:
        ids = [a.id for a in agents]
        if query.marker not in ids:
            service.get(ctx, query.marker)   # the 404 of an agent that does not exist
            ids = []
        agents = agents[ids.index(query.marker) + 1:] if ids else []
    items = agents[:query.limit] if query.limit else agents
    if query.page_reverse:
        items = items[::-1]
    return Page(items, has_more=bool(query.limit) and len(agents) > len(items))


async def list_agents(request: Request) -> Response:
    ctx = caller(request)
    # Filters, and limit/marker/page_reverse checked as on every Neutron list (400).
    query = list_query(request)
    service = _service(request)
    page = _page(service, ctx, service.list_agents(ctx, query.filters), query)
    return listing(request, "agents", query, page, [render_agent(a) for a in page.items])


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
    Route("/v2.0/agents", reader(list_agents, "get_agent"), methods=["GET"]),
    Route("/v2.0/agents/{agent_id}", admin(get_agent, "get_agent"), methods=["GET"]),
    Route("/v2.0/routers/{router_id}/l3-agents",
          admin(router_l3_agents, "get_l3-agents"), methods=["GET"]),
]

"""Neutron's agents, read-only: each host's L3 and DHCP agents, as the hosts' rows show
them (the ``agent`` API without its writes), and which host runs a router.

OneStack has no separate Neutron agents: each host's one agent (``onestack.agent``)
runs the routers bound to it and the DHCP of its networks. Neutron's view of that is an
``L3 agent`` on every host whose drivers run routers (the ``routers`` capability it
reports) and a ``DHCP agent`` on every host whose drivers serve DHCP (``dhcpv4``), alive
while the host's heartbeat is (``routers.HOST_DOWN_TIME``). Their ids are derived from
the host and the agent type, so they are stable without a table. Administrators only.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import NotFound
from onestack.db.models import ComputeNode, ComputeService, Router
from onestack.db.models.base import utcnow
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import policy_error
from onestack.services.network.routers import COMPUTE, HOST_DOWN_TIME, ROUTERS

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

L3 = "L3 agent"
DHCP = "DHCP agent"
#: Agent type -> (binary, topic, the capability a host needs for it).
TYPES = {L3: ("neutron-l3-agent", "l3_agent", "routers"),
         DHCP: ("neutron-dhcp-agent", "dhcp_agent", "dhcpv4")}
_NAMESPACE = uuidlib.UUID("6c1e8f0a-3b7d-5e2a-9c4f-0b1d2e3f4a5b")


def agent_id(host: str, agent_type: str) -> str:
    return str(uuidlib.uuid5(_NAMESPACE, f"{host}\n{agent_type}"))


@dataclass
class Agent:
    id: str
    agent_type: str
    host: str
    alive: bool
    admin_state_up: bool
    availability_zone: str
    created_at: dt.datetime | None
    heartbeat_timestamp: dt.datetime | None
    configurations: dict[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> str:
        return TYPES[self.agent_type][0]

    @property
    def topic(self) -> str:
        return TYPES[self.agent_type][1]


def _not_found(agent: str) -> NotFound:
    return NotFound(f"Agent {agent} could not be found.", fault="AgentNotFound")


class Agents:
    def __init__(self, net: Networking) -> None:
        self.db = net.db

    @staticmethod
    def _require_admin(ctx: ValidatedToken, rule: str) -> None:
        if not ctx.is_admin:
            raise policy_error(rule)

    def _all(self, session: Session) -> list[Agent]:
        since = utcnow() - dt.timedelta(seconds=HOST_DOWN_TIME)
        routers = {host: n for host, n in session.execute(
            select(Router.host, func.count()).where(Router.host.is_not(None))
            .group_by(Router.host))}
        capabilities = {host: caps or {} for host, caps in session.execute(
            select(ComputeNode.host, ComputeNode.capabilities))}
        agents = []
        for service in session.scalars(select(ComputeService).where(
                ComputeService.binary == COMPUTE).order_by(ComputeService.host)):
            alive = not service.forced_down and service.last_seen_at is not None and \
                service.last_seen_at >= since
            for agent_type, (_, _, needs) in TYPES.items():
                if not capabilities.get(service.host, {}).get(needs):
                    continue
                config: dict[str, Any] = {"agent_mode": "legacy",
                                          "routers": routers.get(service.host, 0)} \
                    if agent_type == L3 else {"dhcp_driver": "dnsmasq"}
                agents.append(Agent(
                    id=agent_id(service.host, agent_type), agent_type=agent_type,
                    host=service.host, alive=alive, admin_state_up=not service.disabled,
                    availability_zone=service.availability_zone,
                    created_at=service.created_at,
                    heartbeat_timestamp=service.last_seen_at, configurations=config))
        return agents

    def list_agents(self, ctx: ValidatedToken, filters: dict[str, list[str]]
                    ) -> list[Agent]:
        """``GET /v2.0/agents``, filtered on ``agent_type``, ``host``, ``binary``,
        ``topic``, ``alive``, ``admin_state_up``, ``id``, ``availability_zone``. Others
        than administrators see none, as Neutron's policy filters every agent out of
        their list (reading one is a 403)."""
        if not ctx.is_admin:
            return []
        with self.db.session() as session:
            agents = self._all(session)

        def matches(agent: Agent) -> bool:
            for name, values in filters.items():
                value = getattr(agent, name, None)
                shown = str(value).lower() if isinstance(value, bool) else str(value)
                if shown not in [v.lower() if isinstance(value, bool) else v
                                 for v in values]:
                    return False
            return True

        return [a for a in agents if matches(a)]

    def get(self, ctx: ValidatedToken, agent: str) -> Agent:
        self._require_admin(ctx, "get_agent")
        with self.db.session() as session:
            found = next((a for a in self._all(session) if a.id == agent), None)
        if found is None:
            raise _not_found(agent)
        return found

    def router_agents(self, ctx: ValidatedToken, router_id: str) -> list[Agent]:
        """``GET /v2.0/routers/{id}/l3-agents``: the L3 agent of the host that runs the
        router (none while it is not bound)."""
        self._require_admin(ctx, "get_l3-agents")
        with self.db.session() as session:
            router: Router = ROUTERS.get_visible(session, ctx, router_id)
            host = router.host
            agents = self._all(session)
        return [a for a in agents if a.agent_type == L3 and a.host == host]

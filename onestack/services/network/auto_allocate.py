"""Auto-allocated topologies (Neutron's ``auto-allocated-topology``): "get me a network".

``get(ctx, project_id)`` returns the project's auto-allocated network, making it first
if the project has none: a network ``auto_allocated_network``, a subnet from each
default subnet pool (``auto_allocated_subnet_v4`` from the default IPv4 pool, the
pool's default prefix length; ``auto_allocated_subnet_v6`` from the default IPv6 pool,
a /64 in ``slaac`` mode so guests configure themselves from the router's
advertisements), and a router ``auto_allocated_router`` with its gateway on the default
external network (the external network marked ``is_default``) and an interface on each
subnet. Every part is made by the ordinary services (``Networks.create_in``,
``subnetpools.allocate``, ``Subnets.create_in``, ``Routers.create_in`` /
``add_interface_in``) inside one transaction, so either the whole topology exists or
none of it, and the router is scheduled to a host and built by its agent as any other.

The ``auto_allocated_topologies`` row (one per project, the primary key) records it:
two concurrent first requests cannot both commit; the loser's transaction runs again
and returns the winner's network. The row goes with the network (a project that deletes
the network by hand gets a new topology on its next request).

Errors as Neutron's: no default external network, or no default subnet pool at all,
is 409 ``AutoAllocationFailure`` ("Deployment error: No default router:external
network."); a pool that cannot give a subnet, "Unable to provide tenant private
network"; a router that cannot be connected, "Unable to provide external connectivity".
``fields=dry-run`` only checks the first two (``{"id": "dry-run=pass"}``); other
``fields`` are a 400. A project other than the caller's is the admin's (403
``NotAuthorized``). ``delete`` removes the router's interfaces on the network, the
router, the network and its subnets in one transaction (409 ``NetworkInUse`` while
servers' ports remain); deleting a project without a topology does nothing.

Quotas: the network, its subnets and the router count against the project's quotas
(409 ``OverQuota``), where Neutron, which creates them below its API, does not count
them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden
from onestack.db.models import AutoAllocatedTopology, Network, Router, SubnetPool
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import subnetpools
from onestack.services.network.base import retrying
from onestack.services.network.quotas import check_quota
from onestack.services.network.routers import INTERFACE, router_ports

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

log = logging.getLogger(__name__)

NETWORK_NAME = "auto_allocated_network"
ROUTER_NAME = "auto_allocated_router"
SUBNET_NAME = "auto_allocated_subnet_v{}"
#: The ``fields`` value that asks for a validation instead of a topology.
DRY_RUN = "dry-run"
DRY_RUN_ID = "dry-run=pass"
#: The path segment clients send for "the caller's own project".
NO_PROJECT = "None"
MAX_PROJECT_ID = 64


def failure(reason: str) -> Conflict:
    return Conflict(f"Deployment error: {reason}.", fault="AutoAllocationFailure")


def default_external_network(session: Session) -> Network:
    network = session.scalar(select(Network).where(
        Network.is_default, Network.external).order_by(Network.created_at).limit(1))
    if network is None:
        raise failure("No default router:external network")
    return network


def default_pools(session: Session) -> list[SubnetPool]:
    """The default pools, IPv4 first (either may be missing, not both)."""
    pools = []
    for version in (4, 6):
        pool = session.scalar(select(SubnetPool).where(
            SubnetPool.is_default, SubnetPool.ip_version == version))
        if pool is not None:
            pools.append(pool)
    return pools


class AutoAllocation:
    """``GET``/``DELETE /v2.0/auto-allocated-topology/{project_id}``, and Nova's
    ``networks: "auto"``."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    @staticmethod
    def project(ctx: ValidatedToken, project_id: str) -> str:
        """The project the request is about: the caller's (``None`` in the path means
        it too); another only for administrators."""
        if project_id == NO_PROJECT or not project_id:
            if ctx.project_id is None:
                raise BadRequest("A project-scoped token is needed for an "
                                 "auto-allocated topology.")
            project_id = ctx.project_id
        if not ctx.is_admin and project_id != ctx.project_id:
            raise Forbidden("Not authorized.", fault="NotAuthorized")
        if len(project_id) > MAX_PROJECT_ID:
            raise BadRequest(f"Invalid input for project_id. Reason: '{project_id}' is "
                             f"longer than {MAX_PROJECT_ID} characters.",
                             fault="InvalidInput")
        return project_id

    def get(self, ctx: ValidatedToken, project_id: str, fields: list[str] | None = None
            ) -> dict[str, str]:
        """The project's topology as Neutron shows it (``id``: its network), made if
        missing; with ``fields=dry-run`` only whether it could be made."""
        project = self.project(ctx, project_id)
        if fields and DRY_RUN in fields:
            with self.db.session() as session:
                self.check_requirements(session)
            return self._view(DRY_RUN_ID, project)
        if fields:
            raise BadRequest("Bad auto_allocate request: Unrecognized field.",
                             fault="BadRequest")
        made: list[bool] = []

        def work(session: Session) -> str:
            made.clear()
            row = session.get(AutoAllocatedTopology, project)
            if row is not None:
                return row.network_id
            made.append(True)
            return self._build(session, ctx, project)

        network_id = retrying(self.db, work)
        if made:
            log.info("auto-allocated network %s for project %s", network_id, project)
            self.net.changed()  # the new router: its host builds it now
        return self._view(network_id, project)

    def network_for(self, ctx: ValidatedToken, project_id: str) -> str:
        """The project's auto-allocated network id, made if missing (for Nova)."""
        return self.get(ctx, project_id)["id"]

    @staticmethod
    def _view(id_: str, project: str) -> dict[str, str]:
        return {"id": id_, "tenant_id": project, "project_id": project}

    @staticmethod
    def check_requirements(session: Session) -> None:
        default_external_network(session)
        if not default_pools(session):
            raise failure("No default subnetpools defined")

    def _build(self, session: Session, ctx: ValidatedToken, project: str) -> str:
        external = default_external_network(session)
        pools = default_pools(session)
        if not pools:
            raise failure("Unable to provide tenant private network")
        check_quota(session, project, "network")
        check_quota(session, project, "subnet", len(pools))
        check_quota(session, project, "router")
        network = self.net.networks.create_in(session, project_id=project,
                                              name=NETWORK_NAME)
        subnets = []
        try:
            for pool in pools:
                cidr = subnetpools.allocate(session, pool, project, cidr=None,
                                            prefixlen=None, ip_version=pool.ip_version)
                mode = "slaac" if pool.ip_version == 6 else None
                subnets.append(self.net.subnets.create_in(
                    session, network=network, project_id=project, cidr=cidr,
                    ip_version=pool.ip_version, name=SUBNET_NAME.format(pool.ip_version),
                    ipv6_ra_mode=mode, ipv6_address_mode=mode, subnetpool_id=pool.id))
        except (BadRequest, Conflict) as exc:
            log.warning("auto-allocation for project %s: no subnet: %s", project, exc)
            raise failure("Unable to provide tenant private network") from None
        routers = self.net.routers
        try:
            router = routers.create_in(session, ctx, project, name=ROUTER_NAME,
                                       external_gateway_info={"network_id": external.id})
            for subnet in subnets:
                routers.add_interface_in(session, ctx, router, subnet.id, None)
        except BadRequest as exc:
            log.warning("auto-allocation for project %s: no router: %s", project, exc)
            raise failure("Unable to provide external connectivity") from None
        session.add(AutoAllocatedTopology(project_id=project, network_id=network.id,
                                          router_id=router.id))
        session.flush()  # a concurrent allocation's row: IntegrityError, run again
        return network.id

    def delete(self, ctx: ValidatedToken, project_id: str) -> None:
        """Tear the project's topology down (nothing to do without one)."""
        project = self.project(ctx, project_id)
        with self.db.session() as session:
            row = session.get(AutoAllocatedTopology, project)
            if row is None:
                return
            network_id, router_id = row.network_id, row.router_id
            network = session.get(Network, network_id)
            router = session.get(Router, router_id) if router_id else None
            session.delete(row)
            session.flush()
            if router is not None:
                for port in router_ports(session, router.id, INTERFACE):
                    if port.network_id == network_id:
                        self.net.routers.remove_interface_in(session, router, None,
                                                             port.id)
                session.flush()
                self.net.routers.delete_in(session, router)
                session.flush()
            if network is not None:
                self.net.networks.delete_in(session, network)
        self.net.changed()

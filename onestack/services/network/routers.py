"""Routers: a gateway on an external network, interfaces on subnets, static routes.

A router's ports are ordinary ports owned by the cloud: its gateway
(``network:router_gateway``, on a ``router:external`` network, owned by no project) and
its interfaces (``network:router_interface``, on the subnet's gateway address when added
by subnet, owned by the subnet's project). ``routerports`` records which router owns
which port. One router never joins two subnets whose CIDRs overlap (its gateway
included), and a static route's nexthop must lie on a subnet the router is on.

Nothing here touches a host: the datapath (a ``qrouter-`` namespace with SNAT and
floating-IP DNAT) follows this model when the host issue lands. So a router is
``ACTIVE`` as soon as it exists.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db.models import ComputeService, Instance, IPAllocation, Network, Port, Subnet
from onestack.db.models.base import utcnow
from onestack.db.models.network_l3 import FloatingIP, Router, RouterPort, RouterRoute
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    caller_project,
    changes_hosts,
    forget_tags,
    list_visible,
    new_id,
    own_rows,
    owns,
    page_of,
    policy_error,
    register,
    require_owner,
    retrying,
    set_tags,
)
from onestack.services.network.networks import NETWORK
from onestack.services.network.ports import create_port_in, delete_port_in
from onestack.services.network.quotas import check_quota
from onestack.services.network.security_groups import bind_port_security_groups
from onestack.services.network.subnets import SUBNET

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

log = logging.getLogger(__name__)

GATEWAY = "network:router_gateway"
INTERFACE = "network:router_interface"
#: Static routes one router may have (Neutron's ``max_routes``).
MAX_ROUTES = 30
#: Seconds without a heartbeat after which a host is down and its routers move
#: (Nova's ``service_down_time``, what os-services shows as ``down``).
HOST_DOWN_TIME = 60
#: The binary whose service rows are the hosts (one per host's agent).
COMPUTE = "nova-compute"

def _router_extras(session: Session, routers: list[Any]) -> dict[str, dict[str, Any]]:
    hosts = {r.host for r in routers if r.host}
    zones: dict[str, str] = {host: zone for host, zone in session.execute(
        select(ComputeService.host, ComputeService.availability_zone).where(
            ComputeService.host.in_(hosts), ComputeService.binary == COMPUTE))} \
        if hosts else {}
    return {r.id: {"external_gateway_info": gateway_of(session, r),
                   "routes": routes_of(session, r.id),
                   "availability_zones": [zones[r.host]] if r.host in zones else []}
            for r in routers}


ROUTERS = register(Kind(
    member="router", collection="routers", model=Router, visible=own_rows(Router),
    columns={"tenant_id": Router.project_id},
    hidden=frozenset({"gw_port_id", "enable_snat", "host"}),
    label="Router", fault="RouterNotFound", extras=_router_extras))


def bad_request(message: str) -> BadRequest:
    """Neutron's ``BadRequest`` type (its l3 code raises it for most refusals)."""
    return BadRequest(f"Bad router request: {message}.", fault="BadRequest")


def router_in_use(router_id: str, reason: str = "still has ports") -> Conflict:
    return Conflict(f"Router {router_id} {reason}", fault="RouterInUse")


# -- what the API renders ------------------------------------------------------------


@dataclass
class InterfaceInfo:
    """The body of ``add_router_interface`` / ``remove_router_interface``."""

    router_id: str
    project_id: str
    port_id: str
    network_id: str
    subnet_ids: list[str]


# -- lookups -------------------------------------------------------------------------


def get_network(session: Session, ctx: ValidatedToken | None, network_id: Any) -> Network:
    """A network the caller sees (its own, shared and external ones); else 404."""
    if not isinstance(network_id, str):
        raise NETWORK.not_found(str(network_id))
    network: Network = NETWORK.get_visible(session, ctx, network_id)
    return network


def get_subnet(session: Session, ctx: ValidatedToken | None, subnet_id: Any) -> Subnet:
    """A subnet the caller sees; else 404."""
    if not isinstance(subnet_id, str):
        raise SUBNET.not_found(str(subnet_id))
    subnet: Subnet = SUBNET.get_visible(session, ctx, subnet_id)
    return subnet


def get_port(session: Session, ctx: ValidatedToken | None, port_id: Any) -> Port:
    port = session.get(Port, port_id) if isinstance(port_id, str) else None
    if port is None or not owns(ctx, port.project_id):
        raise NotFound(f"Port {port_id} could not be found.", fault="PortNotFound")
    return port


def router_ports(session: Session, router_id: str, port_type: str | None = None
                 ) -> list[Port]:
    stmt = (select(Port).join(RouterPort, RouterPort.port_id == Port.id)
            .where(RouterPort.router_id == router_id).order_by(Port.created_at, Port.id))
    if port_type:
        stmt = stmt.where(RouterPort.port_type == port_type)
    return list(session.scalars(stmt))


def port_subnets(session: Session, ports: Iterable[Port]) -> list[Subnet]:
    ids = list(dict.fromkeys(ip.subnet_id for port in ports for ip in port.fixed_ips))
    if not ids:
        return []
    found = {s.id: s for s in session.scalars(select(Subnet).where(Subnet.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def gateway_of(session: Session, router: Router) -> dict[str, Any] | None:
    """Neutron's ``external_gateway_info``, or None without a gateway."""
    if router.gw_port_id is None:
        return None
    port = session.get(Port, router.gw_port_id)
    if port is None:
        return None
    return {"network_id": port.network_id, "enable_snat": router.enable_snat,
            "external_fixed_ips": [{"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}
                                   for ip in port.fixed_ips]}


def routes_of(session: Session, router_id: str) -> list[dict[str, str]]:
    rows = session.scalars(select(RouterRoute).where(RouterRoute.router_id == router_id)
                           .order_by(RouterRoute.destination, RouterRoute.nexthop))
    return [{"destination": r.destination, "nexthop": r.nexthop} for r in rows]


def routers_for_subnet(session: Session, subnet_id: str, external_network_id: str
                       ) -> list[Router]:
    """Routers with an interface on ``subnet_id`` and their gateway on the external
    network (what a floating IP needs to reach a fixed IP on that subnet)."""
    gw_port = select(Port.id).where(Port.network_id == external_network_id)
    stmt = (select(Router).join(RouterPort, RouterPort.router_id == Router.id)
            .join(IPAllocation, IPAllocation.port_id == RouterPort.port_id)
            .where(RouterPort.port_type == INTERFACE, IPAllocation.subnet_id == subnet_id,
                   Router.gw_port_id.in_(gw_port))
            .order_by(Router.created_at, Router.id).distinct())
    return list(session.scalars(stmt))


# -- checks --------------------------------------------------------------------------


def _check_no_overlap(session: Session, router: Router, new: list[Subnet],
                      ignore_port_id: str | None = None) -> None:
    """A router joins no two subnets whose CIDRs overlap (its gateway's included)."""
    ports = [p for p in router_ports(session, router.id) if p.id != ignore_port_id]
    attached = port_subnets(session, ports)
    for subnet in new:
        net = ipaddress.ip_network(subnet.cidr)
        for other in attached:
            if other.id == subnet.id:
                raise bad_request(f"Router already has a port on subnet {subnet.id}")
            if net.version == ipaddress.ip_network(other.cidr).version and \
                    net.overlaps(ipaddress.ip_network(other.cidr)):
                raise bad_request(f"Cidr {subnet.cidr} of subnet {subnet.id} overlaps with "
                                  f"cidr {other.cidr} of subnet {other.id}")
        attached.append(subnet)


def _routes_input(reason: str) -> BadRequest:
    """What Neutron's attribute validation answers for a malformed ``routes`` value
    (``type:hostroutes``): a plain 400 ``HTTPBadRequest``."""
    return BadRequest(f"Invalid input for routes. Reason: {reason}.")


def _route_destination(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Neutron's ``validate_route_cidr``: a CIDR with its prefix length, no host bits,
    not loopback."""
    text = value if isinstance(value, str) else str(value)
    try:
        if not isinstance(value, str) or value != value.strip():
            raise ValueError(text)
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _routes_input(f"'{text}' is not a valid CIDR") from None
    if "/" not in value or ipaddress.ip_address(value.split("/")[0]) != net.network_address:
        raise _routes_input(f"'{value}' is not a recognized CIDR, '{net}' is recommended")
    if net.is_loopback:
        raise _routes_input(f"'{value}' is not a routable CIDR")
    return net


def _route_nexthop(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        if not isinstance(value, str) or value != value.strip():
            raise ValueError(value)
        return ipaddress.ip_address(value)
    except ValueError:
        raise _routes_input(f"'{value}' is not a valid IP address") from None


def parse_routes(routes: Any) -> list[tuple[str, str]]:
    """Routes as (destination, nexthop) in canonical form. A malformed value is
    Neutron's attribute-validation 400 (``HTTPBadRequest``, "Invalid input for
    routes"); a destination and nexthop of different IP versions is ``InvalidRoutes``."""
    if not isinstance(routes, list):
        raise _routes_input(f"Invalid data format for hostroute: '{routes}'")
    out: list[tuple[str, str]] = []
    seen: list[Any] = []
    for route in routes:
        if not isinstance(route, dict):
            raise _routes_input(f"Invalid input. '{route}' must be a dictionary with keys: "
                                "['destination', 'nexthop']")
        if set(route) != {"destination", "nexthop"}:
            raise _routes_input("Validation of dictionary's keys failed. Expected keys: "
                                f"{{'destination', 'nexthop'}} Provided keys: "
                                f"{set(route) or '{}'}")
        destination = _route_destination(route["destination"])
        nexthop = _route_nexthop(route["nexthop"])
        if route in seen:
            raise _routes_input(f"Duplicate hostroute '{route}'")
        seen.append(route)
        if destination.version != nexthop.version:
            raise BadRequest(f"Invalid format for routes: {routes}, the destination and "
                             "the nexthop are of different IP versions",
                             fault="InvalidRoutes")
        pair = (str(destination), str(nexthop))
        if pair not in out:
            out.append(pair)
    return out


def _routes_text(routes: list[tuple[str, str]]) -> str:
    return str([{"destination": d, "nexthop": n} for d, n in routes])


def _check_routes(session: Session, router: Router, routes: list[tuple[str, str]]) -> None:
    """Neutron's checks of a router's whole route list: at most ``MAX_ROUTES`` (400
    ``RoutesExhausted``), each nexthop on a subnet the router is on and not one of the
    router's own addresses (400 ``InvalidRoutes``)."""
    if len(routes) > MAX_ROUTES:
        raise BadRequest(f"Unable to complete operation for {router.id}. The number of "
                         f"routes exceeds the maximum {MAX_ROUTES}.", fault="RoutesExhausted")
    ports = router_ports(session, router.id)
    own_ips = {ip.ip_address for p in ports for ip in p.fixed_ips}
    cidrs = [ipaddress.ip_network(s.cidr) for s in port_subnets(session, ports)]
    for _destination, nexthop in routes:
        hop = ipaddress.ip_address(nexthop)
        if not any(hop.version == c.version and hop in c for c in cidrs):
            raise BadRequest(f"Invalid format for routes: {_routes_text(routes)}, the "
                             "nexthop is not connected with router", fault="InvalidRoutes")
        if nexthop in own_ips:
            raise BadRequest(f"Invalid format for routes: {_routes_text(routes)}, the "
                             "nexthop is used by router", fault="InvalidRoutes")


def _store_routes(session: Session, router: Router, routes: list[tuple[str, str]]) -> None:
    for row in session.scalars(select(RouterRoute).where(RouterRoute.router_id == router.id)):
        session.delete(row)
    session.flush()
    for destination, nexthop in routes:
        session.add(RouterRoute(router_id=router.id, destination=destination, nexthop=nexthop))


def _routes_via(session: Session, router_id: str, subnet: Subnet) -> bool:
    net = ipaddress.ip_network(subnet.cidr)
    for route in routes_of(session, router_id):
        hop = ipaddress.ip_address(route["nexthop"])
        if hop.version == net.version and hop in net:
            return True
    return False


def _floating_ips_via(session: Session, router_id: str, subnet: Subnet) -> bool:
    """Floating IPs reach a fixed IP on ``subnet`` through this router."""
    rows = session.execute(select(FloatingIP.fixed_ip_address, Port.network_id)
                           .join(Port, Port.id == FloatingIP.fixed_port_id)
                           .where(FloatingIP.router_id == router_id))
    net = ipaddress.ip_network(subnet.cidr)
    return any(network_id == subnet.network_id and address
               and ipaddress.ip_address(address) in net for address, network_id in rows)


# -- which host runs a router (Neutron's l3 agent scheduling) ---------------------------


def live_hosts(session: Session) -> set[str]:
    """Hosts whose agent was heard from within ``HOST_DOWN_TIME`` and that are not
    forced down (the hosts os-services shows ``up``)."""
    since = utcnow() - dt.timedelta(seconds=HOST_DOWN_TIME)
    return set(session.scalars(select(ComputeService.host).where(
        ComputeService.binary == COMPUTE, ComputeService.forced_down.is_(False),
        ComputeService.last_seen_at >= since)))


def _has_ports(session: Session, router_id: str) -> bool:
    return session.scalar(select(RouterPort.port_id).where(
        RouterPort.router_id == router_id).limit(1)) is not None


def pick_host(session: Session, router: Router, alive: set[str]) -> str | None:
    """Where the router should run: the host of the oldest instance on one of its
    interfaces' networks, else the live host with the fewest routers (by name on a
    tie); None when no host is alive."""
    if not alive:
        return None
    networks = select(Port.network_id).join(RouterPort, RouterPort.port_id == Port.id) \
        .where(RouterPort.router_id == router.id, RouterPort.port_type == INTERFACE)
    first = session.scalar(
        select(Instance.host).join(Port, Port.device_id == Instance.uuid)
        .where(Port.network_id.in_(networks), Instance.deleted.is_(False),
               Instance.host.in_(alive))
        .order_by(Instance.created_at, Instance.uuid).limit(1))
    if first:
        return str(first)
    counts = {host: n for host, n in session.execute(
        select(Router.host, func.count()).where(Router.host.in_(alive))
        .group_by(Router.host))}
    return min(sorted(alive), key=lambda h: counts.get(h, 0))


def schedule(session: Session, router: Router, also_alive: str | None = None) -> bool:
    """Bind a router that has ports to a host when it has none, or when its host is
    gone (deleted) or down; ``also_alive`` counts as alive (the host asking now).
    True if the binding changed."""
    alive = live_hosts(session)
    if also_alive:
        alive.add(also_alive)
    if router.host is not None and router.host in alive:
        return False
    if not _has_ports(session, router.id):
        return False
    host = pick_host(session, router, alive)
    if host is None or host == router.host:
        return False
    log.info("router %s: runs on host %s (was %s)", router.id, host, router.host or "none")
    router.host = host
    return True


def schedule_stale(session: Session, asking_host: str) -> None:
    """Bind every router that has ports but no live host (unbound, or its host gone or
    down): called when a host asks for its desired state, so routers made while no host
    was up, or left by a dead host, find one."""
    alive = live_hosts(session) | {asking_host}
    stmt = select(Router).where(Router.host.is_(None) | Router.host.not_in(alive))
    for router in session.scalars(stmt.order_by(Router.created_at, Router.id)):
        schedule(session, router, asking_host)


def record_host_report(session: Session, host: str, applied: dict[str, dict[str, str]],
                       failed: list[str]) -> None:
    """A host's report on its routers (``HostToServer.report_routers``): a router it
    set up is ``ACTIVE``, one it could not is ``ERROR``; a floating IP of those is
    ``ACTIVE`` when the host has its current mapping (floating -> fixed address) in
    place, ``DOWN`` otherwise; the router's own ports (interfaces and gateway) are
    ``ACTIVE`` with a router in place and ``DOWN`` with a failed one, as Neutron's L3
    agent reports them. Routers not bound to ``host`` are left alone."""
    ids = set(applied) | set(failed)
    if not ids:
        return
    for router in session.scalars(select(Router).where(Router.id.in_(ids),
                                                       Router.host == host)):
        status = "ERROR" if router.id in failed else "ACTIVE"
        if router.status != status:
            router.status = status
        port_status = "ACTIVE" if status == "ACTIVE" else "DOWN"
        for port in session.scalars(select(Port).where(
                Port.device_id == router.id, Port.device_owner.in_((GATEWAY, INTERFACE)))):
            if port.status != port_status:
                port.status = port_status
        in_place = applied.get(router.id, {}) if status == "ACTIVE" else {}
        for fip in session.scalars(select(FloatingIP).where(
                FloatingIP.router_id == router.id)):
            wanted = "ACTIVE" if fip.fixed_port_id and fip.fixed_ip_address and \
                in_place.get(fip.floating_ip_address) == fip.fixed_ip_address else "DOWN"
            if fip.status != wanted:
                fip.status = wanted


# -- the service ---------------------------------------------------------------------


class Routers:
    """Routers for the API; each call is one transaction (retried when an address
    allocation lost a race)."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    # gateway

    def _set_gateway(self, session: Session, ctx: ValidatedToken, router: Router,
                     info: dict[str, Any] | None) -> None:
        current = session.get(Port, router.gw_port_id) if router.gw_port_id else None
        if not info:
            if current is not None:
                self._check_gateway_unused(session, router, current.network_id)
                router.gw_port_id = None
                session.flush()
                delete_port_in(session, current.id)
            router.enable_snat = True
            return
        network = get_network(session, ctx, info.get("network_id"))
        if not network.external:
            raise bad_request(f"Network {network.id} is not an external network")
        snat = info.get("enable_snat")
        if snat is not None and not isinstance(snat, bool):
            raise bad_request(f"enable_snat must be a boolean, not {snat!r}")
        if snat is False and not ctx.is_admin:
            raise policy_error("update_router:external_gateway_info:enable_snat")
        fixed_ips = info.get("external_fixed_ips")
        if fixed_ips is not None:
            if not ctx.is_admin:
                raise policy_error("update_router:external_gateway_info:external_fixed_ips")
            if not isinstance(fixed_ips, list) or not all(isinstance(f, dict)
                                                          for f in fixed_ips):
                raise bad_request("external_fixed_ips must be a list of objects")
            for fixed in fixed_ips:
                if fixed.get("subnet_id") is not None:
                    subnet = get_subnet(session, ctx, fixed["subnet_id"])
                    if subnet.network_id != network.id:
                        raise bad_request(f"Subnet {subnet.id} is not on network "
                                          f"{network.id}")
        router.enable_snat = True if snat is None else snat
        if current is not None and current.network_id == network.id and fixed_ips is None:
            return
        if current is not None:
            if current.network_id != network.id:
                self._check_gateway_unused(session, router, current.network_id)
            router.gw_port_id = None
            session.flush()
            delete_port_in(session, current.id)
        port = create_port_in(session, network_id=network.id, project_id="",
                              fixed_ips=fixed_ips or None, device_id=router.id,
                              device_owner=GATEWAY)
        _check_no_overlap(session, router, port_subnets(session, [port]))
        session.add(RouterPort(port_id=port.id, router_id=router.id, port_type=GATEWAY))
        router.gw_port_id = port.id
        session.flush()

    def _check_gateway_unused(self, session: Session, router: Router, network_id: str
                              ) -> None:
        # a floating IP whose port was deleted keeps a stale router_id: not a user
        used = session.scalar(select(FloatingIP.id).where(
            FloatingIP.router_id == router.id, FloatingIP.fixed_port_id.is_not(None),
            FloatingIP.floating_network_id == network_id).limit(1))
        if used is not None:
            raise Conflict(f"Gateway cannot be updated for router {router.id}, since a "
                           f"gateway to external network {network_id} is required by one "
                           "or more floating IPs.", fault="RouterExternalGatewayInUseByFloatingIp")

    # CRUD

    @changes_hosts
    def create(self, ctx: ValidatedToken, *, project_id: str | None, name: str,
               description: str, admin_state_up: bool,
               external_gateway_info: dict[str, Any] | None,
               tags: list[str] | None = None) -> Page:
        def work(session: Session) -> Page:
            owner = caller_project(ctx, project_id, "create_router")
            check_quota(session, owner, "router")
            router = self.create_in(session, ctx, owner, name=name, description=description,
                                    admin_state_up=admin_state_up,
                                    external_gateway_info=external_gateway_info, tags=tags)
            return page_of(session, ROUTERS, [router])
        return retrying(self.db, work)

    def create_in(self, session: Session, ctx: ValidatedToken, owner: str, *, name: str,
                  description: str = "", admin_state_up: bool = True,
                  external_gateway_info: dict[str, Any] | None = None,
                  tags: list[str] | None = None) -> Router:
        """Create a router of ``owner`` in the caller's transaction (no policy, no
        quota: the caller's business; the gateway's checks apply with ``ctx``)."""
        router = Router(id=new_id(), project_id=owner, name=name,
                        description=description, admin_state_up=admin_state_up,
                        status="ACTIVE", enable_snat=True)
        session.add(router)
        session.flush()
        if external_gateway_info:
            self._set_gateway(session, ctx, router, external_gateway_info)
            schedule(session, router)
        if tags:
            set_tags(session, ROUTERS.collection, router.id, tags)
        return router

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            return list_visible(session, ROUTERS, query, ctx)

    def get(self, ctx: ValidatedToken, router_id: str) -> Page:
        with self.db.session() as session:
            return page_of(session, ROUTERS, [ROUTERS.get_visible(session, ctx, router_id)])

    @changes_hosts
    def update(self, ctx: ValidatedToken, router_id: str, changes: dict[str, Any]
               ) -> Page:
        def work(session: Session) -> Page:
            router = ROUTERS.get_visible(session, ctx, router_id)
            require_owner(ctx, router.project_id, "update_router")
            for key in ("name", "description", "admin_state_up"):
                if key in changes:
                    setattr(router, key, changes[key])
            if "external_gateway_info" in changes:
                self._set_gateway(session, ctx, router, changes["external_gateway_info"])
                schedule(session, router)
                router.updated_at = utcnow()
            if "routes" in changes:
                routes = parse_routes(changes["routes"] if changes["routes"] is not None
                                      else [])
                _check_routes(session, router, routes)
                _store_routes(session, router, routes)
                router.updated_at = utcnow()
            session.flush()
            return page_of(session, ROUTERS, [router])
        return retrying(self.db, work)

    @changes_hosts
    def delete(self, ctx: ValidatedToken, router_id: str) -> None:
        with self.db.session() as session:
            router = ROUTERS.get_visible(session, ctx, router_id)
            require_owner(ctx, router.project_id, "delete_router")
            self.delete_in(session, router)

    def delete_in(self, session: Session, router: Router) -> None:
        """Delete a router without interfaces (409 ``RouterInUse`` otherwise) and its
        gateway port, in the caller's transaction."""
        if router_ports(session, router.id, INTERFACE):
            raise router_in_use(router.id)
        if router.gw_port_id is not None:
            gw = router.gw_port_id
            router.gw_port_id = None
            session.flush()
            delete_port_in(session, gw)
        forget_tags(session, ROUTERS.collection, router.id)
        session.delete(router)

    # static routes, one at a time (extraroute-atomic)

    @changes_hosts
    def change_routes(self, ctx: ValidatedToken, router_id: str, routes: Any, add: bool
                      ) -> Page:
        with self.db.session() as session:
            router = ROUTERS.get_visible(session, ctx, router_id)
            require_owner(ctx, router.project_id, "update_router")
            given = parse_routes(routes)
            current = [(r["destination"], r["nexthop"]) for r in routes_of(session, router.id)]
            if add:
                _check_routes(session, router, given)
                wanted = current + [r for r in given if r not in current]
            else:
                wanted = [r for r in current if r not in given]
            _check_routes(session, router, wanted)
            _store_routes(session, router, wanted)
            router.updated_at = utcnow()
            session.flush()
            return page_of(session, ROUTERS, [router])

    # interfaces

    @changes_hosts
    def add_interface(self, ctx: ValidatedToken, router_id: str, subnet_id: Any,
                      port_id: Any) -> InterfaceInfo:
        if subnet_id is not None and port_id is not None:
            raise bad_request("Cannot specify both subnet-id and port-id")
        if subnet_id is None and port_id is None:
            raise bad_request("Either subnet_id or port_id must be specified")

        def work(session: Session) -> InterfaceInfo:
            router = ROUTERS.get_visible(session, ctx, router_id)
            require_owner(ctx, router.project_id, "add_router_interface")
            return self.add_interface_in(session, ctx, router, subnet_id, port_id)
        return retrying(self.db, work)

    def add_interface_in(self, session: Session, ctx: ValidatedToken, router: Router,
                         subnet_id: Any, port_id: Any) -> InterfaceInfo:
        """Attach a subnet (or a port) to ``router`` in the caller's transaction; the
        subnet or port must be visible to ``ctx``."""
        if port_id is not None:
            port = self._attach_port(session, ctx, router, port_id)
        else:
            port = self._attach_subnet(session, ctx, router, subnet_id)
        session.add(RouterPort(port_id=port.id, router_id=router.id, port_type=INTERFACE))
        router.updated_at = utcnow()
        session.flush()
        schedule(session, router)
        return InterfaceInfo(router.id, router.project_id, port.id, port.network_id,
                             [ip.subnet_id for ip in port.fixed_ips])

    def _attach_subnet(self, session: Session, ctx: ValidatedToken, router: Router,
                       subnet_id: Any) -> Port:
        subnet = get_subnet(session, ctx, subnet_id)
        if not subnet.gateway_ip:
            raise bad_request("Subnet for router interface must have a gateway IP")
        _check_no_overlap(session, router, [subnet])
        return create_port_in(session, network_id=subnet.network_id,
                              project_id=subnet.project_id,
                              fixed_ips=[{"subnet_id": subnet.id,
                                          "ip_address": subnet.gateway_ip}],
                              device_id=router.id, device_owner=INTERFACE)

    def _attach_port(self, session: Session, ctx: ValidatedToken, router: Router,
                     port_id: Any) -> Port:
        port = get_port(session, ctx, port_id)
        if port.device_id or port.device_owner:
            raise Conflict(f"Unable to complete operation on port {port.id} for network "
                           f"{port.network_id}. Port already has an attached device "
                           f"{port.device_id or port.device_owner}.", fault="PortInUse")
        if not port.fixed_ips:
            raise bad_request(f"Router port {port.id} must have at least one fixed IP")
        subnets = port_subnets(session, [port])
        if sum(1 for s in subnets if s.ip_version == 4) > 1:
            raise bad_request("Cannot have multiple IPv4 subnets on router port")
        network = session.get(Network, port.network_id)
        if network is not None and network.external:
            raise bad_request(f"Port {port.id} is on external network {network.id}; use "
                              "it as the router's gateway instead")
        _check_no_overlap(session, router, subnets)
        port.device_id = router.id
        port.device_owner = INTERFACE
        bind_port_security_groups(session, port, [])
        return port

    @changes_hosts
    def remove_interface(self, ctx: ValidatedToken, router_id: str, subnet_id: Any,
                         port_id: Any) -> InterfaceInfo:
        if subnet_id is None and port_id is None:
            raise bad_request("Either subnet_id or port_id must be specified")
        with self.db.session() as session:
            router = ROUTERS.get_visible(session, ctx, router_id)
            require_owner(ctx, router.project_id, "remove_router_interface")
            return self.remove_interface_in(session, router, subnet_id, port_id)

    def remove_interface_in(self, session: Session, router: Router, subnet_id: Any,
                            port_id: Any) -> InterfaceInfo:
        """Detach an interface (by port, or by subnet) in the caller's transaction;
        refused while floating IPs or static routes need it."""
        interfaces = router_ports(session, router.id, INTERFACE)
        if port_id is not None:
            port = next((p for p in interfaces if p.id == port_id), None)
            if port is None:
                raise NotFound(f"Router {router.id} does not have an interface with id "
                               f"{port_id}", fault="RouterInterfaceNotFound")
            if subnet_id is not None and all(ip.subnet_id != subnet_id
                                             for ip in port.fixed_ips):
                raise BadRequest(f"Subnet {subnet_id} on port {port.id} does not match "
                                 "the requested subnet", fault="SubnetMismatchForPort")
        else:
            port = next((p for p in interfaces
                         if any(ip.subnet_id == subnet_id for ip in p.fixed_ips)), None)
            if port is None:
                raise NotFound(f"Router {router.id} has no interface on subnet "
                               f"{subnet_id}", fault="RouterInterfaceNotFoundForSubnet")
        subnets = port_subnets(session, [port])
        for subnet in subnets:
            if _floating_ips_via(session, router.id, subnet):
                raise Conflict(f"Router interface for subnet {subnet.id} on router "
                               f"{router.id} cannot be deleted, as it is required by "
                               "one or more floating IPs.",
                               fault="RouterInterfaceInUseByFloatingIP")
            if _routes_via(session, router.id, subnet):
                raise Conflict(f"Router interface for subnet {subnet.id} on router "
                               f"{router.id} cannot be deleted, as it is required by "
                               "one or more routes.", fault="RouterInterfaceInUseByRoute")
        info = InterfaceInfo(router.id, router.project_id, port.id, port.network_id,
                             [ip.subnet_id for ip in port.fixed_ips])
        delete_port_in(session, port.id)
        router.updated_at = utcnow()
        return info

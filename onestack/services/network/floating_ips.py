"""Floating IPs: an address on an external network, mapped (1:1 NAT) to a fixed IP.

The address is held by a ``network:floatingip`` port on the external network (owned by
no project, ``device_id`` the floating IP's id), so IPAM never hands it out twice and
deleting the floating IP releases it. Associating needs a path: a router with an
interface on the fixed IP's subnet and its gateway on the floating IP's network
(else 404 ``ExternalGatewayForFloatingIPNotFound``); that router becomes ``router_id``.
Deleting the associated port disassociates the floating IP (a ``before_delete`` hook on
ports, with ``ON DELETE SET NULL`` underneath for deletes that bypass the ORM).

Status: ``DOWN`` while not associated and from every change of the association until
the router's host reports the new NAT in place (``HostToServer.report_routers``), then
``ACTIVE``; ``DOWN`` again once disassociated.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, event, false, or_, select, update
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db.models import Port
from onestack.db.models.base import utcnow
from onestack.db.models.network_l3 import FloatingIP
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
    page_of,
    policy_error,
    register,
    require_owner,
    retrying,
    set_tags,
)
from onestack.services.network.ports import create_port_in, delete_port_in
from onestack.services.network.quotas import check_quota
from onestack.services.network.routers import get_network, get_port, get_subnet, routers_for_subnet

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

OWNER = "network:floatingip"

def _port_details(session: Session, fips: list[Any]) -> dict[str, dict[str, Any]]:
    """``port_details`` (the ``fip-port-details`` extension) of associated ones."""
    port_ids = [f.fixed_port_id for f in fips if f.fixed_port_id]
    ports = ({p.id: p for p in session.scalars(select(Port).where(Port.id.in_(port_ids)))}
             if port_ids else {})
    out: dict[str, dict[str, Any]] = {}
    for fip in fips:
        port = ports.get(fip.fixed_port_id or "")
        out[fip.id] = {"port_details": None if port is None else {
            "name": port.name, "network_id": port.network_id,
            "mac_address": port.mac_address, "admin_state_up": port.admin_state_up,
            "status": port.status, "device_id": port.device_id,
            "device_owner": port.device_owner}}
    return out


FLOATING_IPS = register(Kind(
    member="floatingip", collection="floatingips", model=FloatingIP,
    visible=own_rows(FloatingIP),
    columns={"tenant_id": FloatingIP.project_id, "port_id": FloatingIP.fixed_port_id},
    filters={"status": lambda values: _status_filter(values)},
    hidden=frozenset({"floating_port_id", "fixed_port_id"}),
    label="Floating IP", fault="FloatingIPNotFound", extras=_port_details))


def _status_filter(values: list[str]) -> Any:
    """``status=ACTIVE`` / ``DOWN`` as ``status_of`` answers it."""
    active = FloatingIP.fixed_port_id.is_not(None) & (FloatingIP.status == "ACTIVE")
    conditions: list[ColumnElement[bool]] = []
    if "ACTIVE" in values:
        conditions.append(active)
    if "DOWN" in values:
        conditions.append(~active)
    return or_(*conditions) if conditions else false()


@event.listens_for(Port, "before_delete")
def _disassociate_deleted_port(mapper: Any, connection: Any, port: Port) -> None:
    connection.execute(
        update(FloatingIP).where(FloatingIP.fixed_port_id == port.id)
        .values(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                revision_number=FloatingIP.revision_number + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False))


def bad_request(message: str) -> BadRequest:
    return BadRequest(f"Bad floatingip request: {message}.", fault="BadRequest")


def status_of(fip: FloatingIP) -> str:
    """``DOWN`` while not associated; once associated, ``ACTIVE`` when the router's
    host reported the NAT in place (``routers.record_host_report``), else ``DOWN``."""
    return fip.status if fip.fixed_port_id and fip.status == "ACTIVE" else "DOWN"


def _fixed_ip_for(port: Port, fixed_ip_address: Any) -> tuple[str, str]:
    """(subnet_id, address) of the port's IPv4 address to map to."""
    v4 = [ip for ip in port.fixed_ips if ipaddress.ip_address(ip.ip_address).version == 4]
    if fixed_ip_address is not None:
        if not isinstance(fixed_ip_address, str):
            raise bad_request(f"fixed_ip_address {fixed_ip_address!r} is not a string")
        try:
            parsed = ipaddress.ip_address(fixed_ip_address)
        except ValueError:
            raise BadRequest(f"Invalid input for fixed_ip_address. Reason: "
                             f"'{fixed_ip_address}' is not a valid IP address.") from None
        if parsed.version != 4:
            raise bad_request(f"Cannot process floating IP association with "
                              f"{fixed_ip_address}, since that is not an IPv4 address")
        wanted = str(parsed)
        match = next((ip for ip in v4 if ip.ip_address == wanted), None)
        if match is None:
            raise bad_request(f"Port {port.id} does not have fixed ip {fixed_ip_address}")
        return match.subnet_id, match.ip_address
    if not v4:
        raise bad_request(f"Cannot add floating IP to port {port.id} that has no fixed "
                          "IPv4 addresses")
    if len(v4) > 1:
        raise bad_request(f"Port {port.id} has multiple fixed IPv4 addresses.  Must provide "
                          "a specific IPv4 address when assigning a floating IP")
    return v4[0].subnet_id, v4[0].ip_address


class FloatingIPs:
    """Floating IPs for the API; each call is one transaction."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    def _associate(self, session: Session, ctx: ValidatedToken, fip: FloatingIP,
                   port_id: Any, fixed_ip_address: Any) -> None:
        if port_id is None:
            fip.fixed_port_id = None
            fip.fixed_ip_address = None
            fip.router_id = None
            fip.status = "DOWN"
            return
        port = get_port(session, ctx, port_id)
        if not ctx.is_admin and port.project_id != fip.project_id:
            raise bad_request(f"Cannot process floating IP association with Port {port.id}, "
                              "since that port is owned by a different project")
        if port.device_owner.startswith("network:"):
            raise bad_request(f"Port {port.id} is unable to be assigned a floating IP")
        subnet_id, address = _fixed_ip_for(port, fixed_ip_address)
        if port.network_id == fip.floating_network_id:
            raise bad_request(f"Port {port.id} is on the floating IP's external network")
        routers = routers_for_subnet(session, subnet_id, fip.floating_network_id)
        if not routers:
            raise NotFound(f"External network {fip.floating_network_id} is not reachable "
                           f"from subnet {subnet_id}.  Therefore, cannot associate Port "
                           f"{port.id} with a Floating IP.",
                           fault="ExternalGatewayForFloatingIPNotFound")
        other = session.scalar(select(FloatingIP).where(
            FloatingIP.floating_network_id == fip.floating_network_id,
            FloatingIP.fixed_port_id == port.id, FloatingIP.fixed_ip_address == address,
            FloatingIP.id != fip.id))
        if other is not None:
            raise Conflict(f"Cannot associate floating IP {fip.floating_ip_address} "
                           f"({fip.id}) with port {port.id} using fixed IP {address}, as "
                           "that fixed IP already has a floating IP on external network "
                           f"{fip.floating_network_id}.",
                           fault="FloatingIPPortAlreadyAssociated")
        if (fip.fixed_port_id, fip.fixed_ip_address, fip.router_id) != \
                (port.id, address, routers[0].id):
            fip.status = "DOWN"  # until the router's host has the new mapping in place
        fip.fixed_port_id = port.id
        fip.fixed_ip_address = address
        fip.router_id = routers[0].id

    @changes_hosts
    def create(self, ctx: ValidatedToken, *, project_id: str | None,
               floating_network_id: Any, floating_ip_address: Any = None,
               subnet_id: Any = None, port_id: Any = None, fixed_ip_address: Any = None,
               description: str = "", tags: list[str] | None = None) -> Page:
        if floating_ip_address is not None and not ctx.is_admin:
            raise policy_error("create_floatingip:floating_ip_address")

        def work(session: Session) -> Page:
            owner = caller_project(ctx, project_id, "create_floatingip")
            network = get_network(session, ctx, floating_network_id)
            if not network.external:
                raise bad_request(f"Network {network.id} is not a valid external network")
            if subnet_id is not None:
                subnet = get_subnet(session, None, subnet_id)
                if subnet.network_id != network.id or subnet.ip_version != 4:
                    raise bad_request(f"Subnet {subnet_id} is not an IPv4 subnet of network "
                                      f"{network.id}")
                chosen = subnet.id
            else:
                v4 = [s for s in network.subnets if s.ip_version == 4]
                if floating_ip_address is not None:
                    v4 = [s for s in v4 if _contains(s.cidr, floating_ip_address)] or v4
                if not v4:
                    raise bad_request(f"Network {network.id} does not contain any IPv4 "
                                      "subnet")
                chosen = v4[0].id
            check_quota(session, owner, "floatingip")
            fip_id = new_id()
            fixed: dict[str, Any] = {"subnet_id": chosen}
            if floating_ip_address is not None:
                fixed["ip_address"] = floating_ip_address
            port = create_port_in(session, network_id=network.id, project_id="",
                                  fixed_ips=[fixed], device_id=fip_id, device_owner=OWNER)
            fip = FloatingIP(id=fip_id, project_id=owner,
                             floating_ip_address=port.fixed_ips[0].ip_address,
                             floating_network_id=network.id, floating_port_id=port.id,
                             description=description)
            session.add(fip)
            session.flush()
            if port_id is not None:
                self._associate(session, ctx, fip, port_id, fixed_ip_address)
            elif fixed_ip_address is not None:
                raise bad_request("fixed_ip_address needs a port_id")
            if tags:
                set_tags(session, FLOATING_IPS.collection, fip.id, tags)
            session.flush()
            return page_of(session, FLOATING_IPS, [fip])
        return retrying(self.db, work)

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            return list_visible(session, FLOATING_IPS, query, ctx)

    def get(self, ctx: ValidatedToken, fip_id: str) -> Page:
        with self.db.session() as session:
            fip = FLOATING_IPS.get_visible(session, ctx, fip_id)
            return page_of(session, FLOATING_IPS, [fip])

    @changes_hosts
    def update(self, ctx: ValidatedToken, fip_id: str, changes: dict[str, Any]
               ) -> Page:
        with self.db.session() as session:
            fip = FLOATING_IPS.get_visible(session, ctx, fip_id)
            require_owner(ctx, fip.project_id, "update_floatingip")
            if "description" in changes:
                fip.description = changes["description"]
            if "port_id" in changes:
                self._associate(session, ctx, fip, changes["port_id"],
                                changes.get("fixed_ip_address"))
            elif changes.get("fixed_ip_address") is not None:
                if fip.fixed_port_id is None:
                    raise bad_request("fixed_ip_address needs a port_id")
                self._associate(session, ctx, fip, fip.fixed_port_id,
                                changes["fixed_ip_address"])
            session.flush()
            return page_of(session, FLOATING_IPS, [fip])

    @changes_hosts
    def delete(self, ctx: ValidatedToken, fip_id: str) -> None:
        """Delete the floating IP and release its address."""
        with self.db.session() as session:
            fip = FLOATING_IPS.get_visible(session, ctx, fip_id)
            require_owner(ctx, fip.project_id, "delete_floatingip")
            port_id = fip.floating_port_id
            forget_tags(session, FLOATING_IPS.collection, fip.id)
            session.delete(fip)
            session.flush()
            delete_port_in(session, port_id)


def _contains(cidr: str, address: Any) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except (TypeError, ValueError):
        return False

"""Subnets: address ranges on a network, IPv4 and IPv6.

Checked here, with Neutron's fault types: the CIDR (canonical, of the stated IP
version, not overlapping another subnet of the network), the gateway (inside the
CIDR, not its IPv4 network or broadcast address; ``None`` means no gateway), the
allocation pools (inside the CIDR, not overlapping, not containing the gateway), DNS
servers, host routes, and the IPv6 RA/address modes (SLAAC and DHCPv6-stateless need a
/64). A subnet may take its CIDR from a subnet pool (``subnetpools.py``): named, or the
default pool of its IP version (``use_default_subnetpool``). Creating a SLAAC subnet
gives every existing port of the network (router interfaces excepted) its EUI-64
address at once.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import BadRequest, Conflict
from onestack.db.models import (
    DnsNameserver,
    HostRoute,
    IPAllocation,
    Network,
    Port,
    Subnet,
)
from onestack.db.models.base import utcnow
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import base, ipam, subnetpools
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    caller_project,
    invalid_input,
    new_id,
    owns,
    policy_error,
    register,
    retrying,
)
from onestack.services.network.networks import NETWORK
from onestack.services.network.quotas import check_quota

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
#: Ports that never get automatic (SLAAC) addresses: routers announce the prefix.
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                           "network:ha_router_replicated_interface")
#: Ports whose addresses go with the subnet instead of blocking its deletion.
AUTO_RELEASE_OWNERS = ("network:dhcp",)


class Unset:
    """The value of an attribute the request did not mention (``None`` is a value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()


def visible_subnets(ctx: ValidatedToken) -> ColumnElement[bool] | None:
    """Own subnets, and those of shared and external networks."""
    if ctx.is_admin:
        return None
    mine = Subnet.project_id == ctx.project_id if ctx.project_id else false()
    public = select(Network.id).where(or_(Network.shared, Network.external))
    return or_(mine, Subnet.network_id.in_(public))


def _external_filter(values: list[str]) -> ColumnElement[bool]:
    """``?router:external=true``: subnets of external networks (subnet-external-network)."""
    wanted = set()
    for value in values:
        if value.lower() in ("true", "1"):
            wanted.add(True)
        elif value.lower() in ("false", "0"):
            wanted.add(False)
        else:
            raise BadRequest(f"Invalid input for router:external. Reason: '{value}' cannot "
                             "be converted to boolean.", fault="HTTPBadRequest")
    return Subnet.network_id.in_(select(Network.id).where(Network.external.in_(wanted)))


SUBNET = register(Kind(
    member="subnet", collection="subnets", model=Subnet, visible=visible_subnets,
    columns={"tenant_id": Subnet.project_id},
    filters={"router:external": _external_filter},
))


# -- validation ----------------------------------------------------------------------


def _ip(value: Any, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise BadRequest(f"Invalid input for {what}. Reason: '{value}' is not a valid IP "
                         "address.") from None


def check_cidr(cidr: str, ip_version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(cidr)
    except ValueError:
        try:
            loose = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise BadRequest(f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP "
                             "subnet.") from None
        raise BadRequest(f"Invalid input for cidr. Reason: '{cidr}' isn't a recommended "
                         f"CIDR, '{loose}' is recommended") from None
    if net.version != ip_version:
        raise invalid_input(f"Cidr and ip version mismatch: the CIDR {cidr} is not an "
                            f"IPv{ip_version} subnet.")
    if net.prefixlen == 0:
        raise BadRequest(f"Invalid input for cidr. Reason: '{cidr}' covers every address.")
    return net


def check_gateway(net: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str) -> str:
    ip = _ip(gateway, "gateway_ip")
    if ip.version != net.version or ip not in net or (
            net.version == 4 and net.prefixlen < 31
            and ip in (net.network_address, net.broadcast_address)):
        raise BadRequest(f"Invalid input for operation: Gateway is not valid on subnet "
                         f"{net}: {gateway}.", fault="InvalidInput")
    return str(ip)


def check_pools(net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                pools: list[dict[str, str]], gateway: str | None) -> list[tuple[str, str]]:
    """The pools as canonical (first, last) pairs, checked against the CIDR, each other
    and the gateway."""
    ranges: list[tuple[int, int, str]] = []
    for pool in pools:
        start, end = pool.get("start"), pool.get("end")
        text = f"{{'start': '{start}', 'end': '{end}'}}"
        if not isinstance(start, str) or not isinstance(end, str):
            raise BadRequest(f"The allocation pool {text} is not valid.",
                             fault="InvalidAllocationPool")
        try:
            first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        except ValueError:
            raise BadRequest(f"The allocation pool {text} is not valid.",
                             fault="InvalidAllocationPool") from None
        if first.version != net.version or last.version != net.version or int(first) > int(last):
            raise BadRequest(f"The allocation pool {text} is not valid.",
                             fault="InvalidAllocationPool")
        low = int(net.network_address) + (1 if net.version == 4 and net.prefixlen < 31 else 0)
        high = int(net.broadcast_address) - (1 if net.version == 4 and net.prefixlen < 31
                                             else 0)
        if int(first) < low or int(last) > high:
            raise BadRequest(f"The allocation pool {start}-{end} spans beyond the subnet "
                             f"cidr {net}.", fault="OutOfBoundsAllocationPool")
        ranges.append((int(first), int(last), f"{start}-{end}"))
    ordered = sorted(ranges)
    for (_, last_a, text_a), (first_b, _, text_b) in zip(ordered, ordered[1:], strict=False):
        if first_b <= last_a:
            raise Conflict(f"Found overlapping allocation pools: {text_a} and {text_b} for "
                           f"subnet {net}.", fault="OverlappingAllocationPools")
    if gateway is not None:
        gw = int(ipaddress.ip_address(gateway))
        for first_i, last_i, text in ranges:
            if first_i <= gw <= last_i:
                raise Conflict(f"Gateway ip {gateway} conflicts with allocation pool "
                               f"{text}.", fault="GatewayConflictWithAllocationPools")
    return [(ipam.address(net.version, a), ipam.address(net.version, b))
            for a, b, _ in ranges]


def check_nameservers(values: list[str], ip_version: int, subnet_name: str,
                      limit: int) -> list[str]:
    out: list[str] = []
    for value in values:
        ip = _ip(value, "dns_nameservers")
        if str(ip) in out:
            raise BadRequest(f"Invalid input for dns_nameservers. Reason: Duplicate "
                             f"nameserver '{value}'.")
        out.append(str(ip))
    if len(out) > limit:
        raise BadRequest(f"Unable to complete operation for {subnet_name}. The number of "
                         f"DNS nameservers exceeds the limit {limit}.",
                         fault="DNSNameServersExhausted")
    return out


def check_routes(values: list[dict[str, str]], ip_version: int, subnet_name: str,
                 limit: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for route in values:
        destination, nexthop = route.get("destination"), route.get("nexthop")
        try:
            dest = ipaddress.ip_network(destination)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            raise BadRequest(f"Invalid input for host_routes. Reason: '{destination}' is "
                             "not a valid destination CIDR.") from None
        hop = _ip(nexthop, "host_routes")
        if dest.version != ip_version or hop.version != ip_version:
            raise invalid_input(f"Host route {destination} via {nexthop} is not an "
                                f"IPv{ip_version} route.")
        pair = (str(dest), str(hop))
        if pair in out:
            raise BadRequest(f"Invalid input for host_routes. Reason: Duplicate hostroute "
                             f"'{destination} {nexthop}'.")
        out.append(pair)
    if len(out) > limit:
        raise BadRequest(f"Unable to complete operation for {subnet_name}. The number of "
                         f"host routes exceeds the limit {limit}.",
                         fault="HostRoutesExhausted")
    return out


def check_ipv6_modes(ip_version: int, prefixlen: int, ra_mode: str | None,
                     address_mode: str | None, enable_dhcp: bool) -> None:
    for name, mode in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
        if mode is not None and mode not in IPV6_MODES:
            raise BadRequest(f"Invalid input for {name}. Reason: '{mode}' is not in "
                             f"{list(IPV6_MODES)}.")
    if ra_mode is None and address_mode is None:
        return
    if ip_version != 6:
        raise invalid_input("ipv6_ra_mode or ipv6_address_mode cannot be set when "
                            "ip_version is 4")
    if not enable_dhcp:
        raise invalid_input("ipv6_ra_mode or ipv6_address_mode cannot be set when "
                            "enable_dhcp is set to False.")
    if ra_mode is not None and address_mode is not None and ra_mode != address_mode:
        raise invalid_input(f"ipv6_ra_mode set to '{ra_mode}' with ipv6_address_mode set "
                            f"to '{address_mode}' is not valid. If both attributes are set, "
                            "they must be the same value")
    if (address_mode in ipam.AUTO_ADDRESS_MODES or ra_mode in ipam.AUTO_ADDRESS_MODES) \
            and prefixlen != 64:
        raise invalid_input(f"Invalid CIDR /{prefixlen} for IPv6 address mode. OpenStack "
                            "uses the EUI-64 address format, which requires the prefix to "
                            "be /64")


def _check_pool_affinity(network: Network, ip_version: int, pool_id: str | None) -> None:
    """Subnets of one IP version on a network all come from the same pool (or none)."""
    for other in network.subnets:
        if other.ip_version == ip_version and other.subnetpool_id != pool_id:
            raise BadRequest("Subnets hosted on the same network must be allocated from the "
                             "same subnet pool.", fault="NetworkSubnetPoolAffinityError")


class Subnets:
    """Subnet lifecycle: create, list, show, update, delete."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db
        self.config = net.config.network

    def create(self, ctx: ValidatedToken, *, network_id: str, cidr: str | None,
               ip_version: int,
               name: str = "", description: str = "", gateway_ip: str | None = UNSET,
               allocation_pools: list[dict[str, str]] | None = None,
               dns_nameservers: list[str] | None = None,
               host_routes: list[dict[str, str]] | None = None, enable_dhcp: bool = True,
               ipv6_ra_mode: str | None = None, ipv6_address_mode: str | None = None,
               project_id: str | None = None, tags: list[str] | None = None,
               subnetpool_id: str | None = None, use_default_subnetpool: bool = False,
               prefixlen: int | None = None) -> Page:
        """Create a subnet; with ``subnetpool_id`` (or ``use_default_subnetpool``) its
        CIDR comes from the pool (``cidr`` then names a block of the pool, or is None:
        the first free block of ``prefixlen``, the pool's default length if None)."""
        project = caller_project(ctx, project_id, "create_subnet")

        def work(session: Session) -> Page:
            network = NETWORK.get_visible(session, ctx, network_id)
            if not owns(ctx, network.project_id):
                raise policy_error("create_subnet")
            check_quota(session, project, "subnet")
            chosen = cidr
            pool = subnetpools.pool_for_subnet(
                session, ctx, subnetpool_id=subnetpool_id,
                use_default=use_default_subnetpool, ip_version=ip_version)
            if pool is not None:
                _check_pool_affinity(network, ip_version, pool.id)
                chosen = subnetpools.allocate(session, pool, project, cidr=cidr,
                                              prefixlen=prefixlen, ip_version=ip_version)
            else:
                _check_pool_affinity(network, ip_version, None)
            if chosen is None:
                raise invalid_input("a cidr must be specified in the absence of a subnet "
                                    "pool.")
            subnet = self.create_in(
                session, network=network, project_id=project, cidr=chosen,
                ip_version=ip_version, name=name, description=description,
                gateway_ip=gateway_ip, allocation_pools=allocation_pools,
                dns_nameservers=dns_nameservers, host_routes=host_routes,
                enable_dhcp=enable_dhcp, ipv6_ra_mode=ipv6_ra_mode,
                ipv6_address_mode=ipv6_address_mode, tags=tags,
                subnetpool_id=pool.id if pool is not None else None)
            return base.page_of(session, SUBNET, [subnet])
        return retrying(self.db, work)

    def create_in(self, session: Session, *, network: Network, project_id: str, cidr: str,
                  ip_version: int, name: str = "", description: str = "",
                  gateway_ip: str | None = UNSET,
                  allocation_pools: list[dict[str, str]] | None = None,
                  dns_nameservers: list[str] | None = None,
                  host_routes: list[dict[str, str]] | None = None, enable_dhcp: bool = True,
                  ipv6_ra_mode: str | None = None, ipv6_address_mode: str | None = None,
                  tags: list[str] | None = None, subnetpool_id: str | None = None) -> Subnet:
        """Create a subnet with internal privileges (checks, no policy or quota)."""
        if ip_version not in (4, 6):
            raise BadRequest(f"Invalid input for ip_version. Reason: {ip_version} is not in "
                             "[4, 6].")
        net = check_cidr(cidr, ip_version)
        for other in network.subnets:
            if net.overlaps(ipaddress.ip_network(other.cidr)):
                raise invalid_input(f"Requested subnet with cidr: {net} for network: "
                                    f"{network.id} overlaps with another subnet.")
        check_ipv6_modes(ip_version, net.prefixlen, ipv6_ra_mode, ipv6_address_mode,
                         enable_dhcp)
        if gateway_ip is UNSET:
            gateway = ipam.address(ip_version, int(net.network_address) + 1) \
                if net.num_addresses > 1 else None
        else:
            gateway = check_gateway(net, gateway_ip) if gateway_ip is not None else None
        if allocation_pools:
            pools = check_pools(net, allocation_pools, gateway)
        else:
            pools = ipam.default_pools(str(net), gateway)
        subnet = Subnet(
            id=new_id(), project_id=project_id, network=network, name=name,
            description=description, ip_version=ip_version, cidr=str(net),
            gateway_ip=gateway, enable_dhcp=enable_dhcp, ipv6_ra_mode=ipv6_ra_mode,
            ipv6_address_mode=ipv6_address_mode, allocation_pools=ipam.pool_rows(pools),
            subnetpool_id=subnetpool_id)
        self._set_nameservers(subnet, dns_nameservers or [])
        self._set_routes(subnet, host_routes or [])
        session.add(subnet)
        session.flush()
        if tags:
            base.set_tags(session, SUBNET.collection, subnet.id, tags)
        if ipam.is_auto_address(subnet):
            self._add_auto_addresses(session, subnet)
        return subnet

    def _set_nameservers(self, subnet: Subnet, values: list[str]) -> None:
        checked = check_nameservers(values, subnet.ip_version, subnet.name or subnet.id,
                                    self.config.max_dns_nameservers)
        subnet.dns_nameservers = [DnsNameserver(address=a, position=i)
                                  for i, a in enumerate(checked)]

    def _set_routes(self, subnet: Subnet, values: list[dict[str, str]]) -> None:
        checked = check_routes(values, subnet.ip_version, subnet.name or subnet.id,
                               self.config.max_subnet_host_routes)
        subnet.host_routes = [HostRoute(destination=d, nexthop=n, position=i)
                              for i, (d, n) in enumerate(checked)]

    def _add_auto_addresses(self, session: Session, subnet: Subnet) -> None:
        """Give every port of the network (router interfaces excepted) its EUI-64
        address on a new SLAAC / DHCPv6-stateless subnet."""
        ports = session.scalars(select(Port).where(
            Port.network_id == subnet.network_id,
            Port.device_owner.not_in(ROUTER_INTERFACE_OWNERS)))
        for port in ports:
            ipam.allocate_ip(session, subnet, port=port)

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            return base.list_visible(session, SUBNET, query, ctx)

    def get(self, ctx: ValidatedToken, subnet_id: str) -> Page:
        with self.db.session() as session:
            subnet = SUBNET.get_visible(session, ctx, subnet_id)
            return base.page_of(session, SUBNET, [subnet])

    def update(self, ctx: ValidatedToken, subnet_id: str, changes: dict[str, Any]) -> Page:
        """Apply ``changes``: name, description, gateway_ip, allocation_pools,
        dns_nameservers, host_routes, enable_dhcp."""
        with self.db.session() as session:
            subnet = SUBNET.get_visible(session, ctx, subnet_id)
            if not (owns(ctx, subnet.project_id) or owns(ctx, subnet.network.project_id)):
                raise policy_error("update_subnet")
            net = ipaddress.ip_network(subnet.cidr)
            gateway = subnet.gateway_ip
            if "gateway_ip" in changes:
                gateway = check_gateway(net, changes["gateway_ip"]) \
                    if changes["gateway_ip"] is not None else None
            if "allocation_pools" in changes or "gateway_ip" in changes:
                pools = changes.get("allocation_pools")
                if pools is None:
                    pools = [{"start": p.first_ip, "end": p.last_ip}
                             for p in subnet.allocation_pools]
                checked = check_pools(net, pools, gateway)
                subnet.gateway_ip = gateway
                if "allocation_pools" in changes:
                    subnet.allocation_pools = ipam.pool_rows(checked)
            if "enable_dhcp" in changes:
                check_ipv6_modes(subnet.ip_version, net.prefixlen, subnet.ipv6_ra_mode,
                                 subnet.ipv6_address_mode, changes["enable_dhcp"])
                subnet.enable_dhcp = changes["enable_dhcp"]
            if "dns_nameservers" in changes:
                self._set_nameservers(subnet, changes["dns_nameservers"] or [])
            if "host_routes" in changes:
                self._set_routes(subnet, changes["host_routes"] or [])
            for attr in ("name", "description"):
                if attr in changes:
                    setattr(subnet, attr, changes[attr])
            subnet.updated_at = utcnow()  # related rows changed: bump the revision
            session.flush()
            return base.page_of(session, SUBNET, [subnet])

    def delete(self, ctx: ValidatedToken, subnet_id: str) -> None:
        with self.db.session() as session:
            subnet = SUBNET.get_visible(session, ctx, subnet_id)
            if not (owns(ctx, subnet.project_id) or owns(ctx, subnet.network.project_id)):
                raise policy_error("delete_subnet")
            self.delete_in(session, subnet)

    def delete_in(self, session: Session, subnet: Subnet) -> None:
        """Delete a subnet; 409 ``SubnetInUse`` while a port holds an address on it
        (addresses of DHCP ports, and SLAAC addresses of non-router ports, go with it)."""
        rows = session.execute(
            select(IPAllocation, Port.device_owner).join(Port, Port.id == IPAllocation.port_id)
            .where(IPAllocation.subnet_id == subnet.id)).all()
        auto = ipam.is_auto_address(subnet)
        releasable = []
        for allocation, owner in rows:
            if owner in AUTO_RELEASE_OWNERS or (auto and owner not in ROUTER_INTERFACE_OWNERS):
                releasable.append(allocation)
            else:
                raise Conflict(f"Unable to complete operation on subnet {subnet.id}: One or "
                               "more ports have an IP allocation from this subnet.",
                               fault="SubnetInUse")
        for allocation in releasable:
            session.delete(allocation)
        base.forget_tags(session, SUBNET.collection, subnet.id)
        session.delete(subnet)
        session.flush()

"""Ports: a network attachment with a MAC, fixed IPs and security settings.

``create_port_in`` and ``delete_port_in`` work with internal privileges (no policy, no
quota) inside the caller's transaction; routers (interfaces and gateways) and floating
IPs use them. ``Ports`` is the API's side: policy, quotas and retries around them.

Address rules are in ``ipam``. Without ``fixed_ips`` a port gets one address from the
first IPv4 subnet with room, one from the first DHCPv6-stateful subnet with room, and
its EUI-64 address on every SLAAC / DHCPv6-stateless subnet (router interfaces
excepted). The port row is written before any address is chosen, so on SQLite the
transaction holds the write lock while it chooses.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import BadRequest, Conflict
from onestack.db.models import (
    AllowedAddressPair,
    ExtraDhcpOpt,
    IPAllocation,
    Network,
    Port,
    Subnet,
)
from onestack.db.models.base import utcnow
from onestack.db.models.network_l3 import SecurityGroupPortBinding
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import base, ipam
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    caller_project,
    changes_hosts,
    invalid_input,
    new_id,
    owns,
    policy_error,
    register,
    retrying,
)
from onestack.services.network.networks import NETWORK
from onestack.services.network.quotas import check_quota
from onestack.services.network.security_groups import (
    bind_port_security_groups,
    port_security_group_ids,
)
from onestack.services.network.subnets import ROUTER_INTERFACE_OWNERS

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

DEFAULT_BASE_MAC = "fa:16:3e"
DEFAULT_MAX_ADDRESS_PAIRS = 10
#: Ports the L3 service owns: deleted through routers and floating IPs, not directly.
L3_OWNERS = (*ROUTER_INTERFACE_OWNERS, "network:router_gateway", "network:floatingip")
VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical",
              "virtio-forwarder", "smart-nic", "vdpa", "remote-managed")
#: What a bound port's VIF is on our Linux datapath (a tap on a bridge).
BOUND_VIF_TYPE = "bridge"
BOUND_VIF_DETAILS = {"connectivity": "l2", "port_filter": True}
_MAC = re.compile(r"^([0-9a-f]{2})(:[0-9a-f]{2}){5}$")


def visible_ports(ctx: ValidatedToken) -> ColumnElement[bool] | None:
    """Own ports, and every port on a network the caller owns."""
    if ctx.is_admin:
        return None
    if not ctx.project_id:
        return false()
    own_networks = select(Network.id).where(Network.project_id == ctx.project_id)
    return or_(Port.project_id == ctx.project_id, Port.network_id.in_(own_networks))


def _fixed_ips_filter(values: list[str]) -> ColumnElement[bool]:
    """``fixed_ips=ip_address=A&fixed_ips=subnet_id=S``: a port with an address that
    matches every given key (values of one key are alternatives)."""
    wanted: dict[str, list[str]] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or key not in ("ip_address", "subnet_id", "ip_address_substr"):
            raise BadRequest(f"Invalid input for fixed_ips. Reason: '{value}' is not of the "
                             "form ip_address=..., ip_address_substr=... or subnet_id=....")
        wanted.setdefault(key, []).append(item)
    conditions: list[ColumnElement[bool]] = []
    if "ip_address" in wanted:
        conditions.append(IPAllocation.ip_address.in_(wanted["ip_address"]))
    if "subnet_id" in wanted:
        conditions.append(IPAllocation.subnet_id.in_(wanted["subnet_id"]))
    if "ip_address_substr" in wanted:
        conditions.append(or_(*(IPAllocation.ip_address.contains(v, autoescape=True)
                                for v in wanted["ip_address_substr"])))
    return Port.id.in_(select(IPAllocation.port_id).where(and_(*conditions)))


def _security_groups_filter(values: list[str]) -> ColumnElement[bool]:
    return Port.id.in_(select(SecurityGroupPortBinding.port_id)
                       .where(SecurityGroupPortBinding.security_group_id.in_(values)))


def _extras(session: Session, rows: list[Any]) -> dict[str, dict[str, Any]]:
    """What a port's body needs beyond its row, for a page of ports at once: fixed IPs,
    address pairs, DHCP options (as tuples, in order) and security groups."""
    ids = [p.id for p in rows]
    # only ports that have any get a list: thousands of empty lists cost GC time
    fixed: dict[str, list[tuple[str, str]]] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    opts: dict[str, list[tuple[str, str, int]]] = {}
    for chunk in base.chunks(ids):
        for port_id, subnet_id, address in session.execute(
                select(IPAllocation.port_id, IPAllocation.subnet_id, IPAllocation.ip_address)
                .where(IPAllocation.port_id.in_(chunk)).order_by(IPAllocation.id)):
            fixed.setdefault(port_id, []).append((subnet_id, address))
        for port_id, address, mac in session.execute(
                select(AllowedAddressPair.port_id, AllowedAddressPair.ip_address,
                       AllowedAddressPair.mac_address)
                .where(AllowedAddressPair.port_id.in_(chunk))
                .order_by(AllowedAddressPair.position)):
            pairs.setdefault(port_id, []).append((address, mac))
        for port_id, name, value, version in session.execute(
                select(ExtraDhcpOpt.port_id, ExtraDhcpOpt.opt_name, ExtraDhcpOpt.opt_value,
                       ExtraDhcpOpt.ip_version)
                .where(ExtraDhcpOpt.port_id.in_(chunk)).order_by(ExtraDhcpOpt.id)):
            opts.setdefault(port_id, []).append((name, value, version))
    return {"fixed_ips": fixed, "allowed_address_pairs": pairs, "extra_dhcp_opts": opts,
            "security_groups": port_security_group_ids(session, ids)}


PORT = register(Kind(
    member="port", collection="ports", model=Port, visible=visible_ports,
    columns={"tenant_id": Port.project_id, "binding:host_id": Port.binding_host_id,
             "binding:vnic_type": Port.binding_vnic_type,
             "binding:vif_type": Port.binding_vif_type},
    filters={"fixed_ips": _fixed_ips_filter, "security_groups": _security_groups_filter},
    hidden=frozenset({"binding_host_id", "binding_vnic_type", "binding_vif_type",
                      "binding_profile", "binding_vif_details"}),
    admin_only=frozenset({"binding:host_id", "binding:vif_type"}),
    extras=_extras,
))


# -- checks --------------------------------------------------------------------------


def check_mac(value: str) -> str:
    mac = value.lower().replace("-", ":") if isinstance(value, str) else ""
    if not _MAC.match(mac) or mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
        raise BadRequest(f"Invalid input for mac_address. Reason: '{value}' is not a valid "
                         "unicast MAC address.")
    return mac


def mac_in_use(session: Session, network_id: str, mac: str) -> bool:
    return session.scalar(select(Port.id).where(Port.network_id == network_id,
                                                Port.mac_address == mac)) is not None


def generate_mac(session: Session, network_id: str, base_mac: str) -> str:
    """A random MAC with the ``base_mac`` prefix, not yet used on the network."""
    prefix = base_mac.lower().rstrip(":")
    for _ in range(16):
        tail = secrets.token_bytes(6 - len(prefix.split(":")))
        mac = ":".join([prefix, *(f"{b:02x}" for b in tail)])
        if not mac_in_use(session, network_id, mac):
            return mac
    raise Conflict(f"Unable to generate unique mac on network {network_id}.",
                   fault="MacAddressGenerationFailure")


def check_address_pairs(pairs: list[dict[str, Any]], limit: int) -> list[tuple[str, str | None]]:
    """(ip or CIDR, MAC or None for the port's own) for each pair, checked."""
    out: list[tuple[str, str | None]] = []
    for pair in pairs:
        if not isinstance(pair, dict) or not pair.get("ip_address"):
            raise BadRequest("AllowedAddressPair must contain ip_address",
                             fault="AllowedAddressPairsMissingIP")
        unknown = set(pair) - {"ip_address", "mac_address"}
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}' in "
                             "allowed_address_pairs.")
        value = pair["ip_address"]
        try:
            ip = str(ipaddress.ip_network(value)) if "/" in str(value) \
                else str(ipaddress.ip_address(value))
        except (ValueError, TypeError):
            raise BadRequest(f"Invalid input for ip_address. Reason: '{value}' is not a "
                             "valid IP address or CIDR.") from None
        mac = check_mac(pair["mac_address"]) if pair.get("mac_address") is not None else None
        if (ip, mac) in out:
            raise BadRequest(f"Request contains duplicate address pair: mac_address {mac} "
                             f"ip_address {ip}.", fault="DuplicateAddressPairInRequest")
        out.append((ip, mac))
    if len(out) > limit:
        raise BadRequest(f"The number of allowed address pair exceeds the maximum {limit}.",
                         fault="AllowedAddressPairExhausted")
    return out


def check_dhcp_opts(opts: list[dict[str, Any]], creating: bool) -> list[tuple[str, str | None,
                                                                           int]]:
    """(name, value or None to delete, IP version) for each option, checked."""
    out: list[tuple[str, str | None, int]] = []
    seen: set[tuple[str, int]] = set()
    for opt in opts:
        if not isinstance(opt, dict):
            raise BadRequest("Invalid input for extra_dhcp_opts. Reason: each option must "
                             "be an object.")
        unknown = set(opt) - {"opt_name", "opt_value", "ip_version"}
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}' in "
                             "extra_dhcp_opts.")
        name, value, version = opt.get("opt_name"), opt.get("opt_value"), opt.get(
            "ip_version", 4)
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("Invalid input for extra_dhcp_opts. Reason: opt_name must be a "
                             "non-empty string.")
        if value is None and creating or value is not None and not isinstance(value, str):
            raise BadRequest(f"Invalid input for extra_dhcp_opts. Reason: opt_value of "
                             f"{name} must be a string.")
        if version in ("4", "6"):
            version = int(version)
        if version not in (4, 6) or isinstance(version, bool):
            raise BadRequest(f"Invalid input for extra_dhcp_opts. Reason: ip_version of "
                             f"{name} must be 4 or 6.")
        if (name, version) in seen:
            raise BadRequest(f"Invalid input for extra_dhcp_opts. Reason: duplicate option "
                             f"{name} (IPv{version}).")
        seen.add((name, version))
        out.append((name, value, version))
    return out


@dataclass
class AddressRequest:
    """One requested fixed IP: a subnet, and an address in it or None (any)."""

    subnet: Subnet
    ip_address: str | None


def resolve_fixed_ips(network: Network, fixed_ips: Sequence[dict[str, Any]], router_port: bool,
                      session: Session, mac: str | None = None) -> list[AddressRequest]:
    """The subnets and addresses a ``fixed_ips`` request names, checked against the
    network's subnets (400 for subnets of other networks or addresses of none). On
    auto-address subnets only router ports name addresses, except the EUI-64 address of
    ``mac`` (clients repeat a port's current addresses when they add one)."""
    subnets = {s.id: s for s in network.subnets}
    out: list[AddressRequest] = []
    for entry in fixed_ips:
        if not isinstance(entry, dict) or not (entry.get("subnet_id") or entry.get("ip_address")):
            raise BadRequest("Invalid input for fixed_ips. Reason: each entry needs a "
                             "subnet_id or an ip_address.")
        unknown = set(entry) - {"subnet_id", "ip_address"}
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}' in "
                             "fixed_ips.")
        subnet_id, address = entry.get("subnet_id"), entry.get("ip_address")
        if subnet_id is not None:
            subnet = subnets.get(subnet_id)
            if subnet is None:
                if session.get(Subnet, subnet_id) is None:
                    raise base.not_found("Subnet", str(subnet_id))
                raise invalid_input(f"Failed to create port on network {network.id}, "
                                    f"because fixed_ips included invalid subnet {subnet_id}.")
        else:
            subnet = _subnet_for(network, str(address))
        if address is not None:
            address = ipam.check_in_subnet(subnet, str(address))
            if ipam.is_auto_address(subnet) and not router_port and not (
                    mac and address == ipam.eui64(subnet.cidr, mac)):
                raise invalid_input(f"IPv6 address {address} cannot be directly assigned to "
                                    f"a port on subnet {subnet.id} with "
                                    f"{subnet.ipv6_address_mode} address mode")
        out.append(AddressRequest(subnet, address))
    return out


def _subnet_for(network: Network, address: str) -> Subnet:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BadRequest(f"Invalid input for ip_address. Reason: '{address}' is not a valid "
                         "IP address.") from None
    for subnet in network.subnets:
        if ip in ipaddress.ip_network(subnet.cidr):
            return subnet
    raise BadRequest(f"IP address {address} is not a valid IP for any of the subnets on the "
                     "specified network.", fault="InvalidIpForNetwork")


def _allocate(session: Session, port: Port, network: Network,
              requests: list[AddressRequest] | None) -> None:
    """Give ``port`` its addresses: the requested ones (explicit addresses first), or
    the defaults; plus its EUI-64 address on each auto-address subnet. An empty request
    (``--no-fixed-ip``) means no address at all."""
    if requests == []:
        return
    router_port = port.device_owner in ROUTER_INTERFACE_OWNERS
    named: set[str] = set()
    if requests is not None:
        ordered = sorted(requests, key=lambda r: r.ip_address is None)
        for request in ordered:
            ipam.allocate_ip(session, request.subnet, request.ip_address, port=port)
            named.add(request.subnet.id)
    else:
        v4 = [s for s in network.subnets if s.ip_version == 4]
        v6 = [s for s in network.subnets if s.ip_version == 6 and not ipam.is_auto_address(s)]
        for group in (v4, v6):
            if not group:
                continue
            for subnet in group:
                free = ipam.first_free(subnet, ipam.taken_addresses(session, subnet.id))
                if free is not None:
                    ipam.record(session, subnet, port, free)
                    break
            else:
                raise ipam.exhausted(group[0])
    if not router_port:
        for subnet in network.subnets:
            if ipam.is_auto_address(subnet) and subnet.id not in named:
                ipam.allocate_ip(session, subnet, port=port)


def _set_address_pairs(port: Port, pairs: list[tuple[str, str | None]]) -> None:
    port.allowed_address_pairs = [
        AllowedAddressPair(ip_address=ip, mac_address=mac or port.mac_address, position=i)
        for i, (ip, mac) in enumerate(pairs)]


def _merge_dhcp_opts(port: Port, opts: list[tuple[str, str | None, int]]) -> None:
    current = {(o.opt_name, o.ip_version): o for o in port.extra_dhcp_opts}
    for name, value, version in opts:
        existing = current.get((name, version))
        if value is None:
            if existing is not None:
                port.extra_dhcp_opts.remove(existing)
        elif existing is not None:
            existing.opt_value = value
        else:
            port.extra_dhcp_opts.append(ExtraDhcpOpt(opt_name=name, opt_value=value,
                                                     ip_version=version))


def _security_checks(port_security: bool, security_group_ids: list[str] | None,
                     pairs: list[Any] | None) -> None:
    if not port_security:
        if security_group_ids:
            raise BadRequest("Port security must be enabled and port must have an IP "
                             "address in order to use security groups.",
                             fault="PortSecurityAndIPRequiredForSecurityGroups")
        if pairs:
            raise Conflict("Port Security must be enabled in order to have allowed address "
                           "pairs on a port.", fault="AddressPairAndPortSecurityRequired")


def _apply_binding(port: Port, binding: dict[str, Any]) -> None:
    if "vnic_type" in binding:
        if binding["vnic_type"] not in VNIC_TYPES:
            raise BadRequest(f"Invalid input for binding:vnic_type. Reason: "
                             f"'{binding['vnic_type']}' is not in {list(VNIC_TYPES)}.")
        port.binding_vnic_type = binding["vnic_type"]
    if "profile" in binding:
        port.binding_profile = binding["profile"] or {}
    if "host_id" in binding:
        port.binding_host_id = binding["host_id"] or ""
        bound = bool(port.binding_host_id)
        port.binding_vif_type = BOUND_VIF_TYPE if bound else "unbound"
        port.binding_vif_details = dict(BOUND_VIF_DETAILS) if bound else {}


# -- internal API (routers, floating IPs) ---------------------------------------------


def create_port_in(session: Session, *, network_id: str, project_id: str,
                   fixed_ips: list[dict[str, Any]] | None = None, device_id: str = "",
                   device_owner: str = "", name: str = "", description: str = "",
                   mac_address: str | None = None, admin_state_up: bool = True,
                   port_security_enabled: bool | None = None,
                   security_group_ids: list[str] | None = None,
                   allowed_address_pairs: list[dict[str, Any]] | None = None,
                   extra_dhcp_opts: list[dict[str, Any]] | None = None,
                   binding: dict[str, Any] | None = None, tags: list[str] | None = None,
                   base_mac: str = DEFAULT_BASE_MAC,
                   max_address_pairs: int = DEFAULT_MAX_ADDRESS_PAIRS,
                   is_admin: bool = False, id: str | None = None) -> Port:
    """Create a port in the caller's transaction, with internal privileges.

    ``fixed_ips`` is Neutron's list of ``{"subnet_id"?, "ip_address"?}``; None gives the
    default addresses. ``security_group_ids`` None means the project's default group
    (none for ``network:*`` owners). ``binding`` may hold host_id, profile, vnic_type.
    ``is_admin`` lets security groups of other projects be used. Raises Neutron's typed
    errors (``IpAddressAlreadyAllocated``, ``IpAddressGenerationFailure``,
    ``MacAddressInUse``, ...); an IntegrityError means a lost race: run the whole
    transaction again (``base.retrying``)."""
    network = session.get(Network, network_id)
    if network is None:
        raise NETWORK.not_found(network_id)
    port_security = network.port_security_enabled if port_security_enabled is None \
        else port_security_enabled
    pairs = check_address_pairs(allowed_address_pairs or [], max_address_pairs)
    _security_checks(port_security, security_group_ids, pairs)
    opts = check_dhcp_opts(extra_dhcp_opts or [], creating=True)
    router_port = device_owner in ROUTER_INTERFACE_OWNERS
    mac = check_mac(mac_address) if mac_address is not None else None
    requests = resolve_fixed_ips(network, fixed_ips, router_port, session, mac) \
        if fixed_ips is not None else None
    if mac is not None:
        if mac_in_use(session, network.id, mac):
            raise Conflict(f"Unable to complete operation for network {network.id}. The mac "
                           f"address {mac} is in use.", fault="MacAddressInUse")
    else:
        mac = generate_mac(session, network.id, base_mac)
    port = Port(id=id or new_id(), project_id=project_id, network_id=network.id, name=name,
                description=description, mac_address=mac, admin_state_up=admin_state_up,
                status="DOWN", device_id=device_id, device_owner=device_owner,
                port_security_enabled=port_security, binding_profile={},
                binding_vif_details={}, fixed_ips=[], allowed_address_pairs=[],
                extra_dhcp_opts=[])
    _apply_binding(port, binding or {})
    session.add(port)
    session.flush()  # the row first: on SQLite this takes the write lock
    _allocate(session, port, network, requests)
    _set_address_pairs(port, pairs)
    _merge_dhcp_opts(port, opts)
    if port_security:
        bind_port_security_groups(session, port, security_group_ids, is_admin=is_admin)
    if tags:
        base.set_tags(session, PORT.collection, port.id, tags)
    session.flush()
    return port


def delete_port_in(session: Session, port_id: str) -> None:
    """Delete a port and everything that hangs off it (addresses, tags, security group
    bindings), with internal privileges. No error if it is already gone."""
    port = session.get(Port, port_id)
    if port is None:
        return
    base.forget_tags(session, PORT.collection, port.id)
    session.delete(port)
    session.flush()


# -- the API's side ------------------------------------------------------------------


class Ports:
    """Port lifecycle with policy and quotas: create, list, show, update, delete."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db
        self.config = net.config.network

    def _attribute_policy(self, ctx: ValidatedToken, network: Network, action: str,
                          attrs: dict[str, Any]) -> None:
        """Neutron's attribute rules: only admins and the network's owner choose MACs,
        addresses and ``network:*`` owners; only admins touch the binding host and
        profile."""
        if ctx.is_admin:
            return
        network_owner = ctx.project_id == network.project_id
        if not network_owner:
            if attrs.get("mac_address") is not None:
                raise policy_error(f"{action}:mac_address")
            if any(isinstance(e, dict) and e.get("ip_address")
                   for e in attrs.get("fixed_ips") or []):
                raise policy_error(f"{action}:fixed_ips:ip_address")
            if str(attrs.get("device_owner") or "").startswith("network:"):
                raise policy_error(f"{action}:device_owner")
        binding = attrs.get("binding") or {}
        for key in ("host_id", "profile"):
            if key in binding:
                raise policy_error(f"{action}:binding:{key}")
        if action == "update_port" and attrs.get("mac_address") is not None:
            raise policy_error("update_port:mac_address")

    @changes_hosts  # a new member of security groups (remote groups' addresses)
    def create(self, ctx: ValidatedToken, *, network_id: str, project_id: str | None = None,
               **attrs: Any) -> Page:
        """Create a port; ``attrs`` are ``create_port_in``'s keyword arguments."""
        project = caller_project(ctx, project_id, "create_port")

        def work(session: Session) -> Page:
            network = NETWORK.get_visible(session, ctx, network_id)
            if not (ctx.is_admin or network.shared or network.project_id == ctx.project_id):
                raise policy_error("create_port")
            self._attribute_policy(ctx, network, "create_port", attrs)
            check_quota(session, project, "port")
            port = create_port_in(
                session, network_id=network.id, project_id=project,
                base_mac=self.config.base_mac,
                max_address_pairs=self.config.max_allowed_address_pairs,
                is_admin=ctx.is_admin, **attrs)
            return base.page_of(session, PORT, [port])
        return retrying(self.db, work)

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        """A page of ports as plain rows (lists of thousands of ports are common; the
        ORM would triple the cost), with their addresses etc. as extras."""
        with self.db.session() as session:
            stmt = select(*Port.__table__.columns)
            condition = visible_ports(ctx)
            if condition is not None:
                stmt = stmt.where(condition)
            page = base.list_page(session, PORT, stmt, query, ctx, rows=True)
            return base.annotate(session, PORT, page)

    def get(self, ctx: ValidatedToken, port_id: str) -> Page:
        with self.db.session() as session:
            port = PORT.get_visible(session, ctx, port_id)
            return base.page_of(session, PORT, [port])

    @changes_hosts  # groups, port security, address pairs, addresses: the firewalls
    def update(self, ctx: ValidatedToken, port_id: str, changes: dict[str, Any]) -> Page:
        """Apply ``changes`` (``create_port_in``'s argument names; ``binding`` a dict)."""
        def work(session: Session) -> Page:
            port = PORT.get_visible(session, ctx, port_id)
            network = session.get(Network, port.network_id)
            assert network is not None
            if not owns(ctx, port.project_id):
                raise policy_error("update_port")
            self._attribute_policy(ctx, network, "update_port", changes)
            self._update(session, port, network, changes, ctx.is_admin)
            return base.page_of(session, PORT, [port])
        return retrying(self.db, work)

    def _update(self, session: Session, port: Port, network: Network,
                changes: dict[str, Any], is_admin: bool) -> None:
        port.updated_at = utcnow()
        session.flush()  # the write lock first (SQLite), before addresses are chosen
        port_security = changes.get("port_security_enabled")
        if port_security is None:
            port_security = port.port_security_enabled
        groups_given = "security_group_ids" in changes
        current_groups = port_security_group_ids(session, [port.id])[port.id]
        groups = (changes["security_group_ids"] or []) if groups_given else current_groups
        if "allowed_address_pairs" in changes:
            pairs = check_address_pairs(changes["allowed_address_pairs"] or [],
                                        self.config.max_allowed_address_pairs)
        else:
            pairs = [(p.ip_address, p.mac_address) for p in port.allowed_address_pairs]
        if not port_security and groups and not groups_given:
            raise Conflict("Port has security group associated. Cannot disable port "
                           "security or ip address until security group is removed",
                           fault="PortSecurityPortHasSecurityGroup")
        _security_checks(port_security, groups, pairs)
        for attr in ("name", "description", "admin_state_up", "device_id", "device_owner"):
            if attr in changes:
                if changes[attr] is None:
                    raise BadRequest(f"Invalid input for {attr}. Reason: None is not "
                                     "allowed.")
                setattr(port, attr, changes[attr])
        port.port_security_enabled = port_security
        if changes.get("mac_address") is not None:
            self._change_mac(session, port, network, check_mac(changes["mac_address"]))
        if "fixed_ips" in changes:
            self._change_fixed_ips(session, port, network, changes["fixed_ips"] or [])
        if "allowed_address_pairs" in changes:
            _set_address_pairs(port, pairs)
        if "extra_dhcp_opts" in changes:
            _merge_dhcp_opts(port, check_dhcp_opts(changes["extra_dhcp_opts"] or [],
                                                   creating=False))
        if "binding" in changes:
            _apply_binding(port, changes["binding"])
        if groups_given:
            bind_port_security_groups(session, port, groups, is_admin=is_admin)
        session.flush()

    def _change_mac(self, session: Session, port: Port, network: Network, mac: str) -> None:
        if mac == port.mac_address:
            return
        if port.binding_host_id:
            raise Conflict(f"Unable to complete operation on port {port.id}, port is already "
                           f"bound, port type: {port.binding_vif_type}, old_mac "
                           f"{port.mac_address}, new_mac {mac}.", fault="PortBound")
        if mac_in_use(session, network.id, mac):
            raise Conflict(f"Unable to complete operation for network {network.id}. The mac "
                           f"address {mac} is in use.", fault="MacAddressInUse")
        port.mac_address = mac
        auto = [a for a in port.fixed_ips
                if ipam.is_auto_address(_subnet(network, a.subnet_id))]
        for allocation in auto:
            port.fixed_ips.remove(allocation)
        session.flush()
        for allocation in auto:
            ipam.allocate_ip(session, _subnet(network, allocation.subnet_id), port=port)

    def _change_fixed_ips(self, session: Session, port: Port, network: Network,
                          fixed_ips: Sequence[dict[str, Any]]) -> None:
        """Replace the port's addresses by the requested ones, keeping those that stay
        (and its automatic IPv6 addresses)."""
        router_port = port.device_owner in ROUTER_INTERFACE_OWNERS
        requests = resolve_fixed_ips(network, fixed_ips, router_port, session,
                                     port.mac_address)
        keep: list[IPAllocation] = []
        wanted: list[AddressRequest] = []
        for request in requests:
            match = next((a for a in port.fixed_ips if a not in keep
                          and a.subnet_id == request.subnet.id
                          and request.ip_address in (None, a.ip_address)), None)
            if match is not None:
                keep.append(match)
            else:
                wanted.append(request)
        for allocation in list(port.fixed_ips):
            subnet = _subnet(network, allocation.subnet_id)
            if allocation not in keep and not (ipam.is_auto_address(subnet)
                                               and not router_port):
                port.fixed_ips.remove(allocation)
        session.flush()
        for request in sorted(wanted, key=lambda r: r.ip_address is None):
            ipam.allocate_ip(session, request.subnet, request.ip_address, port=port)

    @changes_hosts
    def delete(self, ctx: ValidatedToken, port_id: str) -> None:
        with self.db.session() as session:
            port = PORT.get_visible(session, ctx, port_id)
            network = session.get(Network, port.network_id)
            if not (owns(ctx, port.project_id)
                    or (network is not None and owns(ctx, network.project_id))):
                raise policy_error("delete_port")
            if port.device_owner in L3_OWNERS:
                raise Conflict(f"Port {port.id} has owner {port.device_owner} and therefore "
                               "cannot be deleted directly via the port API.",
                               fault="L3PortInUse")
            delete_port_in(session, port.id)


def _subnet(network: Network, subnet_id: str) -> Subnet:
    return next(s for s in network.subnets if s.id == subnet_id)

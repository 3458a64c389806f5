"""Security groups and their rules; which groups a port is in.

Every project has one group named ``default`` (made the first time it is needed) with
Neutron's default rules: all egress, and ingress from members of the same group, for
IPv4 and IPv6. New groups start with the two egress rules. Rules are only a model
here; the host datapath turns them into nftables chains.

Errors carry Neutron's type names (``SecurityGroupInUse``, ``SecurityGroupRuleExists``,
``SecurityGroupCannotRemoveDefault``, ...).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, false, func, or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, InvalidField
from onestack.db.models.base import utcnow
from onestack.db.models.network_l3 import (
    DefaultSecurityGroup,
    SecurityGroup,
    SecurityGroupPortBinding,
    SecurityGroupRule,
)
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    annotate,
    caller_project,
    changes_hosts,
    forget_tags,
    list_page,
    new_id,
    own_rows,
    page_of,
    register,
    require_owner,
    retrying,
    set_tags,
)
from onestack.services.network.quotas import check_quota

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"

#: Protocol names Neutron accepts, with their IP protocol numbers.
PROTOCOLS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
#: Protocols whose rules may carry a port range.
PORT_PROTOCOLS = {6, 17, 33, 132, 136}
ICMP_PROTOCOLS = {1, 58}
#: Names that only make sense for IPv6.
IPV6_ONLY = {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts",
             "ipv6-route"}
DIRECTIONS = ("ingress", "egress")
ETHERTYPES = ("IPv4", "IPv6")


def touch(obj: Any) -> None:
    """Mark a resource changed though none of its columns did (a rule was added to a
    group): the UPDATE bumps its revision number."""
    obj.updated_at = utcnow()


def _visible_rules(ctx: ValidatedToken) -> ColumnElement[bool] | None:
    """A project sees its rules and every rule of its groups (whoever made it)."""
    if ctx.is_admin:
        return None
    if not ctx.project_id:
        return false()
    return or_(SecurityGroupRule.project_id == ctx.project_id,
               SecurityGroupRule.security_group_id.in_(
                   select(SecurityGroup.id).where(SecurityGroup.project_id == ctx.project_id)))


def _ethertype_filter(values: list[str]) -> ColumnElement[bool]:
    """``ethertype=ipv4`` matches as ``IPv4`` (the CLI sends it lower-cased)."""
    names = {e.lower(): e for e in ETHERTYPES}
    return SecurityGroupRule.ethertype.in_([names.get(v.lower(), v) for v in values])


def _group_extras(session: Session, groups: list[Any]) -> dict[str, dict[str, Any]]:
    rules = rules_by_group(session, [g.id for g in groups])
    return {gid: {"security_group_rules": group_rules} for gid, group_rules in rules.items()}


GROUPS = register(Kind(
    member="security_group", collection="security-groups", model=SecurityGroup,
    visible=own_rows(SecurityGroup), columns={"tenant_id": SecurityGroup.project_id},
    label="Security group", fault="SecurityGroupNotFound", extras=_group_extras))

RULES = register(Kind(
    member="security_group_rule", collection="security-group-rules",
    model=SecurityGroupRule, visible=_visible_rules,
    columns={"tenant_id": SecurityGroupRule.project_id},
    filters={"ethertype": _ethertype_filter},
    label="Security group rule", fault="SecurityGroupRuleNotFound", taggable=False))


def not_found(group_id: str) -> Exception:
    return GROUPS.not_found(group_id)


# -- the default group --------------------------------------------------------------


def _add_rule(session: Session, group: SecurityGroup, direction: str, ethertype: str,
              remote_group_id: str | None = None) -> SecurityGroupRule:
    rule = SecurityGroupRule(
        id=new_id(), project_id=group.project_id, security_group_id=group.id,
        direction=direction, ethertype=ethertype, protocol=None, port_range_min=None,
        port_range_max=None, remote_ip_prefix=None, remote_group_id=remote_group_id,
        description="")
    session.add(rule)
    return rule


def default_group_id(session: Session, project_id: str) -> str | None:
    return session.scalar(select(DefaultSecurityGroup.security_group_id)
                          .where(DefaultSecurityGroup.project_id == project_id))


def ensure_default_security_group(session: Session, project_id: str) -> SecurityGroup:
    """The project's ``default`` group, made (with Neutron's default rules) if missing.
    Default groups are not held to the security group quota, as in Neutron."""
    group_id = default_group_id(session, project_id)
    if group_id is not None:
        group = session.get(SecurityGroup, group_id)
        if group is not None:
            return group
    group = SecurityGroup(id=new_id(), project_id=project_id, name=DEFAULT_NAME,
                          description=DEFAULT_DESCRIPTION, stateful=True)
    session.add(group)
    session.flush()
    session.add(DefaultSecurityGroup(project_id=project_id, security_group_id=group.id))
    for ethertype in ETHERTYPES:
        _add_rule(session, group, "egress", ethertype)
        _add_rule(session, group, "ingress", ethertype, remote_group_id=group.id)
    session.flush()
    return group


# -- ports ---------------------------------------------------------------------------


def bind_port_security_groups(session: Session, port: Any,
                              security_group_ids: list[str] | None, *,
                              is_admin: bool = False) -> list[str]:
    """Put ``port`` in these groups (replacing its groups); returns the ids bound.

    ``None`` means the project's ``default`` group, except for ports the cloud owns
    (``device_owner`` ``network:*``: router, DHCP, floating IP ports), which get none.
    Each group must be the port's project's, unless the caller is an admin.
    """
    project_id = port.project_id or ""
    if security_group_ids is None:
        if (port.device_owner or "").startswith("network:") or not project_id:
            ids: list[str] = []
        else:
            ids = [ensure_default_security_group(session, project_id).id]
    else:
        ids = list(dict.fromkeys(security_group_ids))
        for value in ids:
            if not isinstance(value, str):
                raise InvalidField("port/security_groups", f"{value!r} is not a string")
        if ids:
            found = {g.id: g for g in session.scalars(
                select(SecurityGroup).where(SecurityGroup.id.in_(ids)))}
            missing = [i for i in ids if i not in found
                       or not (is_admin or not project_id
                               or found[i].project_id == project_id)]
            if missing:
                raise not_found(", ".join(missing))
    session.execute(delete(SecurityGroupPortBinding)
                    .where(SecurityGroupPortBinding.port_id == port.id))
    for group_id in ids:
        session.add(SecurityGroupPortBinding(port_id=port.id, security_group_id=group_id))
    session.flush()
    return ids


def port_security_group_ids(session: Session, port_ids: Iterable[str]
                            ) -> dict[str, list[str]]:
    """``{port_id: [security group ids]}`` (every given port present, maybe ``[]``)."""
    wanted = list(port_ids)
    out: dict[str, list[str]] = {pid: [] for pid in wanted}
    for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
        chunk = wanted[start:start + 500]
        rows = session.execute(
            select(SecurityGroupPortBinding.port_id, SecurityGroupPortBinding.security_group_id)
            .where(SecurityGroupPortBinding.port_id.in_(chunk))
            .order_by(SecurityGroupPortBinding.security_group_id))
        for port_id, group_id in rows:
            out[port_id].append(group_id)
    return out


# -- rules ---------------------------------------------------------------------------


@dataclass
class RuleSpec:
    """A rule as requested, before validation."""

    security_group_id: str
    direction: Any = None
    ethertype: Any = "IPv4"
    protocol: Any = None
    port_range_min: Any = None
    port_range_max: Any = None
    remote_ip_prefix: Any = None
    remote_group_id: Any = None
    description: str = ""


def normalize_protocol(value: Any) -> str | None:
    """A protocol as stored: a lower-case name, a number 0-255 as text, or None (any)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f"Security group rule protocol {value!r} not supported.")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        if 0 <= number <= 255:
            return str(number)
    elif isinstance(value, str):
        name = value.strip().lower()
        if name == "any":
            return None
        if name in PROTOCOLS:
            return name
    raise BadRequest(f"Security group rule protocol {value!r} not supported. Only protocol "
                     f"values {sorted(PROTOCOLS)} and integer representations [0 to 255] "
                     "are supported.")


def protocol_number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    return int(protocol) if protocol.isdigit() else PROTOCOLS[protocol]


def _port_value(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise InvalidField(f"security_group_rule/{field}",
                           f"invalid value for port {value!r}")
    return value


def _check_ports(protocol: str | None, low: int | None, high: int | None) -> None:
    if low is None and high is None:
        return
    number = protocol_number(protocol)
    if number is None:
        raise BadRequest("Must also specify protocol if port range is given.",
                         fault="SecurityGroupProtocolRequiredWithPorts")
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise BadRequest("Invalid value for port 0", fault="SecurityGroupInvalidPortValue")
        if low is None or high is None or low > high:
            raise BadRequest("For TCP/UDP protocols, port_range_min must be <= "
                             "port_range_max", fault="SecurityGroupInvalidPortRange")
    elif number in ICMP_PROTOCOLS:
        for value, field, attr in ((low, "type", "port_range_min"),
                                   (high, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise BadRequest(f"Invalid value for ICMP {field} ({attr}) {value}. It must "
                                 "be 0 to 255.", fault="SecurityGroupInvalidIcmpValue")
        if low is None:
            raise BadRequest(f"ICMP code (port-range-max) {high} is provided but ICMP type "
                             "(port-range-min) is missing.",
                             fault="SecurityGroupMissingIcmpType")
    else:
        raise BadRequest(f"Invalid protocol {protocol} for port range, only supported for "
                         "TCP, UDP, UDPLITE, SCTP and DCCP.",
                         fault="SecurityGroupInvalidProtocolForPortRange")


def validate_rule(spec: RuleSpec) -> dict[str, Any]:
    """The columns of a valid rule (without ids); a 400 naming what is wrong."""
    if spec.direction not in DIRECTIONS:
        raise InvalidField("security_group_rule/direction",
                           f"{spec.direction!r} is not one of {list(DIRECTIONS)}")
    ethertype = spec.ethertype if spec.ethertype is not None else "IPv4"
    if isinstance(ethertype, str):
        ethertype = {e.lower(): e for e in ETHERTYPES}.get(ethertype.lower(), ethertype)
    if ethertype not in ETHERTYPES:
        raise InvalidField("security_group_rule/ethertype",
                           f"{spec.ethertype!r} is not one of {list(ETHERTYPES)}")
    protocol = normalize_protocol(spec.protocol)
    low = _port_value(spec.port_range_min, "port_range_min")
    high = _port_value(spec.port_range_max, "port_range_max")
    if spec.remote_ip_prefix is not None and spec.remote_group_id is not None:
        raise BadRequest("Only remote_ip_prefix or remote_group_id may be provided.",
                         fault="SecurityGroupRemoteGroupAndRemoteIpPrefix")
    _check_ports(protocol, low, high)
    prefix = None
    if spec.remote_ip_prefix is not None:
        if not isinstance(spec.remote_ip_prefix, str):
            raise InvalidField("security_group_rule/remote_ip_prefix",
                               f"{spec.remote_ip_prefix!r} is not a string")
        try:
            network = ipaddress.ip_network(spec.remote_ip_prefix.strip(), strict=False)
        except ValueError:
            raise BadRequest(f"Invalid CIDR {spec.remote_ip_prefix} given as IP prefix.",
                             fault="InvalidCIDR") from None
        if f"IPv{network.version}" != ethertype:
            raise BadRequest(f"Conflicting value ethertype {ethertype} for CIDR "
                             f"{spec.remote_ip_prefix}",
                             fault="SecurityGroupRuleParameterConflict")
        # kept as given, host bits included, with a mask added when there is none
        # (as Neutron keeps it); the datapath and the duplicate check use the network
        prefix = str(ipaddress.ip_interface(spec.remote_ip_prefix.strip()))
    if ethertype == "IPv4" and protocol in IPV6_ONLY:
        raise BadRequest(f"Invalid ethertype {ethertype} for protocol {protocol}.",
                         fault="SecurityGroupEthertypeConflictWithProtocol")
    if spec.remote_group_id is not None and not isinstance(spec.remote_group_id, str):
        raise InvalidField("security_group_rule/remote_group_id",
                           f"{spec.remote_group_id!r} is not a string")
    return {"direction": spec.direction, "ethertype": ethertype, "protocol": protocol,
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": spec.remote_group_id}


def _rule_key(rule: dict[str, Any] | SecurityGroupRule) -> tuple[Any, ...]:
    """What makes two rules the same rule (any-address prefixes count as no prefix,
    protocol names as their numbers)."""
    get = rule.get if isinstance(rule, dict) else lambda k: getattr(rule, k)
    prefix = get("remote_ip_prefix")
    if prefix is not None:
        prefix = str(ipaddress.ip_network(prefix, strict=False))
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (get("direction"), get("ethertype"), protocol_number(get("protocol")),
            get("port_range_min"), get("port_range_max"), prefix, get("remote_group_id"))




# -- the service ---------------------------------------------------------------------


class SecurityGroups:
    """Security groups and rules for the API; each call is one transaction."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    # groups

    def create_group(self, ctx: ValidatedToken, *, project_id: str | None, name: str,
                     description: str, stateful: bool, tags: list[str] | None = None
                     ) -> Page:
        if name.lower() == DEFAULT_NAME:
            raise Conflict("Default security group already exists.",
                           fault="SecurityGroupDefaultAlreadyExists")

        def work(session: Session) -> Page:
            owner = caller_project(ctx, project_id, "create_security_group")
            ensure_default_security_group(session, owner)
            check_quota(session, owner, "security_group")
            check_quota(session, owner, "security_group_rule", len(ETHERTYPES))
            group = SecurityGroup(id=new_id(), project_id=owner, name=name,
                                  description=description, stateful=stateful)
            session.add(group)
            session.flush()
            for ethertype in ETHERTYPES:
                _add_rule(session, group, "egress", ethertype)
            if tags:
                set_tags(session, GROUPS.collection, group.id, tags)
            session.flush()
            return page_of(session, GROUPS, [group])
        return retrying(self.db, work)

    def list_groups(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        """One page of the groups the caller sees (its ``default`` group made first; two
        requests racing to make it both succeed, the loser retried)."""

        def work(session: Session) -> Page:
            if ctx.project_id:
                ensure_default_security_group(session, ctx.project_id)
            stmt = select(SecurityGroup)
            condition = GROUPS.visible(ctx)
            if condition is not None:
                stmt = stmt.where(condition)
            return annotate(session, GROUPS, list_page(session, GROUPS, stmt, query, ctx))
        return retrying(self.db, work)

    def get_group(self, ctx: ValidatedToken, group_id: str) -> Page:
        with self.db.session() as session:
            group = GROUPS.get_visible(session, ctx, group_id)
            return page_of(session, GROUPS, [group])

    def update_group(self, ctx: ValidatedToken, group_id: str, changes: dict[str, Any]
                     ) -> Page:
        with self.db.session() as session:
            group = GROUPS.get_visible(session, ctx, group_id)
            require_owner(ctx, group.project_id, "update_security_group")
            is_default = default_group_id(session, group.project_id) == group.id
            if "name" in changes and changes["name"] != group.name:
                if is_default:
                    raise Conflict("Updating default security group not allowed.",
                                   fault="SecurityGroupCannotUpdateDefault")
                if str(changes["name"]).lower() == DEFAULT_NAME:
                    raise Conflict("Default security group already exists.",
                                   fault="SecurityGroupDefaultAlreadyExists")
            if "stateful" in changes and changes["stateful"] != group.stateful \
                    and group_in_use(session, group.id):
                raise Conflict(f"Security Group {group.id} in use, its stateful attribute "
                               "cannot change.", fault="SecurityGroupInUse")
            for key in ("name", "description", "stateful"):
                if key in changes:
                    setattr(group, key, changes[key])
            session.flush()
            return page_of(session, GROUPS, [group])

    def delete_group(self, ctx: ValidatedToken, group_id: str) -> None:
        """Delete an unused group. Only admins may delete a ``default`` group (as when
        cleaning up a project); it comes back the next time it is needed."""
        with self.db.session() as session:
            group = GROUPS.get_visible(session, ctx, group_id)
            require_owner(ctx, group.project_id, "delete_security_group")
            if default_group_id(session, group.project_id) == group.id and not ctx.is_admin:
                raise Conflict("Insufficient rights for removing default security group.",
                               fault="SecurityGroupCannotRemoveDefault")
            if group_in_use(session, group.id):
                raise Conflict(f"Security Group {group.id} in use.",
                               fault="SecurityGroupInUse")
            forget_tags(session, GROUPS.collection, group.id)
            session.delete(group)

    # rules

    @changes_hosts  # the hosts' firewalls follow at once
    def create_rule(self, ctx: ValidatedToken, spec: RuleSpec,
                    project_id: str | None = None) -> Page:
        columns = validate_rule(spec)
        with self.db.session() as session:
            group = GROUPS.get_visible(session, ctx, spec.security_group_id)
            owner = caller_project(ctx, project_id or group.project_id,
                                   "create_security_group_rule")
            if columns["remote_group_id"] is not None:
                remote = GROUPS.get_visible(session, ctx, columns["remote_group_id"])
                if not ctx.is_admin and remote.project_id != group.project_id:
                    raise not_found(remote.id)
            key = _rule_key(columns)
            existing = session.scalars(select(SecurityGroupRule).where(
                SecurityGroupRule.security_group_id == group.id,
                SecurityGroupRule.direction == columns["direction"],
                SecurityGroupRule.ethertype == columns["ethertype"]))
            for other in existing:
                if _rule_key(other) == key:
                    raise Conflict("Security group rule already exists. Rule id is "
                                   f"{other.id}.", fault="SecurityGroupRuleExists")
            check_quota(session, owner, "security_group_rule")
            rule = SecurityGroupRule(id=new_id(), project_id=owner,
                                     security_group_id=group.id,
                                     description=spec.description, **columns)
            session.add(rule)
            touch(group)
            session.flush()
            return page_of(session, RULES, [rule])

    def list_rules(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            stmt = select(SecurityGroupRule)
            condition = RULES.visible(ctx)
            if condition is not None:
                stmt = stmt.where(condition)
            return annotate(session, RULES, list_page(session, RULES, stmt, query, ctx))

    def get_rule(self, ctx: ValidatedToken, rule_id: str) -> Page:
        with self.db.session() as session:
            return page_of(session, RULES, [RULES.get_visible(session, ctx, rule_id)])

    @changes_hosts
    def delete_rule(self, ctx: ValidatedToken, rule_id: str) -> None:
        with self.db.session() as session:
            rule = RULES.get_visible(session, ctx, rule_id)
            require_owner(ctx, rule.project_id, "delete_security_group_rule")
            group = session.get(SecurityGroup, rule.security_group_id)
            session.delete(rule)
            if group is not None:
                touch(group)


def group_in_use(session: Session, group_id: str) -> bool:
    return session.scalar(select(func.count()).select_from(SecurityGroupPortBinding)
                          .where(SecurityGroupPortBinding.security_group_id == group_id)) != 0


def rules_by_group(session: Session, group_ids: list[str]
                   ) -> dict[str, list[SecurityGroupRule]]:
    out: dict[str, list[SecurityGroupRule]] = {gid: [] for gid in group_ids}
    for start in range(0, len(group_ids), 500):
        chunk = group_ids[start:start + 500]
        stmt = (select(SecurityGroupRule)
                .where(SecurityGroupRule.security_group_id.in_(chunk))
                .order_by(SecurityGroupRule.created_at, SecurityGroupRule.id))
        for rule in session.scalars(stmt):
            out[rule.security_group_id].append(rule)
    return out

"""Subnet pools (Neutron's ``subnet_allocation`` and ``default-subnetpools``): address
space from which subnets get their CIDR, so users need not pick prefixes.

A pool holds prefixes of one IP version (merged into the fewest CIDRs) and three prefix
lengths: subnets taken from it are no shorter than ``min_prefixlen`` and no longer than
``max_prefixlen``, ``default_prefixlen`` when the request names none. A subnet asks with
``subnetpool_id`` (or ``use_default_subnetpool``, the pool marked ``is_default`` for its
IP version: at most one per version) and either a ``cidr`` inside the pool or a
``prefixlen``: the lowest free aligned block of that size is taken (``allocate``).
Pools are visible to their project, and to everyone when ``shared``; only admins make
shared or default pools. ``default_quota`` bounds what one project takes from the pool
(IPv4: addresses, IPv6: /64s). Prefixes can be added, never removed; a pool with subnets
cannot be deleted.

Errors as Neutron's: bad prefix lengths ``IllegalSubnetPoolPrefixBounds``, mixed versions
``PrefixVersionMismatch``, shrinking ``IllegalSubnetPoolPrefixUpdate`` (400); an
in-use pool ``SubnetPoolInUse`` (409); prefix lengths out of the pool's bounds
``MinPrefixSubnetAllocationError``/``MaxPrefixSubnetAllocationError`` (400). Neutron
answers an exhausted pool or a taken CIDR with a bare ``SubnetAllocationError`` (a 500);
here it is a 409 with that fault name, and ``SubnetPoolQuotaExceeded`` a 409 as well.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import BadRequest, Conflict
from onestack.db.models import Subnet, SubnetPool
from onestack.services.identity.context import ValidatedToken
from onestack.services.network import base
from onestack.services.network.base import (
    Kind,
    ListQuery,
    Page,
    caller_project,
    new_id,
    owns,
    policy_error,
    register,
    retrying,
)

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Neutron's defaults for the prefix length bounds, by IP version.
MIN_PREFIXLEN = {4: 8, 6: 64}
MAX_PREFIXLEN = {4: 32, 6: 128}


def visible_pools(ctx: ValidatedToken) -> ColumnElement[bool] | None:
    """Own pools and shared ones."""
    if ctx.is_admin:
        return None
    mine = SubnetPool.project_id == ctx.project_id if ctx.project_id else false()
    return or_(mine, SubnetPool.shared)


SUBNETPOOL = register(Kind(
    member="subnetpool", collection="subnetpools", model=SubnetPool, visible=visible_pools,
    columns={"tenant_id": SubnetPool.project_id}, hidden=frozenset({"prefixes"}),
    label="Subnet pool", fault="SubnetPoolNotFound",
))


# -- checks ------------------------------------------------------------------------------


def bad_prefix_bounds(kind: str, value: int, base_kind: str, base_value: int) -> BadRequest:
    return BadRequest(f"Illegal prefix bounds: {kind}={value}, {base_kind}={base_value}.",
                      fault="IllegalSubnetPoolPrefixBounds")


def parse_prefixes(values: Any) -> list[IPNetwork]:
    """The prefixes as networks of one IP version (400 otherwise), merged."""
    if not isinstance(values, list) or not values:
        raise BadRequest("Invalid input for prefixes. Reason: a subnet pool needs a list of "
                         "at least one prefix.", fault="InvalidInput")
    nets: list[IPNetwork] = []
    for value in values:
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input for prefixes. Reason: '{value}' is not a valid "
                             "IP subnet.", fault="InvalidInput")
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise BadRequest(f"Invalid input for prefixes. Reason: '{value}' is not a valid "
                             "IP subnet.", fault="InvalidInput") from None
    if len({n.version for n in nets}) > 1:
        raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                         fault="PrefixVersionMismatch")
    for net in nets:
        if net.prefixlen == 0:
            raise BadRequest(f"Prefix '{net}' not supported in IPv{net.version} pool.",
                             fault="UnsupportedMinSubnetPoolPrefix")
    return list(ipaddress.collapse_addresses(nets))  # type: ignore[type-var]


def check_bounds(version: int, prefixes: list[IPNetwork], min_len: int, max_len: int,
                 default_len: int) -> None:
    top = MAX_PREFIXLEN[version]
    for name, value in (("min_prefixlen", min_len), ("max_prefixlen", max_len),
                        ("default_prefixlen", default_len)):
        if not 0 <= value <= top:
            raise bad_prefix_bounds(name, value, "max_allowed", top)
    if min_len > max_len:
        raise bad_prefix_bounds("min_prefixlen", min_len, "max_prefixlen", max_len)
    if default_len < min_len:
        raise bad_prefix_bounds("default_prefixlen", default_len, "min_prefixlen", min_len)
    if default_len > max_len:
        raise bad_prefix_bounds("default_prefixlen", default_len, "max_prefixlen", max_len)


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer.",
                         fault="InvalidInput")
    return value


def _quota_units(net: IPNetwork) -> int:
    """What a subnet costs against ``default_quota``: addresses (IPv4) or /64s (IPv6)."""
    if net.version == 4:
        return net.num_addresses
    return 1 << max(0, 64 - net.prefixlen)


def _check_default_unique(session: Session, version: int, pool_id: str | None) -> None:
    other = session.scalar(select(SubnetPool.id).where(
        SubnetPool.is_default, SubnetPool.ip_version == version,
        SubnetPool.id != (pool_id or "")).limit(1))
    if other is not None:
        raise BadRequest("Invalid input for operation: A default subnetpool for this IP "
                         "family has already been set. Only one default may exist per IP "
                         "family.", fault="InvalidInput")


# -- allocation ----------------------------------------------------------------------------


def allocation_error(reason: str) -> Conflict:
    return Conflict(f"Failed to allocate subnet: {reason}.", fault="SubnetAllocationError")


def _taken(session: Session, pool: SubnetPool) -> list[IPNetwork]:
    return sorted((ipaddress.ip_network(c) for c in session.scalars(
        select(Subnet.cidr).where(Subnet.subnetpool_id == pool.id))),
        key=lambda n: (int(n.network_address), n.prefixlen))


def first_free(prefixes: list[IPNetwork], taken: list[IPNetwork], prefixlen: int
               ) -> IPNetwork | None:
    """The lowest block of length ``prefixlen`` inside ``prefixes`` that meets none of
    ``taken`` (sorted by start): each taken block the candidate meets moves it past that
    block, so the cost grows with the subnets allocated, not with the pool's size."""
    for prefix in sorted(prefixes, key=lambda n: int(n.network_address)):
        if prefixlen < prefix.prefixlen:
            continue
        size = 1 << (prefix.max_prefixlen - prefixlen)
        start, end = int(prefix.network_address), int(prefix.broadcast_address)
        candidate = start
        for other in taken:
            lo, hi = int(other.network_address), int(other.broadcast_address)
            if hi < candidate:
                continue
            if lo > candidate + size - 1:
                break
            candidate = -(-(hi + 1) // size) * size  # the next aligned block after it
            if candidate + size - 1 > end:
                break
        if candidate + size - 1 <= end:
            return ipaddress.ip_network((candidate, prefixlen))
    return None


def allocate(session: Session, pool: SubnetPool, project_id: str, *, cidr: str | None,
             prefixlen: int | None, ip_version: int) -> str:
    """The CIDR a new subnet of ``project_id`` gets from ``pool``: ``cidr`` if it lies in
    the pool and is free, else the first free block of ``prefixlen`` (the pool's default
    when None). Nothing is recorded: the subnet row with ``subnetpool_id`` is."""
    if ip_version != pool.ip_version:
        raise BadRequest(f"Cannot allocate IPv{ip_version} subnet from IPv{pool.ip_version} "
                         "subnet pool", fault="BadRequest")
    prefixes = [ipaddress.ip_network(p) for p in pool.prefixes]
    wanted: IPNetwork | None = None
    if cidr is not None:
        try:
            wanted = ipaddress.ip_network(cidr)
        except ValueError:
            raise BadRequest(f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP "
                             "subnet.", fault="InvalidInput") from None
        if prefixlen is not None and prefixlen != wanted.prefixlen:
            raise BadRequest("Invalid input for operation: cidr and prefixlen must not be "
                             "supplied together.", fault="InvalidInput")
        length = wanted.prefixlen
    else:
        length = pool.default_prefixlen if prefixlen is None else _as_int(prefixlen,
                                                                           "prefixlen")
    if length < pool.min_prefixlen:
        raise BadRequest(f"Unable to allocate subnet with prefix length {length}, minimum "
                         f"allowed prefix is {pool.min_prefixlen}.",
                         fault="MinPrefixSubnetAllocationError")
    if length > pool.max_prefixlen:
        raise BadRequest(f"Unable to allocate subnet with prefix length {length}, maximum "
                         f"allowed prefix is {pool.max_prefixlen}.",
                         fault="MaxPrefixSubnetAllocationError")
    taken = _taken(session, pool)
    if wanted is not None:
        if wanted.version != pool.ip_version or not any(
                wanted.subnet_of(p) for p in prefixes):  # type: ignore[arg-type]
            raise allocation_error("Cannot allocate requested subnet from the available "
                                   "set of prefixes")
        if any(wanted.overlaps(t) for t in taken):
            raise allocation_error("Cannot allocate requested subnet from the available "
                                   "set of prefixes")
        chosen = wanted
    else:
        found = first_free(prefixes, taken, length)
        if found is None:
            raise allocation_error(f"Insufficient prefix space to allocate subnet size "
                                   f"/{length}")
        chosen = found
    if pool.default_quota is not None and project_id:
        used = sum(_quota_units(ipaddress.ip_network(c)) for c in session.scalars(
            select(Subnet.cidr).where(Subnet.subnetpool_id == pool.id,
                                      Subnet.project_id == project_id)))
        if used + _quota_units(chosen) > pool.default_quota:
            raise Conflict("Per-tenant subnet pool prefix quota exceeded.",
                           fault="SubnetPoolQuotaExceeded")
    return str(chosen)


def default_pool(session: Session, ip_version: int) -> SubnetPool:
    pool = session.scalar(select(SubnetPool).where(SubnetPool.is_default,
                                                   SubnetPool.ip_version == ip_version))
    if pool is None:
        raise BadRequest(f"No default subnetpool found for IPv{ip_version}",
                         fault="BadRequest")
    return pool


def pool_for_subnet(session: Session, ctx: ValidatedToken | None, *,
                    subnetpool_id: str | None, use_default: bool, ip_version: int
                    ) -> SubnetPool | None:
    """The pool a subnet request names (visible to the caller), or None."""
    if subnetpool_id:
        return SUBNETPOOL.get_visible(session, ctx, subnetpool_id)
    if use_default:
        return default_pool(session, ip_version)
    return None


# -- the service ---------------------------------------------------------------------------


class SubnetPools:
    """Subnet pool lifecycle with Neutron's policy: members make pools in their project;
    ``shared`` and ``is_default`` are the admin's."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    def create(self, ctx: ValidatedToken, *, prefixes: Any, name: str = "",
               description: str = "", default_prefixlen: Any = None,
               min_prefixlen: Any = None, max_prefixlen: Any = None,
               shared: bool = False, is_default: bool = False,
               default_quota: Any = None, address_scope_id: str | None = None,
               project_id: str | None = None, tags: list[str] | None = None) -> Page:
        project = caller_project(ctx, project_id, "create_subnetpool")
        if shared and not ctx.is_admin:
            raise policy_error("create_subnetpool:shared")
        if is_default and not ctx.is_admin:
            raise policy_error("create_subnetpool:is_default")

        def work(session: Session) -> Page:
            pool = self.create_in(
                session, project_id=project, prefixes=prefixes, name=name,
                description=description, default_prefixlen=default_prefixlen,
                min_prefixlen=min_prefixlen, max_prefixlen=max_prefixlen, shared=shared,
                is_default=is_default, default_quota=default_quota,
                address_scope_id=address_scope_id, tags=tags)
            return base.page_of(session, SUBNETPOOL, [pool])
        return retrying(self.db, work)

    def create_in(self, session: Session, *, project_id: str, prefixes: Any,
                  name: str = "", description: str = "", default_prefixlen: Any = None,
                  min_prefixlen: Any = None, max_prefixlen: Any = None,
                  shared: bool = False, is_default: bool = False,
                  default_quota: Any = None, address_scope_id: str | None = None,
                  tags: list[str] | None = None) -> SubnetPool:
        """Create a pool with internal privileges (checks, no policy)."""
        if address_scope_id is not None:
            raise BadRequest("Address scopes are not supported: address_scope_id must be "
                             "null.", fault="InvalidInput")
        nets = parse_prefixes(prefixes)
        version = nets[0].version
        low = MIN_PREFIXLEN[version] if min_prefixlen is None \
            else _as_int(min_prefixlen, "min_prefixlen")
        high = MAX_PREFIXLEN[version] if max_prefixlen is None \
            else _as_int(max_prefixlen, "max_prefixlen")
        default = low if default_prefixlen is None \
            else _as_int(default_prefixlen, "default_prefixlen")
        check_bounds(version, nets, low, high, default)
        quota = None if default_quota is None else _as_int(default_quota, "default_quota")
        if quota is not None and quota < 0:
            raise BadRequest(f"Invalid input for default_quota. Reason: '{quota}' should "
                             "be greater than or equal to 0.", fault="InvalidInput")
        if is_default:
            _check_default_unique(session, version, None)
        pool = SubnetPool(id=new_id(), project_id=project_id, name=name,
                          description=description, ip_version=version,
                          prefixes=[str(n) for n in nets], default_prefixlen=default,
                          min_prefixlen=low, max_prefixlen=high, shared=shared,
                          is_default=is_default, default_quota=quota)
        session.add(pool)
        session.flush()
        if tags:
            base.set_tags(session, SUBNETPOOL.collection, pool.id, tags)
        return pool

    def list(self, ctx: ValidatedToken, query: ListQuery) -> Page:
        with self.db.session() as session:
            return base.list_visible(session, SUBNETPOOL, query, ctx)

    def get(self, ctx: ValidatedToken, pool_id: str) -> Page:
        with self.db.session() as session:
            pool = SUBNETPOOL.get_visible(session, ctx, pool_id)
            return base.page_of(session, SUBNETPOOL, [pool])

    def update(self, ctx: ValidatedToken, pool_id: str, changes: dict[str, Any]) -> Page:
        """name, description, prefixes (only added to), the prefix lengths, is_default
        (admin), default_quota."""
        with self.db.session() as session:
            pool = SUBNETPOOL.get_visible(session, ctx, pool_id)
            if not owns(ctx, pool.project_id):
                raise policy_error("update_subnetpool")
            if "is_default" in changes and not ctx.is_admin:
                raise policy_error("update_subnetpool:is_default")
            if changes.get("address_scope_id") is not None:
                raise BadRequest("Address scopes are not supported: address_scope_id must "
                                 "be null.", fault="InvalidInput")
            nets = [ipaddress.ip_network(p) for p in pool.prefixes]
            if changes.get("prefixes") is not None:
                new = parse_prefixes(changes["prefixes"])
                if new[0].version != pool.ip_version:
                    raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                                     fault="PrefixVersionMismatch")
                for old in nets:
                    if not any(old.subnet_of(n) for n in new):  # type: ignore[arg-type]
                        raise BadRequest(f"Illegal update to prefixes: Existing prefix "
                                         f"{old} is not a subset of the new prefixes.",
                                         fault="IllegalSubnetPoolPrefixUpdate")
                nets = new
            low = pool.min_prefixlen if changes.get("min_prefixlen") is None \
                else _as_int(changes["min_prefixlen"], "min_prefixlen")
            high = pool.max_prefixlen if changes.get("max_prefixlen") is None \
                else _as_int(changes["max_prefixlen"], "max_prefixlen")
            default = pool.default_prefixlen if changes.get("default_prefixlen") is None \
                else _as_int(changes["default_prefixlen"], "default_prefixlen")
            check_bounds(pool.ip_version, nets, low, high, default)
            if changes.get("is_default"):
                _check_default_unique(session, pool.ip_version, pool.id)
            if "default_quota" in changes:
                quota = changes["default_quota"]
                quota = None if quota is None else _as_int(quota, "default_quota")
                if quota is not None and quota < 0:
                    raise BadRequest(f"Invalid input for default_quota. Reason: '{quota}' "
                                     "should be greater than or equal to 0.",
                                     fault="InvalidInput")
                pool.default_quota = quota
            pool.prefixes = [str(n) for n in nets]
            pool.min_prefixlen, pool.max_prefixlen, pool.default_prefixlen = low, high, default
            for attr in ("name", "description", "is_default"):
                if changes.get(attr) is not None:
                    setattr(pool, attr, changes[attr])
            session.flush()
            return base.page_of(session, SUBNETPOOL, [pool])

    def delete(self, ctx: ValidatedToken, pool_id: str) -> None:
        with self.db.session() as session:
            pool = SUBNETPOOL.get_visible(session, ctx, pool_id)
            if not owns(ctx, pool.project_id):
                raise policy_error("delete_subnetpool")
            used = session.scalar(select(Subnet.id).where(
                Subnet.subnetpool_id == pool.id).limit(1))
            if used is not None:
                raise Conflict(f"Unable to complete operation on subnet pool {pool.id}. "
                               "Subnet pool has existing allocations.",
                               fault="SubnetPoolInUse")
            base.forget_tags(session, SUBNETPOOL.collection, pool.id)
            session.delete(pool)

    def bootstrap_default(self, session: Session, project_id: str, prefix: str,
                          name: str, prefixlen: int) -> SubnetPool | None:
        """The shared default pool of the prefix's IP version ``onestack up`` makes
        (idempotent: none is made while a pool of that version is the default). IPv6
        subnets of it are /48 to /64; IPv4 ones from 16 times the default size down to
        a /30."""
        if not prefix:
            return None
        net = ipaddress.ip_network(prefix)
        existing = session.scalar(select(SubnetPool).where(
            SubnetPool.is_default, SubnetPool.ip_version == net.version))
        if existing is not None:
            return None
        if net.version == 6:
            low, high = min(net.prefixlen + 15, prefixlen), max(prefixlen, 64)
        else:
            low, high = max(net.prefixlen, prefixlen - 4), max(prefixlen, 30)
        return self.create_in(session, project_id=project_id, prefixes=[str(net)],
                              name=name, min_prefixlen=low, max_prefixlen=high,
                              default_prefixlen=prefixlen, shared=True, is_default=True)

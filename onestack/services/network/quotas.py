"""Networking quotas: per-project limits on how many of each resource may exist.

Usage is counted from the resource tables themselves (no separate usage ledger to drift
out of step); a limit is a ``network_quotas`` row, else the configured default
(``[network] quota_<resource>``), else Neutron's default. A limit of -1 is unlimited.

``check_quota`` runs in the caller's transaction just before the insert it guards.
Two transactions racing for the last unit can both pass, as in Neutron without
reservations; the overshoot is bounded by the number of concurrent requests.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, InvalidField, NotFound
from onestack.db.models.base import Base
from onestack.db.models.network_l3 import NetworkQuota
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

#: Neutron's defaults, by resource name as the quotas API spells it.
NEUTRON_DEFAULTS: dict[str, int] = {
    "network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
    "security_group": 10, "security_group_rule": 100,
}

#: Resource -> the table whose rows (with that ``project_id``) are its usage.
TABLES: dict[str, str] = {
    "network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
    "floatingip": "floatingips", "security_group": "securitygroups",
    "security_group_rule": "securitygrouprules",
}

RESOURCES = tuple(NEUTRON_DEFAULTS)

_configured: weakref.WeakKeyDictionary[Engine, dict[str, int]] = weakref.WeakKeyDictionary()


class OverQuota(Conflict):
    """409 ``OverQuota``: the project has used its limit for a resource."""

    def __init__(self, resources: list[str]) -> None:
        super().__init__(f"Quota exceeded for resources: {resources}.", fault="OverQuota")


def configured_defaults(config: Any) -> dict[str, int]:
    """The default limits: ``[network] quota_<resource>`` where set, else Neutron's."""
    section = getattr(config, "network", None)
    return {name: int(getattr(section, f"quota_{name}", default))
            for name, default in NEUTRON_DEFAULTS.items()}


def register_defaults(engine: Engine, defaults: Mapping[str, int]) -> None:
    """Make ``defaults`` the default limits for sessions bound to ``engine``."""
    _configured[engine] = dict(defaults)


def default_limits(session: Session) -> dict[str, int]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return dict(_configured.get(engine, NEUTRON_DEFAULTS))


def limits(session: Session, project_id: str) -> dict[str, int]:
    """Every resource's limit for a project."""
    out = default_limits(session)
    rows = session.scalars(select(NetworkQuota).where(NetworkQuota.project_id == project_id))
    for row in rows:
        if row.resource in out:
            out[row.resource] = row.hard_limit
    return out


def usage(session: Session, project_id: str, resource: str) -> int:
    """How many of ``resource`` the project has now (0 before its table exists)."""
    table = Base.metadata.tables.get(TABLES[resource])
    if table is None:
        return 0
    stmt = select(func.count()).select_from(table).where(table.c.project_id == project_id)
    return int(session.scalar(stmt) or 0)


def check_quota(session: Session, project_id: str, resource: str, requested: int = 1) -> None:
    """Raise 409 ``OverQuota`` unless the project may have ``requested`` more of
    ``resource``. Resources owned by no project (``project_id == ""``) are never counted."""
    if resource not in NEUTRON_DEFAULTS:
        raise ValueError(f"unknown quota resource {resource!r}")
    if not project_id or requested <= 0:
        return
    row = session.get(NetworkQuota, (project_id, resource))
    limit = row.hard_limit if row else default_limits(session)[resource]
    if limit < 0:
        return
    if usage(session, project_id, resource) + requested > limit:
        raise OverQuota([resource])


def details(session: Session, project_id: str) -> dict[str, dict[str, int]]:
    """``{resource: {"used", "limit", "reserved"}}`` for a project."""
    lims = limits(session, project_id)
    return {name: {"used": usage(session, project_id, name), "limit": lims[name],
                   "reserved": 0} for name in RESOURCES}


def set_limits(session: Session, project_id: str, changes: Mapping[str, Any],
               check_limit: bool = False) -> dict[str, int]:
    """Set some limits for a project; returns all its limits. With ``check_limit`` a
    limit below current usage is refused (Neutron's ``quota-check-limit``)."""
    for name, value in changes.items():
        if name not in NEUTRON_DEFAULTS:
            raise InvalidField(f"quota/{name}", "is not a known quota resource")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(f"quota/{name}", f"{value!r} is not an integer")
        if value < -1:
            raise InvalidField(f"quota/{name}", f"{value} must be -1 (unlimited) or more")
        if check_limit and value >= 0:
            used = usage(session, project_id, name)
            if value < used:
                raise BadRequest(f"Quota limit {value} for {name} must be equal or greater "
                                 f"than used {used}.", fault="BadRequest")
    for name, value in changes.items():
        row = session.get(NetworkQuota, (project_id, name))
        if row is None:
            session.add(NetworkQuota(project_id=project_id, resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return limits(session, project_id)


def reset_limits(session: Session, project_id: str) -> None:
    """Back to the defaults; a 404 if the project had no limits of its own."""
    result = session.execute(delete(NetworkQuota).where(NetworkQuota.project_id == project_id))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"Quota for tenant {project_id} could not be found.",
                       fault="TenantQuotaNotFound")


def projects_with_limits(session: Session) -> list[str]:
    """Projects that have limits of their own (what ``GET /v2.0/quotas`` lists)."""
    stmt = select(NetworkQuota.project_id).distinct().order_by(NetworkQuota.project_id)
    return list(session.scalars(stmt))


# -- the service ---------------------------------------------------------------------


def admin_required(reason: str) -> Forbidden:
    return Forbidden(f"User does not have admin privileges: {reason}.", fault="AdminRequired")


class Quotas:
    """The quotas API: admins see and set every project's limits; a project sees its
    own (limits, defaults and usage)."""

    def __init__(self, net: Networking) -> None:
        self.net = net
        self.db = net.db

    def _check_reader(self, ctx: ValidatedToken, project_id: str) -> None:
        if not ctx.is_admin and ctx.project_id != project_id:
            raise admin_required("Only admin is authorized to access quotas for another "
                                 "tenant")

    def list(self, ctx: ValidatedToken) -> dict[str, dict[str, int]]:
        """project -> limits, for the projects with limits of their own."""
        if not ctx.is_admin:
            raise admin_required("Only admin can view or configure quota")
        with self.db.session() as session:
            return {p: limits(session, p) for p in projects_with_limits(session)}

    def get(self, ctx: ValidatedToken, project_id: str) -> dict[str, int]:
        self._check_reader(ctx, project_id)
        with self.db.session() as session:
            return limits(session, project_id)

    def defaults(self, ctx: ValidatedToken, project_id: str) -> dict[str, int]:
        self._check_reader(ctx, project_id)
        with self.db.session() as session:
            return default_limits(session)

    def details(self, ctx: ValidatedToken, project_id: str) -> dict[str, dict[str, int]]:
        self._check_reader(ctx, project_id)
        with self.db.session() as session:
            return details(session, project_id)

    def update(self, ctx: ValidatedToken, project_id: str, changes: Mapping[str, Any],
               check_limit: bool = False) -> dict[str, int]:
        if not ctx.is_admin:
            raise admin_required("Only admin can view or configure quota")
        with self.db.session() as session:
            return set_limits(session, project_id, changes, check_limit)

    def reset(self, ctx: ValidatedToken, project_id: str) -> None:
        if not ctx.is_admin:
            raise admin_required("Only admin can view or configure quota")
        with self.db.session() as session:
            reset_limits(session, project_id)

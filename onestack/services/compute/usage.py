"""Simple tenant usage (os-simple-tenant-usage): what each project's servers used in a
time window, in hours and in vCPU-, MiB- and GiB-hours, as Nova computes it.

A server counts from ``launched_at`` (never-launched servers count nothing) until
``terminated_at`` (its delete; ``deleted_at`` when that is missing) or the end of the
window; deleted servers still count for the time they ran inside the window. Servers
are taken in (project, uuid) order, so a page (``limit`` / ``marker``) is stable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select

from onestack.common.errors import BadRequest
from onestack.db.models import Instance, utcnow
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute


@dataclass
class ServerUsage:
    instance_id: str
    name: str
    tenant_id: str
    flavor: str
    hours: float
    memory_mb: int
    local_gb: int
    vcpus: int
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    state: str
    uptime: int


@dataclass
class TenantUsage:
    tenant_id: str
    start: dt.datetime
    stop: dt.datetime
    total_hours: float = 0.0
    total_local_gb_usage: float = 0.0
    total_vcpus_usage: float = 0.0
    total_memory_mb_usage: float = 0.0
    server_usages: list[ServerUsage] = field(default_factory=list)


def hours_for(launched: dt.datetime | None, ended: dt.datetime | None,
              start: dt.datetime, stop: dt.datetime) -> float:
    """Nova's ``_hours_for``: the hours of [launched, ended] inside [start, stop]."""
    if ended is not None and ended < start:
        return 0
    if launched is None or launched > stop:
        return 0
    begin = max(launched, start)
    end = min(stop, ended) if ended is not None else stop
    return (end - begin).total_seconds() / 3600.0


class Usage:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    def report(self, ctx: ValidatedToken, start: dt.datetime, stop: dt.datetime,
               tenant_id: str | None = None, limit: int | None = None,
               marker: str | None = None) -> tuple[list[TenantUsage], list[ServerUsage]]:
        """Usage per project in [start, stop] (``stop`` is capped at now), and the
        servers counted, in page order. All projects need admin; one project needs a
        role on it."""
        if tenant_id is None:
            policy.require_admin(ctx, "os_compute_api:os-simple-tenant-usage:list")
        else:
            policy.require_reader(ctx, "os_compute_api:os-simple-tenant-usage:show",
                                  tenant_id)
        if not start < stop:
            raise BadRequest("Invalid start time. The start time cannot occur after the "
                             "end time.")
        now = utcnow()
        stop = min(stop, now)
        ended = func.coalesce(Instance.terminated_at, Instance.deleted_at)
        stmt = (select(Instance)
                .where(or_(ended.is_(None), ended > start), Instance.launched_at < stop)
                .order_by(Instance.project_id, Instance.uuid))
        if tenant_id is not None:
            stmt = stmt.where(Instance.project_id == tenant_id)
        with self.db.session() as session:
            if marker is not None:
                row = session.get(Instance, marker)
                if row is None:
                    raise BadRequest(f"Marker {marker} could not be found.")
                stmt = stmt.where(or_(
                    Instance.project_id > row.project_id,
                    and_(Instance.project_id == row.project_id, Instance.uuid > row.uuid)))
            if limit:
                stmt = stmt.limit(limit)
            instances = list(session.scalars(stmt))
        tenants: dict[str, TenantUsage] = {}
        servers = []
        for inst in instances:
            end = inst.terminated_at or (inst.deleted_at if inst.deleted else None)
            hours = hours_for(inst.launched_at, end, start, stop)
            state = "terminated" if end is not None else inst.vm_state
            began = inst.launched_at or inst.created_at
            uptime = int(((end if end is not None else now) - began).total_seconds())
            usage = ServerUsage(
                instance_id=inst.uuid, name=inst.display_name, tenant_id=inst.project_id,
                flavor=str((inst.flavor or {}).get("name", "")), hours=hours,
                memory_mb=inst.memory_mb, local_gb=inst.root_gb + inst.ephemeral_gb,
                vcpus=inst.vcpus, started_at=inst.launched_at, ended_at=end, state=state,
                uptime=uptime)
            summary = tenants.setdefault(inst.project_id,
                                         TenantUsage(inst.project_id, start, stop))
            summary.total_hours += hours
            summary.total_local_gb_usage += usage.local_gb * hours
            summary.total_vcpus_usage += usage.vcpus * hours
            summary.total_memory_mb_usage += usage.memory_mb * hours
            summary.server_usages.append(usage)
            servers.append(usage)
        return list(tenants.values()), servers

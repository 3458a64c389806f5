"""Migration records (Nova's ``migrations`` table, ``GET /os-migrations``).

A resize here happens in place (the server stays on its host), and it is recorded as
Nova records one: a ``resize`` migration from and to the server's host, whose
``status`` follows the resize:

    pre-migrating  -> finished (the server is VERIFY_RESIZE) -> confirmed | reverted
                   -> error (the host could not do it, or no host could take it)
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import NotFound
from onestack.db.models import Instance, utcnow
from onestack.db.models.compute_migrations import Migration
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

RESIZE = "resize"
#: Statuses after which a migration is over.
DONE = ("confirmed", "reverted", "error", "failed", "completed", "done", "cancelled")


def start_resize(session: Session, inst: Instance, old_flavor: dict[str, Any],
                 new_flavor: dict[str, Any], status: str = "pre-migrating") -> None:
    """Record a resize of ``inst`` (in place: its host is source and destination)."""
    now = utcnow()
    session.add(Migration(
        uuid=str(uuidlib.uuid4()), instance_uuid=inst.uuid, project_id=inst.project_id,
        user_id=inst.user_id, migration_type=RESIZE, status=status,
        source_compute=inst.host, dest_compute=inst.host, source_node=inst.node,
        dest_node=inst.node, dest_host=None, old_flavor_id=str(old_flavor.get("id")),
        new_flavor_id=str(new_flavor.get("id")), created_at=now, updated_at=None))


def advance(session: Session, instance_uuid: str, status: str) -> None:
    """Move the server's migration in progress (if any) to ``status``."""
    migration = session.scalar(
        select(Migration).where(Migration.instance_uuid == instance_uuid,
                                Migration.status.not_in(DONE))
        .order_by(Migration.created_at.desc(), Migration.id.desc()).limit(1))
    if migration is not None:
        migration.status = status
        migration.updated_at = utcnow()


@dataclass
class MigrationQuery:
    """``GET /os-migrations`` filters (each None: not filtered)."""

    host: str | None = None
    status: str | None = None
    instance_uuid: str | None = None
    source_compute: str | None = None
    migration_type: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    limit: int | None = None
    marker: str | None = None


class Migrations:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    def list(self, ctx: ValidatedToken, query: MigrationQuery) -> list[Migration]:
        """Newest first (created, then id), as Nova lists them; ``marker`` is a
        migration's uuid (404 when there is none)."""
        policy.require_admin(ctx, "os_compute_api:os-migrations:index")
        stmt = select(Migration)
        q = query
        if q.host is not None:
            stmt = stmt.where((Migration.source_compute == q.host)
                              | (Migration.dest_compute == q.host))
        for column, value in ((Migration.status, q.status),
                              (Migration.instance_uuid, q.instance_uuid),
                              (Migration.source_compute, q.source_compute),
                              (Migration.migration_type, q.migration_type),
                              (Migration.user_id, q.user_id),
                              (Migration.project_id, q.project_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        changed = func.coalesce(Migration.updated_at, Migration.created_at)
        if q.changes_since is not None:
            stmt = stmt.where(changed >= q.changes_since)
        if q.changes_before is not None:
            stmt = stmt.where(changed <= q.changes_before)
        stmt = stmt.order_by(Migration.created_at.desc(), Migration.id.desc())
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
        if q.marker is not None:
            ids = [m.uuid for m in rows]
            if q.marker not in ids:
                raise NotFound(f"Marker {q.marker} could not be found.")
            rows = rows[ids.index(q.marker) + 1:]
        return rows[:q.limit] if q.limit is not None else rows

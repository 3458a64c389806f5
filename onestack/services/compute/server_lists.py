"""Which servers a list shows: Nova's filters, sort keys and paging (``ServerQuery``)
turned into SQL, plus what SQL cannot do portably (regular expressions, the flavor kept
in each row, addresses)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, not_, or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest
from onestack.db.models import Instance, InstanceTag, IPAllocation, Port
from onestack.services.compute.server_requests import ServerQuery
from onestack.services.identity.context import ValidatedToken

#: Columns a list may be sorted by.
SORT_COLUMNS = {
    "access_ip_v4": Instance.access_ip_v4, "access_ip_v6": Instance.access_ip_v6,
    "auto_disk_config": Instance.auto_disk_config,
    "availability_zone": Instance.availability_zone,
    "config_drive": Instance.config_drive, "created_at": Instance.created_at,
    "display_description": Instance.display_description,
    "display_name": Instance.display_name, "host": Instance.host,
    "hostname": Instance.hostname, "image_ref": Instance.image_ref,
    "key_name": Instance.key_name, "launch_index": Instance.launch_index,
    "launched_at": Instance.launched_at, "locked": Instance.locked,
    "locked_by": Instance.locked_by, "node": Instance.node,
    "power_state": Instance.power_state, "progress": Instance.progress,
    "project_id": Instance.project_id, "task_state": Instance.task_state,
    "terminated_at": Instance.terminated_at, "updated_at": Instance.updated_at,
    "user_id": Instance.user_id, "uuid": Instance.uuid, "vm_state": Instance.vm_state,
    "reservation_id": Instance.reservation_id, "vcpus": Instance.vcpus,
    "memory_mb": Instance.memory_mb, "root_gb": Instance.root_gb,
    "ephemeral_gb": Instance.ephemeral_gb, "deleted": Instance.deleted,
    "deleted_at": Instance.deleted_at, "key_data": Instance.key_data,
    "user_data": Instance.user_data,
}


def list_page(session: Session, ctx: ValidatedToken, query: ServerQuery) -> list[Instance]:
    """The instances of one page of ``query`` (the caller's project unless
    ``all_tenants``), in order; Nova's 400 for an unknown marker."""
    stmt = _list_statement(ctx, query)
    candidates = _post_filter(session, query, session.execute(stmt).all())
    start = 0
    if query.marker is not None:
        position = next((i for i, uuid in enumerate(candidates)
                         if uuid == query.marker), None)
        if position is None:
            raise BadRequest(f"marker [{query.marker}] not found")
        start = position + 1
    page = candidates[start:start + query.limit]
    if not page:
        return []
    rows = {i.uuid: i for i in session.scalars(
        select(Instance).where(Instance.uuid.in_(page)))}
    return [rows[u] for u in page if u in rows]


def _list_statement(ctx: ValidatedToken, query: ServerQuery) -> Select[Any]:
    columns = [Instance.uuid, *(Instance.__table__.c[c] for c in dict.fromkeys(query.regex))]
    stmt = select(*columns)
    if not query.all_tenants:
        if ctx.project_id:
            stmt = stmt.where(Instance.project_id == ctx.project_id)
        else:
            stmt = stmt.where(Instance.user_id == ctx.user_id)
    deleted = query.deleted
    if deleted is None and query.changes_since is None and query.changes_before is None:
        deleted = False
    if deleted is not None:
        stmt = stmt.where(Instance.deleted.is_(deleted))
    if query.changes_since is not None:
        stmt = stmt.where(Instance.updated_at >= query.changes_since)
    if query.changes_before is not None:
        stmt = stmt.where(Instance.updated_at <= query.changes_before)
    for column, values in query.exact.items():
        col = Instance.__table__.c[column]
        if None in values:
            stmt = stmt.where(or_(col.in_([v for v in values if v is not None]),
                                  col.is_(None)))
        else:
            stmt = stmt.where(col.in_(values))
    if query.vm_states is not None:
        stmt = stmt.where(Instance.vm_state.in_(query.vm_states))
    if query.task_states is not None:
        named = [t for t in query.task_states if t is not None]
        stmt = stmt.where(or_(Instance.task_state.in_(named), Instance.task_state.is_(None))
                          if None in query.task_states else Instance.task_state.in_(named))
    if query.locked is not None:
        stmt = stmt.where(Instance.locked.is_(query.locked))
    if query.image is not None:
        stmt = stmt.where(Instance.image_ref == query.image)
    if query.tags:
        for tag in query.tags:
            stmt = stmt.where(Instance.uuid.in_(
                select(InstanceTag.instance_uuid).where(InstanceTag.tag == tag)))
    if query.tags_any:
        stmt = stmt.where(Instance.uuid.in_(
            select(InstanceTag.instance_uuid).where(InstanceTag.tag.in_(query.tags_any))))
    if query.not_tags:
        having_all = select(InstanceTag.instance_uuid).where(
            InstanceTag.tag.in_(query.not_tags)).group_by(InstanceTag.instance_uuid) \
            .having(func.count(func.distinct(InstanceTag.tag)) == len(set(query.not_tags)))
        stmt = stmt.where(not_(Instance.uuid.in_(having_all)))
    if query.not_tags_any:
        stmt = stmt.where(not_(Instance.uuid.in_(
            select(InstanceTag.instance_uuid).where(
                InstanceTag.tag.in_(query.not_tags_any)))))
    order: list[Any] = []
    for key, ascending in [*query.sorts, ("uuid", False)]:
        sort_col: Any = SORT_COLUMNS[key]
        order.append(sort_col.asc().nulls_first() if ascending
                     else sort_col.desc().nulls_last())
    return stmt.order_by(*order)

def _post_filter(session: Session, query: ServerQuery, rows: Sequence[Any]
                 ) -> list[str]:
    """What SQL cannot do portably: regular expressions (names, addresses) and the
    flavor (kept as a copy in each row)."""
    patterns = {}
    for column, pattern in query.regex.items():
        try:
            patterns[column] = re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"Invalid regular expression for {column}: {exc}") from None
    ip_patterns: list[re.Pattern[str] | None] = []
    for ip_pattern in (query.ip, query.ip6):
        try:
            ip_patterns.append(re.compile(ip_pattern) if ip_pattern is not None else None)
        except re.error as exc:
            raise BadRequest(f"Invalid regular expression for ip: {exc}") from None
    uuids = []
    for row in rows:
        ok = True
        for column, regex in patterns.items():
            value = getattr(row, column)
            if value is None or not regex.search(_regex_text(value)):
                ok = False
                break
        if ok:
            uuids.append(row.uuid)
    if query.flavor is not None and uuids:
        flavors: dict[str, Any] = dict(session.execute(
            select(Instance.uuid, Instance.flavor).where(Instance.uuid.in_(uuids))).all())
        uuids = [u for u in uuids if str((flavors.get(u) or {}).get("id")) == query.flavor]
    if any(ip_patterns) and uuids:
        addresses = _fixed_addresses(session, uuids)
        v4, v6 = ip_patterns
        uuids = [u for u in uuids if any(
            (v4 is not None and ":" not in a and v4.match(a))
            or (v6 is not None and ":" in a and v6.match(a))
            for a in addresses.get(u, ()))]
    return uuids

def _fixed_addresses(session: Session, uuids: list[str]
                     ) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for start in range(0, len(uuids), 500):
        chunk = uuids[start:start + 500]
        rows = session.execute(
            select(Port.device_id, IPAllocation.ip_address)
            .join(IPAllocation, IPAllocation.port_id == Port.id)
            .where(Port.device_id.in_(chunk)))
        for device_id, address in rows:
            out.setdefault(device_id, []).append(address)
    return out


def _regex_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)

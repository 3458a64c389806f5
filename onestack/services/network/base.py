"""What every networking resource shares: ids, errors, transactions that retry, the
resource registry (for tags and the resource list), tags, and list queries (filters on
any column, tag filters, sorting, limit/marker pagination) applied in SQL.

A resource module (networks, ports, routers, ...) declares one ``Kind``: its model, its
collection name, which rows a caller may see (an SQL condition), the columns its API
attributes map to, and the name of its not-found fault. ``register(kind)`` makes it
known to the tags API and to ``GET /v2.0/``.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Boolean, Integer, and_, delete, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.db import Database
from onestack.db.models import NetworkTag
from onestack.db.models.base import INT64_MAX, INT64_MIN
from onestack.services.identity.context import ValidatedToken

T = TypeVar("T")

#: How often a transaction that lost a uniqueness race (an address, a MAC, a VNI) is
#: run again before the conflict is reported.
RETRIES = 20


def new_id() -> str:
    return str(uuid.uuid4())


def isotime(value: dt.datetime | None) -> str | None:
    """Neutron's timestamp format: ``2026-11-25T15:20:17Z``."""
    # isoformat is several times faster than strftime, which matters in long lists
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


# -- errors --------------------------------------------------------------------------


def not_found(what: str, id_: str, fault: str | None = None) -> NotFound:
    """Neutron's ``<What> <id> could not be found.`` with its typed fault."""
    return NotFound(f"{what} {id_} could not be found.",
                    fault=fault or f"{what.replace(' ', '')}NotFound")


def policy_error(rule: str) -> Forbidden:
    return Forbidden(f"({rule}) is disallowed by policy", fault="PolicyNotAuthorized")


def invalid_input(message: str) -> BadRequest:
    return BadRequest(f"Invalid input for operation: {message}", fault="InvalidInput")


def in_use(fault: str, message: str) -> Conflict:
    return Conflict(message, fault=fault)


# -- transactions --------------------------------------------------------------------


def retrying(db: Database, work: Callable[[Session], T], conflict: str = "",
             attempts: int = RETRIES) -> T:
    """Run ``work`` in one transaction; run it again when it lost a uniqueness race.

    Allocations (addresses, MACs, VNIs) are chosen, then inserted under unique
    constraints: two concurrent transactions that chose the same value end with an
    IntegrityError for one of them, which starts over and sees the other's choice."""
    for attempt in range(attempts):
        try:
            with db.session() as session:
                return work(session)
        except IntegrityError:
            if attempt == attempts - 1:
                raise Conflict(conflict or "A concurrent request took the same resource; "
                               "try again.") from None
            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise AssertionError("unreachable")


# -- the caller ----------------------------------------------------------------------


def is_member(ctx: ValidatedToken | None) -> bool:
    """Whether the caller may write in its project: the ``member`` role (which
    ``admin`` implies); a ``reader`` only reads (secure RBAC)."""
    return ctx is None or ctx.is_admin or "member" in ctx.role_names


def owns(ctx: ValidatedToken | None, project_id: str) -> bool:
    """Whether the caller may change a resource of ``project_id``: admins any, members
    their project's (internal callers, ``ctx`` None, any)."""
    if ctx is None or ctx.is_admin:
        return True
    return ctx.project_id == project_id and is_member(ctx)


def require_owner(ctx: ValidatedToken | None, project_id: str, rule: str) -> None:
    """Refuse (Neutron's 403) a change the caller may see but not make."""
    if not owns(ctx, project_id):
        raise policy_error(rule)


def caller_project(ctx: ValidatedToken, requested: str | None, rule: str) -> str:
    """The project a new resource belongs to: the caller's (with the ``member`` role),
    or (admins only) another."""
    if requested and requested != ctx.project_id:
        if not ctx.is_admin:
            raise policy_error(rule)
        return requested
    if ctx.project_id is None:
        raise BadRequest("A project-scoped token is needed to create networking "
                         "resources.")
    if not is_member(ctx):
        raise policy_error(rule)
    return ctx.project_id


# -- the resource registry -----------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A networking resource type, as the generic code (tags, lists) sees it."""

    member: str            # "network"
    collection: str        # "networks"
    model: Any             # the ORM class (with StandardAttributes)
    #: The rows ``ctx`` may see; None means all of them.
    visible: Callable[[ValidatedToken], ColumnElement[bool] | None]
    #: API attribute -> SQL column, for filters and sort keys (besides the model's own
    #: column names, which map to themselves).
    columns: dict[str, Any] = field(default_factory=dict)
    #: API attribute -> function(values) -> condition, for filters no column answers.
    filters: dict[str, Callable[[list[str]], ColumnElement[bool]]] = field(
        default_factory=dict)
    #: Column names that are not API attributes (never filtered or sorted on).
    hidden: frozenset[str] = frozenset()
    #: Attributes only administrators may filter or sort on.
    admin_only: frozenset[str] = frozenset()
    #: ``<Label> <id> could not be found.`` and its fault (default ``<Label>NotFound``).
    label: str = ""
    fault: str = ""
    taggable: bool = True
    #: Values rendering needs beyond the row, fetched for a whole page at once:
    #: function(session, rows) -> {name: {id: value}} (e.g. ports' security groups).
    extras: Callable[[Session, list[Any]], dict[str, dict[str, Any]]] | None = None

    def not_found(self, id_: str) -> NotFound:
        label = self.label or self.member.replace("_", " ").title()
        return not_found(label, id_, self.fault or None)

    def column(self, name: str) -> Any | None:
        if name in self.columns:
            return self.columns[name]
        if name in self.hidden:
            return None
        return self.model.__table__.columns.get(name)

    def get_visible(self, session: Session, ctx: ValidatedToken | None, id_: str) -> Any:
        """The row ``id_`` if ``ctx`` may see it (None: internal, sees all); else 404."""
        obj = session.get(self.model, id_)
        if obj is None:
            raise self.not_found(id_)
        if ctx is not None:
            condition = self.visible(ctx)
            if condition is not None and not session.scalar(
                    select(true()).select_from(self.model)
                    .where(self.model.id == id_, condition)):
                raise self.not_found(id_)
        return obj


#: collection -> Kind, for every registered resource.
KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    KINDS[kind.collection] = kind
    return kind


def own_rows(model: Any) -> Callable[[ValidatedToken], ColumnElement[bool] | None]:
    """Visibility of resources only their project (and admins) see."""
    def visible(ctx: ValidatedToken) -> ColumnElement[bool] | None:
        if ctx.is_admin:
            return None
        return model.project_id == ctx.project_id if ctx.project_id else false()
    return visible


# -- tags ----------------------------------------------------------------------------

MAX_TAG_LENGTH = 255


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
        raise BadRequest(f"Invalid input for tags: {tag!r} is not a string of 1 to "
                         f"{MAX_TAG_LENGTH} characters.")
    if "," in tag:
        raise BadRequest(f"Invalid input for tags: {tag!r} contains a comma.")
    return tag


def chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    """``ids`` in pieces small enough for one ``IN (...)``."""
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


def tags_of(session: Session, resource_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
    """id -> its tags (sorted), for many resources in one query."""
    out: dict[str, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.execute(
        select(NetworkTag.resource_id, NetworkTag.tag)
        .where(NetworkTag.resource_type == resource_type,
               NetworkTag.resource_id.in_(list(ids)) if len(ids) < 500 else true())
        .order_by(NetworkTag.tag))
    for resource_id, tag in rows:
        if resource_id in out:
            out[resource_id].append(tag)
    return out


def set_tags(session: Session, resource_type: str, resource_id: str,
             tags: Iterable[str]) -> list[str]:
    wanted = sorted({check_tag(t) for t in tags})
    session.execute(delete(NetworkTag).where(NetworkTag.resource_type == resource_type,
                                             NetworkTag.resource_id == resource_id))
    session.add_all(NetworkTag(resource_type=resource_type, resource_id=resource_id, tag=t)
                    for t in wanted)
    return wanted


def add_tag(session: Session, resource_type: str, resource_id: str, tag: str) -> None:
    check_tag(tag)
    if session.get(NetworkTag, (resource_type, resource_id, tag)) is None:
        session.add(NetworkTag(resource_type=resource_type, resource_id=resource_id, tag=tag))


def remove_tag(session: Session, resource_type: str, resource_id: str, tag: str) -> None:
    row = session.get(NetworkTag, (resource_type, resource_id, tag))
    if row is None:
        raise NotFound(f"Tag {tag} could not be found.", fault="TagNotFound")
    session.delete(row)


def forget_tags(session: Session, resource_type: str, resource_id: str) -> None:
    """Drop the tags of a deleted resource."""
    session.execute(delete(NetworkTag).where(NetworkTag.resource_type == resource_type,
                                             NetworkTag.resource_id == resource_id))


# -- list queries --------------------------------------------------------------------


@dataclass
class ListQuery:
    """A parsed list request: filters (values of one attribute are alternatives),
    tag filters, sort keys, and one page (``limit`` rows after ``marker``)."""

    filters: dict[str, list[str]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    not_tags: list[str] = field(default_factory=list)
    not_tags_any: list[str] = field(default_factory=list)
    sorts: list[tuple[str, bool]] = field(default_factory=list)   # (attribute, ascending)
    limit: int | None = None
    marker: str | None = None
    page_reverse: bool = False


@dataclass
class Page:
    """Rows to render, with what rendering needs beside them (tags, extras)."""

    items: list[Any]
    #: More rows lie beyond this page in the direction of the request.
    has_more: bool = False
    tags: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def one(self) -> Any:
        return self.items[0]


def annotate(session: Session, kind: Kind, page: Page) -> Page:
    """Fetch the page's tags and the kind's extras (one query each)."""
    ids = [row.id for row in page.items]
    if kind.taggable:
        page.tags = tags_of(session, kind.collection, ids)
    if kind.extras is not None:
        page.extra = kind.extras(session, page.items)
    return page


def page_of(session: Session, kind: Kind, rows: list[Any]) -> Page:
    """A page of given rows (a create, show or update), annotated."""
    return annotate(session, kind, Page(rows))


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _convert(column: Any, name: str, value: str) -> Any:
    """A query-string value as the column's Python type; a 400 if it is not one."""
    if value == "" and column.nullable:
        return None
    if isinstance(column.type, Boolean):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' cannot be converted "
                         "to boolean.")
    if isinstance(column.type, Integer):
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an "
                             "integer.") from None
        if not INT64_MIN <= number <= INT64_MAX:
            raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is out of "
                             "range.")
        return number
    return value


def _tag_condition(kind: Kind, tags: list[str], any_: bool) -> ColumnElement[bool]:
    model = kind.model

    def has(tag: str) -> ColumnElement[bool]:
        return model.id.in_(select(NetworkTag.resource_id).where(
            NetworkTag.resource_type == kind.collection, NetworkTag.tag == tag))
    parts = [has(t) for t in tags]
    return or_(*parts) if any_ else and_(*parts)


def filter_conditions(kind: Kind, query: ListQuery, ctx: ValidatedToken | None
                      ) -> list[ColumnElement[bool]]:
    """SQL conditions for the query's attribute and tag filters. Attributes nothing
    answers are ignored, as Neutron without filter validation does."""
    conditions: list[ColumnElement[bool]] = []
    is_admin = ctx is None or ctx.is_admin
    for name, values in query.filters.items():
        if name in kind.admin_only and not is_admin:
            continue
        if name in kind.filters:
            conditions.append(kind.filters[name](values))
            continue
        column = kind.column(name)
        if column is None:
            continue
        converted = [_convert(column, name, v) for v in values]
        options = [column.is_(None) if v is None else column == v for v in converted]
        conditions.append(or_(*options) if len(options) > 1 else options[0])
    if query.tags:
        conditions.append(_tag_condition(kind, query.tags, any_=False))
    if query.tags_any:
        conditions.append(_tag_condition(kind, query.tags_any, any_=True))
    if query.not_tags:
        conditions.append(~_tag_condition(kind, query.not_tags, any_=False))
    if query.not_tags_any:
        conditions.append(~_tag_condition(kind, query.not_tags_any, any_=True))
    return conditions


def sort_columns(kind: Kind, query: ListQuery, ctx: ValidatedToken | None
                 ) -> list[tuple[Any, bool]]:
    """(column, ascending) for each sort key, then ``id`` to make the order total."""
    out: list[tuple[Any, bool]] = []
    is_admin = ctx is None or ctx.is_admin
    for name, ascending in query.sorts:
        column = kind.column(name)
        if column is None or (name in kind.admin_only and not is_admin) \
                or name in kind.filters:
            raise BadRequest(f"{name} is an invalid attribute for sort_keys")
        out.append((column, ascending))
    if not any(c is kind.model.id for c, _ in out):
        out.append((kind.model.id, out[-1][1] if out else True))
    return out


def _after(column: Any, value: Any, ascending: bool) -> ColumnElement[bool]:
    """Rows after ``value`` in this column's order (NULL sorts first ascending)."""
    if ascending:
        return column.is_not(None) if value is None else column > value
    return false() if value is None else or_(column < value, column.is_(None))


def _same(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def list_page(session: Session, kind: Kind, stmt: Any, query: ListQuery,
              ctx: ValidatedToken | None, rows: bool = False) -> Page:
    """Apply the query's filters, order and page to ``stmt`` (a ``select`` of the
    kind's model, already restricted to what the caller may see) and run it.

    With ``rows``, ``stmt`` selects the table's columns instead of the model, and the
    page holds plain rows (attribute access by column name): several times cheaper
    for long lists, when rendering needs no relationships (or gets them as extras)."""
    conditions = filter_conditions(kind, query, ctx)
    if conditions:
        stmt = stmt.where(*conditions)
    sorts = sort_columns(kind, query, ctx)
    if query.page_reverse:
        sorts = [(c, not asc) for c, asc in sorts]
    if query.marker is not None:
        marker = session.execute(select(*(c for c, _ in sorts))
                                 .where(kind.model.id == query.marker)).first()
        if marker is None:
            raise kind.not_found(query.marker)
        branches = []
        for i, (column, ascending) in enumerate(sorts):
            same = [_same(c, marker[j]) for j, (c, _) in enumerate(sorts[:i])]
            branches.append(and_(*same, _after(column, marker[i], ascending)))
        stmt = stmt.where(or_(*branches))
    stmt = stmt.order_by(*(c.asc().nulls_first() if asc else c.desc().nulls_last()
                           for c, asc in sorts))
    if query.limit:
        stmt = stmt.limit(query.limit + 1)
    items = list(session.execute(stmt).all()) if rows else list(session.scalars(stmt).unique())
    has_more = bool(query.limit) and len(items) > (query.limit or 0)
    if has_more:
        items = items[:query.limit]
    if query.page_reverse:
        items.reverse()
    return Page(items, has_more)


def list_visible(session: Session, kind: Kind, query: ListQuery, ctx: ValidatedToken) -> Page:
    """The page of ``kind``'s rows that ``ctx`` may see (``kind.visible``), annotated:
    a resource's ``list``."""
    stmt = select(kind.model)
    condition = kind.visible(ctx)
    if condition is not None:
        stmt = stmt.where(condition)
    return annotate(session, kind, list_page(session, kind, stmt, query, ctx))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def changes_hosts(method: Callable[Concatenate[Any, _P], _R]
                  ) -> Callable[Concatenate[Any, _P], _R]:
    """For a method of a service object (with ``net``, the ``Networking``) whose change
    hosts carry out (routers, floating IPs): once it has returned (its transaction
    committed), ``net.changed()`` wakes the hosts, so the datapath follows at once
    rather than at the next poll."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        result = method(self, *args, **kwargs)
        self.net.changed()
        return result

    return wrapper

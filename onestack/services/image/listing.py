"""Image lists: Glance's query string (filters, sorting, ``limit``/``marker``) and the
query behind it.

Filters run in SQL; sorting and paging run on the few columns that can be sort keys,
in Python (NULLs first when ascending, as SQLite and MySQL sort them), and only the
page is loaded in full.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, not_, select
from sqlalchemy.orm import Session

from onestack.common.config import ImageConfig
from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Image, ImageProperty, ImageTag
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import fields, policy

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id",
             "created_at", "updated_at")
DEFAULT_SORT_DIR = "desc"
#: Filters that take ``in:a,b`` as well as a single value.
IN_FILTERS = ("name", "id", "status", "container_format", "disk_format")
TIME_OPS = ("gt", "gte", "eq", "neq", "lt", "lte")
RESERVED_PARAMS = ("limit", "marker", "sort", "sort_key", "sort_dir", "member_status",
                   "tag")


@dataclass
class ListQuery:
    """A parsed ``GET /v2/images`` query string."""

    limit: int
    marker: str | None = None
    member_status: str = "accepted"
    visibility: str | None = None
    os_hidden: bool = False
    sort: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    conditions: list[Any] = field(default_factory=list)

    @classmethod
    def parse(cls, params: Sequence[tuple[str, str]], config: ImageConfig) -> ListQuery:
        single: dict[str, str] = {}
        sort_keys: list[str] = []
        sort_dirs: list[str] = []
        tags: list[str] = []
        for key, value in params:
            if key == "tag":
                tags.append(value.strip())
            elif key == "sort_key":
                sort_keys.append(_sort_key(value.strip()))
            elif key == "sort_dir":
                sort_dirs.append(_sort_dir(value.strip()))
            else:
                single[key] = value
        q = cls(limit=_limit(single.pop("limit", None), config), tags=tags)
        q.marker = single.pop("marker", None)
        q.sort = _sorting(single.pop("sort", None), sort_keys, sort_dirs)
        q.member_status = single.pop("member_status", "accepted")
        if q.member_status not in (*fields.MEMBER_STATUSES, "all"):
            raise BadRequest(f"Invalid status: {q.member_status}")
        visibility = single.pop("visibility", None)
        if visibility is not None and visibility not in (*fields.VISIBILITIES, "all"):
            raise BadRequest(f"Invalid visibility value: {visibility}")
        q.visibility = visibility
        q.os_hidden = _bool("os_hidden", single.pop("os_hidden", "false"))
        if "changes-since" in single:
            raise BadRequest('The "changes-since" filter is no longer available on v2.')
        for key, value in single.items():
            q.conditions.append(_condition(key, value))
        return q


def _limit(value: str | None, config: ImageConfig) -> int:
    if value is None:
        return min(config.limit_param_default, config.api_limit_max)
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, config.api_limit_max)


def _sort_key(key: str) -> str:
    if key not in SORT_KEYS:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                         f"{', '.join(SORT_KEYS)}.")
    return key


def _sort_dir(direction: str) -> str:
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return direction


def _sorting(sort: str | None, keys: list[str], dirs: list[str]) -> list[tuple[str, str]]:
    """Both of Glance's syntaxes: ``sort=name:asc,size`` or ``sort_key=..&sort_dir=..``;
    ``created_at`` and ``id`` are always added last, so the order is total."""
    pairs: list[tuple[str, str]] = []
    if sort is not None:
        if keys or dirs:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        for part in sort.strip().split(","):
            key, _, direction = part.partition(":")
            pairs.append((_sort_key(key.strip()),
                          _sort_dir(direction.strip() or DEFAULT_SORT_DIR)))
    else:
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        keys = keys or ["created_at"]
        if not dirs:
            dirs = [DEFAULT_SORT_DIR] * len(keys)
        elif len(dirs) == 1:
            dirs = dirs * len(keys)
        pairs = list(zip(keys, dirs, strict=True))
    default = pairs[0][1] if len(pairs) == 1 else DEFAULT_SORT_DIR
    for key in ("created_at", "id"):
        if key not in [k for k, _ in pairs]:
            pairs.append((key, default))
    return pairs


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"Invalid value '{value}' for '{name}' filter. Valid values are "
                         "'true' or 'false'.")
    return value.lower() == "true"


def _int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"Invalid value '{value}' for '{name}': an integer is "
                         "expected.") from None
    if not -(2**63) <= number < 2**63:
        raise BadRequest(f"Invalid value '{value}' for '{name}': out of range.")
    return number


def _split_in(value: str) -> list[str]:
    """``a,"b, c",d`` -> ``["a", "b, c", "d"]`` (quotes protect commas)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if quoted:
        raise BadRequest(f"Invalid filter value {value}. The quote is not closed.")
    out.append("".join(current).strip())
    return out


def _time(name: str, value: str) -> Any:
    op, sep, rest = value.partition(":")
    if not sep or op not in TIME_OPS:
        op, rest = "eq", value
    try:
        moment = dt.datetime.fromisoformat(rest.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f'Bad "{name}" query filter format. Use ISO 8601 DateTime '
                         "notation.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    column = getattr(Image, name)
    return {"gt": column > moment, "gte": column >= moment, "eq": column == moment,
            "neq": column != moment, "lt": column < moment, "lte": column <= moment}[op]


def _condition(key: str, value: str) -> Any:
    if key in IN_FILTERS:
        column = getattr(Image, key)
        if key == "id":
            value = value.lower()
        if value.startswith("in:"):
            return column.in_(_split_in(value[3:]))
        if value.startswith("eq:"):
            value = value[3:]
        return column == value
    if key in ("size_min", "size_max"):
        size = _int(key, value)
        return Image.size >= size if key == "size_min" else Image.size <= size
    if key in ("created_at", "updated_at"):
        return _time(key, value)
    if key == "protected":
        return Image.protected == _bool(key, value)
    if key in ("min_disk", "min_ram", "size", "virtual_size"):
        return getattr(Image, key) == _int(key, value)
    if key in ("owner", "checksum", "os_hash_value", "os_hash_algo"):
        return getattr(Image, key) == value
    # Anything else filters on a free-form property.
    return exists().where(ImageProperty.image_id == Image.id, ImageProperty.name == key,
                          ImageProperty.value == value)


def _compare(sort: list[tuple[str, str]], a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    for index, (_, direction) in enumerate(sort):
        x, y = a[index], b[index]
        if x == y:
            continue
        if x is None:
            result = -1
        elif y is None:
            result = 1
        else:
            result = -1 if x < y else 1
        return result if direction == "asc" else -result
    return 0


def list_images(session: Session, ctx: ValidatedToken, q: ListQuery
                ) -> tuple[list[Image], str | None]:
    conds = list(q.conditions)
    conds.append(Image.os_hidden == q.os_hidden)
    member_status = None if q.member_status == "all" else q.member_status
    if not ctx.is_admin:
        conds.append(policy.listable(ctx, member_status))
    if q.visibility is not None:
        if q.visibility != "all":
            conds.append(Image.visibility == q.visibility)
    elif ctx.project_id is None:
        conds.append(Image.visibility != "community")
    else:
        # community images show only when asked for, or to their owner
        conds.append(not_(and_(Image.visibility == "community",
                               Image.owner != ctx.project_id)))
    for tag in q.tags:
        conds.append(exists().where(ImageTag.image_id == Image.id, ImageTag.tag == tag))
    columns = [getattr(Image, key) for key, _ in q.sort]
    rows = [tuple(row) for row in session.execute(select(*columns).where(*conds))]
    compare = functools.partial(_compare, q.sort)
    rows.sort(key=functools.cmp_to_key(compare))
    if q.marker is not None:
        try:
            marker = policy.find_image(session, ctx, q.marker)
        except NotFound:
            raise BadRequest(f"Marker image {q.marker} could not be found.") from None
        start = tuple(getattr(marker, key) for key, _ in q.sort)
        rows = [row for row in rows if compare(row, start) > 0]
    id_index = [key for key, _ in q.sort].index("id")
    page_ids = [row[id_index] for row in rows[:q.limit]]
    more = len(rows) > q.limit and q.limit > 0
    by_id = {image.id: image for image in session.scalars(
        select(Image).where(Image.id.in_(page_ids)))} if page_ids else {}
    page = [by_id[i] for i in page_ids if i in by_id]
    return page, (page_ids[-1] if more and page_ids else None)

"""What every identity sub-service shares."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import NotFound

if TYPE_CHECKING:
    from onestack.services.identity.service import Identity


def new_id() -> str:
    return uuid.uuid4().hex


def isotime(value: dt.datetime | float | None, micro: bool = True) -> str | None:
    """Keystone's timestamp format: ``2026-11-25T15:20:17.000000Z``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
    if micro:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def get_or_404(session: Session, model: Any, id_: str, what: str) -> Any:
    obj = session.get(model, id_)
    if obj is None:
        raise NotFound(f"Could not find {what}: {id_}.")
    return obj


def apply_filters(stmt: Any, model: Any, filters: dict[str, Any]) -> Any:
    """Equality filters on columns; unknown names are ignored, as Keystone does."""
    for name, value in filters.items():
        column = getattr(model, name, None)
        if column is None or value is None:
            continue
        stmt = stmt.where(column == value)
    return stmt


class SubService:
    """A part of the identity service (users, projects, ...) sharing its database."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.db = identity.db

    def changed(self, session: Session) -> None:
        """Mark a write that may change the validity of tokens (bumps the revision)."""
        self.identity.bump_revision(session)

    def select(self, model: Any) -> Any:
        return select(model)

"""The declarative base every table shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.orm import DeclarativeBase

#: What an integer column holds (SQLite INTEGER, PostgreSQL BIGINT): an integer outside
#: this range makes the driver raise OverflowError, so input is checked against it first.
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}

"""Image metadata definitions (Glance's metadefs): a catalog of the properties that
resources (images, flavors, volumes, ...) may carry, grouped in namespaces."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow


class MetadefNamespace(Base):
    """One namespace with everything in it: ``properties`` (name -> JSON schema of the
    property), ``objects`` (name -> {description, required, properties, created_at,
    updated_at}), ``tags`` (name -> {created_at, updated_at}) and
    ``resource_types`` (name -> {prefix, properties_target, created_at, updated_at})."""

    __tablename__ = "metadef_namespaces"
    namespace: Mapped[str] = mapped_column(String(80), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(255))
    visibility: Mapped[str] = mapped_column(String(32), default="private")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    objects: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resource_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

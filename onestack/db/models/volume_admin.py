"""Block Storage tables for the administrative side (Cinder v3): quota classes, the
state of the volume services, and generic volume groups (group types, groups, group
snapshots).

A volume names its group (``volumes.group_id``), a snapshot the group snapshot it was
taken in (``volume_snapshots.group_snapshot_id``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow


class VolumeQuotaClass(Base):
    """A limit of a quota class (only ``default`` is used: it overrides the
    ``[volume]`` defaults for every project without a limit of its own)."""

    __tablename__ = "volume_quota_classes"
    class_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(300), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class VolumeServiceState(Base):
    """An administrator's switch on a volume service (``cinder-volume`` on a backend,
    ``cinder-scheduler``): a disabled or frozen ``cinder-volume`` takes no new volumes."""

    __tablename__ = "volume_service_states"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    binary: Mapped[str] = mapped_column(String(64), primary_key=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    #: frozen (``os-services/freeze``): its backend takes no new volumes until thawed
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class GroupType(Base):
    __tablename__ = "volume_group_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    group_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class VolumeGroup(Base):
    """A generic volume group: volumes of the listed types, on one backend, that are
    snapshotted together (a group snapshot) and can be copied together."""

    __tablename__ = "volume_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    #: creating, available, updating, deleting, error, error_deleting
    status: Mapped[str] = mapped_column(String(32))
    group_type_id: Mapped[str] = mapped_column(String(36))
    volume_type_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    availability_zone: Mapped[str] = mapped_column(String(255))
    #: the backend every member volume lives on (set by the first member)
    backend: Mapped[str | None] = mapped_column(String(64))
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_group_id: Mapped[str | None] = mapped_column(String(36))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class GroupSnapshot(Base):
    """Snapshots of every member of a group, taken together."""

    __tablename__ = "volume_group_snapshots"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    #: creating, available, deleting, error, error_deleting
    status: Mapped[str] = mapped_column(String(32))
    group_type_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)



class VolumeTypeEncryption(Base):
    """A volume type's encryption spec (Cinder's ``/types/{id}/encryption``). Stored and
    shown; no backend here encrypts, so a volume of such a type is refused (placement
    puts it in ``error`` with a user message saying why)."""

    __tablename__ = "volume_type_encryption"
    volume_type_id: Mapped[str] = mapped_column(
        ForeignKey("volume_types.id", ondelete="CASCADE"), primary_key=True)
    encryption_id: Mapped[str] = mapped_column(String(36), unique=True)
    provider: Mapped[str] = mapped_column(String(255))
    cipher: Mapped[str | None] = mapped_column(String(255))
    key_size: Mapped[int | None] = mapped_column(Integer)
    control_location: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

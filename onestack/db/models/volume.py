"""Block Storage tables (Cinder v3).

A volume's bytes live in the volume backend (``onestack.services.volume.backends``); a row says
what it is and where it stands. Metadata are JSON columns (read with the row, filtered
in Python: a project has tens of volumes, not millions). Rows are deleted outright.
Why a volume went to ``error`` is kept in ``error_message`` and published as a Cinder
user message (``/messages``), since Cinder's volume body has no fault field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow


class VolumeType(Base):
    __tablename__ = "volume_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Free-form ``key: "value"``; ``volume_backend_name`` picks the backend,
    #: ``multiattach: "<is> True"`` allows a volume in several servers.
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    qos_specs_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class VolumeTypeProject(Base):
    """A project a private volume type is shared with."""

    __tablename__ = "volume_type_projects"
    volume_type_id: Mapped[str] = mapped_column(
        ForeignKey("volume_types.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class QosSpecs(Base):
    """QoS specs: stored and shown, not enforced (docs/volume.md)."""

    __tablename__ = "volume_qos_specs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    consumer: Mapped[str] = mapped_column(String(16), default="back-end")
    specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Volume(Base):
    __tablename__ = "volumes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    #: creating, available, reserved, attaching, in-use, detaching, deleting,
    #: error, error_deleting, error_extending, extending, uploading, maintenance,
    #: awaiting-transfer, downloading, retyping
    status: Mapped[str] = mapped_column(String(32), index=True)
    #: attached or detached
    attach_status: Mapped[str] = mapped_column(String(16), default="detached")
    availability_zone: Mapped[str] = mapped_column(String(255))
    volume_type_id: Mapped[str | None] = mapped_column(String(36))
    #: the backend that holds the bytes (``[volume] backend`` or the type's choice)
    backend: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_volid: Mapped[str | None] = mapped_column(String(36))
    image_id: Mapped[str | None] = mapped_column(String(36))
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    #: Cinder's admin metadata (``readonly``, ...)
    admin_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: why the volume is in an error state (shown as a user message)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: the generic volume group it belongs to (``volume_groups``), if any
    group_id: Mapped[str | None] = mapped_column(String(36), index=True)


class VolumeAttachment(Base):
    """One attachment of a volume to a server (Cinder's attachments API)."""

    __tablename__ = "volume_attachments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(
        ForeignKey("volumes.id", ondelete="CASCADE"), index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    attached_host: Mapped[str | None] = mapped_column(String(255))
    mountpoint: Mapped[str | None] = mapped_column(String(255))
    #: reserved, attaching, attached, detaching, error_attaching, error_detaching
    attach_status: Mapped[str] = mapped_column(String(32))
    #: rw or ro
    attach_mode: Mapped[str] = mapped_column(String(8), default="rw")
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    connection_info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attach_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    detach_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Snapshot(Base):
    __tablename__ = "volume_snapshots"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    #: creating, available, deleting, error, error_deleting
    status: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    volume_type_id: Mapped[str | None] = mapped_column(String(36))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: the group snapshot it was taken in (``volume_group_snapshots``), if any
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: what ``os-update_snapshot_status`` last reported (``"80%"``); None: the
    #: service's own work, shown as 0% until available, then 100%
    progress: Mapped[str | None] = mapped_column(String(255))


class VolumeQuota(Base):
    """A project's own limit on one resource (``volumes``, ``gigabytes``,
    ``snapshots``, ``volumes_<type>``, ...), overriding the ``[volume]`` default."""

    __tablename__ = "volume_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(300), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class VolumeTransfer(Base):
    """A pending transfer of a volume to another project; the key is stored hashed."""

    __tablename__ = "volume_transfers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    salt: Mapped[str] = mapped_column(String(64))
    crypt_hash: Mapped[str] = mapped_column(String(255))
    no_snapshots: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class VolumeMessage(Base):
    """A Cinder user message: what went wrong with a project's resource, for its
    users (``GET /v3/{project_id}/messages``)."""

    __tablename__ = "volume_messages"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_uuid: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(32))
    message_level: Mapped[str] = mapped_column(String(16), default="ERROR")
    user_message: Mapped[str] = mapped_column(Text)
    #: the API request that led to it (``x-openstack-request-id``), when known
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


# The administrative tables (quota classes, service states, groups) are in their own
# module; importing it here puts them in the metadata with the others.
from onestack.db.models import volume_admin as _volume_admin  # noqa: E402,F401

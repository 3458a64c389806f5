"""Block Storage backups (Cinder v3 ``/backups``): a copy of a volume's data kept by a
backup driver (``onestack.services.volume.backup_drivers``) apart from the volume.

A backup names where its data is (``service`` is the driver, ``service_metadata`` the
driver's location of it); an incremental one names its parent (``parent_id``), whose
data it builds on, so a parent cannot be deleted while it has children. Imported
records (``import_record``) may share a location with another row; the data go with the
last row that names them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow


class VolumeBackup(Base):
    __tablename__ = "volume_backups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    #: creating, available, deleting, error, error_deleting, restoring
    status: Mapped[str] = mapped_column(String(32), index=True)
    fail_reason: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    container: Mapped[str | None] = mapped_column(String(255))
    #: the backup driver (``cinder.backup.drivers.posix`` as Cinder names its own)
    service: Mapped[str] = mapped_column(String(255))
    #: the driver's location of the data (posix: ``<container>/<directory>``)
    service_metadata: Mapped[str | None] = mapped_column(String(255))
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: the status the source volume had before it went ``backing-up``
    volume_previous_status: Mapped[str | None] = mapped_column(String(32))
    #: the volume a restore writes to (while ``restoring``)
    restore_volume_id: Mapped[str | None] = mapped_column(String(36))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    #: the source volume's metadata, bootable flag and image metadata when backed up
    #: (a restore gives them to the volume it writes)
    volume_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_timestamp: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    is_incremental: Mapped[bool] = mapped_column(Boolean, default=False)

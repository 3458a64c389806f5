"""Image tables (Glance v2).

An image's data lives outside the database, in the image store (see
``onestack.services.image.store``); a row only says where it stands (``status``) and
what the data is (size, hashes, formats). Rows are deleted outright: Glance's soft
delete buys nothing here.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onestack.db.models.base import Base, utcnow


class Image(Base):
    __tablename__ = "images"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    #: The project that owns the image (Glance allows none).
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    #: queued, saving, uploading, importing, active, deactivated or killed.
    status: Mapped[str] = mapped_column(String(30), index=True)
    #: public, community, shared or private.
    visibility: Mapped[str] = mapped_column(String(16), index=True)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    disk_format: Mapped[str | None] = mapped_column(String(32))
    container_format: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int | None] = mapped_column(BigInteger)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger)
    #: MD5 of the data (Glance's legacy ``checksum``), and the secure hash.
    checksum: Mapped[str | None] = mapped_column(String(32))
    os_hash_algo: Mapped[str | None] = mapped_column(String(64))
    os_hash_value: Mapped[str | None] = mapped_column(String(128))
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    properties: Mapped[list[ImageProperty]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ImageProperty.name")
    tags: Mapped[list[ImageTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ImageTag.tag")


class ImageProperty(Base):
    """A free-form ``key: "value"`` on an image (values are strings, as in Glance)."""

    __tablename__ = "image_properties"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ImageTag(Base):
    __tablename__ = "image_tags"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class ImageMember(Base):
    """A project an image is shared with, and whether it accepted (Glance's members)."""

    __tablename__ = "image_members"
    image_id: Mapped[str] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    #: pending, accepted or rejected.
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ImageQuota(Base):
    """A project's own image quotas, overriding the ``[image]`` defaults; NULL keeps the
    default."""

    __tablename__ = "image_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_count_total: Mapped[int | None] = mapped_column(Integer)
    #: MiB, as Glance's ``image_size_total`` limit.
    image_size_total: Mapped[int | None] = mapped_column(BigInteger)

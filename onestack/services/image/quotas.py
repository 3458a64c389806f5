"""Per-project image quotas: how many images a project owns (``image_count_total``)
and how much image data it holds (``image_size_total``, MiB; staged data counts).

Limits are the ``[image]`` defaults unless a project has its own row in
``image_quotas``; -1 means unlimited. Exceeding either is a 413, as in Glance.
Usage is counted against the image's owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.config import Config
from onestack.common.errors import PayloadTooLarge
from onestack.db import Database
from onestack.db.models import Image, ImageQuota

MIB = 1 << 20
#: Statuses whose data occupies the store (or the staging area).
HOLDING_DATA = ("active", "deactivated", "uploading", "importing")


@dataclass
class Limits:
    image_count_total: int
    image_size_total: int  # MiB

    @property
    def size_bytes(self) -> int | None:
        return None if self.image_size_total < 0 else self.image_size_total * MIB


@dataclass
class Usage:
    image_count_total: int
    image_size_total: int  # bytes


class Quotas:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config

    def limits(self, session: Session, project_id: str | None) -> Limits:
        defaults = self.config.image
        row = session.get(ImageQuota, project_id) if project_id else None
        count = defaults.image_count_total
        size = defaults.image_size_total
        if row is not None:
            count = count if row.image_count_total is None else row.image_count_total
            size = size if row.image_size_total is None else row.image_size_total
        return Limits(count, size)

    def usage(self, session: Session, project_id: str | None,
              exclude: str | None = None) -> Usage:
        count_q = select(func.count()).select_from(Image).where(Image.owner == project_id)
        size_q = select(func.coalesce(func.sum(Image.size), 0)).where(
            Image.owner == project_id, Image.status.in_(HOLDING_DATA))
        if exclude is not None:
            size_q = size_q.where(Image.id != exclude)
        return Usage(int(session.scalar(count_q) or 0), int(session.scalar(size_q) or 0))

    def check_new_image(self, session: Session, project_id: str | None) -> None:
        """413 if the project may not own one more image."""
        limit = self.limits(session, project_id).image_count_total
        if limit < 0:
            return
        used = self.usage(session, project_id).image_count_total
        if used + 1 > limit:
            raise PayloadTooLarge(
                f"Quota exceeded: project {project_id} may own {limit} image(s) "
                f"(image_count_total) and owns {used}.")

    def room(self, session: Session, project_id: str | None, image_id: str) -> int | None:
        """Bytes of image data ``image_id`` may still hold; None if unlimited."""
        limit = self.limits(session, project_id).size_bytes
        if limit is None:
            return None
        used = self.usage(session, project_id, exclude=image_id).image_size_total
        return max(0, limit - used)

    def set(self, project_id: str, image_count_total: int | None = None,
            image_size_total: int | None = None) -> None:
        """Give a project its own limits (None: back to the default)."""
        with self.db.session() as session:
            row = session.get(ImageQuota, project_id)
            if row is None:
                row = ImageQuota(project_id=project_id)
                session.add(row)
            row.image_count_total = image_count_total
            row.image_size_total = image_size_total


def too_large_for_quota(project_id: str | None, limit_mib: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Quota exceeded: the image data of project {project_id} would exceed its "
        f"image_size_total of {limit_mib} MiB.")


def usage_report(quotas: Quotas, project_id: str | None) -> dict[str, dict[str, int]]:
    """Glance's ``/v2/info/usage`` numbers for a project (sizes in MiB, rounded up)."""
    with quotas.db.session() as session:
        limits = quotas.limits(session, project_id)
        usage = quotas.usage(session, project_id)
    return {
        "image_size_total": {"limit": limits.image_size_total,
                             "usage": -(-usage.image_size_total // MIB)},
        "image_count_total": {"limit": limits.image_count_total,
                              "usage": usage.image_count_total},
    }

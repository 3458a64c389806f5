"""Auto-allocated topologies (Neutron's ``auto_allocated_topologies``): which network
and router ``GET /v2.0/auto-allocated-topology/{project_id}`` made for a project.

One row per project (the primary key), so two concurrent allocations for one project
cannot both commit. Deleting the network deletes the row (a project that removes the
network by hand gets a new topology next time); deleting the router only forgets it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow


class AutoAllocatedTopology(Base):
    __tablename__ = "auto_allocated_topologies"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), unique=True)
    router_id: Mapped[str | None] = mapped_column(
        ForeignKey("routers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

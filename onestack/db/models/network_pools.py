"""Subnet pools (Neutron's ``subnetpools``): address space that subnets are carved from.

A pool's ``prefixes`` are a JSON list of canonical CIDRs of one IP version. A subnet
allocated from a pool names it in ``subnets.subnetpool_id``; ``(subnetpool_id, cidr)``
is unique, so two requests that picked the same free prefix cannot both commit (the
loser's transaction runs again and picks the next one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base
from onestack.db.models.network import StandardAttributes


class SubnetPool(StandardAttributes, Base):
    __tablename__ = "subnetpools"
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list[Any]] = mapped_column()
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Per-project limit on what a project may allocate from the pool (IPv4: addresses,
    #: IPv6: /64s); None: no limit.
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)

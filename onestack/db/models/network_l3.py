"""Networking tables beyond L2: quotas, security groups, routers, floating IPs.

The L2 tables (networks, subnets, ports, IP allocations) are in ``network.py``; these
refer to them by foreign key. Security groups and routers carry the standard attributes
through ``StandardAttributes``; rules and floating IPs have no name in Neutron, so they
carry the other standard attributes themselves (``_RevisedAttributes``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from onestack.db.models.base import Base, utcnow
from onestack.db.models.network import StandardAttributes


class _RevisedAttributes:
    """The standard attributes without ``name``; revision bumped on every UPDATE."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revision_number: Mapped[int] = mapped_column(Integer, default=1)


@event.listens_for(_RevisedAttributes, "before_update", propagate=True)
def _bump_revision(mapper: Any, connection: Any, target: _RevisedAttributes) -> None:
    target.revision_number = (target.revision_number or 0) + 1
    target.updated_at = utcnow()


class NetworkQuota(Base):
    """A project's limit for one Networking resource; absent rows mean the default."""

    __tablename__ = "network_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class SecurityGroup(StandardAttributes, Base):
    __tablename__ = "securitygroups"
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)


class DefaultSecurityGroup(Base):
    """Which group is a project's ``default`` one (the primary key makes it unique)."""

    __tablename__ = "default_securitygroups"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), unique=True)


class SecurityGroupRule(_RevisedAttributes, Base):
    __tablename__ = "securitygrouprules"
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), index=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    ethertype: Mapped[str] = mapped_column(String(8))
    #: A lower-case protocol name or a number as text; NULL for any protocol.
    protocol: Mapped[str | None] = mapped_column(String(40))
    port_range_min: Mapped[int | None] = mapped_column(Integer)
    port_range_max: Mapped[int | None] = mapped_column(Integer)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64))


class SecurityGroupPortBinding(Base):
    """A port's membership of a security group."""

    __tablename__ = "securitygroupportbindings"
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("securitygroups.id"), primary_key=True, index=True)


class Router(StandardAttributes, Base):
    __tablename__ = "routers"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    #: The port on the external network (``network:router_gateway``), if any.
    gw_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"), index=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The host that runs the router (Neutron's l3 agent binding): set when the router
    #: first needs one, moved when that host is deleted or down. None: not scheduled.
    host: Mapped[str | None] = mapped_column(String(255), index=True)


class RouterPort(Base):
    """A port owned by a router: its gateway or one of its interfaces."""

    __tablename__ = "routerports"
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    router_id: Mapped[str] = mapped_column(
        ForeignKey("routers.id", ondelete="CASCADE"), index=True)
    #: ``network:router_interface`` or ``network:router_gateway``.
    port_type: Mapped[str] = mapped_column(String(64))


class RouterRoute(Base):
    """A static route of a router (the ``extraroute`` extension)."""

    __tablename__ = "routerroutes"
    router_id: Mapped[str] = mapped_column(
        ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True)
    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    nexthop: Mapped[str] = mapped_column(String(64), primary_key=True)


class FloatingIP(_RevisedAttributes, Base):
    __tablename__ = "floatingips"
    __table_args__ = (
        # one floating IP per fixed IP and external network
        UniqueConstraint("floating_network_id", "fixed_port_id", "fixed_ip_address"),
    )
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id"), index=True)
    #: The ``network:floatingip`` port that holds the address on the external network.
    floating_port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), unique=True)
    fixed_port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"), index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64))
    router_id: Mapped[str | None] = mapped_column(
        ForeignKey("routers.id", ondelete="SET NULL"), index=True)
    #: ``ACTIVE`` once the router's host reported the NAT of the current association
    #: in place; ``DOWN`` otherwise (and while not associated).
    status: Mapped[str] = mapped_column(String(16), default="DOWN", server_default="DOWN")

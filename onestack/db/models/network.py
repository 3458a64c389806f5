"""Networking tables (Neutron v2.0): networks, subnets, ports and their addresses.

Every top-level resource carries Neutron's *standard attributes* through the
``StandardAttributes`` mixin (id, project, name, description, timestamps, revision
number); its tags live in one generic table, ``network_tags``, keyed by resource type
and id. The L3 and security-group tables (``network_l3``) use the same mixin.

Address uniqueness is the database's job, not the code's: ``(subnet_id, ip_address)``
and ``(network_id, mac_address)`` are unique, so a race between two allocations ends
in an IntegrityError for one of them (retried), never in a duplicate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from onestack.db.models.base import Base, utcnow


class StandardAttributes:
    """Neutron's standard attributes, shared by every top-level networking resource.

    ``revision_number`` starts at 1 and is bumped (with ``updated_at``) whenever a
    column of the row changes, see ``_bump_revision`` below; to mark a change of
    related rows only (a port's addresses), set ``updated_at``."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revision_number: Mapped[int] = mapped_column(Integer, default=1)


@event.listens_for(StandardAttributes, "before_update", propagate=True)
def _bump_revision(mapper: Any, connection: Any, target: StandardAttributes) -> None:
    """One revision per transaction (a request may flush a row more than once)."""
    session = object_session(target)
    if session is not None and not session.is_modified(target, include_collections=False):
        return  # only a relationship collection changed
    target.updated_at = utcnow()
    if session is not None:
        bumped = session.info.setdefault("revisions_bumped", set())
        key = (type(target).__name__, target.id)
        if key in bumped:
            return
        bumped.add(key)
    target.revision_number = (target.revision_number or 0) + 1


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_bumps(session: Session) -> None:
    session.info.pop("revisions_bumped", None)


class NetworkTag(Base):
    """A tag on any networking resource (``resource_type`` is e.g. ``networks``)."""

    __tablename__ = "network_tags"
    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class Network(StandardAttributes, Base):
    __tablename__ = "networks"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The default external network (Neutron's ``is_default``, auto-allocated
    #: topologies put their router's gateway on it); only an external network is one.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    network_type: Mapped[str] = mapped_column(String(16))
    physical_network: Mapped[str | None] = mapped_column(String(64))
    segmentation_id: Mapped[int | None] = mapped_column(Integer)
    #: ``type:physnet:id`` of segments that must be unique (VXLAN VNIs, VLAN ids, flat
    #: physnets); NULL for ``local``. Unique, so two networks never share a segment.
    segment_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    subnets: Mapped[list[Subnet]] = relationship(
        back_populates="network", lazy="selectin", order_by="Subnet.created_at")


class Subnet(StandardAttributes, Base):
    __tablename__ = "subnets"
    __table_args__ = (Index("ix_subnets_subnetpool_cidr", "subnetpool_id", "cidr",
                            unique=True),)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True)
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64))
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(16))
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(16))
    #: The subnet pool the CIDR was allocated from (``network_pools.SubnetPool``).
    subnetpool_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    network: Mapped[Network] = relationship(back_populates="subnets", lazy="joined")
    allocation_pools: Mapped[list[AllocationPool]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AllocationPool.position")
    dns_nameservers: Mapped[list[DnsNameserver]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DnsNameserver.position")
    host_routes: Mapped[list[HostRoute]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="HostRoute.position")


class AllocationPool(Base):
    """A range of addresses of a subnet that automatic allocation takes from."""

    __tablename__ = "subnet_allocation_pools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), index=True)
    first_ip: Mapped[str] = mapped_column(String(64))
    last_ip: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)


class DnsNameserver(Base):
    __tablename__ = "subnet_dns_nameservers"
    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class HostRoute(Base):
    __tablename__ = "subnet_host_routes"
    subnet_id: Mapped[str] = mapped_column(
        ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True)
    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    nexthop: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Port(StandardAttributes, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address"),)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True)
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    binding_host_id: Mapped[str] = mapped_column(String(255), default="")
    binding_vnic_type: Mapped[str] = mapped_column(String(64), default="normal")
    binding_vif_type: Mapped[str] = mapped_column(String(64), default="unbound")
    binding_profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    binding_vif_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fixed_ips: Mapped[list[IPAllocation]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="IPAllocation.id")
    allowed_address_pairs: Mapped[list[AllowedAddressPair]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AllowedAddressPair.position")
    extra_dhcp_opts: Mapped[list[ExtraDhcpOpt]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ExtraDhcpOpt.id")


class IPAllocation(Base):
    """One fixed IP of a port. ``(subnet_id, ip_address)`` is unique: no duplicates."""

    __tablename__ = "ip_allocations"
    __table_args__ = (UniqueConstraint("subnet_id", "ip_address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)
    ip_address: Mapped[str] = mapped_column(String(64), index=True)


class AllowedAddressPair(Base):
    __tablename__ = "port_allowed_address_pairs"
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    mac_address: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ExtraDhcpOpt(Base):
    __tablename__ = "port_extra_dhcp_opts"
    __table_args__ = (UniqueConstraint("port_id", "opt_name", "ip_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    opt_name: Mapped[str] = mapped_column(String(64))
    opt_value: Mapped[str] = mapped_column(Text)
    ip_version: Mapped[int] = mapped_column(Integer, default=4)

"""Compute tables (Nova v2.1): flavors, keypairs, instances and what hangs off them,
server groups, quotas, and the hosts that run instances.

An instance row holds both the *desired* state (``vm_state`` with no ``task_state``
means "keep it so"; a ``task_state`` is a pending operation, with its arguments in
``task_args``) and the *observed* state the host reports (``power_state``, faults).
The host's agent converges the first onto the second, see ``onestack.agent``.

Instances are soft-deleted (``deleted``), as in Nova: usage reports and admins' lists
with ``deleted=true`` still see them; everything the host held is gone by then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from onestack.db.models.base import Base, utcnow


class Flavor(Base):
    __tablename__ = "flavors"
    #: Nova's ``flavorid``: the id users see (a string; often a small number or a uuid).
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    #: MiB of RAM; GiB of root and ephemeral disk; MiB of swap.
    ram: Mapped[int] = mapped_column(Integer)
    disk: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    extra_specs: Mapped[list[FlavorExtraSpec]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="FlavorExtraSpec.key")
    projects: Mapped[list[FlavorProject]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")


class FlavorExtraSpec(Base):
    __tablename__ = "flavor_extra_specs"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class FlavorProject(Base):
    """A project allowed to use a private flavor (os-flavor-access)."""

    __tablename__ = "flavor_projects"
    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class KeyPair(Base):
    """A public key; key pairs belong to a user (not a project), named per user."""

    __tablename__ = "keypairs"
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: ``ssh`` or ``x509``.
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Instance(Base):
    __tablename__ = "instances"
    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    display_description: Mapped[str | None] = mapped_column(Text)
    #: The guest's hostname (from the name, sanitized as Nova does).
    hostname: Mapped[str] = mapped_column(String(255), default="")
    #: The image booted (empty for a server booted from a volume).
    image_ref: Mapped[str] = mapped_column(String(36), default="")
    #: Image facts at boot (name, disk_format, min_disk, properties...), for the metadata
    #: service and rebuilds; the image may be deleted later.
    image_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The flavor as it was at boot (id, name, vcpus, ram, disk, ephemeral, swap,
    #: extra_specs); later flavor edits or deletes do not change a running server.
    flavor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: During a resize: the flavor it came from (for revert) and the one it goes to.
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    new_flavor: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: Copied from the flavor for quotas, usage and the scheduler.
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    key_name: Mapped[str | None] = mapped_column(String(255))
    key_data: Mapped[str | None] = mapped_column(Text)
    #: Base64 as the user sent it (Nova keeps it so).
    user_data: Mapped[str | None] = mapped_column(Text)
    #: Personality files ([{"path", "contents" (base64)}]): served to the guest by the
    #: metadata service and the config drive (``openstack/content/NNNN``).
    injected_files: Mapped[list[Any]] = mapped_column(default=list)
    #: Nova's system metadata kept here: while shelved, ``shelved_at``,
    #: ``shelved_image_id`` (the shelve snapshot, none for a volume-backed server) and
    #: ``shelved_host`` (services/compute/shelve.py).
    system_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    #: The zone the user asked for at create (Nova's RequestSpec.availability_zone,
    #: ``pinned_availability_zone`` from 2.96); ``availability_zone`` is the zone it is in.
    pinned_availability_zone: Mapped[str | None] = mapped_column(String(255))
    #: The host that runs it (set by the scheduler) and its hypervisor node name.
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    node: Mapped[str | None] = mapped_column(String(255))
    #: Nova's vm_state (building, active, stopped, paused, suspended, rescued, resized,
    #: soft-delete, deleted, error, shelved...).
    vm_state: Mapped[str] = mapped_column(String(32), default="building", index=True)
    #: A pending operation (scheduling, spawning, powering-off, rebooting, ...); None when
    #: the instance is steady.
    task_state: Mapped[str | None] = mapped_column(String(32))
    #: Arguments of the pending operation (e.g. {"reboot_type": "HARD"}).
    task_args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Observed by the host: a PowerState number (0 nostate, 1 running, 3 paused,
    #: 4 shutdown, 6 crashed, 7 suspended).
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    reservation_id: Mapped[str] = mapped_column(String(255), default="")
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "owner" or "admin", as Nova reports in ``locked_by`` (hidden) / lock policies.
    locked_by: Mapped[str | None] = mapped_column(String(16))
    locked_reason: Mapped[str | None] = mapped_column(String(255))
    access_ip_v4: Mapped[str | None] = mapped_column(String(45))
    access_ip_v6: Mapped[str | None] = mapped_column(String(45))
    #: ``OS-DCF:diskConfig``: AUTO (True) or MANUAL (False), as set on create, rebuild,
    #: resize or update. The root disk is grown to the flavor's size either way; see
    #: docs/compute.md "Disk config".
    auto_disk_config: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The ports it uses: [{"port_id": ..., "preserve_on_delete": bool}], in NIC order.
    #: Ports the compute service created are deleted with the server; ports the user
    #: passed in are only detached.
    ports: Mapped[list[Any]] = mapped_column(default=list)
    #: Names of the security groups asked for at create (shown in ``security_groups``).
    security_groups: Mapped[list[Any]] = mapped_column(default=list)
    #: The block device mapping the user passed (list of dicts, Nova's v2 format).
    block_device_mapping: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    metadata_items: Mapped[list[InstanceMetadata]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="InstanceMetadata.key")
    tags: Mapped[list[InstanceTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="InstanceTag.tag")
    faults: Mapped[list[InstanceFault]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="InstanceFault.id")


class InstanceMetadata(Base):
    """User metadata of a server (``metadata`` in the API)."""

    __tablename__ = "instance_metadata"
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class InstanceTag(Base):
    __tablename__ = "instance_tags"
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(60), primary_key=True)


class InstanceFault(Base):
    """Why an instance went wrong; the newest one is the server's ``fault``."""

    __tablename__ = "instance_faults"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), index=True)
    code: Mapped[int] = mapped_column(Integer, default=500)
    message: Mapped[str] = mapped_column(String(255))
    details: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class InstanceAction(Base):
    """One user-visible operation on a server (os-instance-actions)."""

    __tablename__ = "instance_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), index=True)
    #: Nova's action names: create, delete, stop, start, reboot, rebuild, resize, ...
    action: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: None while running, else "Success" or "Error".
    message: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    events: Mapped[list[InstanceActionEvent]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="InstanceActionEvent.id")


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True)
    #: e.g. compute__do_build_and_run_instance, compute_stop_instance.
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: None while running, else "Success" or "Error".
    result: Mapped[str | None] = mapped_column(String(255))
    traceback: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)


class ServerGroup(Base):
    __tablename__ = "server_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    #: affinity, anti-affinity, soft-affinity or soft-anti-affinity.
    policy: Mapped[str] = mapped_column(String(255))
    #: e.g. {"max_server_per_host": 3} (anti-affinity only).
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    members: Mapped[list[ServerGroupMember]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")


class ServerGroupMember(Base):
    __tablename__ = "server_group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


class ComputeQuota(Base):
    """A per-project limit that differs from the configured default."""

    __tablename__ = "compute_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class ComputeUserQuota(Base):
    """A limit for one user within a project (Nova's ``project_user_quotas``): it
    replaces the project's limit for what that user creates."""

    __tablename__ = "compute_user_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class ComputeService(Base):
    """A service in os-services: one ``nova-compute`` per host (its agent) plus the
    server's own ``nova-scheduler`` and ``nova-conductor``."""

    __tablename__ = "compute_services"
    __table_args__ = (UniqueConstraint("host", "binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The last heartbeat; a service silent for long is "down".
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ComputeNode(Base):
    """A hypervisor (os-hypervisors): what a host's agent reports it can offer."""

    __tablename__ = "compute_nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255))
    hypervisor_type: Mapped[str] = mapped_column(String(255), default="QEMU")
    hypervisor_version: Mapped[int] = mapped_column(Integer, default=0)
    #: What guests really get: "kvm" or "tcg".
    accel: Mapped[str] = mapped_column(String(16), default="tcg")
    host_ip: Mapped[str] = mapped_column(String(45), default="127.0.0.1")
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float, default=16.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.5)
    disk_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    cpu_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: What the host's drivers can do (``onestack.hostlink.capabilities``), as reported.
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Aggregate(Base):
    """A host aggregate (os-aggregates): a named set of compute hosts with metadata; its
    ``availability_zone`` metadata is the availability zone of its hosts."""

    __tablename__ = "aggregates"
    #: ids are never reused (Nova's are database sequence numbers).
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    hosts: Mapped[list[AggregateHost]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AggregateHost.host")
    metadata_items: Mapped[list[AggregateMetadata]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AggregateMetadata.key")


class AggregateHost(Base):
    __tablename__ = "aggregate_hosts"
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True)
    #: A compute service's host name (``compute_services.host``).
    host: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class AggregateMetadata(Base):
    __tablename__ = "aggregate_metadata"
    aggregate_id: Mapped[int] = mapped_column(
        ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(String(255))

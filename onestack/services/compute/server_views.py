"""What the API renders of a server: a ``ServerView``, a copy of the instance row and
of what its body needs from other tables (addresses from its ports, security groups,
the host's status and zone, server groups), fetched for a whole page at once. Views are
plain data: they outlive the session and the API never sees a row."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.db.models import (
    ComputeService,
    FloatingIP,
    Instance,
    IPAllocation,
    Network,
    Port,
    SecurityGroup,
    SecurityGroupPortBinding,
    ServerGroupMember,
)
from onestack.services.compute import states
from onestack.services.compute.scheduler import COMPUTE_BINARY, host_status
from onestack.services.compute.volume_attachments import attached_volume_ids


@dataclass
class Address:
    addr: str
    version: int
    type: str   # "fixed" or "floating"
    mac: str


#: network label -> its addresses.
Addresses = dict[str, list[Address]]


@dataclass(frozen=True)
class FaultView:
    """The newest fault of a server (``fault`` in its body)."""

    code: int
    message: str
    details: str
    created_at: dt.datetime | None


@dataclass
class ServerView:
    """A server as the API renders it: the instance's columns (names as in Nova's
    database) and what its body needs beyond the row."""

    uuid: str
    display_name: str
    display_description: str | None
    project_id: str
    user_id: str
    hostname: str
    image_ref: str
    #: The flavor the server was booted or resized with (a copy, as Nova keeps it).
    flavor: dict[str, Any]
    key_name: str | None
    user_data: str | None
    config_drive: bool
    host: str | None
    node: str | None
    vm_state: str
    task_state: str | None
    power_state: int
    progress: int
    launch_index: int
    reservation_id: str
    locked: bool
    locked_reason: str | None
    access_ip_v4: str | None
    access_ip_v6: str | None
    #: ``OS-DCF:diskConfig``: AUTO (True) or MANUAL.
    auto_disk_config: bool
    pinned_availability_zone: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    launched_at: dt.datetime | None
    terminated_at: dt.datetime | None
    deleted: bool
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    fault: FaultView | None = None
    #: network label -> addresses (fixed first, then floating), in NIC order.
    addresses: dict[str, list[Address]] = field(default_factory=dict)
    security_groups: list[str] = field(default_factory=list)
    #: UP, DOWN, MAINTENANCE, UNKNOWN or "" (no host).
    host_status: str = ""
    #: The zone the server is in (its host's), else the one asked for, else "".
    availability_zone: str = ""
    server_groups: list[str] = field(default_factory=list)
    #: ``os-extended-volumes:volumes_attached``: [{"id", "delete_on_termination"}].
    volumes_attached: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return states.status_of(self.vm_state, self.task_state, self.deleted)

    @classmethod
    def of(cls, inst: Instance, **extra: Any) -> ServerView:
        """The view of a row (its metadata, tags and faults are loaded with it);
        ``extra``: the fields from other tables."""
        last = inst.faults[-1] if inst.faults else None
        fault = FaultView(last.code, last.message, last.details, last.created_at) \
            if last is not None else None
        return cls(
            uuid=inst.uuid, display_name=inst.display_name,
            display_description=inst.display_description, project_id=inst.project_id,
            user_id=inst.user_id, hostname=inst.hostname, image_ref=inst.image_ref,
            flavor=dict(inst.flavor or {}), key_name=inst.key_name, user_data=inst.user_data,
            config_drive=bool(inst.config_drive), host=inst.host, node=inst.node,
            vm_state=inst.vm_state, task_state=inst.task_state,
            power_state=inst.power_state, progress=inst.progress,
            launch_index=inst.launch_index, reservation_id=inst.reservation_id,
            locked=bool(inst.locked), locked_reason=inst.locked_reason,
            access_ip_v4=inst.access_ip_v4, access_ip_v6=inst.access_ip_v6,
            auto_disk_config=bool(inst.auto_disk_config),
            pinned_availability_zone=inst.pinned_availability_zone,
            created_at=inst.created_at, updated_at=inst.updated_at,
            launched_at=inst.launched_at, terminated_at=inst.terminated_at,
            deleted=bool(inst.deleted),
            metadata={m.key: m.value for m in inst.metadata_items},
            tags=[t.tag for t in inst.tags], fault=fault,
            volumes_attached=attached_volume_ids(inst), **extra)


def server_views(session: Session, instances: list[Instance]) -> list[ServerView]:
    """The views of a page of instances, with a handful of queries for all."""
    if not instances:
        return []
    uuids = [i.uuid for i in instances]
    addresses, groups = _network_info(session, instances)
    services = {s.host: s for s in session.scalars(select(ComputeService).where(
        ComputeService.binary == COMPUTE_BINARY,
        ComputeService.host.in_({i.host for i in instances if i.host})))}
    memberships: dict[str, list[str]] = {}
    for group_id, uuid in session.execute(
            select(ServerGroupMember.group_id, ServerGroupMember.instance_uuid)
            .where(ServerGroupMember.instance_uuid.in_(uuids))):
        memberships.setdefault(uuid, []).append(group_id)
    views = []
    for inst in instances:
        service = services.get(inst.host) if inst.host else None
        zone = inst.availability_zone or ""
        views.append(ServerView.of(
            inst,
            addresses={} if inst.vm_state == states.BUILDING else addresses.get(
                inst.uuid, {}),
            security_groups=groups.get(inst.uuid, []),
            host_status=host_status(service) if inst.host else "",
            availability_zone=zone, server_groups=memberships.get(inst.uuid, [])))
    return views


def _network_info(session: Session, instances: list[Instance]
                  ) -> tuple[dict[str, Addresses], dict[str, list[str]]]:
    """Addresses per network label and security group names of each instance,
    from its ports (in NIC order)."""
    port_ids = [p["port_id"] for i in instances for p in i.ports or []
                if isinstance(p, dict) and p.get("port_id")]
    if not port_ids:
        return {}, {}
    ports = {p.id: p for p in session.execute(
        select(Port.id, Port.network_id, Port.mac_address).where(Port.id.in_(port_ids)))}
    fixed: dict[str, list[str]] = {}
    for port_id, address in session.execute(
            select(IPAllocation.port_id, IPAllocation.ip_address)
            .where(IPAllocation.port_id.in_(port_ids)).order_by(IPAllocation.id)):
        fixed.setdefault(port_id, []).append(address)
    floating: dict[str, list[str]] = {}
    for fixed_port_id, floating_address in session.execute(
            select(FloatingIP.fixed_port_id, FloatingIP.floating_ip_address)
            .where(FloatingIP.fixed_port_id.in_(port_ids))
            .order_by(FloatingIP.floating_ip_address)):
        if fixed_port_id:
            floating.setdefault(fixed_port_id, []).append(floating_address)
    names = dict(session.execute(select(Network.id, Network.name).where(
        Network.id.in_({p.network_id for p in ports.values()}))).all())
    group_names: dict[str, list[str]] = {}
    for port_id, name in session.execute(
            select(SecurityGroupPortBinding.port_id, SecurityGroup.name)
            .join(SecurityGroup,
                  SecurityGroup.id == SecurityGroupPortBinding.security_group_id)
            .where(SecurityGroupPortBinding.port_id.in_(port_ids))
            .order_by(SecurityGroup.name)):
        group_names.setdefault(port_id, []).append(name)
    addresses: dict[str, Addresses] = {}
    groups: dict[str, list[str]] = {}
    for inst in instances:
        labels: dict[str, dict[str, list[Address]]] = {}
        seen_groups: list[str] = []
        for entry in inst.ports or []:
            port = ports.get(entry.get("port_id")) if isinstance(entry, dict) else None
            if port is None:
                continue
            label = labels.setdefault(names.get(port.network_id) or "",
                                      {"fixed": [], "floating": []})
            for address in fixed.get(port.id, []):
                label["fixed"].append(Address(address, _version(address), "fixed",
                                              port.mac_address))
            for address in floating.get(port.id, []):
                label["floating"].append(Address(address, _version(address), "floating",
                                                 port.mac_address))
            for name in group_names.get(port.id, []):
                if name not in seen_groups:
                    seen_groups.append(name)
        addresses[inst.uuid] = {k: v["fixed"] + v["floating"] for k, v in labels.items()}
        groups[inst.uuid] = seen_groups
    return addresses, groups


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


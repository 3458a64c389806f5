"""Compute's slice of the server-host boundary: hosts' registrations, the instances a
host should run, and what hosts report about them.

The host service (``onestack.services.hosts``) answers hosts (``onestack.hostlink``'s
``HostToServer``) by asking each domain service for its part; this is compute's. Writes
are compare-and-set on ``task_state``: a host finishing a task that a newer request
replaced (a delete while spawning) changes nothing. See docs/design/compute-states.md.
Compute writes no network tables here: ports are the network service's
(``services/network/hostview.py``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.db.models import (
    ComputeNode,
    ComputeService,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    ServerGroupMember,
    utcnow,
)
from onestack.hostlink import states
from onestack.hostlink.states import TASK_EVENTS
from onestack.hostlink.types import (
    DesiredInstance,
    HostReport,
    ImageDisk,
    ImageRef,
    VolumeAttachment,
)
from onestack.services.compute import migrations
from onestack.services.compute.interfaces import desired_port_ids
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.tokens import TokenData

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

#: Builds that fail leave the server in ERROR; other actions leave vm_state alone.
#: What a finished resize task makes of the server's migration record.
MIGRATION_DONE = {states.RESIZE_PREP: "finished", states.RESIZE_REVERTING: "reverted"}
#: Tasks whose image goes when they fail (a snapshot, a shelve before it is shelved).
SNAPSHOT_TASKS = (states.IMAGE_SNAPSHOT, states.SHELVING, states.SHELVING_IMAGE_PENDING_UPLOAD,
                  states.SHELVING_IMAGE_UPLOADING)
ERROR_ON_FAILURE = {states.SPAWNING, states.REBUILDING, states.RESIZE_PREP,
                    states.RESIZE_REVERTING}


@dataclass
class HostInstance:
    """One instance for its host, before the network service fills in its NICs."""

    spec: DesiredInstance
    #: The instance's ports in order, and the name DHCP hands its guest.
    port_ids: list[str]
    dns_name: str
    #: The volumes its host should have attached to it (block storage's slice).
    attachments: list[VolumeAttachment] = field(default_factory=list)


class HostAPI:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        self.config = compute.config

    # -- hosts ------------------------------------------------------------------------

    def register(self, report: HostReport) -> None:
        with self.db.session() as session:
            service = session.scalar(select(ComputeService).where(
                ComputeService.host == report.host, ComputeService.binary == "nova-compute"))
            now = utcnow()
            if service is None:
                service = ComputeService(
                    uuid=str(uuidlib.uuid4()), host=report.host, binary="nova-compute",
                    availability_zone=self.compute.aggregates.zone_for_new_host(
                        session, report.host))
                session.add(service)
            service.last_seen_at = now
            service.updated_at = now
            node = session.scalar(select(ComputeNode).where(ComputeNode.host == report.host))
            if node is None:
                node = ComputeNode(uuid=str(uuidlib.uuid4()), host=report.host)
                session.add(node)
            for name in ("hypervisor_hostname", "hypervisor_type", "hypervisor_version",
                         "accel", "vcpus", "memory_mb", "local_gb", "local_gb_used",
                         "host_ip", "cpu_info", "cpu_allocation_ratio",
                         "ram_allocation_ratio", "disk_allocation_ratio", "capabilities"):
                value = getattr(report, name)
                if getattr(node, name) != value:
                    setattr(node, name, value)
            node.updated_at = now

    # -- desired state ----------------------------------------------------------------

    def desired_instances(self, host: str) -> list[HostInstance]:
        """Every instance assigned to ``host`` that is not yet deleted (NICs empty: the
        host service asks the network service for them)."""
        from onestack.services.compute import shelve

        shelve.offload_due(self.compute, host)
        with self.db.session() as session:
            rows = session.scalars(select(Instance).where(
                Instance.host == host, Instance.deleted.is_(False))).all()
            images = self._image_refs(session, {_boot_image_id(r) for r in rows
                                                if _boot_image_id(r)})
            result = []
            for row in rows:
                image = images.get(_boot_image_id(row)) if _boot_image_id(row) else None
                disks: list[Any] = [ImageDisk(image=image, size_gb=row.root_gb)] \
                    if image is not None else []
                volumes, attachments = self.compute.volume_attachments.host_view(row)
                if any(v.boot_index == 0 for v in volumes):
                    disks = []  # booted from a volume
                disks += volumes
                spec = DesiredInstance(
                    uuid=row.uuid, name=row.display_name, hostname=row.hostname,
                    vm_state=row.vm_state, task_state=row.task_state,
                    task_args=dict(row.task_args or {}), power_state=row.power_state,
                    vcpus=row.vcpus, memory_mb=row.memory_mb, root_gb=row.root_gb,
                    disks=disks, ports=[], config_drive=row.config_drive,
                    new_flavor=dict(row.new_flavor) if row.new_flavor else None,
                    old_flavor=dict(row.old_flavor) if row.old_flavor else None)
                result.append(HostInstance(
                    spec=spec, port_ids=desired_port_ids(row),
                    dns_name=row.hostname or row.display_name, attachments=attachments))
            return result

    @staticmethod
    def _image_refs(session: Session, image_ids: set[str]) -> dict[str, ImageRef]:
        if not image_ids:
            return {}
        refs = {}
        for image in session.scalars(select(Image).where(Image.id.in_(image_ids))):
            refs[image.id] = ImageRef(
                id=image.id, disk_format=image.disk_format or "raw", size=image.size or 0,
                hash_algo=image.os_hash_algo or "sha512", hash_value=image.os_hash_value or "")
        return refs

    def config_drive_files(self, uuid: str) -> dict[str, bytes]:
        """What a config drive holds (Nova's layout: ``openstack/<version>/...`` and
        ``ec2/latest/meta-data.json``), from the same documents the metadata service
        serves."""
        from onestack.services.compute.metadata import OPENSTACK_VERSIONS

        docs = self.compute.metadata.documents(uuid)
        if docs is None:
            return {}
        files: dict[str, bytes] = {}
        for version in [*OPENSTACK_VERSIONS, "latest"]:
            listed = OPENSTACK_VERSIONS[-1] if version == "latest" else version
            for name in docs.openstack_listing(listed):
                if name == "password":
                    continue
                doc = docs.lookup(f"/openstack/{version}/{name}")
                if doc is not None:
                    files[f"openstack/{version}/{name}"] = doc.body
        for index, (_, data) in enumerate(docs.facts.files):
            files[f"openstack/content/{index:04d}"] = data
        tree = docs.ec2_tree("latest")
        files["ec2/latest/meta-data.json"] = json.dumps(
            _plain(tree.get("meta-data", {}))).encode()
        if tree.get("user-data"):
            files["ec2/latest/user-data"] = tree["user-data"]
        return files

    # -- observed state -----------------------------------------------------------------

    def start_event(self, uuid: str, event: str) -> None:
        with self.db.session() as session:
            action = _open_action(session, uuid)
            if action is None:
                return
            if any(e.event == event and e.finish_time is None for e in action.events):
                return
            action.events.append(InstanceActionEvent(event=event, host=_host_of(session, uuid)))

    def finish_task(self, uuid: str, expected_task_state: str | None, *, event: str = "",
                    **changes: Any) -> bool:
        """``changes`` with a ``task_state``: the task goes on as that one (its
        arguments and event kept; a shelve's steps)."""
        from onestack.services.compute import shelve

        if expected_task_state == states.IMAGE_SNAPSHOT:
            self._rotate_backups(uuid)
        next_task = changes.pop("task_state", None)
        if expected_task_state == states.UNSHELVING and next_task is None:
            shelve.unshelve_ending(self.compute, uuid)
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None or inst.deleted or inst.task_state != expected_task_state:
                return False
            for key, value in changes.items():
                setattr(inst, key, value)
            if next_task is not None:
                inst.task_state = next_task
                inst.updated_at = utcnow()
                return True
            host = inst.host
            drop_image = shelve.task_done(session, inst, expected_task_state, changes)
            inst.task_state = None
            inst.task_args = {}
            inst.updated_at = utcnow()
            if changes.get("vm_state") == states.ACTIVE and inst.launched_at is None:
                inst.launched_at = utcnow()
            if expected_task_state in MIGRATION_DONE:
                migrations.advance(session, uuid, MIGRATION_DONE[expected_task_state])
            _finish_event(session, uuid, event or TASK_EVENTS.get(expected_task_state or "", ""),
                          "Success", host)
        shelve.drop_image(self.compute, drop_image)
        self.compute.notify(changes.get("host"))
        return True

    def _rotate_backups(self, uuid: str) -> None:
        """A ``createBackup`` snapshot is uploaded: the server's oldest backups of its
        type go (before its task ends, so a client that sees the server done sees the
        rotation done)."""
        with self.db.session() as session:
            inst = session.get(Instance, uuid)
            args = dict(inst.task_args or {}) if inst is not None and not inst.deleted \
                and inst.task_state == states.IMAGE_SNAPSHOT else {}
        if "backup_type" in args:
            self.compute.actions.rotate_backups(uuid, str(args["backup_type"]),
                                                int(args.get("rotation", 0)))

    def fail_task(self, uuid: str, expected_task_state: str | None, message: str, *,
                  event: str = "", details: str = "", vm_state: str | None = None) -> bool:
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None or inst.deleted or inst.task_state != expected_task_state:
                return False
            if vm_state is None and expected_task_state in ERROR_ON_FAILURE:
                vm_state = states.ERROR
            if vm_state:
                inst.vm_state = vm_state
            snapshot = inst.task_args.get("image_id") \
                if expected_task_state in SNAPSHOT_TASKS else None
            if expected_task_state in SNAPSHOT_TASKS[1:]:  # a shelve that did not happen
                inst.system_metadata = {k: v for k, v in (inst.system_metadata or {}).items()
                                        if not k.startswith("shelved_")}
            inst.task_state = None
            inst.task_args = {}
            inst.updated_at = utcnow()
            inst.faults.append(InstanceFault(code=500, message=message[:255],
                                             details=details or message, host=inst.host))
            if expected_task_state in MIGRATION_DONE:
                migrations.advance(session, uuid, "error")
            _finish_event(session, uuid, event or TASK_EVENTS.get(expected_task_state or "", ""),
                          "Error", inst.host, details or message)
        log.warning("instance %s: %s failed: %s", uuid, expected_task_state, message)
        if snapshot:
            self._drop_snapshot_image(snapshot)
        return True

    def _drop_snapshot_image(self, image_id: str) -> None:
        """A failed snapshot leaves no half image behind (Nova deletes it too)."""
        with self.db.session() as session:
            image = session.get(Image, image_id)
            owner = image.owner if image else None
        if image is None:
            return
        try:
            self.compute.images.delete(service_context(owner), image_id)
        except Exception:
            log.exception("could not delete the image %s of a failed snapshot", image_id)

    def report_power(self, uuid: str, power_state: int, vm_state: str | None = None) -> None:
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None or inst.deleted:
                return
            if inst.power_state != power_state:
                inst.power_state = power_state
                inst.updated_at = utcnow()
            if vm_state and inst.task_state is None and inst.vm_state != vm_state:
                log.info("instance %s: found %s by the host, was %s", uuid, vm_state,
                         inst.vm_state)
                inst.vm_state = vm_state
                inst.updated_at = utcnow()

    def instance_deleted(self, uuid: str) -> None:
        """The host released everything: the network service deletes the ports the
        server created and unbinds the others, then the row is soft-deleted."""
        from onestack.services.compute import shelve

        with self.db.session() as session:
            inst = session.get(Instance, uuid)
            if inst is None or inst.deleted:
                return
            ports = [dict(p) for p in inst.ports]
            shelve_image = shelve.forget_image(self.compute, inst)
        self.compute.network.hostview.release_ports(ports)
        self.compute.volume_attachments.release(uuid)
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None or inst.deleted:
                return
            for member in session.scalars(select(ServerGroupMember).where(
                    ServerGroupMember.instance_uuid == uuid)):
                session.delete(member)
            now = utcnow()
            inst.vm_state = states.DELETED
            inst.task_state = None
            inst.power_state = 0
            inst.deleted = True
            inst.deleted_at = now
            inst.terminated_at = now
            inst.updated_at = now
            _finish_event(session, uuid, TASK_EVENTS[states.DELETING], "Success", inst.host)
        shelve.drop_image(self.compute, shelve_image)


# -- helpers ----------------------------------------------------------------------------


def service_context(project_id: str | None) -> ValidatedToken:
    """An admin context for work the host side does on a user's behalf (snapshots)."""
    now = time.time()
    data = TokenData(user_id="onestack-compute", methods=("internal",), expires_at=now + 3600,
                     issued_at=now, audit_ids=("internal",), project_id=project_id)
    return ValidatedToken(token="", data=data, user={"id": "onestack-compute",
                                                     "name": "onestack-compute"},
                          roles=[{"id": "admin", "name": "admin"}],
                          project={"id": project_id} if project_id else None)


def _plain(data: Any) -> Any:
    """The EC2 tree without its listing hints (``_name``), as JSON-able values."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items() if k != "_name"}
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data


def _boot_image_id(inst: Instance) -> str:
    """The image the instance's disk is made from: its image, or while it is unshelved
    from being offloaded, its shelve image (services/compute/shelve.py)."""
    if inst.task_state == states.UNSHELVING and inst.vm_state == states.SHELVED_OFFLOADED:
        return str((inst.task_args or {}).get("image_id") or "")
    return inst.image_ref or ""


def _host_of(session: Session, uuid: str) -> str | None:
    inst = session.get(Instance, uuid)
    return inst.host if inst else None


def _open_action(session: Session, uuid: str) -> InstanceAction | None:
    return session.scalar(select(InstanceAction).where(
        InstanceAction.instance_uuid == uuid).order_by(InstanceAction.id.desc()).limit(1))


def _finish_event(session: Session, uuid: str, event: str, result: str, host: str | None,
                  details: str | None = None) -> None:
    """Finish ``event`` of the instance's newest action (adding it if it was never
    started), and the action itself."""
    action = _open_action(session, uuid)
    if action is None or not event:
        return
    now = utcnow()
    row = next((e for e in reversed(action.events)
                if e.event == event and e.finish_time is None), None)
    if row is None:
        row = InstanceActionEvent(event=event, host=host, start_time=now)
        action.events.append(row)
    row.finish_time = now
    row.result = result
    if details and result == "Error":
        row.traceback = details
    action.finish_time = now
    action.updated_at = now
    if result == "Error":
        action.message = "Error"

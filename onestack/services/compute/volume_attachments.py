"""A server's volumes: attach, detach, list (``os-volume_attachments``), the volumes a
server boots from (``block_device_mapping_v2``), what its host should plug, and what
happens to them when the server goes.

Compute keeps a server's volumes in ``Instance.block_device_mapping`` (Nova's block
device mappings, one JSON list per server; an image booted to a local disk keeps the
user's entry as it was). A volume's entry::

    {"volume_id", "attachment_id", "bdm_uuid", "device_name", "boot_index",
     "delete_on_termination", "tag", "size_gb", "connection",
     "status": "attaching" | "attached" | "detaching"}

The volume service (``compute.volume``, Cinder's attachments API as a Python service)
owns the volumes and their attachments. Attaching creates the attachment and its
connection info (``attachment_create`` + ``attachment_update``) in the request, so a
volume in use (400, as Nova's ``InvalidVolume``) or unknown (404) is refused there and
then, and so is a volume that is not bootable as a server's boot volume; the entry is
``attaching`` and the host is woken. The host's agent hot-plugs it
(``onestack.agent.volumes``) and reports what its guest has (``report``): an
``attaching`` entry found there is completed (``attachment_complete``: the volume is
``in-use``). Detaching marks the entry
``detaching``, which takes it out of the host's desired state; once the host reports
it gone the attachment is deleted (the volume is ``available``) and the entry dropped.
A server on no host, or that never ran, has nothing plugged: its detach is finished
at once.

When the server is deleted (``release``, after its host let go) every attachment is
deleted, and the volumes marked ``delete_on_termination`` are deleted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
import uuid as uuidlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from onestack.common.errors import BadRequest, Conflict, NotFound, OneStackError
from onestack.db.models import Instance, InstanceAction, InstanceActionEvent, utcnow
from onestack.hostlink import capabilities as caps
from onestack.hostlink.types import VolumeAttachment, VolumeDisk
from onestack.services.compute import policy, states
from onestack.services.compute.instances import (
    check_lock,
    check_state,
    find_instance,
    finish_action,
    record_action,
    touch,
)
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

#: The event of Nova's ``extend_volume`` action that Tempest waits for.
EXTEND_EVENT = "compute_extend_volume"

ATTACHING, ATTACHED, DETACHING = "attaching", "attached", "detaching"
#: Nova's states a volume may be attached in or detached from (check_instance_state of
#: attach_volume / detach_volume; a suspended guest's saved memory holds its devices).
ATTACH_VM_STATES = (states.ACTIVE, states.PAUSED, states.STOPPED, states.RESIZED,
                    states.SOFT_DELETED, states.SHELVED, states.SHELVED_OFFLOADED)
DEVICE_PATTERN = re.compile(r"^/dev/(x?v|s|h)d[a-z]+$")
#: What a host is told it connects from (os-brick's connector): OneStack's hosts open
#: files and RBD images themselves, so only the host's name matters.
CONNECTOR_BASE = {"platform": "x86_64", "os_type": "linux", "multipath": False,
                  "initiator": "", "do_local_attach": False}
#: How long a server create waits for a volume made from an image to be available.
VOLUME_CREATE_TIMEOUT = 600.0


class VolumeService(Protocol):
    """What compute calls on the volume service (``onestack.services.volume``)."""

    def attachment_create(self, ctx: Any, volume_id: str, instance_uuid: str,
                          connector: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def attachment_complete(self, ctx: Any, attachment_id: str) -> Any: ...

    def attachment_delete(self, ctx: Any, attachment_id: str) -> Any: ...

    def create_volume(self, ctx: Any, size: Any = None, image_id: str | None = None,
                      name: str | None = None, *, snapshot_id: str | None = None
                      ) -> Any: ...

    def get_volume(self, ctx: Any, volume_id: str) -> Any: ...

    def create_snapshot(self, ctx: Any, body: dict[str, Any]) -> Any: ...

    def get_snapshot(self, ctx: Any, snapshot_id: str) -> Any: ...

    def delete_snapshot(self, ctx: Any, snapshot_id: str) -> Any: ...

    def delete_volume(self, ctx: Any, volume_id: str) -> Any: ...


def volume_entries(inst: Instance) -> list[dict[str, Any]]:
    """The server's volume entries (block device mappings with an attachment)."""
    return [dict(e) for e in inst.block_device_mapping or []
            if isinstance(e, dict) and e.get("attachment_id")]


def boots_from_volume(inst: Instance) -> bool:
    """Whether the server's boot disk is a volume (no local disk)."""
    return any(e.get("boot_index") == 0 for e in volume_entries(inst))


def connector_for(host: str | None) -> dict[str, Any]:
    return {**CONNECTOR_BASE, "host": host or ""}


def device_names_in_use(inst: Instance, ignore: str = "") -> set[str]:
    used = {"/dev/vda"} if inst.image_ref else set()
    return used | {str(e.get("device_name")) for e in volume_entries(inst)
                   if e.get("device_name") and e["attachment_id"] != ignore}


def next_device_name(used: set[str]) -> str:
    """The first free ``/dev/vdX`` (vda is the root disk)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    for first in ["", *letters]:
        for letter in letters:
            name = f"/dev/vd{first}{letter}"
            if name not in used:
                return name
    raise Conflict("No free device name is left on this server")


class NotSupported(OneStackError):
    """Nova's 501: swapping a server's volume for another; volumes in a cloud without
    block storage."""

    status = 501
    title = "Not Implemented"
    fault = "notImplemented"


@dataclass
class BootVolume:
    """A volume a new server boots from or has attached from the start (a mapping of
    ``block_device_mapping_v2`` with destination ``volume``)."""

    source_type: str  # "image", "volume", "blank" or "snapshot"
    boot_index: int | None
    volume_id: str = ""
    image_id: str = ""
    snapshot_id: str = ""
    size_gb: int = 0
    delete_on_termination: bool = False
    device_name: str = ""
    tag: str | None = None
    #: Filled in as the volume is made and attached.
    created: bool = False
    entry: dict[str, Any] = field(default_factory=dict)


class VolumeAttachments:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    @property
    def volume(self) -> VolumeService:
        service: VolumeService | None = getattr(self.compute, "volume", None)
        if service is None:
            raise NotSupported("Volumes are not supported by this cloud (it has no block "
                               "storage service).")
        return service

    @property
    def available(self) -> bool:
        return getattr(self.compute, "volume", None) is not None

    # -- the API ------------------------------------------------------------------------

    def index(self, ctx: ValidatedToken, server_id: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-volumes-attachments:index",
                                  inst.project_id)
            return [self._view(inst, e) for e in volume_entries(inst)]

    def show(self, ctx: ValidatedToken, server_id: str, volume_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_reader(ctx, "os_compute_api:os-volumes-attachments:show",
                                  inst.project_id)
            return self._view(inst, self._entry(inst, volume_id))

    def attach(self, ctx: ValidatedToken, server_id: str, volume_id: str,
               device: str | None = None, tag: str | None = None,
               delete_on_termination: bool = False) -> dict[str, Any]:
        """Attach a volume to a server (see the module docstring); the view of the new
        attachment."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-volumes-attachments:create",
                                  inst.project_id)
            self.compute.hosts.require_capability(session, inst.host, caps.VOLUME_HOTPLUG,
                                                  "attach volume")
            check_lock(ctx, inst)
            check_state("attach_volume", inst, ATTACH_VM_STATES, must_have_launched=False)
            stale = ""
            for e in volume_entries(inst):
                if e["volume_id"] != volume_id:
                    continue
                # a detach whose attachment is gone and whose entry is not dropped yet
                # (the host's report is being handled) is over
                if e.get("status") == DETACHING and self._attachment_gone(e["attachment_id"]):
                    stale = e["attachment_id"]
                    continue
                # Nova's InvalidVolume (400), as for a volume attached elsewhere
                raise BadRequest(f"Invalid volume: volume {volume_id} already attached to "
                                 f"server {inst.uuid}")
            used = device_names_in_use(inst, ignore=stale)
            if device:
                if not DEVICE_PATTERN.match(device):
                    raise BadRequest(f"The supplied device path ({device}) is invalid.")
                if device in used:
                    raise Conflict(f"The supplied device path ({device}) is in use.")
            device = device or next_device_name(used)
            host, uuid = inst.host, inst.uuid
        self.volume  # noqa: B018  (501 without block storage, after the server's checks)
        attachment_id, connection, size_gb = self._create_attachment(ctx, volume_id, uuid,
                                                                      host, device)
        entry = {"volume_id": volume_id, "attachment_id": attachment_id,
                 "bdm_uuid": str(uuidlib.uuid4()), "device_name": device,
                 "boot_index": None, "delete_on_termination": bool(delete_on_termination),
                 "tag": tag, "size_gb": size_gb, "connection": connection,
                 "status": ATTACHING, "source_type": "volume", "destination_type": "volume"}
        try:
            with self.db.session() as session:
                inst = find_instance(session, ctx, server_id, lock=True)
                record_action(session, ctx, inst, "attach_volume")
                inst.block_device_mapping = [
                    *(e for e in inst.block_device_mapping
                      if not (stale and isinstance(e, dict)
                              and e.get("attachment_id") == stale)), entry]
                touch(inst)
                view = self._view(inst, entry)
                ran = inst.host is not None and inst.launched_at is not None
        except Exception:
            self._delete_attachment(ctx, attachment_id)
            raise
        if not ran:  # nothing to plug: complete it now
            self.report(uuid, [attachment_id])
        self.compute.notify(host)
        return view

    def update(self, ctx: ValidatedToken, server_id: str, volume_id: str,
               new_volume_id: str, delete_on_termination: bool | None) -> None:
        """PUT: Nova's swap (admin only) moves the guest to another volume, which this
        cloud does not do (501); the same volume with ``delete_on_termination`` (2.85)
        only changes that flag."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_admin(ctx, "os_compute_api:os-volumes-attachments:update")
            entry = self._entry(inst, volume_id)
            if new_volume_id != volume_id:
                raise NotSupported(
                    "Swapping a server's volume for another is not supported by this "
                    "cloud; detach the volume and attach the other one instead.")
            if delete_on_termination is not None:
                entries = [dict(e, delete_on_termination=bool(delete_on_termination))
                           if e.get("attachment_id") == entry["attachment_id"] else e
                           for e in inst.block_device_mapping]
                inst.block_device_mapping = entries
                touch(inst)

    def detach(self, ctx: ValidatedToken, server_id: str, volume_id: str) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, lock=True)
            policy.require_member(ctx, "os_compute_api:os-volumes-attachments:delete",
                                  inst.project_id)
            entry = self._entry(inst, volume_id)
            check_lock(ctx, inst)
            if entry.get("boot_index") is not None:
                raise BadRequest("Cannot detach a root device volume")
            check_state("detach_volume", inst, ATTACH_VM_STATES, must_have_launched=False)
            if entry.get("status") == DETACHING:
                raise Conflict(f"Volume {volume_id} is already being detached from server "
                               f"{inst.uuid}.")
            self.compute.hosts.require_capability(session, inst.host, caps.VOLUME_HOTPLUG,
                                                  "detach volume")
            record_action(session, ctx, inst, "detach_volume")
            inst.block_device_mapping = [
                dict(e, status=DETACHING) if e.get("attachment_id") == entry["attachment_id"]
                else e for e in inst.block_device_mapping]
            touch(inst)
            host, uuid = inst.host, inst.uuid
            ran = host is not None and inst.launched_at is not None
            remaining = [e["attachment_id"] for e in volume_entries(inst)
                         if e.get("status") != DETACHING]
        if not ran:
            self.report(uuid, remaining)
        self.compute.notify(host)

    # -- the host side --------------------------------------------------------------------

    def report(self, uuid: str, attachment_ids: list[str]) -> None:
        """What the instance's host has attached (``HostToServer.report_attachments``):
        complete the attaching entries that are there, finish the detaches of the
        detaching ones that are gone."""
        have = set(attachment_ids)
        with self.db.session() as session:
            inst = session.get(Instance, uuid)
            if inst is None or inst.deleted:
                return
            entries = volume_entries(inst)
        complete = [e for e in entries if e.get("status") == ATTACHING
                    and e["attachment_id"] in have]
        gone = [e for e in entries if e.get("status") == DETACHING
                and e["attachment_id"] not in have]
        if not complete and not gone:
            return
        ctx = None  # the cloud itself
        done: set[str] = set()
        for entry in complete:
            try:
                self.volume.attachment_complete(ctx, entry["attachment_id"])
                done.add(entry["attachment_id"])
            except Exception:
                log.exception("instance %s: completing the attachment of volume %s failed",
                              uuid, entry["volume_id"])
        dropped: set[str] = set()
        for entry in gone:
            if self._delete_attachment(ctx, entry["attachment_id"]):
                dropped.add(entry["attachment_id"])
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None:
                return
            kept = []
            for e in inst.block_device_mapping or []:
                if isinstance(e, dict) and e.get("attachment_id") in dropped:
                    continue
                if isinstance(e, dict) and e.get("attachment_id") in done \
                        and e.get("status") == ATTACHING:
                    e = dict(e, status=ATTACHED)
                kept.append(e)
            inst.block_device_mapping = kept
            touch(inst)
        for entry in gone:
            if entry["attachment_id"] in dropped:
                log.info("instance %s: volume %s detached", uuid, entry["volume_id"])

    def release(self, uuid: str) -> None:
        """The server is gone from its host: delete its attachments, and the volumes
        marked ``delete_on_termination`` (the others are available again)."""
        with self.db.session() as session:
            inst = session.get(Instance, uuid)
            if inst is None:
                return
            entries = volume_entries(inst)
        if not entries:
            return
        ctx = None  # the cloud itself
        for entry in entries:
            self._delete_attachment(ctx, entry["attachment_id"])
            if entry.get("delete_on_termination"):
                try:
                    self.volume.delete_volume(ctx, entry["volume_id"])
                except NotFound:
                    pass
                except Exception:
                    log.exception("instance %s: deleting volume %s (delete_on_termination) "
                                  "failed", uuid, entry["volume_id"])
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is not None:
                inst.block_device_mapping = [
                    e for e in inst.block_device_mapping or []
                    if not (isinstance(e, dict) and e.get("attachment_id"))]

    def extended(self, volume_id: str, new_size_gb: int,
                 requester: ValidatedToken | None = None) -> None:
        """The volume service's hook: an attached volume was extended; the hosts of the
        servers it is attached to grow it in their guests. Each server gets Nova's
        ``extend_volume`` action: its ``compute_extend_volume`` event ends when the host
        says the running guest's disk has grown (``extend_done``), at once for a guest
        that does not run (it sees the new size when it starts)."""
        hosts: set[str] = set()
        with self.db.session() as session:
            rows = session.scalars(select(Instance).where(Instance.deleted.is_(False))
                                   .with_for_update())
            for inst in rows:
                entries = inst.block_device_mapping or []
                if not any(isinstance(e, dict) and e.get("volume_id") == volume_id
                           and e.get("attachment_id") for e in entries):
                    continue
                action = record_action(session, requester, inst, "extend_volume")
                running = inst.power_state in (states.RUNNING, states.POWER_PAUSED)
                if running:
                    action.events.append(InstanceActionEvent(
                        event=EXTEND_EVENT, host=inst.host, start_time=utcnow()))
                else:
                    finish_action(action, EXTEND_EVENT, host=inst.host)
                inst.block_device_mapping = [
                    dict(e, size_gb=int(new_size_gb),
                         extend_request=action.request_id if running else None)
                    if isinstance(e, dict) and e.get("volume_id") == volume_id else e
                    for e in entries]
                touch(inst)
                if inst.host:
                    hosts.add(inst.host)
        for host in sorted(hosts):
            self.compute.notify(host)

    def extend_done(self, uuid: str, volume_id: str, size_gb: int,
                    error: str | None) -> None:
        """The host grew (or could not grow) the running guest's disk of the volume:
        the server's ``extend_volume`` action ends with that result."""
        with self.db.session() as session:
            inst = session.get(Instance, uuid, with_for_update=True)
            if inst is None or inst.deleted:
                return
            entry = next((e for e in volume_entries(inst)
                          if e["volume_id"] == volume_id and e.get("extend_request")), None)
            if entry is None or (error is None and size_gb < int(entry.get("size_gb") or 0)):
                return   # nothing waits, or a later extend is still to be done
            action = session.scalar(select(InstanceAction).where(
                InstanceAction.instance_uuid == uuid,
                InstanceAction.request_id == entry["extend_request"]))
            if action is not None:
                now = utcnow()
                for event in action.events:
                    if event.event == EXTEND_EVENT and event.finish_time is None:
                        event.finish_time = now
                        event.result = "Error" if error else "Success"
                        event.traceback = error
                action.finish_time = action.updated_at = now
                if error:
                    action.message = "Error"
            inst.block_device_mapping = [
                dict(e, extend_request=None) if isinstance(e, dict)
                and e.get("volume_id") == volume_id else e
                for e in inst.block_device_mapping]
            touch(inst)
        if error:
            log.warning("instance %s: volume %s was not grown in the guest: %s", uuid,
                        volume_id, error)

    @staticmethod
    def host_view(inst: Instance) -> tuple[list[VolumeDisk], list[VolumeAttachment]]:
        """For the instance's host: its volumes as disks (the boot volume, then the
        attached ones, for its command line) and the attachments to hot-plug. A
        detaching volume is in neither."""
        disks: list[VolumeDisk] = []
        attachments: list[VolumeAttachment] = []
        for e in volume_entries(inst):
            if e.get("status") == DETACHING or not e.get("connection"):
                continue
            disks.append(VolumeDisk(volume_id=e["volume_id"],
                                    attachment_id=e["attachment_id"],
                                    connection=dict(e["connection"]),
                                    device=e.get("device_name") or "",
                                    boot_index=e.get("boot_index")))
            attachments.append(VolumeAttachment(
                attachment_id=e["attachment_id"], volume_id=e["volume_id"],
                instance_uuid=inst.uuid, device=e.get("device_name") or "",
                connection=dict(e["connection"]), size_gb=int(e.get("size_gb") or 0)))
        disks.sort(key=lambda d: (d.boot_index is None, d.boot_index or 0))
        return disks, attachments

    # -- booting from volumes ---------------------------------------------------------------

    def prepare_boot(self, ctx: ValidatedToken, uuid: str, volumes: list[BootVolume],
                     local_root: bool = False) -> list[dict[str, Any]]:
        """Make (from an image, or blank) and attach to ``uuid`` the volumes a new server
        boots with, before its row is written; their entries (``local_root``: it boots
        from an image on a local disk, ``/dev/vda``). On failure what was made is undone
        and the error raised."""
        entries: list[dict[str, Any]] = []
        for item in volumes:  # Nova's InvalidBDMVolumeNotBootable, before anything is made
            if item.source_type == "volume" and item.boot_index == 0 and \
                    not _field(self._get_volume(ctx, item.volume_id), "bootable"):
                raise BadRequest(f"Block Device {item.volume_id} is not bootable.")
        try:
            used: set[str] = {"/dev/vda"} if local_root else set()
            for item in sorted(volumes, key=lambda v: (v.boot_index is None,
                                                       v.boot_index or 0)):
                if item.source_type in ("image", "blank", "snapshot"):
                    try:
                        made = self.volume.create_volume(
                            ctx, item.size_gb or None, image_id=item.image_id or None,
                            name=f"{'boot' if item.boot_index == 0 else 'data'}-{uuid}",
                            snapshot_id=item.snapshot_id or None)
                    except NotFound:
                        if not item.snapshot_id:
                            raise
                        raise BadRequest(f"Block Device Mapping is Invalid: failed to get "
                                         f"snapshot {item.snapshot_id}.") from None
                    item.volume_id = str(_field(made, "id"))
                    item.created = True
                    self._wait_available(ctx, item.volume_id)
                device = item.device_name if item.device_name and \
                    item.device_name not in used else next_device_name(used)
                used.add(device)
                attachment_id, connection, size_gb = self._create_attachment(
                    ctx, item.volume_id, uuid, None, device)
                item.entry = {
                    "volume_id": item.volume_id, "attachment_id": attachment_id,
                    "bdm_uuid": str(uuidlib.uuid4()), "device_name": device,
                    "boot_index": item.boot_index,
                    "delete_on_termination": item.delete_on_termination, "tag": item.tag,
                    "size_gb": size_gb, "connection": connection, "status": ATTACHING,
                    "source_type": item.source_type, "destination_type": "volume"}
                entries.append(item.entry)
        except Exception:
            self.undo_boot(ctx, volumes)
            raise
        return entries

    def undo_boot(self, ctx: ValidatedToken, volumes: list[BootVolume]) -> None:
        """Undo ``prepare_boot`` (the server's row could not be written)."""
        for item in volumes:
            if item.entry:
                self._delete_attachment(ctx, item.entry["attachment_id"])
            if item.created:
                try:
                    self.volume.delete_volume(ctx, item.volume_id)
                except Exception:
                    log.exception("could not delete volume %s made for a server that "
                                  "failed", item.volume_id)

    # -- snapshots of a server booted from a volume -------------------------------------

    def snapshot_server(self, ctx: ValidatedToken, server_id: str, name: str,
                        properties: dict[str, str], min_disk: int, min_ram: int) -> str:
        """``createImage`` of a server booted from a volume, as Nova's
        ``snapshot_volume_backed``: a snapshot of each of its volumes (forced: they are
        in use), and an image with no data (``size`` 0, active at once) whose
        ``block_device_mapping`` property lists them as mappings of source
        ``snapshot``, with ``bdm_v2`` and ``root_device_name``. A server booted from
        that image gets a new volume made from each snapshot (``image_mappings``).
        Returns the image id; on failure what was made is deleted again."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            entries = [e for e in volume_entries(inst) if e.get("status") != DETACHING]
            project_id = inst.project_id
            action = record_action(session, ctx, inst, "createImage")
            session.flush()
            action_id = action.id
        made: list[str] = []
        image_id = ""
        try:
            mappings = []
            for entry in sorted(entries, key=lambda e: (e.get("boot_index") is None,
                                                        e.get("boot_index") or 0)):
                snap = self.volume.create_snapshot(ctx, {
                    "volume_id": entry["volume_id"], "force": True,
                    "display_name": f"snapshot for {name}"[:255]})
                made.append(str(_field(snap, "id")))
                mappings.append({
                    "source_type": "snapshot", "destination_type": "volume",
                    "snapshot_id": made[-1], "volume_id": None, "image_id": None,
                    "volume_size": int(entry.get("size_gb") or _field(snap, "size") or 0),
                    "boot_index": entry.get("boot_index"),
                    "device_name": entry.get("device_name"),
                    "delete_on_termination": bool(entry.get("delete_on_termination")),
                    "tag": None, "guest_format": None, "disk_bus": None,
                    "device_type": "disk", "no_device": None, "volume_type": None})
            body: dict[str, Any] = {
                "name": name, "disk_format": "raw", "container_format": "bare",
                "visibility": "private", "min_disk": min_disk, "min_ram": min_ram,
                **properties, "block_device_mapping": json.dumps(mappings),
                "bdm_v2": "True", "root_device_name": "/dev/vda"}
            if project_id != ctx.project_id:
                body["owner"] = project_id
            images = self.compute.images
            image_id = str(images.create(ctx, body).id)
            _upload_nothing(images, ctx, image_id)
        except Exception as exc:
            for snapshot_id in made:
                try:
                    self.volume.delete_snapshot(ctx, snapshot_id)
                except Exception:
                    log.exception("could not delete snapshot %s of a failed server "
                                  "snapshot", snapshot_id)
            if image_id:
                with contextlib.suppress(Exception):
                    self.compute.images.delete(ctx, image_id)
            self._finish_action(action_id, "Error", str(exc))
            raise
        self._finish_action(action_id, "Success", None)
        log.info("instance %s: snapshot image %s of its %d volume(s)", server_id,
                 image_id, len(made))
        return image_id

    def _finish_action(self, action_id: int, result: str, details: str | None) -> None:
        with self.db.session() as session:
            action = session.get(InstanceAction, action_id)
            if action is not None:
                finish_action(action, "compute_snapshot_volume_backed", result, details)

    def image_mappings(self, ctx: ValidatedToken, image: Any) -> list[BootVolume] | None:
        """The volumes a server booted from ``image`` gets when the image is the
        snapshot of a server booted from a volume (its ``block_device_mapping``
        property, ``bdm_v2``): one per mapping, made from its volume snapshot. None
        for any other image."""
        props = {p.name: p.value for p in getattr(image, "properties", [])}
        raw = props.get("block_device_mapping")
        if not raw or str(props.get("bdm_v2", "")).lower() != "true":
            return None
        try:
            mappings = json.loads(raw)
        except ValueError:
            raise BadRequest(f"Image {image.id} has a block_device_mapping property that "
                             "is not JSON.") from None
        out: list[BootVolume] = []
        for m in mappings if isinstance(mappings, list) else []:
            if not isinstance(m, dict) or m.get("source_type") != "snapshot" or \
                    m.get("destination_type") != "volume" or not m.get("snapshot_id"):
                raise BadRequest(f"Block Device Mapping is Invalid: image {image.id} maps "
                                 "something other than volume snapshots, which this cloud "
                                 "cannot boot.")
            boot_index = m.get("boot_index")
            out.append(BootVolume(
                source_type="snapshot", boot_index=int(boot_index) if isinstance(
                    boot_index, int) and boot_index >= 0 else None,
                snapshot_id=str(m["snapshot_id"]), size_gb=int(m.get("volume_size") or 0),
                delete_on_termination=bool(m.get("delete_on_termination")),
                device_name=str(m.get("device_name") or "")))
        if not any(v.boot_index == 0 for v in out):
            raise BadRequest(f"Block Device Mapping is Invalid: image {image.id} maps no "
                             "boot volume.")
        return out

    # -- helpers --------------------------------------------------------------------------

    def _create_attachment(self, ctx: ValidatedToken, volume_id: str, uuid: str,
                           host: str | None, device: str
                           ) -> tuple[str, dict[str, Any], int]:
        """(attachment id, connection info, volume size) of a new attachment, made with
        the host's connector at once; the volume service's 404 for a volume the caller
        cannot see; a volume in use (the volume service's 409) or in another state is
        Nova's ``InvalidVolume``, a 400."""
        size = self._volume_size(ctx, volume_id)
        try:
            created = self.volume.attachment_create(
                ctx, volume_id, uuid, {**connector_for(host), "mountpoint": device})
        except NotFound:
            raise NotFound(f"Volume {volume_id} could not be found.") from None
        except Conflict as exc:  # in use elsewhere: Cinder's InvalidVolume is Nova's 400
            raise BadRequest(exc.message) from None
        attachment_id = str(created["id"])
        connection = dict(created.get("connection_info") or {})
        if not connection:
            self._delete_attachment(ctx, attachment_id)
            raise Conflict(f"Volume {volume_id} has no connection info for this host.")
        return attachment_id, connection, size

    def _volume_size(self, ctx: ValidatedToken, volume_id: str) -> int:
        return int(_field(self._get_volume(ctx, volume_id), "size") or 0)

    def _get_volume(self, ctx: ValidatedToken, volume_id: str) -> Any:
        try:
            return self.volume.get_volume(ctx, volume_id)
        except NotFound:
            raise NotFound(f"Volume {volume_id} could not be found.") from None

    def _wait_available(self, ctx: ValidatedToken, volume_id: str) -> None:
        getter = self.volume.get_volume
        deadline = time.monotonic() + VOLUME_CREATE_TIMEOUT
        while True:
            volume = getter(ctx, volume_id)
            status = _field(volume, "status")
            if status == "available":
                return
            if status not in ("creating", "downloading"):
                reason = _field(volume, "error_message") or status
                raise BadRequest(f"Block Device Mapping is Invalid: volume {volume_id} "
                                 f"could not be made ({reason}).")
            if time.monotonic() > deadline:
                raise BadRequest(f"Block Device Mapping is Invalid: volume {volume_id} was "
                                 f"not made within {VOLUME_CREATE_TIMEOUT:.0f} s.")
            time.sleep(0.1)

    def _attachment_gone(self, attachment_id: str) -> bool:
        getter = getattr(self.volume, "get_attachment", None) or getattr(
            getattr(self.volume, "attachments", None), "get_attachment", None)
        if getter is None:
            return False
        try:
            getter(None, attachment_id)
        except NotFound:
            return True
        return False

    def _delete_attachment(self, ctx: ValidatedToken | None, attachment_id: str) -> bool:
        try:
            self.volume.attachment_delete(ctx, attachment_id)
        except NotFound:
            return True
        except Exception:
            log.exception("deleting volume attachment %s failed", attachment_id)
            return False
        return True

    @staticmethod
    def _entry(inst: Instance, volume_id: str) -> dict[str, Any]:
        for entry in volume_entries(inst):
            if entry["volume_id"] == volume_id:
                return entry
        raise NotFound(f"volume_id not found: {volume_id}")

    @staticmethod
    def _view(inst: Instance, entry: dict[str, Any]) -> dict[str, Any]:
        """Every field any microversion shows; the API picks."""
        return {"id": entry["volume_id"], "volumeId": entry["volume_id"],
                "serverId": inst.uuid, "device": entry.get("device_name"),
                "tag": entry.get("tag"),
                "delete_on_termination": bool(entry.get("delete_on_termination")),
                "attachment_id": entry["attachment_id"], "bdm_uuid": entry.get("bdm_uuid")}


def _upload_nothing(images: Any, ctx: ValidatedToken, image_id: str) -> None:
    """Make the image active with no data (Glance's upload of zero bytes). The image
    service's upload is a coroutine: run it on a loop of its own, in a thread (the
    caller may be on the API's loop)."""
    async def nothing() -> AsyncIterator[bytes]:
        if False:  # pragma: no cover - an empty stream
            yield b""

    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(images.data.upload(ctx, image_id, nothing(), size=0))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"snapshot-{image_id[:8]}")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def attached_volume_ids(inst: Instance) -> list[dict[str, Any]]:
    """``os-extended-volumes:volumes_attached`` of a server."""
    return [{"id": e["volume_id"],
             "delete_on_termination": bool(e.get("delete_on_termination"))}
            for e in volume_entries(inst)]

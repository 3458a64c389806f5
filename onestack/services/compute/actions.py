"""Server actions: what ``POST /servers/{id}/action`` asks for, and their records.

Each action checks Nova's policy, the lock (a locked server changes only for admins),
and the states it may start from (Nova's ``Cannot '<action>' instance <uuid> while it
is in vm_state <state>``), then records the wish on the instance row - a
``task_state`` with its ``task_args`` - and an os-instance-actions record, and wakes
the host's agent, which does the work and reports back (see
docs/design/compute-states.md for the table). A few actions are the API side's alone:
lock and unlock, confirmResize, and the answers that need the host at once (console
output, serial consoles), which call the host's agent directly.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.revert import Reverter
from onestack.db.models import (
    ComputeService,
    Image,
    ImageProperty,
    Instance,
    InstanceAction,
    InstanceFault,
    InstanceMetadata,
    KeyPair,
    Port,
    SecurityGroup,
    utcnow,
)
from onestack.hostlink import capabilities as caps
from onestack.hostlink.diagnostics import STATES as DIAGNOSTIC_STATES
from onestack.hostlink.diagnostics import GuestDiagnostics
from onestack.hostlink.interfaces import HostUnreachable, ServerToHost
from onestack.hostlink.types import SerialEndpoint
from onestack.services.compute import migrations, policy, states
from onestack.services.compute.hostapi import service_context
from onestack.services.compute.hosts import NotImplementedByHost
from onestack.services.compute.scheduler import (
    COMPUTE_BINARY,
    Demand,
    flavor_disk_gb,
    required_capabilities,
    service_is_up,
)
from onestack.services.compute.server_requests import personality_deltas, stored_personality
from onestack.services.compute.servers import (
    GiB,
    ServerView,
    check_disk_config,
    check_image_fits,
    check_lock,
    check_state,
    find_instance,
    finish_action,
    generate_password,
    image_meta,
    invalid_state,
    record_action,
    touch,
)
from onestack.services.compute.volume_attachments import boots_from_volume
from onestack.services.identity.context import ValidatedToken
from onestack.services.image import policy as image_policy
from onestack.services.image.fields import BASE
from onestack.services.network.security_groups import (
    bind_port_security_groups,
    port_security_group_ids,
)

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

log = logging.getLogger(__name__)

#: How long a remote console URL stays valid (Nova's ``[consoleauth] token_ttl``).
CONSOLE_TOKEN_TTL = 600
#: Properties of the base image a snapshot does not inherit.
NOT_INHERITED = ("image_type", "instance_uuid", "base_image_ref", "image_location",
                 "image_state", "owner_id", "user_id", "owner_project_name",
                 "owner_user_name", "cache_in_nova", "bittorrent", "img_signature",
                 "img_signature_hash_method", "img_signature_key_type",
                 "img_signature_certificate_uuid")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")


@dataclass
class RebuildRequest:
    image_ref: str
    name: str | None = None
    admin_pass: str | None = None
    #: Replaces the server's metadata when given.
    metadata: dict[str, str] | None = None
    #: Replaces the server's personality files when given (before 2.57).
    personality: list[tuple[str, bytes]] | None = None
    description: str | None = None
    set_description: bool = False
    key_name: str | None = None
    set_key_name: bool = False
    user_data: str | None = None
    set_user_data: bool = False
    hostname: str | None = None
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    #: ``OS-DCF:diskConfig`` (True: AUTO); None keeps the server's.
    auto_disk_config: bool | None = None


@dataclass
class ConsoleTarget:
    """Where a remote console token leads: a server on a host."""

    uuid: str
    host: str
    expires: float


class ServerActions:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        self._consoles: dict[str, ConsoleTarget] = {}
        self._consoles_lock = threading.Lock()

    # -- the generic task -----------------------------------------------------------

    def _task(self, ctx: ValidatedToken, server_id: str, *, action: str, rule: str,
              vm_states: tuple[str, ...] | None, task: str,
              task_states: tuple[str | None, ...] = (None,),
              task_args: dict[str, Any] | None = None, capability: str | None = None
              ) -> None:
        """Check, then hand ``task`` to the server's host (which must declare
        ``capability``, when given)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, rule, inst.project_id)
            check_lock(ctx, inst)
            check_state(action, inst, vm_states, task_states)
            if inst.host is None:
                raise Conflict(f"Instance {inst.uuid} is not ready")
            if capability:
                self.compute.hosts.require_capability(session, inst.host, capability, action)
            inst.task_state = task
            inst.task_args = dict(task_args or {})
            touch(inst)
            record_action(session, ctx, inst, action)
            host = inst.host
        self.compute.notify(host)

    def refuse_unsupported(self, ctx: ValidatedToken, server_id: str, capability: str,
                           feature: str, otherwise: str) -> NoReturn:
        """Nova's 501 for a server feature this cloud does not carry out: the server's
        host declares whether its drivers can do ``capability``, and the answer names
        that host's reason; where the drivers could, the control plane still lacks the
        operation (``otherwise`` says so). A server the caller cannot see is a 404
        first, as Nova answers."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            self.compute.hosts.require_capability(session, inst.host, capability, feature)
        raise NotImplementedByHost(otherwise)

    def stop(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="stop", rule="os_compute_api:servers:stop",
                   vm_states=(states.ACTIVE, states.ERROR), task=states.POWERING_OFF)

    def start(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="start", rule="os_compute_api:servers:start",
                   vm_states=(states.STOPPED,), task=states.POWERING_ON)

    def reboot(self, ctx: ValidatedToken, server_id: str, hard: bool) -> None:
        """SOFT from active; HARD also from stopped, paused, suspended and error, and
        over a pending reboot (Nova's ALLOW_HARD_REBOOT)."""
        if hard:
            self._task(ctx, server_id, action="reboot", rule="os_compute_api:servers:reboot",
                       vm_states=(states.ACTIVE, states.STOPPED, states.PAUSED,
                                  states.SUSPENDED, states.ERROR),
                       task_states=(None, states.REBOOTING, states.REBOOTING_HARD),
                       task=states.REBOOTING_HARD, task_args={"reboot_type": "HARD"})
        else:
            self._task(ctx, server_id, action="reboot", rule="os_compute_api:servers:reboot",
                       vm_states=(states.ACTIVE,), task=states.REBOOTING,
                       task_args={"reboot_type": "SOFT"})

    def pause(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="pause", rule="os_compute_api:os-pause-server:pause",
                   vm_states=(states.ACTIVE,), task=states.PAUSING, capability=caps.PAUSE)

    def unpause(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="unpause",
                   rule="os_compute_api:os-pause-server:unpause",
                   vm_states=(states.PAUSED,), task=states.UNPAUSING)

    def suspend(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="suspend",
                   rule="os_compute_api:os-suspend-server:suspend",
                   vm_states=(states.ACTIVE,), task=states.SUSPENDING,
                   capability=caps.SUSPEND)

    def resume(self, ctx: ValidatedToken, server_id: str) -> None:
        self._task(ctx, server_id, action="resume",
                   rule="os_compute_api:os-suspend-server:resume",
                   vm_states=(states.SUSPENDED,), task=states.RESUMING)

    # -- rebuild --------------------------------------------------------------------

    def rebuild(self, ctx: ValidatedToken, server_id: str, req: RebuildRequest
                ) -> tuple[ServerView, str]:
        """Re-create the server's disk from ``req.image_ref`` (which becomes its image);
        returns its view and the admin password."""
        admin_pass = req.admin_pass if req.admin_pass is not None else generate_password()
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:servers:rebuild", inst.project_id)
            check_lock(ctx, inst)
            check_state("rebuild", inst, (states.ACTIVE, states.STOPPED, states.ERROR))
            if inst.host is None:
                raise Conflict(f"Instance {inst.uuid} is not ready")
            try:
                image = image_policy.find_image(session, ctx, req.image_ref)
            except NotFound:
                raise BadRequest("Cannot find image for rebuild") from None
            if image.status != "active":
                raise BadRequest(f"Image {image.id} is not active.")
            volume_backed = boots_from_volume(inst)
            if volume_backed and image.id != (inst.image_meta or {}).get("id"):
                # Nova before 2.93: the volume is not reimaged
                raise BadRequest(f"Image {image.id} is unacceptable: Unable to rebuild with "
                                 "a different image for a volume-backed server.")
            flavor = inst.flavor or {}
            if not volume_backed:
                check_image_fits(image, flavor)
            check_disk_config(req.auto_disk_config,
                              {p.name: p.value for p in image.properties}, image.id)
            if req.auto_disk_config is not None:
                inst.auto_disk_config = req.auto_disk_config
            if req.personality is not None:
                self.compute.quotas.check(session, inst.project_id,
                                          personality_deltas(req.personality))
                inst.injected_files = stored_personality(req.personality)
            if req.metadata is not None:
                self.compute.quotas.check(session, inst.project_id,
                                          {"metadata_items": len(req.metadata)})
                current = {m.key: m for m in inst.metadata_items}
                for key, row in current.items():
                    if key not in req.metadata:
                        inst.metadata_items.remove(row)
                    elif row.value != req.metadata[key]:
                        row.value = req.metadata[key]
                for key, value in req.metadata.items():
                    if key not in current:
                        inst.metadata_items.append(InstanceMetadata(key=key, value=value))
            if req.set_key_name:
                if req.key_name is None:
                    inst.key_name, inst.key_data = None, None
                else:
                    keypair = session.get(KeyPair, (ctx.user_id, req.key_name))
                    if keypair is None:
                        raise BadRequest("Invalid key_name provided.")
                    inst.key_name, inst.key_data = keypair.name, keypair.public_key
            if req.name is not None:
                inst.display_name = req.name
            if req.set_description:
                inst.display_description = req.description
            if req.set_user_data:
                inst.user_data = req.user_data
            if req.hostname is not None:
                inst.hostname = req.hostname
            if req.access_ip_v4 is not None:
                inst.access_ip_v4 = req.access_ip_v4
            if req.access_ip_v6 is not None:
                inst.access_ip_v6 = req.access_ip_v6
            previous = states.STOPPED if inst.vm_state == states.STOPPED else states.ACTIVE
            inst.image_ref = "" if volume_backed else image.id  # Nova's "" for them
            inst.image_meta = image_meta(image)
            inst.task_state = states.REBUILDING
            inst.task_args = {"image_ref": image.id, "previous_vm_state": previous}
            inst.progress = 0
            touch(inst)
            record_action(session, ctx, inst, "rebuild")
            host = inst.host
            session.flush()
            view = self.compute.servers.views(session, [inst])[0]
        self.compute.notify(host)
        return view, admin_pass

    # -- resize ---------------------------------------------------------------------

    def resize(self, ctx: ValidatedToken, server_id: str, flavor_ref: str,
               auto_disk_config: bool | None = None) -> None:
        """Resize in place to another flavor (the disk only grows). When the host cannot
        hold the new flavor the server stays as it is, with a fault and a failed
        action, as Nova's scheduler answers a resize asynchronously.
        ``auto_disk_config`` (``OS-DCF:diskConfig``, None: unchanged) is recorded with
        the resize request."""
        host = None
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:servers:resize", inst.project_id)
            check_lock(ctx, inst)
            check_state("resize", inst, (states.ACTIVE, states.STOPPED))
            self._require_host_up(session, inst)
            flavor = self.compute.flavors.get_for_boot(session, flavor_ref, ctx)
            new = self.compute.flavors.snapshot(flavor)
            current = inst.flavor or {}
            if str(current.get("id")) == new["id"]:
                raise BadRequest("When resizing, instances must change flavor!")
            if new["disk"] == 0 and int(current.get("disk") or 0) != 0:
                raise BadRequest("Server disk was unable to be resized because: Resize to "
                                 "zero disk flavor is not allowed.")
            if new["disk"] < int(current.get("disk") or 0):
                raise BadRequest("Server disk was unable to be resized because: Resize to "
                                 "a smaller disk is not supported.")
            _check_meta_fits(inst.image_meta or {}, new)
            meta = inst.image_meta or {}
            check_disk_config(auto_disk_config, meta.get("properties") or {},
                              meta.get("id") or inst.image_ref)
            deltas = {k: v for k, v in (("cores", new["vcpus"] - inst.vcpus),
                                        ("ram", new["ram"] - inst.memory_mb)) if v > 0}
            if deltas:
                self.compute.quotas.check(session, inst.project_id, deltas,
                                          user_id=inst.user_id)
            self.compute.hosts.require_capability(session, inst.host, caps.RESIZE, "resize")
            action = record_action(session, ctx, inst, "resize")
            if auto_disk_config is not None:
                inst.auto_disk_config = auto_disk_config
            demand = Demand(vcpus=new["vcpus"], memory_mb=new["ram"],
                            disk_gb=flavor_disk_gb(new), instance_uuid=inst.uuid,
                            capabilities=required_capabilities(new))
            why = self.compute.scheduler.fits(session, inst.host or "", demand)
            if why is not None:
                message = f"No valid host was found. {inst.host}: {why}."
                inst.faults.append(InstanceFault(code=500, message=message[:255],
                                                 details=message, host=inst.host))
                finish_action(action, "conductor_migrate_server", "Error", message)
                migrations.start_resize(session, inst, current, new, status="error")
                touch(inst)
                return
            inst.new_flavor = new
            inst.old_flavor = dict(current)
            migrations.start_resize(session, inst, current, new)
            inst.task_state = states.RESIZE_PREP
            inst.task_args = {"previous_vm_state": inst.vm_state}
            touch(inst)
            host = inst.host
        self.compute.notify(host)

    def confirm_resize(self, ctx: ValidatedToken, server_id: str) -> None:
        """Keep the new flavor (the API side's alone: nothing is left on the host)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:servers:confirm_resize",
                                  inst.project_id)
            check_lock(ctx, inst)
            check_state("confirmResize", inst, (states.RESIZED,))
            flavor = inst.flavor or {}
            inst.vcpus = int(flavor.get("vcpus", inst.vcpus))
            inst.memory_mb = int(flavor.get("ram", inst.memory_mb))
            inst.root_gb = int(flavor.get("disk", inst.root_gb))
            inst.ephemeral_gb = int(flavor.get("ephemeral", inst.ephemeral_gb))
            inst.old_flavor = None
            inst.new_flavor = None
            inst.vm_state = states.STOPPED if inst.power_state == states.SHUTDOWN \
                else states.ACTIVE
            touch(inst)
            action = record_action(session, ctx, inst, "confirmResize")
            finish_action(action, "compute_confirm_resize", host=inst.host)
            migrations.advance(session, inst.uuid, "confirmed")

    def revert_resize(self, ctx: ValidatedToken, server_id: str) -> None:
        """Go back to the old flavor; the server ends as it was before the resize (off
        if the resize found it off, which its power state still says)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            previous = states.STOPPED if inst.power_state == states.SHUTDOWN \
                else states.ACTIVE
        self._task(ctx, server_id, action="revertResize",
                   rule="os_compute_api:servers:revert_resize", vm_states=(states.RESIZED,),
                   task=states.RESIZE_REVERTING, task_args={"previous_vm_state": previous})

    def _require_host_up(self, session: Session, inst: Any) -> None:
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        service = session.scalar(select(ComputeService).where(
            ComputeService.host == inst.host, ComputeService.binary == COMPUTE_BINARY))
        if not service_is_up(service):
            raise Conflict("Service is unavailable at this time.")

    # -- createImage ----------------------------------------------------------------

    def create_image(self, ctx: ValidatedToken, server_id: str, name: str,
                     metadata: dict[str, str]) -> str:
        """Make a queued image (owned by the server's project) and ask the host to
        snapshot the disk into it; returns the image id."""
        return self._snapshot(ctx, server_id, name, metadata, action="createImage",
                              rule="os_compute_api:servers:create_image",
                              image_type="snapshot")

    def create_backup(self, ctx: ValidatedToken, server_id: str, name: str,
                      backup_type: str, rotation: int, metadata: dict[str, str]) -> str:
        """``createBackup``: a snapshot image like ``createImage``'s, with Nova's backup
        properties (``image_type=backup``, ``backup_type``, ``instance_uuid``); once
        the host has uploaded it, the oldest backups of the server and type beyond
        ``rotation`` are deleted (``rotate_backups``). Returns the image id."""
        return self._snapshot(ctx, server_id, name, metadata, action="createBackup",
                              rule="os_compute_api:os-create-backup", image_type="backup",
                              backup={"backup_type": backup_type, "rotation": rotation})

    def _snapshot(self, ctx: ValidatedToken, server_id: str, name: str,
                  metadata: dict[str, str], *, action: str, rule: str, image_type: str,
                  backup: dict[str, Any] | None = None) -> str:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, rule, inst.project_id)
            self._check_snapshot(inst, action)
            self.compute.hosts.require_capability(session, inst.host, caps.SNAPSHOT, action)
            volume_backed = boots_from_volume(inst)
            if volume_backed and backup is not None:  # Nova's answer
                raise BadRequest("It's not supported to backup volume backed instance.")
            base = inst.image_meta or {}
            project_id = inst.project_id
            properties = {k: str(v) for k, v in (base.get("properties") or {}).items()
                          if k not in NOT_INHERITED}
            properties.update({"image_type": image_type, "instance_uuid": inst.uuid,
                               "base_image_ref": inst.image_ref or "",
                               "user_id": ctx.user_id})
            if backup is not None:
                properties["backup_type"] = backup["backup_type"]
            min_disk = max(int(inst.root_gb or 0), int(base.get("min_disk") or 0))
            min_ram = int(base.get("min_ram") or 0)
        for key in metadata:
            if key in BASE:
                raise BadRequest(f"Invalid image metadata: '{key}' is a reserved image "
                                 "attribute.")
        properties.update(metadata)
        if volume_backed:  # snapshots of its volumes, named by an image with no data
            return self.compute.volume_attachments.snapshot_server(
                ctx, server_id, name, properties, min_disk, min_ram)
        body: dict[str, Any] = {"name": name, "disk_format": "qcow2",
                                "container_format": "bare", "visibility": "private",
                                "min_disk": min_disk, "min_ram": min_ram, **properties}
        if project_id != ctx.project_id:
            body["owner"] = project_id
        with Reverter() as revert:
            image = self.compute.images.create(ctx, body)
            revert.add(self._drop_image, ctx, image.id)
            with self.db.session() as session:
                inst = find_instance(session, ctx, server_id)
                self._check_snapshot(inst, action)
                inst.task_state = states.IMAGE_SNAPSHOT
                inst.task_args = {"image_id": image.id, **(backup or {})}
                touch(inst)
                record_action(session, ctx, inst, action)
                host = inst.host
            revert.success()
        self.compute.notify(host)
        return image.id

    def rotate_backups(self, instance_uuid: str, backup_type: str, rotation: int) -> None:
        """Delete the server's backups of ``backup_type`` beyond the newest
        ``rotation`` (Nova's ``_rotate_backups``, run when a backup has been
        uploaded). An image that cannot be deleted (protected) is logged and kept."""
        with self.db.session() as session:
            rows = session.scalars(select(Image).where(
                Image.status.not_in(("deleted", "killed")),
                Image.properties.any((ImageProperty.name == "image_type")
                                     & (ImageProperty.value == "backup")),
                Image.properties.any((ImageProperty.name == "instance_uuid")
                                     & (ImageProperty.value == instance_uuid)),
                Image.properties.any((ImageProperty.name == "backup_type")
                                     & (ImageProperty.value == backup_type)))
                .order_by(Image.created_at.desc(), Image.id.desc())).all()
            excess = [(row.id, row.owner) for row in rows[max(rotation, 0):]]
        for image_id, owner in excess:
            try:
                self.compute.images.delete(service_context(owner), image_id)
                log.info("instance %s: backup %s rotated out (%s, rotation %d)",
                         instance_uuid, image_id, backup_type, rotation)
            except NotFound:
                pass
            except Exception:
                log.exception("instance %s: could not rotate out backup %s",
                              instance_uuid, image_id)

    @staticmethod
    def _check_snapshot(inst: Any, action: str = "createImage") -> None:
        check_state(action, inst, (states.ACTIVE, states.STOPPED, states.PAUSED,
                                          states.SUSPENDED))
        if inst.host is None:
            raise Conflict(f"Instance {inst.uuid} is not ready")

    def _drop_image(self, ctx: ValidatedToken, image_id: str) -> None:
        try:
            self.compute.images.delete(ctx, image_id)
        except NotFound:
            pass

    # -- lock -----------------------------------------------------------------------

    def lock(self, ctx: ValidatedToken, server_id: str, reason: str | None = None) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-lock-server:lock", inst.project_id)
            is_owner = inst.project_id == ctx.project_id
            if inst.locked and is_owner:
                return
            action = record_action(session, ctx, inst, "lock")
            inst.locked = True
            inst.locked_by = "owner" if is_owner else "admin"
            if reason:
                inst.locked_reason = reason
            touch(inst)
            finish_action(action, "api_lock")

    def unlock(self, ctx: ValidatedToken, server_id: str) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-lock-server:unlock",
                                  inst.project_id)
            expected = "owner" if inst.project_id == ctx.project_id else "admin"
            if inst.locked_by and inst.locked_by != expected:
                policy.require_admin(ctx, "os_compute_api:os-lock-server:unlock:"
                                          "unlock_override")
            action = record_action(session, ctx, inst, "unlock")
            inst.locked = False
            inst.locked_by = None
            inst.locked_reason = None
            touch(inst)
            finish_action(action, "api_unlock")

    # -- admin actions and security groups ------------------------------------------

    def reset_state(self, ctx: ValidatedToken, server_id: str, state: str) -> None:
        """``os-resetState`` (admins): force ``active`` or ``error``, clear the task."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_admin(ctx, "os_compute_api:os-admin-actions:reset_state")
            action = record_action(session, ctx, inst, "resetState")
            inst.vm_state = states.ACTIVE if state == "active" else states.ERROR
            inst.task_state = None
            inst.task_args = {}
            touch(inst)
            action.finish_time = action.updated_at = utcnow()
            host = inst.host
        self.compute.notify(host)

    def network_info_noop(self, ctx: ValidatedToken, server_id: str, rule: str) -> None:
        """``injectNetworkInfo`` and ``resetNetwork`` (admins): accepted, and nothing
        is done, as Nova's libvirt driver does nothing for either (only the retired
        XenAPI driver pushed network settings into a running guest). A guest here
        takes its addresses from DHCP and its network_data.json from the metadata
        service or config drive, which always show the ports as they are now, so
        there is nothing to push. The server must exist (404) and, as Nova checks,
        not be locked by another (409)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_admin(ctx, rule)
            check_lock(ctx, inst)

    def add_security_group(self, ctx: ValidatedToken, server_id: str, name: str) -> None:
        """Add a group (by name or id, of the caller's project) to every port of the
        server, as Nova's ``addSecurityGroup`` does through Neutron."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-security-groups:add",
                                  inst.project_id)
            group = _find_group(session, ctx, name)
            ports = _ports_of(session, inst)
            for port in ports:
                if not port.port_security_enabled or not port.fixed_ips:
                    raise BadRequest("Network requires port_security_enabled and subnet "
                                     "associated in order to apply security groups.")
            for port in ports:
                current = port_security_group_ids(session, [port.id])[port.id]
                if group.id not in current:
                    bind_port_security_groups(session, port, [*current, group.id],
                                              is_admin=ctx.is_admin)
                    port.updated_at = utcnow()
            if group.name not in (inst.security_groups or []):
                inst.security_groups = [*(inst.security_groups or []), group.name]
            touch(inst)
        self.compute.network.changed()  # the hosts' firewalls follow at once

    def remove_security_group(self, ctx: ValidatedToken, server_id: str, name: str
                              ) -> None:
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-security-groups:remove",
                                  inst.project_id)
            group = _find_group(session, ctx, name)
            found = False
            for port in _ports_of(session, inst):
                current = port_security_group_ids(session, [port.id])[port.id]
                if group.id in current:
                    bind_port_security_groups(session, port,
                                              [g for g in current if g != group.id],
                                              is_admin=ctx.is_admin)
                    port.updated_at = utcnow()
                    found = True
            if not found:
                raise NotFound(f"Security group {name} not associated with the instance "
                               f"{inst.uuid}")
            inst.security_groups = [n for n in inst.security_groups or [] if n != group.name]
            touch(inst)
        self.compute.network.changed()

    # -- deferred delete ------------------------------------------------------------

    def force_delete(self, ctx: ValidatedToken, server_id: str) -> None:
        """``forceDelete``: without soft delete (``reclaim_instance_interval`` 0) a plain
        delete, as in Nova."""
        self.compute.servers.delete(ctx, server_id,
                                    rule="os_compute_api:os-deferred-delete:force")

    def restore(self, ctx: ValidatedToken, server_id: str) -> None:
        """``restore`` needs a soft-deleted server, and this cloud deletes at once."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_member(ctx, "os_compute_api:os-deferred-delete:restore",
                                  inst.project_id)
            check_lock(ctx, inst)
            if inst.vm_state != states.SOFT_DELETED:
                raise invalid_state("restore", inst)

    # -- consoles -------------------------------------------------------------------

    def _host_for(self, session: Session, ctx: ValidatedToken, server_id: str, rule: str
                  ) -> tuple[ServerToHost, str, str]:
        inst = find_instance(session, ctx, server_id)
        policy.require_member(ctx, rule, inst.project_id)
        if inst.host is None or inst.vm_state == states.BUILDING:
            raise Conflict(f"Instance {inst.uuid} is not ready")
        link = self.compute.host_links.get(inst.host)
        if link is None:
            raise Conflict(f"Instance {inst.uuid} is not ready: the agent of its host "
                           f"{inst.host} is not reachable from this server.")
        return link, inst.uuid, inst.vm_state

    def console_output(self, ctx: ValidatedToken, server_id: str, length: int | None
                       ) -> str:
        """The last ``length`` lines of the serial console log (all when None)."""
        with self.db.session() as session:
            link, uuid, _ = self._host_for(session, ctx, server_id,
                                           "os_compute_api:os-console-output")
        try:
            output = link.console_log(uuid, length)
        except FileNotFoundError:
            raise NotFound("Guest does not have a console available.") from None
        except HostUnreachable as exc:
            raise Conflict(f"Instance {uuid} is not ready: {exc}") from None
        return _CONTROL.sub("", output)

    def diagnostics(self, ctx: ValidatedToken, server_id: str
                    ) -> tuple[GuestDiagnostics, bool]:
        """The running server's diagnostics, measured by its host's hypervisor driver
        (admins), and whether it has a config drive. A host whose drivers cannot is
        Nova's 501; a server that is not running is Nova's 409 (its manager checks the
        power state before it asks the driver)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id)
            policy.require_admin(ctx, "os_compute_api:os-server-diagnostics")
            self.compute.hosts.require_capability(session, inst.host, caps.DIAGNOSTICS,
                                                  "diagnostics")
            if inst.power_state != states.RUNNING or inst.host is None:
                raise Conflict(f"Instance {inst.uuid} in power_state "
                               f"{DIAGNOSTIC_STATES.get(inst.power_state, 'pending')}. "
                               "Cannot get_diagnostics while the instance is in this "
                               "state.")
            uuid, host, config_drive = inst.uuid, inst.host, bool(inst.config_drive)
        link = self.compute.host_links.get(host)
        if link is None:
            raise Conflict(f"Instance {uuid} is not ready: the agent of its host {host} is "
                           "not reachable from this server.")
        try:
            found = link.diagnostics(uuid)
        except FileNotFoundError:
            raise Conflict(f"Instance {uuid} is not on its host {host} yet.") from None
        except (HostUnreachable, RuntimeError) as exc:
            raise Conflict(f"Unable to get diagnostics of instance {uuid}: {exc}") from None
        return GuestDiagnostics.from_wire(found), config_drive

    def serial_console(self, ctx: ValidatedToken, server_id: str) -> str:
        """A token for the serial console websocket (valid ``CONSOLE_TOKEN_TTL``
        seconds) of a running server."""
        with self.db.session() as session:
            _, uuid, vm_state = self._host_for(session, ctx, server_id,
                                               "os_compute_api:os-remote-consoles")
            inst = find_instance(session, ctx, server_id)
            host = inst.host
        if vm_state != states.ACTIVE:
            raise Conflict(f"Instance {uuid} is not ready")
        with self.db.session() as session:
            self.compute.hosts.require_capability(session, host, caps.SERIAL_CONSOLE,
                                                  "serial console")
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._consoles_lock:
            for key in [k for k, v in self._consoles.items() if v.expires < now]:
                del self._consoles[key]
            self._consoles[token] = ConsoleTarget(uuid, host or "", now + CONSOLE_TOKEN_TTL)
        return token

    def console_endpoint(self, token: str) -> SerialEndpoint | None:
        """Where the serial console a console token leads to is (a unix socket here, or
        a remote host's relay: ``hostlink.http.open_serial`` opens either); None if the
        token is unknown, expired, or its server is gone from the host."""
        with self._consoles_lock:
            target = self._consoles.get(token)
        if target is None or target.expires < time.monotonic():
            return None
        with self.db.session() as session:
            inst = session.get(Instance, target.uuid)
            if inst is None or inst.deleted or inst.host != target.host:
                return None
        link = self.compute.host_links.get(target.host)
        if link is None:
            return None
        try:
            return link.serial_endpoint(target.uuid)
        except (HostUnreachable, FileNotFoundError):
            return None

    # -- os-instance-actions --------------------------------------------------------

    def list_actions(self, ctx: ValidatedToken, server_id: str, *, read_deleted: bool,
                     limit: int | None = None, marker: str | None = None,
                     changes_since: dt.datetime | None = None,
                     changes_before: dt.datetime | None = None) -> list[InstanceAction]:
        """The server's actions, newest first (``marker``: a request id)."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, read_deleted=read_deleted)
            policy.require_reader(ctx, "os_compute_api:os-instance-actions:list",
                                  inst.project_id)
            stmt = select(InstanceAction).where(InstanceAction.instance_uuid == inst.uuid)
            if changes_since is not None:
                stmt = stmt.where(InstanceAction.updated_at >= changes_since)
            if changes_before is not None:
                stmt = stmt.where(InstanceAction.updated_at <= changes_before)
            rows = list(session.scalars(stmt.order_by(InstanceAction.start_time.desc(),
                                                      InstanceAction.id.desc())))
            if marker is not None:
                position = next((i for i, r in enumerate(rows) if r.request_id == marker),
                                None)
                if position is None:
                    raise BadRequest(f"Marker {marker} could not be found.")
                rows = rows[position + 1:]
            if limit is not None:
                rows = rows[:limit]
            return rows

    def get_action(self, ctx: ValidatedToken, server_id: str, request_id: str, *,
                   read_deleted: bool) -> tuple[InstanceAction, str, str | None]:
        """One action by its request id, with the server's project and host."""
        with self.db.session() as session:
            inst = find_instance(session, ctx, server_id, read_deleted=read_deleted)
            policy.require_reader(ctx, "os_compute_api:os-instance-actions:show",
                                  inst.project_id)
            action = session.scalar(select(InstanceAction).where(
                InstanceAction.instance_uuid == inst.uuid,
                InstanceAction.request_id == request_id)
                .order_by(InstanceAction.id.desc()).limit(1))
            if action is None:
                raise NotFound(f"Action {request_id} not found")
            return action, inst.project_id, inst.host


# -- image checks ----------------------------------------------------------------------


def _check_meta_fits(meta: dict[str, Any], flavor: dict[str, Any]) -> None:
    """The boot image (as the server keeps it) against a new flavor."""
    if int(flavor.get("ram") or 0) < int(meta.get("min_ram") or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    disk = int(flavor.get("disk") or 0) * GiB
    if disk and int(meta.get("min_disk") or 0) * GiB > disk:
        raise BadRequest(f"Flavor's disk is smaller than the minimum size specified in "
                         f"image metadata. Flavor disk is {disk} bytes, minimum size is "
                         f"{int(meta['min_disk']) * GiB} bytes.")


def _find_group(session: Session, ctx: ValidatedToken, name: str) -> SecurityGroup:
    """A security group by id or by name in the caller's project (Nova's lookup)."""
    group = session.get(SecurityGroup, name)
    if group is not None and (ctx.is_admin or group.project_id == ctx.project_id):
        return group
    found = session.scalars(select(SecurityGroup).where(
        SecurityGroup.name == name, SecurityGroup.project_id == (ctx.project_id or ""))).all()
    if not found:
        raise NotFound(f"Security group {name} is not found for project {ctx.project_id}")
    if len(found) > 1:
        raise Conflict(f"Multiple security_group matches found for name '{name}', use an "
                       "ID to be more specific.")
    return found[0]


def _ports_of(session: Session, inst: Any) -> list[Port]:
    ports = list(session.scalars(select(Port).where(Port.device_id == inst.uuid)
                                 .order_by(Port.created_at, Port.id)))
    if not ports:
        raise NotFound(f"instance_id {inst.uuid} could not be found as device id on any "
                       "ports")
    return ports

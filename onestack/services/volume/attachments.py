"""Volume attachments (Cinder's attachments API, 3.27+), and the contract compute
relies on.

THE CONTRACT (compute calls these on ``Services.volume.attachments``; the same names
are on ``Services.volume`` too). ``ctx`` is the caller's ``ValidatedToken``, or None
for the cloud itself (compute's own clean-ups). Every method returns the attachment as
a dict (Cinder's attachment body, see ``as_dict``), raises the usual OneStack errors
(404 unknown volume/attachment, 400 bad state, 409 already in use), and never leaves a
half-made attachment behind:

- ``attachment_create(ctx, volume_id, instance_uuid, connector=None) -> dict``
  Reserve the volume for the server. The volume must be ``available``, or ``in-use``
  and ``multiattach`` (its type's ``multiattach='<is> True'``); an ``in-use`` volume
  that is not multiattach is a 409, and so is a second attachment to the same server.
  Without a connector the attachment is ``reserved`` (volume ``reserved``); with one it
  is ``attaching`` and carries ``connection_info`` (volume ``attaching``).
- ``attachment_update(ctx, attachment_id, connector) -> dict``
  The host's os-brick connector (``{"host", "initiator", "mountpoint", "mode", ...}``;
  ``mountpoint`` is recorded as the device); returns the attachment with
  ``connection_info``: ``{"driver_volume_type", "data": {...}}`` from the backend
  (``onestack.services.volume.backends.base``), with ``data.access_mode`` (``rw``/``ro``),
  ``serial`` (the volume id), ``attachment_id``, ``volume_id`` and ``qos_specs``.
- ``attachment_complete(ctx, attachment_id) -> dict``
  The guest has the disk: the attachment is ``attached``, the volume ``in-use``.
- ``attachment_delete(ctx, attachment_id) -> None``
  The guest no longer has the disk; when the volume's last attachment goes, the
  volume is ``available`` again.
- ``attachments_for_instance(instance_uuid) -> list[dict]`` (the cloud's view) and
  ``get_attachment(ctx, attachment_id) -> dict``.
- Boot from volume: ``Services.volume.create_volume(ctx, size, image_id=None,
  name=None, ...)`` returns the row (``creating``; poll ``get_volume(ctx, id).status``
  until ``available`` or ``error``, whose reason is ``error_message``) and
  ``Services.volume.delete_volume(ctx, volume_id)`` (after ``attachment_delete``).
- Extending an attached volume: compute registers
  ``Services.volume.register_extend_attached(fn)``; ``fn(volume_id, new_size_gb)`` is
  called (in a worker thread) after the backend grew the volume, and must make the
  running guest see the new size (QMP ``block_resize``) or raise.

Recovery at start (``Volumes.recover``): ``attached`` attachments stay (volume
``in-use``); ``attaching`` ones that compute still wants (``Volumes.attachment_wanted``,
wired in ``onestack.assembly``) become ``attached`` with their volume ``in-use``, and
compute's own reconciliation completes (idempotent) or deletes them; the rest
(``reserved``, unwanted ``attaching``) are removed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db.models import Volume, VolumeAttachment, utcnow
from onestack.services.volume import quotas as quota_mod
from onestack.services.volume.common import UUID_RE, Ctx, InvalidVolume, find_volume, visible

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes


def _time(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


def as_dict(att: VolumeAttachment, with_connection: bool = True) -> dict[str, Any]:
    """Cinder's attachment body (detail)."""
    body = {"id": att.id, "status": att.attach_status, "instance": att.instance_uuid,
            "volume_id": att.volume_id, "attached_at": _time(att.attach_time),
            "detached_at": _time(att.detach_time), "attach_mode": att.attach_mode,
            "connection_info": (att.connection_info or {}) if with_connection else {},
            "connector": att.connector or {}, "host": att.attached_host,
            "mountpoint": att.mountpoint}
    return body


class Attachments:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db

    def _find(self, session: Session, ctx: Ctx, attachment_id: str) -> tuple[
            VolumeAttachment, Volume]:
        att = session.get(VolumeAttachment, attachment_id) \
            if UUID_RE.match(attachment_id) else None
        vol = session.get(Volume, att.volume_id) if att is not None else None
        if att is None or vol is None or not visible(ctx, vol.project_id):
            raise NotFound(f"Volume attachment {attachment_id} could not be found.")
        return att, vol

    def _connect(self, session: Session, att: VolumeAttachment, vol: Volume,
                 connector: dict[str, Any]) -> None:
        backend = self.volumes.backend_for(vol.backend)
        info = backend.connection_info(vol.id, connector)
        readonly = (vol.admin_metadata or {}).get("readonly") == "True"
        mode = connector.get("mode") or ("ro" if readonly else "rw")
        if mode not in ("rw", "ro"):
            raise BadRequest(f"Invalid input received: attach mode {mode!r} must be rw "
                             "or ro.")
        if readonly and mode == "rw":
            raise InvalidVolume("Volume is read-only; attach it in ro mode.")
        data = dict(info.get("data") or {})
        data.update(access_mode=mode, volume_id=vol.id, attachment_id=att.id,
                    qos_specs=self.volumes.types.qos_for_type(session, vol.volume_type_id,
                                                              int(vol.size or 0)),
                    encrypted=False, cacheable=False)
        att.connection_info = {"driver_volume_type": info.get("driver_volume_type"),
                               "data": data, "serial": vol.id, "attachment_id": att.id,
                               "volume_id": vol.id}
        att.connector = dict(connector)
        att.attached_host = connector.get("host")
        att.mountpoint = connector.get("mountpoint")
        att.attach_mode = mode
        att.attach_status = "attaching"
        if vol.status in ("available", "reserved"):
            vol.status = "attaching"

    # -- the contract ------------------------------------------------------------------

    def attachment_create(self, ctx: Ctx, volume_id: str, instance_uuid: str | None,
                          connector: dict[str, Any] | None = None,
                          mode: str | None = None) -> dict[str, Any]:
        if connector is not None and not isinstance(connector, dict):
            raise BadRequest("Invalid input received: connector must be an object.")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            others = list(session.scalars(select(VolumeAttachment).where(
                VolumeAttachment.volume_id == vol.id)))
            if instance_uuid and any(a.instance_uuid == instance_uuid for a in others):
                raise Conflict(f"Volume {vol.id} is already attached to server "
                               f"{instance_uuid}.")
            if vol.status in ("in-use", "reserved", "attaching") and others:
                if not vol.multiattach:
                    raise Conflict(f"Invalid volume: Volume {vol.id} status must be "
                                   f"available or downloading to reserve, but the current "
                                   f"status is {vol.status} (it is attached and not "
                                   "multiattach).")
            elif vol.status != "available":
                raise InvalidVolume(f"Volume {vol.id} status must be available or "
                                    f"downloading to reserve, but the current status is "
                                    f"{vol.status}.")
            att = VolumeAttachment(id=str(uuid.uuid4()), volume_id=vol.id,
                                   instance_uuid=instance_uuid, attach_status="reserved",
                                   attach_mode=mode or "rw", created_at=utcnow())
            session.add(att)
            if vol.status == "available":
                vol.status = "reserved"
            if connector is not None:
                self._connect(session, att, vol, {**connector, **({"mode": mode}
                                                                  if mode else {})})
            session.flush()
            return as_dict(att)

    def attachment_update(self, ctx: Ctx, attachment_id: str, connector: Any
                          ) -> dict[str, Any]:
        if not isinstance(connector, dict) or not connector:
            raise BadRequest("Invalid input received: a connector (an object) is "
                             "required to update an attachment.")
        with quota_mod.LOCK, self.db.session() as session:
            att, vol = self._find(session, ctx, attachment_id)
            if att.attach_status == "attached":
                raise BadRequest(f"Invalid volume: attachment {att.id} is already "
                                 "complete; delete it and make a new one to change its "
                                 "connector.")
            self._connect(session, att, vol, connector)
            return as_dict(att)

    def attachment_complete(self, ctx: Ctx, attachment_id: str) -> dict[str, Any]:
        with quota_mod.LOCK, self.db.session() as session:
            att, vol = self._find(session, ctx, attachment_id)
            if att.attach_status not in ("attaching", "attached"):
                raise InvalidVolume(f"Attachment {att.id} has no connector yet (it is "
                                    f"{att.attach_status}); update it first.")
            att.attach_status = "attached"
            att.attach_time = att.attach_time or utcnow()
            vol.status = "in-use"
            vol.attach_status = "attached"
            vol.updated_at = utcnow()
            return as_dict(att)

    def attachment_delete(self, ctx: Ctx, attachment_id: str) -> None:
        with quota_mod.LOCK, self.db.session() as session:
            att, vol = self._find(session, ctx, attachment_id)
            connector = att.connector
            backend = self.volumes.backend_for(vol.backend)
            session.delete(att)
            session.flush()
            left = list(session.scalars(select(VolumeAttachment).where(
                VolumeAttachment.volume_id == vol.id)))
            if not left:
                if vol.status in ("in-use", "reserved", "attaching", "detaching"):
                    vol.status = "available"
                vol.attach_status = "detached"
            elif not any(a.attach_status == "attached" for a in left):
                vol.status = "reserved"
                vol.attach_status = "detached"
            vol.updated_at = utcnow()
            volume_id = vol.id
        backend.terminate_connection(volume_id, connector)

    # -- the legacy flow (os-reserve, os-attach, os-detach, ... before 3.27) ------------
    #
    # What Cinder's volume actions record: the state of the volume as the caller (a
    # compute service that plugged the disk itself) reports it. They move the volume
    # and its attachment rows; no backend connection is made or torn down here (the
    # attachments API above is the one that connects).

    def reserve(self, ctx: Ctx, volume_id: str) -> None:
        """``os-reserve``: available (or in-use and multiattach) -> attaching."""
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            allowed = ("available", "in-use") if vol.multiattach else ("available",)
            if vol.status not in allowed:
                raise InvalidVolume(f"Volume status must be {' or '.join(allowed)} to "
                                    f"reserve, but the status is {vol.status}.")
            vol.status = "attaching"
            vol.updated_at = utcnow()

    def unreserve(self, ctx: Ctx, volume_id: str) -> None:
        """``os-unreserve``: attaching -> in-use if it has attachments, else available;
        in any other state nothing changes (as in Cinder)."""
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status != "attaching":
                return
            attached = session.scalar(select(VolumeAttachment.id).where(
                VolumeAttachment.volume_id == vol.id,
                VolumeAttachment.attach_status == "attached"))
            vol.status = "in-use" if attached else "available"
            vol.updated_at = utcnow()

    def legacy_attach(self, ctx: Ctx, volume_id: str, args: Any) -> None:
        """``os-attach``: record that the volume is attached to a server (or a host) at
        a mount point; the volume is in-use."""
        if not isinstance(args, dict):
            raise BadRequest("Invalid input for field/attribute os-attach. Value: "
                             f"{args!r}. {args!r} is not of type 'object'")
        instance_uuid, host_name = args.get("instance_uuid"), args.get("host_name")
        mountpoint, mode = args.get("mountpoint"), args.get("mode", "rw")
        if not isinstance(mountpoint, str) or not mountpoint:
            raise BadRequest("Invalid input for field/attribute os-attach. Value: "
                             f"{args!r}. 'mountpoint' is a required property")
        if instance_uuid is not None and (not isinstance(instance_uuid, str)
                                          or not UUID_RE.match(instance_uuid)):
            raise BadRequest(f"Invalid input for field/attribute instance_uuid. Value: "
                             f"{instance_uuid!r}. It is not a valid UUID.")
        if host_name is not None and not isinstance(host_name, str):
            raise BadRequest(f"Invalid input for field/attribute host_name. Value: "
                             f"{host_name!r}. It is not of type 'string'.")
        if bool(instance_uuid) == bool(host_name):
            raise BadRequest("Invalid request to attach volume: give exactly one of "
                             "instance_uuid and host_name.")
        if mode not in ("rw", "ro"):
            raise BadRequest(f"Invalid input received: attach mode {mode!r} must be rw "
                             "or ro.")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            readonly = (vol.admin_metadata or {}).get("readonly") == "True"
            if readonly and mode == "rw":
                raise BadRequest(f"Invalid attaching mode 'rw' for volume {vol.id} (it "
                                 "is read-only).")
            others = list(session.scalars(select(VolumeAttachment).where(
                VolumeAttachment.volume_id == vol.id)))
            if instance_uuid and any(a.instance_uuid == instance_uuid
                                     and a.attach_status == "attached" for a in others):
                raise Conflict(f"Volume {vol.id} is already attached to server "
                               f"{instance_uuid}.")
            if vol.status == "in-use" and not vol.multiattach:
                raise InvalidVolume("Invalid volume: volume is already attached.")
            if vol.status not in ("available", "attaching", "in-use"):
                raise InvalidVolume(f"Volume {vol.id} status must be available or "
                                    f"attaching to attach, but the current status is "
                                    f"{vol.status}.")
            now = utcnow()
            session.add(VolumeAttachment(
                id=str(uuid.uuid4()), volume_id=vol.id, instance_uuid=instance_uuid,
                attached_host=host_name, mountpoint=mountpoint, attach_status="attached",
                attach_mode=mode, attach_time=now, created_at=now))
            vol.status = "in-use"
            vol.attach_status = "attached"
            vol.admin_metadata = {**(vol.admin_metadata or {}), "attached_mode": mode}
            vol.updated_at = now

    def legacy_detach(self, ctx: Ctx, volume_id: str, args: Any) -> None:
        """``os-detach``: the attachment (``attachment_id``, or the only one) is gone;
        the volume is available once it has none left."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise BadRequest("Invalid input for field/attribute os-detach. Value: "
                             f"{args!r}. {args!r} is not of type 'object'")
        attachment_id = args.get("attachment_id")
        if attachment_id is not None and not isinstance(attachment_id, str):
            raise BadRequest(f"Invalid input for field/attribute attachment_id. Value: "
                             f"{attachment_id!r}. It is not of type 'string'.")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            atts = list(session.scalars(select(VolumeAttachment).where(
                VolumeAttachment.volume_id == vol.id)))
            if attachment_id is not None:
                atts = [a for a in atts if a.id == attachment_id]
                if not atts:
                    raise NotFound(f"Volume attachment {attachment_id} could not be "
                                   "found.")
            elif len(atts) > 1:
                raise InvalidVolume("Volume has more than one attachment; give the "
                                    "attachment_id of the one to detach.")
            elif not atts:
                # nothing left to detach (as Cinder: the volume is settled, no error)
                if vol.status in ("in-use", "detaching", "attaching", "reserved"):
                    vol.status = "available"
                vol.attach_status = "detached"
                vol.updated_at = utcnow()
                return
            att = atts[0]
            if att.connector:
                raise InvalidVolume(f"Attachment {att.id} was made through the "
                                    "attachments API; delete it there.")
            session.delete(att)
            session.flush()
            left = session.scalar(select(VolumeAttachment.id).where(
                VolumeAttachment.volume_id == vol.id))
            if left is None:
                vol.status = "available"
                vol.attach_status = "detached"
                vol.admin_metadata = {k: v for k, v in (vol.admin_metadata or {}).items()
                                      if k != "attached_mode"}
            else:
                vol.status = "in-use"
            vol.updated_at = utcnow()

    def begin_detaching(self, ctx: Ctx, volume_id: str) -> None:
        """``os-begin_detaching``: in-use -> detaching."""
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status != "in-use" or vol.attach_status != "attached":
                raise InvalidVolume(f"Invalid volume: Unable to detach volume. Volume "
                                    f"status must be 'in-use' and attach_status must be "
                                    f"'attached' to detach (it is {vol.status}).")
            vol.status = "detaching"
            vol.updated_at = utcnow()

    def roll_detaching(self, ctx: Ctx, volume_id: str) -> None:
        """``os-roll_detaching``: detaching -> in-use (otherwise nothing changes)."""
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status == "detaching":
                vol.status = "in-use"
                vol.updated_at = utcnow()

    # -- reads ---------------------------------------------------------------------------

    def get_attachment(self, ctx: Ctx, attachment_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            att, _ = self._find(session, ctx, attachment_id)
            return as_dict(att)

    def list_attachments(self, ctx: Ctx, all_tenants: bool = False,
                         filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        with self.db.session() as session:
            query = select(VolumeAttachment, Volume).join(
                Volume, Volume.id == VolumeAttachment.volume_id)
            if not (ctx is None or (ctx.is_admin and all_tenants)):
                assert ctx is not None
                query = query.where(Volume.project_id == ctx.project_id)
            if filters.get("volume_id"):
                query = query.where(VolumeAttachment.volume_id == filters["volume_id"])
            if filters.get("instance_id"):
                query = query.where(VolumeAttachment.instance_uuid == filters["instance_id"])
            if filters.get("status"):
                query = query.where(VolumeAttachment.attach_status == filters["status"])
            rows = session.execute(query.order_by(VolumeAttachment.created_at)).all()
            return [as_dict(att) for att, _ in rows]

    def attachments_for_instance(self, instance_uuid: str) -> list[dict[str, Any]]:
        return self.list_attachments(None, filters={"instance_id": instance_uuid})

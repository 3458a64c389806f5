"""Volume transfers: a project offers one of its volumes (``awaiting-transfer``) with
a one-time key; whoever presents the transfer id and the key moves the volume (and its
snapshots, unless ``no_snapshots``) into their own project, quota permitting. The key
is shown once, at creation, and stored as a salted hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Snapshot, Volume, VolumeAttachment, VolumeTransfer, VolumeType
from onestack.services.volume import quotas as quota_mod
from onestack.services.volume.common import (
    Ctx,
    InvalidVolume,
    check_bool,
    check_string,
    find_volume,
    is_admin,
    scope_to_caller,
)

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes

KEY_LENGTH = 16


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}{key}".encode()).hexdigest()


class Transfers:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db

    def create(self, ctx: Ctx, body: dict[str, Any]) -> tuple[VolumeTransfer, str]:
        """The transfer and its key (returned only now)."""
        volume_id = body.get("volume_id")
        if not isinstance(volume_id, str):
            raise BadRequest("Invalid input for field/attribute transfer. Value: "
                             f"{body}. 'volume_id' is a required property")
        name = check_string(body.get("name"), "name")
        no_snapshots = check_bool(body.get("no_snapshots", False), "no_snapshots")
        key = secrets.token_hex(KEY_LENGTH // 2)
        salt = secrets.token_hex(8)
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status != "available":
                raise InvalidVolume(f"Status of volume must be available, but it is "
                                    f"{vol.status}.")
            if session.scalar(select(VolumeAttachment.id).where(
                    VolumeAttachment.volume_id == vol.id)):
                raise InvalidVolume("Volume is attached; it cannot be transferred.")
            transfer = VolumeTransfer(id=str(uuid.uuid4()), volume_id=vol.id,
                                      project_id=vol.project_id, name=name, salt=salt,
                                      crypt_hash=_hash(salt, key), no_snapshots=no_snapshots)
            session.add(transfer)
            vol.status = "awaiting-transfer"
        return transfer, key

    def _find(self, session: Any, ctx: Ctx, transfer_id: str) -> VolumeTransfer:
        transfer = session.get(VolumeTransfer, transfer_id)
        if transfer is None or not (is_admin(ctx) or (
                ctx is not None and ctx.project_id == transfer.project_id)):
            raise NotFound(f"Transfer {transfer_id} could not be found.")
        return transfer

    def get(self, ctx: Ctx, transfer_id: str) -> VolumeTransfer:
        with self.db.session() as session:
            return self._find(session, ctx, transfer_id)

    def list(self, ctx: Ctx, all_tenants: bool = False) -> list[VolumeTransfer]:
        with self.db.session() as session:
            query = scope_to_caller(select(VolumeTransfer).order_by(
                VolumeTransfer.created_at), VolumeTransfer.project_id, ctx, all_tenants)
            return list(session.scalars(query))

    def delete(self, ctx: Ctx, transfer_id: str) -> None:
        with self.db.session() as session:
            transfer = self._find(session, ctx, transfer_id)
            vol = session.get(Volume, transfer.volume_id)
            if vol is not None and vol.status == "awaiting-transfer":
                vol.status = "available"
            session.delete(transfer)

    def accept(self, ctx: Ctx, transfer_id: str, auth_key: Any) -> VolumeTransfer:
        """Move the volume into the caller's project. Anyone with the id and the key
        may accept (that is the point); a wrong key is a 400, as in Cinder."""
        if ctx is None or ctx.project_id is None:
            raise BadRequest("Accepting a transfer needs a project-scoped token.")
        if not isinstance(auth_key, str):
            raise BadRequest("Invalid input for field/attribute accept. 'auth_key' is a "
                             "required property")
        with quota_mod.LOCK, self.db.session() as session:
            transfer = session.get(VolumeTransfer, transfer_id)
            if transfer is None:
                raise NotFound(f"Transfer {transfer_id} could not be found.")
            if not hmac.compare_digest(_hash(transfer.salt, auth_key), transfer.crypt_hash):
                raise BadRequest(f"Invalid auth key: Attempt to transfer {transfer_id} with "
                                 "invalid auth key.")
            vol = session.get(Volume, transfer.volume_id)
            if vol is None or vol.status != "awaiting-transfer":
                raise InvalidVolume("The volume of this transfer is no longer awaiting "
                                    "transfer.")
            snaps = [] if transfer.no_snapshots else list(session.scalars(
                select(Snapshot).where(Snapshot.volume_id == vol.id)))
            vt = session.get(VolumeType, vol.volume_type_id) if vol.volume_type_id else None
            self.volumes.quotas.check(
                session, ctx.project_id, vt.name if vt else None, volumes=1,
                snapshots=len(snaps), gigabytes=vol.size + sum(s.size for s in snaps),
                size=vol.size)
            vol.project_id = ctx.project_id
            vol.user_id = ctx.user_id
            vol.status = "available"
            for snap in snaps:
                snap.project_id = ctx.project_id
                snap.user_id = ctx.user_id
            session.delete(transfer)
            return transfer

"""Volume type encryption specs (Cinder's ``/types/{type_id}/encryption``).

They are stored and shown as Cinder shows them, and changed only while no volume uses
the type. No backend here encrypts a volume, so placement refuses a volume whose type
has one: it goes to ``error`` with a user message saying so (onestack/services/volume/
hosts.py); Tempest's ``attach_encrypted_volume`` is off for the same reason.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Volume, utcnow
from onestack.db.models.volume_admin import VolumeTypeEncryption
from onestack.services.volume.common import Ctx, check_string, field_error

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes

LOCATIONS = ("front-end", "back-end")
FIELDS = ("provider", "cipher", "key_size", "control_location")


def _checked(body: Any, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise field_error("encryption", body, "'encryption' is a required property")
    unknown = set(body) - set(FIELDS)
    if unknown:
        raise field_error("encryption", body, f"Additional properties are not allowed "
                          f"({', '.join(sorted(repr(u) for u in unknown))} were unexpected)")
    out: dict[str, Any] = {}
    if creating or "provider" in body:
        provider = check_string(body.get("provider"), "encryption/provider",
                                allow_none=False)
        if not provider:
            raise field_error("encryption/provider", provider, "'provider' is required")
        out["provider"] = provider
    if "cipher" in body:
        out["cipher"] = check_string(body["cipher"], "encryption/cipher")
    if "key_size" in body:
        size = body["key_size"]
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                 or size < 0):
            raise field_error("encryption/key_size", size, "must be a non-negative integer "
                              "or null")
        out["key_size"] = size
    if creating or "control_location" in body:
        location = body.get("control_location", "front-end")
        if location not in LOCATIONS:
            raise BadRequest(f"Invalid input received: Valid control location are: "
                             f"{', '.join(LOCATIONS)}")
        out["control_location"] = location
    return out


class TypeEncryption:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db

    def _type(self, session: Session, ctx: Ctx, type_id: str) -> str:
        return self.volumes.types.find(session, ctx, type_id).id

    @staticmethod
    def _unused(session: Session, type_id: str) -> None:
        if session.scalar(select(Volume.id).where(Volume.volume_type_id == type_id)):
            raise BadRequest("Cannot update encryption specs. Volume type in use.")

    def show(self, ctx: Ctx, type_id: str) -> VolumeTypeEncryption | None:
        with self.db.session() as session:
            return session.get(VolumeTypeEncryption, self._type(session, ctx, type_id))

    def create(self, ctx: Ctx, type_id: str, body: Any) -> VolumeTypeEncryption:
        values = _checked(body, creating=True)
        with self.db.session() as session:
            vt_id = self._type(session, ctx, type_id)
            if session.get(VolumeTypeEncryption, vt_id) is not None:
                raise BadRequest(f"Volume type encryption for type {vt_id} already exists.")
            self._unused(session, vt_id)
            row = VolumeTypeEncryption(volume_type_id=vt_id, encryption_id=str(uuid.uuid4()),
                                       created_at=utcnow(), **values)
            session.add(row)
        return row

    def update(self, ctx: Ctx, type_id: str, encryption_id: str, body: Any
               ) -> dict[str, Any]:
        values = _checked(body, creating=False)
        with self.db.session() as session:
            vt_id = self._type(session, ctx, type_id)
            row = session.get(VolumeTypeEncryption, vt_id)
            if row is None or row.encryption_id != encryption_id:
                raise NotFound(f"Volume type encryption for type {vt_id} does not exist.")
            self._unused(session, vt_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return values

    def delete(self, ctx: Ctx, type_id: str, encryption_id: str) -> None:
        with self.db.session() as session:
            vt_id = self._type(session, ctx, type_id)
            row = session.get(VolumeTypeEncryption, vt_id)
            if row is None or row.encryption_id != encryption_id:
                raise NotFound(f"Volume type encryption for type {vt_id} does not exist.")
            if session.scalar(select(Volume.id).where(Volume.volume_type_id == vt_id)):
                raise BadRequest("Cannot delete encryption specs. Volume type in use.")
            session.delete(row)

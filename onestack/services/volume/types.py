"""Volume types (with extra specs and project access) and QoS specs. A type's
``volume_backend_name`` extra spec picks the backend its volumes are made on;
``multiattach: "<is> True"`` lets its volumes be attached to more than one server.

QoS specs: a spec whose ``consumer`` is ``front-end`` or ``both`` reaches the host in
the attachment's ``connection_info.data.qos_specs`` and is applied there as I/O
throttling of the volume's disk (``FRONT_END_QOS_KEYS``; docs/volume.md). Cinder
stores any string; a value the host could not apply (not a non-negative integer, over
QEMU's 1e15, a total limit beside a read or write one, a burst without its rate or
under it) is refused here, on create and update, rather than failing the attach later.
``back-end`` specs are stored and shown only: this cloud's backends have no QoS.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db import Database
from onestack.db.models import QosSpecs, Volume, VolumeType, VolumeTypeProject, utcnow
from onestack.hostlink.types import FRONT_END_QOS_KEYS, QOS_VALUE_MAX
from onestack.services.volume.common import (
    UUID_RE,
    Ctx,
    check_bool,
    check_metadata,
    check_string,
    field_error,
    is_admin,
)

QOS_CONSUMERS = ("front-end", "back-end", "both")
#: Cinder's capacity-based keys: ``<rate>_per_gb`` times the volume's size in GiB (at
#: least ``<rate>_per_gb_min``) is the ``<rate>`` the host gets.
PER_GB_KEYS = tuple(f"{d}_{u}_sec_per_gb" for u in ("iops", "bytes")
                    for d in ("total", "read", "write"))


def _qos_error(reason: str) -> BadRequest:
    return BadRequest(f"Invalid QoS specification detected: {reason}")


def check_qos_consumer(consumer: Any) -> str:
    if consumer not in QOS_CONSUMERS:
        raise BadRequest(f"Invalid input received: consumer {consumer!r} must be one "
                         "of front-end, back-end or both.")
    return str(consumer)


def check_qos_values(specs: dict[str, str]) -> None:
    """The I/O limit keys of ``specs`` (a whole spec, after an update) are what a host
    can apply: non-negative integers (0: no limit) up to ``QOS_VALUE_MAX``; a total
    limit not beside a read or write one of the same kind; a ``*_max`` burst only with
    its rate, and not under it."""
    values: dict[str, int] = {}
    for key in (*FRONT_END_QOS_KEYS, *PER_GB_KEYS, *(k + "_min" for k in PER_GB_KEYS)):
        if key not in specs:
            continue
        text = str(specs[key]).strip()
        if not text.isdigit() or int(text) > QOS_VALUE_MAX:
            raise _qos_error(f"{key} must be an integer from 0 to {QOS_VALUE_MAX}, not "
                             f"{specs[key]!r}.")
        values[key] = int(text)
    def rate(key: str) -> int:  # a fixed rate, or a capacity-based one
        return values.get(key) or values.get(key + "_per_gb") or 0

    for unit in ("bytes", "iops"):
        for suffix in ("", "_max"):
            total = rate(f"total_{unit}_sec{suffix}")
            split = [d for d in ("read", "write") if rate(f"{d}_{unit}_sec{suffix}")]
            if total and split:
                raise _qos_error(f"total_{unit}_sec{suffix} cannot be used with "
                                 f"{split[0]}_{unit}_sec{suffix}.")
        for direction in ("total", "read", "write"):
            fixed = values.get(f"{direction}_{unit}_sec", 0)
            burst = values.get(f"{direction}_{unit}_sec_max", 0)
            if burst and not rate(f"{direction}_{unit}_sec"):
                raise _qos_error(f"{direction}_{unit}_sec_max needs {direction}_{unit}_sec.")
            if burst and burst < fixed:
                raise _qos_error(f"{direction}_{unit}_sec_max ({burst}) cannot be lower "
                                 f"than {direction}_{unit}_sec ({fixed}).")


def is_multiattach(volume_type: VolumeType | None) -> bool:
    spec = (volume_type.extra_specs or {}).get("multiattach", "") if volume_type else ""
    return str(spec).replace(" ", "").lower() in ("<is>true", "true")


class VolumeTypes:
    def __init__(self, db: Database, default_name: str) -> None:
        self.db = db
        self.default_name = default_name

    def bootstrap(self) -> None:
        """The default type exists (Cinder's ``__DEFAULT__``)."""
        with self.db.session() as session:
            if session.scalar(select(VolumeType).where(
                    VolumeType.name == self.default_name)) is None:
                session.add(VolumeType(id=str(uuid.uuid4()), name=self.default_name,
                                       description="Default Volume Type", is_public=True,
                                       extra_specs={}))

    # -- lookups ----------------------------------------------------------------------

    def _accessible(self, session: Session, ctx: Ctx, vt: VolumeType) -> bool:
        if vt.is_public or is_admin(ctx):
            return True
        assert ctx is not None
        return session.get(VolumeTypeProject, (vt.id, ctx.project_id or "")) is not None

    def find(self, session: Session, ctx: Ctx, name_or_id: str) -> VolumeType:
        vt = session.get(VolumeType, name_or_id) if UUID_RE.match(name_or_id) else None
        if vt is None:
            vt = session.scalar(select(VolumeType).where(VolumeType.name == name_or_id))
        if vt is None or not self._accessible(session, ctx, vt):
            raise NotFound(f"Volume type {name_or_id} could not be found.")
        return vt

    def default(self, session: Session) -> VolumeType:
        vt = session.scalar(select(VolumeType).where(VolumeType.name == self.default_name))
        if vt is None:
            raise NotFound(f"Default volume type {self.default_name} could not be found.")
        return vt

    def get(self, ctx: Ctx, name_or_id: str) -> VolumeType:
        with self.db.session() as session:
            if name_or_id == "default":
                return self.default(session)
            return self.find(session, ctx, name_or_id)

    def list_types(self, ctx: Ctx, is_public: str | None = None) -> list[VolumeType]:
        with self.db.session() as session:
            types = list(session.scalars(select(VolumeType).order_by(VolumeType.created_at)))
            if is_admin(ctx) and is_public is not None and is_public.lower() == "none":
                return types
            if is_admin(ctx) and is_public is not None:
                wanted = check_bool(is_public, "is_public")
                return [t for t in types if t.is_public == wanted]
            return [t for t in types if self._accessible(session, ctx, t)]

    # -- changes (administrators; the route checks) -----------------------------------

    def create(self, body: dict[str, Any]) -> VolumeType:
        name = check_string(body.get("name"), "volume_type/name", allow_none=False)
        assert name is not None
        if not name.strip():
            raise field_error("volume_type/name", name, "The name must not be empty.")
        description = check_string(body.get("description"), "volume_type/description")
        is_public = check_bool(body.get("os-volume-type-access:is_public", True),
                               "os-volume-type-access:is_public")
        specs = check_metadata(body.get("extra_specs"), "volume_type/extra_specs")
        with self.db.session() as session:
            if session.scalar(select(VolumeType).where(VolumeType.name == name)):
                raise Conflict(f"Volume Type {name} already exists.")
            vt = VolumeType(id=str(uuid.uuid4()), name=name, description=description,
                            is_public=is_public, extra_specs=specs)
            session.add(vt)
        return vt

    def update(self, ctx: Ctx, type_id: str, body: dict[str, Any]) -> VolumeType:
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            if "name" in body and body["name"] is not None:
                name = check_string(body["name"], "volume_type/name", allow_none=False)
                if name != vt.name and session.scalar(
                        select(VolumeType).where(VolumeType.name == name)):
                    raise Conflict(f"Volume Type {name} already exists.")
                assert name is not None
                vt.name = name
            if "description" in body:
                vt.description = check_string(body["description"], "volume_type/description")
            if "is_public" in body:
                vt.is_public = check_bool(body["is_public"], "is_public")
            vt.updated_at = utcnow()
        return vt

    def delete(self, ctx: Ctx, type_id: str) -> None:
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            if vt.name == self.default_name:
                raise BadRequest("Invalid volume type: Default volume type can not be "
                                 "deleted.")
            if session.scalar(select(Volume.id).where(Volume.volume_type_id == vt.id)):
                raise BadRequest("Target volume type is still in use.")
            session.delete(vt)

    def set_extra_specs(self, ctx: Ctx, type_id: str, specs: Any) -> dict[str, str]:
        specs = check_metadata(specs, "extra_specs")
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            vt.extra_specs = {**(vt.extra_specs or {}), **specs}
            return dict(vt.extra_specs)

    def delete_extra_spec(self, ctx: Ctx, type_id: str, key: str) -> None:
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            if key not in (vt.extra_specs or {}):
                raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
            vt.extra_specs = {k: v for k, v in vt.extra_specs.items() if k != key}

    def access(self, ctx: Ctx, type_id: str) -> list[dict[str, str]]:
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            if vt.is_public:
                raise NotFound("Access list not available for public volume types.")
            return [{"volume_type_id": vt.id, "project_id": row.project_id}
                    for row in session.scalars(select(VolumeTypeProject).where(
                        VolumeTypeProject.volume_type_id == vt.id))]

    def change_access(self, ctx: Ctx, type_id: str, project_id: Any, add: bool) -> None:
        if not isinstance(project_id, str) or not project_id:
            raise BadRequest("Missing required element 'project' in request body.")
        with self.db.session() as session:
            vt = self.find(session, ctx, type_id)
            if vt.is_public:
                raise BadRequest("Invalid volume type: Type access modification is not "
                                 "applicable to public volume type.")
            row = session.get(VolumeTypeProject, (vt.id, project_id))
            if add:
                if row is not None:
                    raise Conflict(f"Volume type access for {vt.id} / {project_id} "
                                   "combination already exists.")
                session.add(VolumeTypeProject(volume_type_id=vt.id, project_id=project_id))
            else:
                if row is None:
                    raise NotFound(f"Volume type access not found for {vt.id} / "
                                   f"{project_id} combination.")
                session.delete(row)

    # -- QoS specs ------------------------------------------------------

    def find_qos(self, session: Session, qos_id: str) -> QosSpecs:
        qos = session.get(QosSpecs, qos_id) if UUID_RE.match(qos_id) else None
        if qos is None:
            raise NotFound(f"QoS Specs {qos_id} could not be found.")
        return qos

    def list_qos(self) -> list[QosSpecs]:
        with self.db.session() as session:
            return list(session.scalars(select(QosSpecs).order_by(QosSpecs.created_at)))

    def get_qos(self, qos_id: str) -> QosSpecs:
        with self.db.session() as session:
            return self.find_qos(session, qos_id)

    def create_qos(self, body: dict[str, Any]) -> QosSpecs:
        body = dict(body)
        name = check_string(body.pop("name", None), "qos_specs/name", allow_none=False)
        consumer = check_qos_consumer(body.pop("consumer", "back-end"))
        specs = check_metadata(body, "qos_specs")
        check_qos_values(specs)
        with self.db.session() as session:
            if session.scalar(select(QosSpecs).where(QosSpecs.name == name)):
                raise Conflict(f"QoS Specs {name} already exists.")
            assert name is not None
            qos = QosSpecs(id=str(uuid.uuid4()), name=name, consumer=consumer, specs=specs)
            session.add(qos)
        return qos

    def set_qos_keys(self, qos_id: str, specs: Any) -> dict[str, str]:
        """Cinder's update: the keys are set (``consumer`` changes the consumer); the
        whole spec must still be valid."""
        specs = check_metadata(specs, "qos_specs")
        consumer = check_qos_consumer(specs.pop("consumer")) if "consumer" in specs \
            else None
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            merged = {**(qos.specs or {}), **specs}
            check_qos_values(merged)
            qos.specs = merged
            if consumer is not None:
                qos.consumer = consumer
            return dict(qos.specs)

    def delete_qos_keys(self, qos_id: str, keys: Any) -> None:
        """Cinder's ``delete_keys``: every key must be there (404 names the first that
        is not); then they all go."""
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise field_error("keys", keys, "'keys' must be a list of strings")
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            for key in keys:
                if key not in (qos.specs or {}):
                    raise NotFound(f"QoS spec {qos.id} has no key {key}.")
            qos.specs = {k: v for k, v in (qos.specs or {}).items() if k not in keys}

    def disassociate_all(self, qos_id: str) -> None:
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            for vt in session.scalars(select(VolumeType).where(
                    VolumeType.qos_specs_id == qos.id)):
                vt.qos_specs_id = None

    def delete_qos(self, qos_id: str, force: bool = False) -> None:
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            users = list(session.scalars(select(VolumeType).where(
                VolumeType.qos_specs_id == qos.id)))
            if users and not force:
                raise BadRequest(f"QoS Specs {qos.id} is still associated with entities.")
            for vt in users:
                vt.qos_specs_id = None
            session.delete(qos)

    def associate_qos(self, ctx: Ctx, qos_id: str, type_id: str | None, add: bool) -> None:
        if not type_id:
            raise BadRequest("Invalid input received: vol_type_id is required.")
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            vt = self.find(session, ctx, type_id)
            if add and vt.qos_specs_id not in (None, qos.id):
                raise BadRequest(f"Invalid input received: Type {vt.id} is already "
                                 "associated with another qos specs.")
            vt.qos_specs_id = qos.id if add else None

    def qos_associations(self, qos_id: str) -> list[dict[str, str]]:
        with self.db.session() as session:
            qos = self.find_qos(session, qos_id)
            return [{"association_type": "volume_type", "name": vt.name, "id": vt.id}
                    for vt in session.scalars(select(VolumeType).where(
                        VolumeType.qos_specs_id == qos.id))]

    def qos_for_type(self, session: Session, type_id: str | None, size_gb: int = 0
                     ) -> dict[str, Any] | None:
        """A connection's ``qos_specs``: the type's spec if its consumer is front-end or
        both (None otherwise), its capacity-based keys turned into rates for a volume of
        ``size_gb`` GiB (as Cinder does when it connects a volume)."""
        vt = session.get(VolumeType, type_id) if type_id else None
        if vt is None or not vt.qos_specs_id:
            return None
        qos = session.get(QosSpecs, vt.qos_specs_id)
        if qos is None or qos.consumer == "back-end":
            return None
        specs = dict(qos.specs or {})
        for key in PER_GB_KEYS:
            per_gb, least = specs.pop(key, None), specs.pop(key + "_min", None)
            if per_gb is not None and str(per_gb).strip().isdigit():
                floor = int(least) if str(least).strip().isdigit() else 0
                specs[key[:-len("_per_gb")]] = str(max(int(per_gb) * size_gb, floor))
        return specs

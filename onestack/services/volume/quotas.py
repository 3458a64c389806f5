"""Block Storage quotas: ``volumes``, ``gigabytes``, ``snapshots`` (and the
``backups``, ``backup_gigabytes``, ``groups``, ``per_volume_gigabytes`` Cinder also
shows), each also per volume type (``volumes_<type>``, ``gigabytes_<type>``,
``snapshots_<type>``).

The ``default`` quota class (``/os-quota-class-sets/default``) overrides the
``[volume]`` defaults for every project without a limit of its own; other class names
can be stored and shown but no project uses them (as in Cinder).

Usage is counted from the rows themselves (a volume counts from the moment its row is
written until the row is deleted; ``gigabytes`` adds snapshots' sizes, as Cinder
does), so it cannot drift from the truth after a crash. A check and the row it admits
are written under one lock, in one transaction (one server process per database; see
docs/design/volumes.md).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from onestack.common.config import Config
from onestack.common.errors import BadRequest, PayloadTooLarge
from onestack.db import Database
from onestack.db.models import Snapshot, Volume, VolumeQuota, VolumeType
from onestack.db.models.volume_admin import VolumeGroup, VolumeQuotaClass
from onestack.db.models.volume_backups import VolumeBackup

BASE = ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes", "groups",
        "per_volume_gigabytes")
PER_TYPE = ("volumes", "gigabytes", "snapshots")

#: Held around every quota check and the insert it admits, and around every
#: check-then-change of a volume's state that another request could race (attach,
#: detach, delete, transfer, upload): one server process per database (the design doc).
LOCK = threading.RLock()


class VolumeQuotas:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config.volume

    def defaults(self, session: Session) -> dict[str, int]:
        c = self.config
        values = {"volumes": c.quota_volumes, "gigabytes": c.quota_gigabytes,
                  "snapshots": c.quota_snapshots, "backups": c.quota_backups,
                  "backup_gigabytes": c.quota_backup_gigabytes, "groups": c.quota_groups,
                  "per_volume_gigabytes": c.per_volume_size_limit}
        for name in session.scalars(select(VolumeType.name)):
            for resource in PER_TYPE:
                values[f"{resource}_{name}"] = -1
        return self._class_limits(session, "default", values)

    @staticmethod
    def _class_limits(session: Session, class_name: str,
                      values: dict[str, int]) -> dict[str, int]:
        """``values`` with the limits stored for ``class_name`` on top (only for the
        resources that exist: a deleted type's rows are ignored)."""
        for row in session.scalars(select(VolumeQuotaClass).where(
                VolumeQuotaClass.class_name == class_name)):
            if row.resource in values:
                values[row.resource] = row.hard_limit
        return values

    def show_class(self, class_name: str) -> dict[str, Any]:
        with self.db.session() as session:
            values = self.defaults(session)
            if class_name != "default":
                values = self._class_limits(session, class_name, values)
        return {"id": class_name, **values}

    def update_class(self, class_name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Store limits of a class (checked as a project's are); returns the class."""
        if not class_name or len(class_name) > 255:
            raise BadRequest("Invalid input received: the quota class name must be 1 to "
                             "255 characters.")
        with self.db.session() as session:
            known = self.defaults(session)
            checked = {name: self._value(known, name, raw) for name, raw in values.items()}
            for name, value in checked.items():
                row = session.get(VolumeQuotaClass, (class_name, name))
                if row is None:
                    session.add(VolumeQuotaClass(class_name=class_name, resource=name,
                                                 hard_limit=value))
                else:
                    row.hard_limit = value
        shown = self.show_class(class_name)
        shown.pop("id")
        return shown

    @staticmethod
    def _value(known: dict[str, int], name: str, raw: Any) -> int:
        if name not in known:
            raise BadRequest(f"Bad key(s) in quota set: {name}")
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise BadRequest(f"Quota value {raw!r} for {name} must be an integer.")
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"Quota value {raw!r} for {name} must be an "
                             "integer.") from None
        if value < -1 or value > 0x7FFFFFFF:
            raise BadRequest(f"Invalid input received: Quota limit {value} for "
                             f"{name} must be -1 or between 0 and 2147483647.")
        return value

    def limits(self, session: Session, project_id: str) -> dict[str, int]:
        values = self.defaults(session)
        for row in session.scalars(select(VolumeQuota).where(
                VolumeQuota.project_id == project_id)):
            values[row.resource] = row.hard_limit
        return values

    def usage(self, session: Session, project_id: str) -> dict[str, int]:
        types = dict(session.execute(select(VolumeType.id, VolumeType.name)).all())
        used: dict[str, int] = {name: 0 for name in BASE}
        for name in types.values():
            for resource in PER_TYPE:
                used[f"{resource}_{name}"] = 0
        for type_id, count, size in session.execute(
                select(Volume.volume_type_id, func.count(), func.coalesce(func.sum(Volume.size), 0))
                .where(Volume.project_id == project_id).group_by(Volume.volume_type_id)):
            used["volumes"] += count
            used["gigabytes"] += size
            if type_id in types:
                used[f"volumes_{types[type_id]}"] += count
                used[f"gigabytes_{types[type_id]}"] += size
        for type_id, count, size in session.execute(
                select(Snapshot.volume_type_id, func.count(),
                       func.coalesce(func.sum(Snapshot.size), 0))
                .where(Snapshot.project_id == project_id).group_by(Snapshot.volume_type_id)):
            used["snapshots"] += count
            used["gigabytes"] += size
            if type_id in types:
                used[f"snapshots_{types[type_id]}"] += count
                used[f"gigabytes_{types[type_id]}"] += size
        count, size = session.execute(
            select(func.count(), func.coalesce(func.sum(VolumeBackup.size), 0))
            .where(VolumeBackup.project_id == project_id)).one()
        used["backups"], used["backup_gigabytes"] = count, size
        used["groups"] = session.scalar(select(func.count()).select_from(VolumeGroup).where(
            VolumeGroup.project_id == project_id)) or 0
        return used

    def check(self, session: Session, project_id: str, type_name: str | None,
              volumes: int = 0, snapshots: int = 0, gigabytes: int = 0,
              size: int | None = None, backups: int = 0,
              backup_gigabytes: int = 0) -> None:
        """Refuse (413, Cinder's messages) what would take the project over a limit.
        Call with ``LOCK`` held, in the transaction that writes the row."""
        limits = self.limits(session, project_id)
        per_volume = limits.get("per_volume_gigabytes", -1)
        if size is not None and per_volume >= 0 and size > per_volume:
            raise BadRequest(f"Invalid input received: Volume size {size}G exceeds the "
                             f"{per_volume}G per-volume limit.")
        used = self.usage(session, project_id)
        wanted = {"volumes": volumes, "snapshots": snapshots, "gigabytes": gigabytes,
                  "backups": backups, "backup_gigabytes": backup_gigabytes}
        for resource, delta in wanted.items():
            names = [resource] + ([f"{resource}_{type_name}"]
                                  if type_name and resource in PER_TYPE else [])
            for name in names:
                limit = limits.get(name, -1)
                if delta <= 0 or limit < 0 or used.get(name, 0) + delta <= limit:
                    continue
                if resource == "backup_gigabytes":
                    raise PayloadTooLarge(
                        f"Requested backup exceeds allowed Backup gigabytes quota. "
                        f"Requested {delta}G, quota is {limit}G and {used.get(name, 0)}G "
                        "has been consumed.")
                if resource == "gigabytes":
                    raise PayloadTooLarge(
                        f"Requested volume or snapshot exceeds allowed {name} quota. "
                        f"Requested {delta}G, quota is {limit}G and {used.get(name, 0)}G "
                        "has been consumed.")
                raise PayloadTooLarge(f"Maximum number of {resource} allowed ({limit}) "
                                      f"exceeded for quota '{name}'.")

    def show(self, project_id: str, usage: bool = False) -> dict[str, Any]:
        with self.db.session() as session:
            limits = self.limits(session, project_id)
            if not usage:
                return {"id": project_id, **limits}
            used = self.usage(session, project_id)
        return {"id": project_id, **{name: {"limit": limit, "in_use": used.get(name, 0),
                                            "reserved": 0, "allocated": 0}
                                     for name, limit in limits.items()}}

    def update(self, project_id: str, values: dict[str, Any]) -> dict[str, Any]:
        with self.db.session() as session:
            known = self.defaults(session)
            for name, raw in values.items():
                value = self._value(known, name, raw)
                row = session.get(VolumeQuota, (project_id, name))
                if row is None:
                    session.add(VolumeQuota(project_id=project_id, resource=name,
                                            hard_limit=value))
                else:
                    row.hard_limit = value
        return self.show(project_id)

    def reset(self, project_id: str) -> None:
        with self.db.session() as session:
            session.execute(delete(VolumeQuota).where(VolumeQuota.project_id == project_id))

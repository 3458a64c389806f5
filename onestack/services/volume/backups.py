"""Volume backups (Cinder v3 ``/backups``): a copy of a volume's data kept by a backup
driver (``backup_drivers``) apart from the volume, restorable to a new volume or over
an available one.

States, as Cinder's: a backup is ``creating`` while its data is copied (the source
volume is ``backing-up`` meanwhile and goes back to the status it had; a snapshot
that is backed up is ``backing-up`` likewise), then ``available``, or ``error`` with
``fail_reason``; ``restoring`` while it is written to a volume (that volume is
``restoring-backup``, then ``available``, or ``error_restoring``); ``deleting`` until
its data and row are gone (``error_deleting`` if the data cannot be removed).

The work runs in worker threads of its own (a restore to a new volume waits there for
the volume's creation, which runs in the volume service's workers); their futures join
the volume service's, so ``Volumes.wait_idle`` waits for them too. Progress is logged
every tenth of the volume. ``recover`` settles what a crash left.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Snapshot, Volume, VolumeType, utcnow
from onestack.db.models.volume_backups import VolumeBackup
from onestack.services.volume import quotas as quota_mod
from onestack.services.volume.backends.base import GiB, VolumeError
from onestack.services.volume.backup_drivers import BackupDriver, BackupError, load_driver
from onestack.services.volume.common import (
    UUID_RE,
    Ctx,
    InvalidInput,
    InvalidVolume,
    check_bool,
    check_metadata,
    check_string,
    find_snapshot,
    find_volume,
    scope_to_caller,
    visible,
)

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes

log = logging.getLogger(__name__)

EVENT_BACKUP = "VOLUME_BACKUP_001_002"
EVENT_RESTORE = "VOLUME_BACKUP_001_003"
#: What an administrator may set with os-reset_status (Cinder's choice).
RESETTABLE = ("available", "error")
DEFAULT_CONTAINER = "backups"
_CONTAINER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
#: How long a restore waits for the new volume it writes to be created.
NEW_VOLUME_WAIT = 600.0

_INSTANCES_LOCK = threading.Lock()


class InvalidBackup(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid backup: {reason}")


def backups_of(volumes: Volumes) -> Backups:
    """The backup service of a volume service (one per ``Volumes``)."""
    with _INSTANCES_LOCK:
        found: Backups | None = getattr(volumes, "_backups_service", None)
        if found is None:
            found = Backups(volumes)
            setattr(volumes, "_backups_service", found)  # noqa: B010 (not declared there)
        return found


class Backups:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db
        self.config = volumes.config
        self._driver: BackupDriver | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, volumes.config.volume.workers), thread_name_prefix="backup")

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)

    @property
    def driver(self) -> BackupDriver:
        if self._driver is None:
            self._driver = load_driver(self.config)
        return self._driver

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.volumes.start_task(self._executor, "backup", fn, *args)

    # -- reading ------------------------------------------------------------------------

    def find(self, session: Session, ctx: Ctx, backup_id: str) -> VolumeBackup:
        backup = None
        if UUID_RE.match(backup_id):
            backup = session.get(VolumeBackup, backup_id.lower())
        if backup is None or not visible(ctx, backup.project_id):
            raise NotFound(f"Backup {backup_id} could not be found.")
        return backup

    def get(self, ctx: Ctx, backup_id: str) -> VolumeBackup:
        with self.db.session() as session:
            return self.find(session, ctx, backup_id)

    def dependents(self, ids: list[str]) -> set[str]:
        """Which of these backups have incremental backups made from them."""
        if not ids:
            return set()
        with self.db.session() as session:
            return set(session.scalars(select(VolumeBackup.parent_id).where(
                VolumeBackup.parent_id.in_(ids)).distinct()))

    def list(self, ctx: Ctx, filters: dict[str, str], all_tenants: bool = False
             ) -> list[VolumeBackup]:
        with self.db.session() as session:
            query = scope_to_caller(select(VolumeBackup), VolumeBackup.project_id, ctx,
                                    all_tenants, filters.pop("project_id", None))
            found = list(session.scalars(query.order_by(VolumeBackup.created_at.desc())))
        out = []
        for backup in found:
            ok = True
            for key, value in filters.items():
                inexact = key.endswith("~")
                field = key.rstrip("~")
                if field == "display_name":
                    field = "name"
                if field not in ("name", "status", "volume_id", "snapshot_id",
                                 "availability_zone", "container", "description"):
                    continue  # Cinder ignores filters it does not know for backups
                have = getattr(backup, field)
                if inexact:
                    ok = ok and have is not None and value.lower() in str(have).lower()
                else:
                    ok = ok and str(have) == value
            if ok:
                out.append(backup)
        return out

    # -- create -------------------------------------------------------------------------

    def create(self, ctx: Ctx, body: dict[str, Any], with_metadata: bool = True
               ) -> VolumeBackup:
        volume_id = body.get("volume_id")
        if not isinstance(volume_id, str):
            raise BadRequest("Invalid input for field/attribute volume_id. Value: "
                             f"{volume_id}. 'volume_id' is a required property"
                             if volume_id is None else
                             f"Invalid input for field/attribute volume_id. Value: "
                             f"{volume_id!r}. {volume_id!r} is not of type 'string'")
        name = check_string(body.get("name"), "name")
        description = check_string(body.get("description"), "description")
        container = check_string(body.get("container"), "container")
        if container is not None and not _CONTAINER.fullmatch(container):
            raise InvalidInput(f"Invalid container name {container!r}: letters, digits, "
                               "'_', '.' and '-' only, not starting with '.' or '-'.")
        incremental = check_bool(body.get("incremental", False), "incremental")
        force = check_bool(body.get("force", False), "force")
        snapshot_id = body.get("snapshot_id")
        if snapshot_id is not None and not isinstance(snapshot_id, str):
            raise InvalidInput(f"snapshot_id must be a string, not {snapshot_id!r}.")
        meta = check_metadata(body.get("metadata")) if with_metadata else {}
        zone = body.get("availability_zone")
        if zone is not None and zone != self.config.volume.default_availability_zone:
            raise InvalidInput(f"Availability zone '{zone}' is invalid.")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id)
            snap = None
            if snapshot_id:
                snap = find_snapshot(session, ctx, snapshot_id)
                if snap.volume_id != vol.id:
                    raise InvalidInput(f"Snapshot {snap.id} is not a snapshot of volume "
                                       f"{vol.id}.")
                if snap.status != "available":
                    raise InvalidInput(f"Snapshot to be backed up must be available, but "
                                       f"the current status is \"{snap.status}\".")
            elif vol.status == "in-use" and not force:
                raise InvalidVolume(f"Volume to be backed up must be available but the "
                                    f"current status is \"{vol.status}\".")
            elif vol.status not in ("available", "in-use"):
                raise InvalidVolume(f"Volume to be backed up must be available or in-use, "
                                    f"but the current status is \"{vol.status}\".")
            parent = None
            if incremental:
                parent = session.scalars(select(VolumeBackup).where(
                    VolumeBackup.volume_id == vol.id, VolumeBackup.status == "available",
                    VolumeBackup.project_id == vol.project_id).order_by(
                    VolumeBackup.data_timestamp.desc(), VolumeBackup.created_at.desc())
                ).first()
                if parent is None:
                    raise InvalidBackup("No backups available to do an incremental "
                                        "backup.")
            vt = session.get(VolumeType, vol.volume_type_id) if vol.volume_type_id else None
            self.volumes.quotas.check(session, vol.project_id, vt.name if vt else None,
                                      backups=1, backup_gigabytes=vol.size)
            now = utcnow()
            backup_id = str(uuid.uuid4())
            container = container or DEFAULT_CONTAINER
            backup = VolumeBackup(
                id=backup_id, project_id=vol.project_id,
                user_id=ctx.user_id if ctx is not None else None, volume_id=vol.id,
                snapshot_id=snap.id if snap is not None else None, name=name,
                description=description, status="creating", size=vol.size,
                availability_zone=vol.availability_zone, container=container,
                service=self.driver.service, service_metadata=f"{container}/{backup_id}",
                object_count=0, parent_id=parent.id if parent is not None else None,
                is_incremental=parent is not None, metadata_=meta,
                volume_info={"metadata": dict(vol.metadata_ or {}),
                             "bootable": bool(vol.bootable),
                             "image_metadata": dict(vol.image_metadata or {})},
                data_timestamp=snap.created_at if snap is not None else now,
                created_at=now, updated_at=now)
            if snap is not None:
                snap.status = "backing-up"
            else:
                backup.volume_previous_status = vol.status
                vol.status = "backing-up"
                vol.updated_at = now
            session.add(backup)
            work = (backup.id, vol.id, vol.backend, snap.id if snap else None,
                    parent.service_metadata if parent is not None else None)
        self._submit(self._do_backup, *work)
        return backup

    def _progress(self, what: str, ident: str) -> Any:
        step = [0]

        def report(done: int, total: int) -> None:
            tenth = (done * 10) // total if total else 10
            if tenth > step[0]:
                step[0] = tenth
                log.info("%s %s: %d%% (%d of %d MiB)", what, ident, tenth * 10,
                         done >> 20, total >> 20)

        return report

    def _do_backup(self, backup_id: str, volume_id: str, backend_name: str,
                   snapshot_id: str | None, parent_location: str | None) -> None:
        result = None
        error: str | None = None
        try:
            backend = self.volumes.backend_for(backend_name)
            with self.db.session() as session:
                row = session.get(VolumeBackup, backup_id)
                location = row.service_metadata if row is not None else None
            if location is None:
                return
            with backend.open_data(volume_id, snapshot_id) as data:
                result = self.driver.backup(location, data, parent_location,
                                            self._progress("backup", backup_id))
        except (VolumeError, BackupError) as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("backup %s failed", backup_id)
            error = f"an internal error ({type(exc).__name__})"
        with self.db.session() as session:
            row = session.get(VolumeBackup, backup_id)
            if row is not None:
                row.updated_at = utcnow()
                if error is None and result is not None:
                    row.status = "available"
                    row.object_count = result.object_count
                    log.info("backup %s of volume %s: %d object(s), %d bytes stored",
                             backup_id, volume_id, result.object_count,
                             result.stored_bytes)
                else:
                    row.status = "error"
                    row.fail_reason = f"Backing up the volume failed: {error}"
                    self.volumes._message(session, row.project_id, "VOLUME_BACKUP",
                                          row.id, EVENT_BACKUP, row.fail_reason)
                    log.error("backup %s: %s", backup_id, row.fail_reason)
                previous = row.volume_previous_status
            else:
                previous = None
            self._release_source(session, volume_id, snapshot_id, previous)

    @staticmethod
    def _release_source(session: Session, volume_id: str, snapshot_id: str | None,
                        previous: str | None) -> None:
        if snapshot_id is not None:
            snap = session.get(Snapshot, snapshot_id)
            if snap is not None and snap.status == "backing-up":
                snap.status = "available"
            return
        vol = session.get(Volume, volume_id)
        if vol is not None and vol.status == "backing-up":
            vol.status = previous or ("in-use" if vol.attach_status == "attached"
                                      else "available")
            vol.updated_at = utcnow()

    # -- update, delete, status ---------------------------------------------------------

    def update(self, ctx: Ctx, backup_id: str, body: dict[str, Any],
               with_metadata: bool = True) -> VolumeBackup:
        if with_metadata and "metadata" in body:
            meta: dict[str, str] | None = check_metadata(body["metadata"])
        else:
            meta = None
        name = check_string(body.get("name"), "name")
        description = check_string(body.get("description"), "description")
        with self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            if "name" in body:
                backup.name = name
            if "description" in body:
                backup.description = description
            if meta is not None:
                backup.metadata_ = meta
            backup.updated_at = utcnow()
        return backup

    def reset_status(self, ctx: Ctx, backup_id: str, status: Any) -> None:
        if status not in RESETTABLE:
            raise InvalidInput(f"Must specify a valid status ({' or '.join(RESETTABLE)}; "
                               f"got {status!r}).")
        with self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            if status == "available" and not self.driver.exists(
                    backup.service_metadata or ""):
                raise InvalidBackup(f"Backup {backup.id} has no data in the backup store; "
                                    "it cannot be made available.")
            backup.status = status
            backup.updated_at = utcnow()

    def delete(self, ctx: Ctx, backup_id: str, force: bool = False) -> None:
        with quota_mod.LOCK, self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            allowed = ("available", "error", "error_deleting")
            if backup.status not in allowed:
                if force:
                    raise InvalidBackup(f"Backup status must be available, error or "
                                        f"error_deleting to be force deleted while its "
                                        f"data is being copied (it is {backup.status}).")
                raise InvalidBackup("Backup status must be available or error")
            if session.scalar(select(VolumeBackup.id).where(
                    VolumeBackup.parent_id == backup.id)):
                raise InvalidBackup("Incremental backups exist for this backup.")
            backup.status = "deleting"
            backup.updated_at = utcnow()
        self._submit(self._do_delete, backup.id)

    def _do_delete(self, backup_id: str) -> None:
        with self.db.session() as session:
            backup = session.get(VolumeBackup, backup_id)
            if backup is None:
                return
            location = backup.service_metadata
            shared = session.scalar(select(func.count()).where(
                VolumeBackup.service_metadata == location, VolumeBackup.id != backup_id))
        try:
            if location and not shared:
                self.driver.delete(location)
        except Exception as exc:
            with self.db.session() as session:
                row = session.get(VolumeBackup, backup_id)
                if row is not None:
                    row.status = "error_deleting"
                    row.fail_reason = f"Deleting the backup data failed: {exc}"
            log.error("backup %s: deleting its data failed: %s", backup_id, exc)
            return
        with self.db.session() as session:
            row = session.get(VolumeBackup, backup_id)
            if row is not None:
                session.delete(row)

    # -- restore ------------------------------------------------------------------------

    def restore(self, ctx: Ctx, backup_id: str, body: dict[str, Any]) -> dict[str, str]:
        volume_id = body.get("volume_id")
        if volume_id is not None and not isinstance(volume_id, str):
            raise InvalidInput(f"volume_id must be a string, not {volume_id!r}.")
        name = check_string(body.get("name"), "name")
        with quota_mod.LOCK, self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            if backup.status != "available":
                raise InvalidBackup("Backup status must be available")
            size = backup.size
            if volume_id:
                vol = find_volume(session, ctx, volume_id)
                if vol.status != "available":
                    raise InvalidVolume(f"Volume to be restored to must be available "
                                        f"(it is {vol.status}).")
                if vol.size < backup.size:
                    raise InvalidVolume(f"volume size {vol.size} is too small to restore "
                                        f"backup of size {backup.size}.")
                vol.status = "restoring-backup"
                vol.updated_at = utcnow()
                target, target_name, new = vol.id, vol.name or "", False
            backup.status = "restoring"
            backup.updated_at = utcnow()
        if not volume_id:
            target_name = name or f"restore_backup_{backup_id}"
            vol = self._new_volume(ctx, backup.id, size=size, name=target_name,
                                   description="auto-created_from_restore_from_backup")
            target, new = vol.id, True
        self._start_restore(backup.id, target, new)
        return {"backup_id": backup.id, "volume_id": target, "volume_name": target_name}

    def volume_from_backup(self, ctx: Ctx, spec: dict[str, Any]) -> Volume:
        """Cinder 3.47's ``POST /volumes`` with ``backup_id``: a new volume (of the
        backup's size unless a larger one is asked for) holding the backup's data."""
        backup_id = spec.get("backup_id")
        if not isinstance(backup_id, str):
            raise InvalidInput(f"backup_id must be a string, not {backup_id!r}.")
        with quota_mod.LOCK, self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            if backup.status != "available":
                raise InvalidBackup("Backup status must be available")
            size = spec.get("size")
            if size is None:
                size = backup.size
            if isinstance(size, int) and not isinstance(size, bool) and size < backup.size:
                raise InvalidInput(f"Volume size {size}GB cannot be smaller than the backup "
                                   f"size {backup.size}GB.")
            backup.status = "restoring"
            backup.updated_at = utcnow()
        vol = self._new_volume(
            ctx, backup.id, size=size, name=spec.get("name", spec.get("display_name")),
            description=spec.get("description", spec.get("display_description")),
            volume_type=spec.get("volume_type") or None,
            availability_zone=spec.get("availability_zone") or None,
            metadata=spec.get("metadata"))
        self._start_restore(backup.id, vol.id, True)
        return vol

    def _new_volume(self, ctx: Ctx, backup_id: str, **attrs: Any) -> Volume:
        """A volume made to restore into: ``restoring-backup`` from the start (its
        creation on the backend goes on meanwhile; ``_wait_created`` waits for it)."""
        try:
            vol = self.volumes.create_volume(ctx, **attrs)
        except Exception:
            self._settle_backup(backup_id, "available")
            raise
        # One conditional UPDATE, not a read then a write: the creation task may fail
        # (and write ``error``) in between, and that error must not be overwritten.
        with self.db.session() as session:
            result = session.execute(
                update(Volume).where(Volume.id == vol.id,
                                     Volume.status.in_(("creating", "available")))
                .values(status="restoring-backup", updated_at=utcnow()))
        if getattr(result, "rowcount", 0):
            vol.status = "restoring-backup"
        return vol

    def _start_restore(self, backup_id: str, volume_id: str, new: bool) -> None:
        with self.db.session() as session:
            row = session.get(VolumeBackup, backup_id)
            if row is not None:
                row.restore_volume_id = volume_id
        self._submit(self._do_restore, backup_id, volume_id, new)

    def _settle_backup(self, backup_id: str, status: str) -> None:
        with self.db.session() as session:
            row = session.get(VolumeBackup, backup_id)
            if row is not None:
                row.status = status
                row.restore_volume_id = None
                row.updated_at = utcnow()

    def _wait_created(self, volume_id: str) -> bool:
        """Whether the new volume's backend creation ended well. Its row is
        ``restoring-backup`` from the start (the volume service settles only
        ``creating`` rows); if the creation finished in the instant between the row's
        insert and that change, it was settled ``available``, and is taken back."""
        deadline = time.monotonic() + NEW_VOLUME_WAIT
        while time.monotonic() < deadline:
            with self.db.session() as session:
                vol = session.get(Volume, volume_id)
                if vol is None or vol.status not in ("restoring-backup", "available"):
                    return False  # its creation failed (error) or it is gone
                backend_name = vol.backend
            if self.volumes.backend_for(backend_name).exists(volume_id):
                with self.db.session() as session:
                    result = session.execute(
                        update(Volume).where(Volume.id == volume_id, Volume.status.in_(
                            ("restoring-backup", "available")))
                        .values(status="restoring-backup"))
                return bool(getattr(result, "rowcount", 0))
            time.sleep(0.05)
        return False

    def _do_restore(self, backup_id: str, volume_id: str, new: bool) -> None:
        if new and not self._wait_created(volume_id):
            log.error("backup %s: the volume %s to restore to was not created",
                      backup_id, volume_id)
            self._settle_backup(backup_id, "available")
            with self.db.session() as session:
                vol = session.get(Volume, volume_id)
                if vol is not None and vol.status == "restoring-backup":
                    self.volumes._fail(session, vol, "The volume to restore the backup "
                                       "to was not created in time.", EVENT_RESTORE)
            return
        with self.db.session() as session:
            backup = session.get(VolumeBackup, backup_id)
            vol = session.get(Volume, volume_id)
            if backup is None or vol is None:
                return
            location, backend_name = backup.service_metadata or "", vol.backend
            info = dict(backup.volume_info or {})
        error: str | None = None
        try:
            backend = self.volumes.backend_for(backend_name)
            with backend.open_data(volume_id, write=True) as data:
                self.driver.restore(location, data, self._progress("restore", backup_id))
        except (VolumeError, BackupError) as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("restore of backup %s failed", backup_id)
            error = f"an internal error ({type(exc).__name__})"
        with self.db.session() as session:
            vol = session.get(Volume, volume_id)
            if vol is not None:
                vol.updated_at = utcnow()
                if error is None:
                    vol.status = "available"
                    vol.metadata_ = {**(vol.metadata_ or {}), **info.get("metadata", {})}
                    vol.bootable = bool(info.get("bootable", vol.bootable))
                    if info.get("image_metadata"):
                        vol.image_metadata = dict(info["image_metadata"])
                else:
                    self.volumes._fail(session, vol, f"Restoring backup {backup_id} "
                                       f"failed: {error}", EVENT_RESTORE,
                                       status="error_restoring")
        self._settle_backup(backup_id, "available")

    # -- export and import --------------------------------------------------------------

    def export_record(self, ctx: Ctx, backup_id: str) -> dict[str, str]:
        with self.db.session() as session:
            backup = self.find(session, ctx, backup_id)
            if backup.status != "available":
                raise InvalidBackup(f"Backup status must be available and not "
                                    f"{backup.status}.")
            record = {
                "id": backup.id, "project_id": backup.project_id,
                "user_id": backup.user_id, "volume_id": backup.volume_id,
                "snapshot_id": backup.snapshot_id, "display_name": backup.name,
                "display_description": backup.description, "size": backup.size,
                "availability_zone": backup.availability_zone,
                "container": backup.container, "service": backup.service,
                "service_metadata": backup.service_metadata,
                "object_count": backup.object_count, "parent_id": backup.parent_id,
                "metadata": dict(backup.metadata_ or {}),
                "volume_info": dict(backup.volume_info or {}),
                "data_timestamp": _iso(backup.data_timestamp),
                "created_at": _iso(backup.created_at),
            }
            service = backup.service
        url = base64.b64encode(json.dumps(record).encode()).decode()
        return {"backup_service": service, "backup_url": url}

    def import_record(self, ctx: Ctx, backup_service: Any, backup_url: Any
                      ) -> VolumeBackup:
        if not isinstance(backup_service, str) or not isinstance(backup_url, str):
            raise InvalidInput("backup_service and backup_url must be strings.")
        if backup_service != self.driver.service:
            raise InvalidInput(f"Backup service {backup_service} is not supported (this "
                               f"cloud keeps backups with {self.driver.service}).")
        try:
            record = json.loads(base64.b64decode(backup_url, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidInput("Can't parse backup record: backup_url is not base64 "
                               "encoded JSON.") from None
        if not isinstance(record, dict):
            raise InvalidInput("Can't parse backup record.")
        ident, size, location = record.get("id"), record.get("size"), \
            record.get("service_metadata")
        volume_id = record.get("volume_id")
        if not (isinstance(ident, str) and UUID_RE.match(ident)) or \
                not isinstance(size, int) or isinstance(size, bool) or size < 0 or \
                not isinstance(location, str) or not isinstance(volume_id, str):
            raise InvalidInput("Backup record is missing or has a bad id, size, "
                               "volume_id or service_metadata.")
        try:
            present = self.driver.exists(location)
            stored_size = self.driver.size_of(location) if present else 0
        except BackupError as exc:
            raise InvalidInput(f"Backup record names no usable backup data: {exc}") \
                from None
        if not present:
            raise InvalidInput(f"Backup record names data that is not in the backup "
                               f"store ({location}).")
        if stored_size > size * GiB:
            raise InvalidInput("Backup record's size is smaller than its data.")
        name = check_string(record.get("display_name"), "display_name")
        description = check_string(record.get("display_description"),
                                   "display_description")
        meta = record.get("metadata") or {}
        info = record.get("volume_info") or {}
        if not isinstance(meta, dict) or not isinstance(info, dict):
            raise InvalidInput("Backup record's metadata must be objects.")
        owner = ctx.project_id if ctx is not None and ctx.project_id else \
            str(record.get("project_id") or "")
        with quota_mod.LOCK, self.db.session() as session:
            if session.get(VolumeBackup, ident.lower()) is not None:
                raise InvalidBackup("Backup already exists in database.")
            now = utcnow()
            parent = record.get("parent_id")
            backup = VolumeBackup(
                id=ident.lower(), project_id=owner,
                user_id=ctx.user_id if ctx is not None else None, volume_id=volume_id,
                snapshot_id=record.get("snapshot_id"), name=name, description=description,
                status="available", size=size,
                availability_zone=record.get("availability_zone"),
                container=record.get("container"), service=backup_service,
                service_metadata=location, object_count=int(record.get("object_count") or 0),
                parent_id=parent if isinstance(parent, str) else None,
                is_incremental=isinstance(parent, str), metadata_=check_metadata(meta),
                volume_info=info, data_timestamp=_parse(record.get("data_timestamp")) or now,
                created_at=now, updated_at=now)
            session.add(backup)
        return backup

    # -- start-up -----------------------------------------------------------------------

    def recover(self) -> None:
        """Settle the backups a stopped server left in a transitional state."""
        deleting: list[str] = []
        with self.db.session() as session:
            for backup in session.scalars(select(VolumeBackup).where(
                    VolumeBackup.status.in_(("creating", "restoring", "deleting")))):
                if backup.status == "creating":
                    backup.status = "error"
                    backup.fail_reason = ("The server stopped while the backup was being "
                                          "made; it was not completed.")
                    self._release_source(session, backup.volume_id, backup.snapshot_id,
                                         backup.volume_previous_status)
                    with_data = self.driver.exists(backup.service_metadata or "")
                    if with_data:
                        self.driver.delete(backup.service_metadata or "")
                elif backup.status == "restoring":
                    backup.status = "available"
                    vol = session.get(Volume, backup.restore_volume_id or "")
                    if vol is not None and vol.status == "restoring-backup":
                        vol.status = "error_restoring"
                        vol.error_message = ("The server stopped while the backup was "
                                             "being restored to this volume.")
                    backup.restore_volume_id = None
                else:
                    deleting.append(backup.id)
        for backup_id in deleting:
            self._submit(self._do_delete, backup_id)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None

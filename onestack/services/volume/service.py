"""The Block Storage service (Cinder v3): volumes, snapshots, their states, and the
work done on a backend in the background.

A request that makes or removes bytes (create, delete, extend, snapshot, upload)
checks everything and writes the row in its transitional state (``creating``,
``deleting``, ...) in one transaction, answers at once, and hands the backend work to
a worker thread, which moves the row to its final state: ``available``, or ``error``
with the reason in ``error_message`` and a user message (``/messages``). If the
server dies in between, ``recover`` at the next start settles every row and removes
what the backend holds without a row (docs/design/volumes.md).

``Volumes`` is what the rest of OneStack holds (``Services.volume``); compute calls
``create_volume``/``delete_volume`` and the methods of ``attachments.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from onestack.common.config import Config
from onestack.common.errors import BadRequest, NotFound
from onestack.common.logging import request_id_var
from onestack.db import Database
from onestack.db.models import (
    Snapshot,
    Volume,
    VolumeAttachment,
    VolumeMessage,
    VolumeTransfer,
    VolumeType,
    utcnow,
)
from onestack.services.identity.context import ValidatedToken
from onestack.services.volume import quotas as quota_mod
from onestack.services.volume.backends import load_backend
from onestack.services.volume.backends.base import GiB, ImageData, VolumeBackend, VolumeError
from onestack.services.volume.common import (
    DELETABLE,
    SNAPSHOT_STATUSES,
    VOLUME_STATUSES,
    Ctx,
    InvalidInput,
    InvalidSnapshot,
    InvalidVolume,
    NotImplementedFault,
    check_bool,
    check_metadata,
    check_size,
    check_string,
    field_error,
    find_snapshot,
    find_volume,
    is_admin,
    scope_to_caller,
    visible,
)
from onestack.services.volume.groups import Groups
from onestack.services.volume.hosts import EVENT_NO_BACKEND, VolumeHosts
from onestack.services.volume.quotas import VolumeQuotas
from onestack.services.volume.types import VolumeTypes, is_multiattach

if TYPE_CHECKING:
    from onestack.services.identity import Identity
    from onestack.services.image import Images
    from onestack.services.volume.attachments import Attachments
    from onestack.services.volume.transfers import Transfers

log = logging.getLogger(__name__)

#: Cinder's user-message event ids (``cinder/message/message_field.py``).
EVENT_CREATE = "VOLUME_VOLUME_001_002"
EVENT_SNAPSHOT = "VOLUME_SNAPSHOT_003_002"
EVENT_EXTEND = "VOLUME_VOLUME_007_008"
EVENT_UPLOAD = "VOLUME_VOLUME_005_002"
EVENT_DELETE = "VOLUME_VOLUME_009_002"


class Volumes:
    """Cinder v3 for the whole cloud."""

    def __init__(self, db: Database, config: Config, identity: Identity | None = None,
                 images: Images | None = None) -> None:
        from onestack.services.volume.attachments import Attachments
        from onestack.services.volume.transfers import Transfers

        self.db = db
        self.config = config
        self.identity = identity
        self.images = images
        self.backend_name = config.volume.backend
        self._backends: dict[str, VolumeBackend] = {}
        self.backend: VolumeBackend = self.backend_for(self.backend_name)
        self.quotas = VolumeQuotas(db, config)
        self.types = VolumeTypes(db, config.volume.default_volume_type)
        self.attachments: Attachments = Attachments(self)
        self.transfers: Transfers = Transfers(self)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, config.volume.workers), thread_name_prefix="volume")
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._pending_lock = threading.Lock()
        #: Set by compute: grow an attached volume in its running guest(s)
        #: (``on_extend_attached(volume_id, new_size_gb, requester)``, the requester's
        #: token); None: extending an attached volume is refused.
        self.on_extend_attached: Callable[[str, int, Ctx], None] | None = None
        #: Set before ``bootstrap`` by whoever assembles the program: whether compute
        #: still wants an attachment (``(instance_uuid, attachment_id) -> bool``).
        #: Recovery keeps the ``attaching`` ones it wants (the volume is ``in-use``
        #: until compute completes or deletes them) and removes the others.
        self.attachment_wanted: Callable[[str | None, str], bool] | None = None

    # -- backends and start-up ----------------------------------------------------------

    def backend_for(self, name: str) -> VolumeBackend:
        if name not in self._backends:
            self._backends[name] = load_backend(name, self.config)
        return self._backends[name]

    def register_extend_attached(self, callback: Callable[[str, int, Ctx], None]) -> None:
        """Compute's hook for extending attached volumes (see ``on_extend_attached``)."""
        self.on_extend_attached = callback

    def bootstrap(self) -> None:
        from onestack.services.volume.backups import backups_of

        self.types.bootstrap()
        self.recover()
        backups_of(self).recover()

    def close(self) -> None:
        from onestack.services.volume.backups import backups_of

        backups_of(self).close()
        self._executor.shutdown(wait=True, cancel_futures=False)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for the background work started so far (tests and benchmarks)."""
        with self._pending_lock:
            pending = list(self._pending)
        concurrent.futures.wait(pending, timeout=timeout)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.start_task(self._executor, "volume", fn, *args)

    def start_task(self, executor: concurrent.futures.Executor, kind: str,
                   fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` in one of ``executor``'s workers, a failure logged as a
        ``kind`` task's (the task settles its rows itself); ``wait_idle`` waits for it.
        The backup service's workers (a pool of their own, as a restore waits there
        for a creation in this one) start their tasks here too."""
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("%s task %s failed", kind, getattr(fn, "__name__", fn))

        future = executor.submit(run)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def recover(self) -> None:
        """Settle what a crash left (docs/design/volumes.md, "Crash consistency")."""
        to_delete: list[tuple[str, str]] = []
        snaps_to_delete: list[tuple[str, str, str]] = []
        with self.db.session() as session:
            for vol in session.scalars(select(Volume)):
                attached = [a for a in session.scalars(select(VolumeAttachment).where(
                    VolumeAttachment.volume_id == vol.id))]
                for att in attached:
                    if att.attach_status not in ("reserved", "attaching", "error_attaching"):
                        continue
                    if att.attach_status == "attaching" and self._wanted(att):
                        att.attach_status = "attached"  # compute completes or deletes it
                        att.attach_time = att.attach_time or utcnow()
                    else:
                        session.delete(att)
                done = [a for a in attached if a.attach_status in ("attached", "detaching")]
                settled = "in-use" if done else "available"
                if vol.status == "creating":
                    self._fail(session, vol, "The server stopped while the volume was "
                               "being created; it was not completed. Delete it and try "
                               "again.", EVENT_CREATE)
                    to_delete.append((vol.id, vol.backend))
                elif vol.status == "deleting":
                    to_delete.append((vol.id, vol.backend))
                elif vol.status in ("reserved", "attaching", "detaching", "uploading",
                                    "extending"):
                    vol.status = settled
                    vol.attach_status = "attached" if done else "detached"
                    for att in done:
                        att.attach_status = "attached"
            for snap in session.scalars(select(Snapshot)):
                parent = session.get(Volume, snap.volume_id)
                backend = parent.backend if parent is not None else self.backend_name
                if snap.status == "creating":
                    snap.status = "error"
                    snap.error_message = ("The server stopped while the snapshot was being "
                                          "made; it was not completed.")
                    snaps_to_delete.append((snap.id, snap.volume_id, backend))
                elif snap.status == "deleting":
                    snaps_to_delete.append((snap.id, snap.volume_id, backend))
                    session.delete(snap)
            known_volumes = set(session.scalars(select(Volume.id)))
            known_snaps = set(session.scalars(select(Snapshot.id)))
            in_use = set(session.scalars(select(Volume.backend).distinct()))
        usable = {name: self._loaded(name) for name in
                  in_use | {b for _, b in to_delete} | {b for _, _, b in snaps_to_delete}}
        for snap_id, vol_id, backend in snaps_to_delete:
            if (store := usable[backend]) is not None:
                self._quietly(store.delete_snapshot, snap_id, vol_id)
        deleted = set()
        for vol_id, backend in to_delete:
            if (store := usable[backend]) is not None and self._quietly(store.delete, vol_id):
                deleted.add(vol_id)
        with self.db.session() as session:
            for vol_id in deleted:
                gone = session.get(Volume, vol_id)
                if gone is not None and gone.status == "deleting":
                    session.delete(gone)
        for store in list(self._backends.values()):
            try:
                held, held_snaps = store.list_volumes(), store.list_snapshots()
            except Exception as exc:
                log.error("volume backend %s cannot list what it holds: %s", store.name, exc)
                continue
            orphans = [v for v in held if v not in known_volumes]
            for vol_id in orphans:
                self._quietly(store.delete, vol_id)
            snap_orphans = [s for s in held_snaps if s not in known_snaps]
            for snap_id in snap_orphans:
                self._quietly(store.delete_snapshot, snap_id, "")
            if orphans or snap_orphans:
                log.info("volume backend %s: removed %d volume(s) and %d snapshot(s) "
                         "without a row", store.name, len(orphans), len(snap_orphans))

    def _wanted(self, att: VolumeAttachment) -> bool:
        """Whether compute still means to plug an attachment left ``attaching``
        (``attachment_wanted``; without it, none is)."""
        if self.attachment_wanted is None:
            return False
        try:
            return self.attachment_wanted(att.instance_uuid, att.id)
        except Exception:
            log.exception("attachment %s: compute could not say whether it wants it; "
                          "kept", att.id)
            return True

    def _loaded(self, name: str) -> VolumeBackend | None:
        try:
            return self.backend_for(name)
        except (ValueError, ImportError, VolumeError) as exc:
            log.error("volume backend %s cannot be loaded: %s", name, exc)
            return None

    @staticmethod
    def _quietly(fn: Callable[..., None], *args: str) -> bool:
        """Run a clean-up step; log (never raise) what fails. Whether it worked."""
        try:
            fn(*args)
        except Exception as exc:
            log.error("volume clean-up %s%s failed: %s",
                      getattr(fn, "__name__", fn), args, exc)
            return False
        return True

    # -- errors and messages ------------------------------------------------------------

    def _fail(self, session: Session, vol: Volume, message: str, event: str,
              status: str = "error") -> None:
        vol.status = status
        vol.error_message = message
        vol.updated_at = utcnow()
        self._message(session, vol.project_id, "VOLUME", vol.id, event, message)
        log.error("volume %s: %s", vol.id, message)

    @staticmethod
    def _message(session: Session, project_id: str, resource_type: str,
                 resource_id: str, event: str, text: str) -> None:
        now = utcnow()
        session.add(VolumeMessage(id=str(uuid.uuid4()), project_id=project_id,
                                  resource_type=resource_type, resource_uuid=resource_id,
                                  event_id=event, message_level="ERROR", user_message=text,
                                  request_id=request_id_var.get(),
                                  created_at=now, expires_at=now + dt.timedelta(days=30)))

    def _settle(self, volume_id: str, status: str, **values: Any) -> None:
        with self.db.session() as session:
            vol = session.get(Volume, volume_id)
            if vol is None:
                return
            vol.status = status
            vol.updated_at = utcnow()
            for key, value in values.items():
                setattr(vol, key, value)

    def _settle_error(self, volume_id: str, exc: Exception, event: str, what: str,
                      status: str = "error") -> None:
        text = str(exc) if isinstance(exc, VolumeError) else \
            f"{what} failed because of an internal error ({type(exc).__name__})."
        with self.db.session() as session:
            vol = session.get(Volume, volume_id)
            if vol is not None:
                self._fail(session, vol, f"{what} failed: {text}", event, status)

    # -- the attachment contract, also here (attachments.py documents it) ---------------

    def attachment_create(self, ctx: Ctx, volume_id: str, instance_uuid: str | None,
                          connector: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.attachments.attachment_create(ctx, volume_id, instance_uuid, connector)

    def attachment_update(self, ctx: Ctx, attachment_id: str, connector: Any
                          ) -> dict[str, Any]:
        return self.attachments.attachment_update(ctx, attachment_id, connector)

    def attachment_complete(self, ctx: Ctx, attachment_id: str) -> dict[str, Any]:
        return self.attachments.attachment_complete(ctx, attachment_id)

    def attachment_delete(self, ctx: Ctx, attachment_id: str) -> None:
        self.attachments.attachment_delete(ctx, attachment_id)

    # -- lookups ------------------------------------------------------------------------

    def get_volume(self, ctx: Ctx, volume_id: str) -> Volume:
        with self.db.session() as session:
            return find_volume(session, ctx, volume_id)

    def volume_attachments(self, volume_ids: list[str]) -> dict[str, list[VolumeAttachment]]:
        out: dict[str, list[VolumeAttachment]] = {v: [] for v in volume_ids}
        if not volume_ids:
            return out
        with self.db.session() as session:
            for att in session.scalars(select(VolumeAttachment).where(
                    VolumeAttachment.volume_id.in_(volume_ids))
                    .order_by(VolumeAttachment.created_at)):
                out[att.volume_id].append(att)
        return out

    def type_names(self) -> dict[str, str]:
        with self.db.session() as session:
            return dict(session.execute(select(VolumeType.id, VolumeType.name)).all())

    def list_volumes(self, ctx: Ctx, filters: dict[str, str], all_tenants: bool = False
                     ) -> list[Volume]:
        """Volumes the caller may see, filtered (Cinder's exact-match filters, and
        ``name~``-style inexact ones from 3.34); sorting and paging are the API's."""
        with self.db.session() as session:
            query = scope_to_caller(select(Volume), Volume.project_id, ctx, all_tenants,
                                    filters.pop("project_id", None))
            volumes = list(session.scalars(query.order_by(Volume.created_at.desc())))
            types = dict(session.execute(select(VolumeType.id, VolumeType.name)).all())
        return [v for v in volumes if _matches(v, filters, types)]

    # -- create -------------------------------------------------------------------------

    def create_volume(self, ctx: Ctx, size: Any = None, image_id: str | None = None,
                      name: str | None = None, description: str | None = None,
                      snapshot_id: str | None = None, source_volid: str | None = None,
                      volume_type: str | None = None, availability_zone: str | None = None,
                      metadata: Any = None, multiattach: Any = False,
                      project_id: str | None = None, group_id: Any = None) -> Volume:
        """Check, reserve quota, write the row (``creating``) and start the backend
        work; returns the row. ``ctx`` None is the cloud itself (then ``project_id``
        says whose volume it is). Used by the API and by boot from volume."""
        owner = project_id or (ctx.project_id if ctx is not None else None)
        if owner is None:
            raise BadRequest("A volume needs a project: use a project-scoped token.")
        size_gb = check_size(size, "size", allow_none=True)
        name = check_string(name, "name")
        description = check_string(description, "description")
        meta = check_metadata(metadata)
        wants_multiattach = check_bool(multiattach, "multiattach") if multiattach else False
        sources = [s for s in (image_id, snapshot_id, source_volid) if s]
        if len(sources) > 1:
            raise InvalidInput("Only one of snapshot_id, source_volid and imageRef may be "
                               "given.")
        zone = availability_zone or self.config.volume.default_availability_zone
        if zone != self.config.volume.default_availability_zone:
            raise InvalidInput(f"Availability zone '{zone}' is invalid.")
        image: Any = None
        image_meta: dict[str, str] = {}
        if image_id:
            image = self._image_for_volume(ctx, image_id)
            image_gb = max(1, -(-(image.virtual_size or image.size or 0) // GiB))
            min_disk = image.min_disk or 0
            if size_gb is None:
                raise InvalidInput("Volume size must be given when creating a volume from "
                                   "an image.")
            if size_gb < max(image_gb, min_disk):
                raise InvalidInput(
                    f"Size of specified image {image_gb}GB is larger than volume size "
                    f"{size_gb}GB." if size_gb < image_gb else
                    f"Volume size {size_gb}GB cannot be smaller than the image minDisk "
                    f"size {min_disk}GB.")
            image_meta = {"image_id": image.id, "image_name": image.name or "",
                          "disk_format": image.disk_format or "",
                          "container_format": image.container_format or "",
                          "size": str(image.size or 0), "min_disk": str(image.min_disk),
                          "min_ram": str(image.min_ram),
                          **{p.name: p.value for p in image.properties}}
        with quota_mod.LOCK, self.db.session() as session:
            source_snap = source_vol = None
            if snapshot_id:
                source_snap = find_snapshot(session, ctx, snapshot_id)
                if source_snap.status != "available":
                    raise InvalidSnapshot(f"Originating snapshot status must be one of "
                                          f"'available' values (it is "
                                          f"{source_snap.status}).")
                size_gb = size_gb or source_snap.size
                if size_gb < source_snap.size:
                    raise InvalidInput(f"Volume size '{size_gb}'GB cannot be smaller than "
                                       f"the snapshot size {source_snap.size}GB. They must "
                                       ">= original snapshot size.")
            if source_volid:
                source_vol = find_volume(session, ctx, source_volid)
                if source_vol.status not in ("available", "in-use"):
                    raise InvalidVolume(f"Volume {source_vol.id} status must be available "
                                        f"or in-use, but current status is: "
                                        f"{source_vol.status}.")
                size_gb = size_gb or source_vol.size
                if size_gb < source_vol.size:
                    raise InvalidInput(f"Volume size '{size_gb}'GB cannot be smaller than "
                                       f"the source volume size {source_vol.size}GB. They "
                                       "must be >= original volume size.")
            if size_gb is None:
                raise InvalidInput("Volume size must be given unless the volume is made "
                                   "from a snapshot or another volume.")
            if volume_type:
                vt = self.types.find(session, ctx, volume_type)
            elif source_vol is not None and source_vol.volume_type_id:
                vt = session.get(VolumeType, source_vol.volume_type_id) or \
                    self.types.default(session)
            elif source_snap is not None and source_snap.volume_type_id:
                vt = session.get(VolumeType, source_snap.volume_type_id) or \
                    self.types.default(session)
            else:
                vt = self.types.default(session)
            backend = (vt.extra_specs or {}).get("volume_backend_name") or self.backend_name
            if source_vol is not None:
                backend = source_vol.backend
            if source_snap is not None:
                parent = session.get(Volume, source_snap.volume_id)
                backend = parent.backend if parent is not None else backend
            if backend not in self._backends:
                try:
                    self.backend_for(backend)
                except (ValueError, ImportError, VolumeError) as exc:
                    raise InvalidInput(f"Volume type {vt.name} asks for backend "
                                       f"{backend!r}, which this cloud cannot use: "
                                       f"{exc}") from None
            if wants_multiattach and not is_multiattach(vt):
                # Cinder 3.50+: multiattach comes from the type; the flag alone is refused
                raise InvalidInput("The multiattach flag is no longer accepted: use a "
                                   "volume type whose extra spec is multiattach='<is> "
                                   "True'.")
            group = Groups(self).admit(session, ctx, group_id, vt, backend)
            # placement: a disabled/frozen backend or unmet capabilities -> error
            refusal = VolumeHosts(self).refusal(session, backend, vt)
            self.quotas.check(session, owner, vt.name, volumes=1, gigabytes=size_gb,
                              size=size_gb)
            now = utcnow()
            vol = Volume(id=str(uuid.uuid4()), project_id=owner,
                         user_id=ctx.user_id if ctx is not None else None, name=name,
                         description=description, size=size_gb,
                         status="error" if refusal else "creating",
                         group_id=group.id if group is not None else None,
                         attach_status="detached", availability_zone=zone,
                         volume_type_id=vt.id, backend=backend,
                         snapshot_id=source_snap.id if source_snap else None,
                         source_volid=source_vol.id if source_vol else None,
                         image_id=image.id if image is not None else None,
                         bootable=bool(image is not None) or
                         bool(source_vol is not None and source_vol.bootable),
                         multiattach=is_multiattach(vt), metadata_=meta, admin_metadata={},
                         image_metadata=image_meta or
                         (dict(source_vol.image_metadata) if source_vol else {}),
                         created_at=now, updated_at=now)
            session.add(vol)
            if refusal:
                self._fail(session, vol, refusal, EVENT_NO_BACKEND)
                return vol
            work: tuple[Any, ...]
            if image is not None:
                work = ("image", self._image_data(ctx, image))
            elif source_snap is not None:
                work = ("snapshot", source_snap.id, source_snap.volume_id)
            elif source_vol is not None:
                work = ("volume", source_vol.id)
            else:
                work = ("empty",)
        self._submit(self._build, vol.id, backend, size_gb, work)
        return vol

    def _image_for_volume(self, ctx: Ctx, image_id: str) -> Any:
        if self.images is None:
            raise InvalidInput("This cloud has no image service.")
        if ctx is None:
            raise InvalidInput("A volume from an image needs the caller's token.")
        try:
            image = self.images.get(ctx, image_id)
        except NotFound:
            raise NotFound(f"Image {image_id} could not be found.") from None
        if image.status != "active":
            raise InvalidInput(f"Image {image.id} is not active.")
        if image.disk_format not in ("qcow2", "raw"):
            raise InvalidInput(f"Image {image.id} is {image.disk_format}; volumes can be "
                               "made from qcow2 and raw images.")
        return image

    def _image_data(self, ctx: Ctx, image: Any) -> ImageData:
        images = self.images
        assert images is not None and ctx is not None
        image_id = image.id

        def chunks() -> Iterator[bytes]:
            download = images.data.open(ctx, image_id)
            if download is None:
                raise VolumeError(f"image {image_id} has no data")
            with download.file as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        path = images.store.path(image.id) if hasattr(images, "store") else None
        location = f"file://{path}" if path is not None else None
        return ImageData(id=image.id, disk_format=image.disk_format, size=image.size or 0,
                         virtual_size=image.virtual_size, open=chunks, location=location,
                         properties={p.name: p.value for p in image.properties})

    def _build(self, volume_id: str, backend_name: str, size_gb: int,
               work: tuple[Any, ...]) -> None:
        backend = self.backend_for(backend_name)
        what = {"image": "Creating the volume from the image",
                "snapshot": "Creating the volume from the snapshot",
                "volume": "Cloning the volume"}.get(work[0], "Creating the volume")
        try:
            if work[0] == "image":
                backend.create_from_image(volume_id, work[1], size_gb)
            elif work[0] == "snapshot":
                backend.create_from_snapshot(volume_id, work[1], work[2], size_gb)
            elif work[0] == "volume":
                backend.clone(volume_id, work[1], size_gb)
            else:
                backend.create(volume_id, size_gb)
        except Exception as exc:
            self._quietly(backend.delete, volume_id)
            self._settle_error(volume_id, exc, EVENT_CREATE, what)
            return
        with self.db.session() as session:
            # A conditional UPDATE: a row another task moved on meanwhile (a restore's
            # ``restoring-backup``, a delete) keeps its status.
            now = utcnow()
            settled = session.execute(
                update(Volume).where(Volume.id == volume_id, Volume.status == "creating")
                .values(status="available", launched_at=now, updated_at=now))
            if getattr(settled, "rowcount", 0):
                gone = False
            else:
                vol = session.get(Volume, volume_id)
                gone = vol is None or vol.status == "deleting"
        if gone:
            self._quietly(backend.delete, volume_id)

    # -- update, metadata, flags --------------------------------------------------------

    def update_volume(self, ctx: Ctx, volume_id: str, body: dict[str, Any]) -> Volume:
        allowed = {"name", "description", "metadata", "display_name", "display_description"}
        unknown = set(body) - allowed
        if unknown:
            raise BadRequest(f"Invalid input for field/attribute volume. Value: {body}. "
                             f"Additional properties are not allowed "
                             f"({', '.join(repr(u) for u in sorted(unknown))} were "
                             "unexpected)")
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            for key in ("name", "description"):
                for field_name in (key, f"display_{key}"):
                    if field_name in body:
                        setattr(vol, key, check_string(body[field_name], field_name))
            if "metadata" in body:
                vol.metadata_ = check_metadata(body["metadata"])
            vol.updated_at = utcnow()
        return vol

    def set_metadata(self, ctx: Ctx, volume_id: str, metadata: Any, replace: bool
                     ) -> dict[str, str]:
        meta = check_metadata(metadata)
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            _check_not_maintenance(vol)
            vol.metadata_ = meta if replace else {**(vol.metadata_ or {}), **meta}
            vol.updated_at = utcnow()
            return dict(vol.metadata_)

    def delete_metadata_key(self, ctx: Ctx, volume_id: str, key: str) -> None:
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            _check_not_maintenance(vol)
            if key not in (vol.metadata_ or {}):
                raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
            vol.metadata_ = {k: v for k, v in vol.metadata_.items() if k != key}

    def set_image_metadata(self, ctx: Ctx, volume_id: str, metadata: Any
                           ) -> dict[str, str]:
        """Cinder's ``os-set_image_metadata``: merge into the volume's image metadata
        (what ``volume_image_metadata`` shows, and what an image uploaded from the
        volume inherits)."""
        meta = check_metadata(metadata)
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            _check_not_maintenance(vol)
            merged = {**{k: str(v) for k, v in (vol.image_metadata or {}).items()}, **meta}
            vol.image_metadata = merged
            vol.updated_at = utcnow()
            return dict(merged)

    def unset_image_metadata(self, ctx: Ctx, volume_id: str, key: Any) -> None:
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise field_error("key", key, f"{key!r} is not a valid metadata key")
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            _check_not_maintenance(vol)
            if key not in (vol.image_metadata or {}):
                raise NotFound(f"Glance metadata for volume {volume_id} with key {key} "
                               "could not be found.")
            vol.image_metadata = {k: v for k, v in vol.image_metadata.items() if k != key}
            vol.updated_at = utcnow()

    def set_bootable(self, ctx: Ctx, volume_id: str, value: Any) -> None:
        bootable = check_bool(value, "bootable")
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            _check_not_maintenance(vol)
            vol.bootable = bootable

    def set_readonly(self, ctx: Ctx, volume_id: str, value: Any) -> None:
        if value is None:
            raise InvalidInput("Must specify readonly in request.")
        readonly = check_bool(value, "readonly")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status != "available":
                raise InvalidVolume(f"Volume status must be available to update readonly "
                                    f"flag, but current status is: {vol.status}.")
            vol.admin_metadata = {**(vol.admin_metadata or {}),
                                  "readonly": "True" if readonly else "False"}

    def reset_status(self, ctx: Ctx, volume_id: str, body: dict[str, Any]) -> None:
        status = body.get("status")
        attach_status = body.get("attach_status")
        if status is None and attach_status is None:
            raise InvalidInput("Must specify 'status', 'attach_status' or "
                               "'migration_status' for update.")
        if status is not None and status not in VOLUME_STATUSES:
            raise InvalidInput(f"Must specify a valid status (got {status!r}).")
        if attach_status is not None and attach_status not in ("attached", "detached"):
            raise InvalidInput(f"Must specify a valid attach status (got "
                               f"{attach_status!r}).")
        with self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if status is not None:
                vol.status = status
                if status not in ("error", "error_deleting", "error_extending"):
                    vol.error_message = None
            if attach_status is not None:
                vol.attach_status = attach_status
            vol.updated_at = utcnow()

    # -- delete -------------------------------------------------------------------------

    def delete_volume(self, ctx: Ctx, volume_id: str, cascade: bool = False,
                      force: bool = False) -> None:
        """Start deleting the volume (``deleting``; the row goes when the backend has
        removed the bytes). Refused while attached, in a transfer, or with snapshots
        (unless ``cascade``, which deletes them first). ``force`` (administrators)
        skips the status check but not the attachment check."""
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            attached = session.scalar(select(VolumeAttachment.id).where(
                VolumeAttachment.volume_id == vol.id))
            snaps = list(session.scalars(select(Snapshot).where(
                Snapshot.volume_id == vol.id)))
            if attached or vol.attach_status == "attached":
                raise InvalidVolume("Volume status must be available or error or "
                                    "error_restoring or error_extending or error_managing "
                                    "and must not be migrating, attached, belong to a "
                                    "group, have snapshots, awaiting a transfer, or be "
                                    "disassociated from snapshots after volume transfer.")
            if not force and vol.status not in DELETABLE:
                raise InvalidVolume(f"Volume status must be available or error or "
                                    f"error_restoring or error_extending or error_managing "
                                    f"and must not be migrating, attached, belong to a "
                                    f"group, have snapshots, awaiting a transfer, or be "
                                    f"disassociated from snapshots after volume transfer. "
                                    f"(It is {vol.status}.)")
            if snaps and not cascade:
                raise InvalidVolume("Volume has snapshots (use --cascade to delete them "
                                    "with the volume).")
            if cascade and any(s.status not in ("available", "error") for s in snaps):
                raise InvalidVolume("Snapshot of the volume is busy (not available or "
                                    "error); it cannot be deleted with the volume.")
            for snap in snaps:
                snap.status = "deleting"
            session.query(VolumeTransfer).filter(
                VolumeTransfer.volume_id == vol.id).delete()
            vol.status = "deleting"
            vol.updated_at = utcnow()
            snap_ids = [s.id for s in snaps]
            backend = vol.backend
        self._submit(self._destroy, vol.id, backend, snap_ids)

    def _destroy(self, volume_id: str, backend_name: str, snapshot_ids: list[str]) -> None:
        backend = self.backend_for(backend_name)
        try:
            for snap_id in snapshot_ids:
                backend.delete_snapshot(snap_id, volume_id)
                with self.db.session() as session:
                    snap = session.get(Snapshot, snap_id)
                    if snap is not None:
                        session.delete(snap)
            backend.delete(volume_id)
        except Exception as exc:
            self._settle_error(volume_id, exc, EVENT_DELETE, "Deleting the volume",
                               status="error_deleting")
            return
        with self.db.session() as session:
            vol = session.get(Volume, volume_id)
            if vol is not None:
                session.delete(vol)

    # -- extend -------------------------------------------------------------------------

    def extend(self, ctx: Ctx, volume_id: str, new_size: Any, attached_allowed: bool
               ) -> None:
        """``os-extend``: grow an available volume, or (``attached_allowed``, 3.42+) an
        in-use one through compute's ``on_extend_attached``."""
        size_gb = check_size(new_size, "os-extend/new_size")
        assert size_gb is not None
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            online = vol.status == "in-use"
            allowed = ("available", "in-use") if attached_allowed else ("available",)
            if vol.status not in allowed:
                raise InvalidVolume(f"Volume status must be "
                                    f"{' or '.join(allowed)} to extend, but current "
                                    f"status is: {vol.status}.")
            if online and self.on_extend_attached is None:
                raise InvalidVolume("This cloud's compute service cannot grow a volume "
                                    "while it is attached; detach it first.")
            if size_gb <= vol.size:
                raise InvalidInput(f"New size for extend must be greater than current "
                                   f"size. (current: {vol.size}, extended: {size_gb}).")
            vt = session.get(VolumeType, vol.volume_type_id) if vol.volume_type_id else None
            self.quotas.check(session, vol.project_id, vt.name if vt else None,
                              gigabytes=size_gb - vol.size, size=size_gb)
            previous = vol.status
            vol.status = "extending"
            backend = vol.backend
        self._submit(self._grow, vol.id, backend, size_gb, previous, online, ctx)

    def _grow(self, volume_id: str, backend_name: str, size_gb: int, previous: str,
              online: bool, requester: Ctx) -> None:
        backend = self.backend_for(backend_name)
        try:
            backend.extend(volume_id, size_gb, online=online)
            if online:
                callback = self.on_extend_attached
                if callback is None:
                    raise VolumeError("compute can no longer grow attached volumes")
                callback(volume_id, size_gb, requester)
        except Exception as exc:
            self._settle_error(volume_id, exc, EVENT_EXTEND, "Extending the volume",
                               status="error_extending")
            return
        self._settle(volume_id, previous, size=size_gb)

    # -- retype -------------------------------------------------------------------------

    def retype(self, ctx: Ctx, volume_id: str, new_type: Any, migration_policy: Any) -> None:
        """``os-retype``: give the volume another type on the same backend (the bytes do
        not move; a type on another backend would need a migration, which this cloud
        does not do)."""
        if not isinstance(new_type, str) or not new_type:
            raise InvalidInput("new_type must be given (a volume type's name or id).")
        if migration_policy not in (None, "never", "on-demand"):
            raise InvalidInput(f"migration_policy must be never or on-demand, not "
                               f"{migration_policy!r}.")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            if vol.status not in ("available", "in-use"):
                raise InvalidVolume(f"Volume status must be available or in-use to retype, "
                                    f"but current status is: {vol.status}.")
            vt = self.types.find(session, ctx, new_type)
            if vt.id == vol.volume_type_id:
                raise InvalidInput("New volume type must be different from the original.")
            backend = (vt.extra_specs or {}).get("volume_backend_name") or self.backend_name
            if backend != vol.backend:
                if migration_policy != "on-demand":
                    raise InvalidInput(f"Retype to {vt.name} needs the volume moved to "
                                       f"backend {backend}, and migration_policy is not "
                                       "on-demand.")
                raise NotImplementedFault("Moving a volume to another backend (retype with "
                                          "migration) is not implemented by this cloud.")
            attached = list(session.scalars(select(VolumeAttachment.id).where(
                VolumeAttachment.volume_id == vol.id)))
            if len(attached) > 1 and not is_multiattach(vt):
                raise InvalidVolume(f"Volume is attached to {len(attached)} servers; type "
                                    f"{vt.name} does not allow multiattach.")
            self.quotas.check(session, vol.project_id, vt.name, volumes=1,
                              gigabytes=vol.size)
            vol.volume_type_id = vt.id
            vol.multiattach = is_multiattach(vt)
            vol.updated_at = utcnow()

    # -- upload to image ----------------------------------------------------------------

    def upload_to_image(self, ctx: Ctx, volume_id: str, body: dict[str, Any]
                        ) -> dict[str, Any]:
        """``os-volume_upload_image``: a new image (queued at once) filled from the
        volume in the background; the volume is ``uploading`` meanwhile."""
        if self.images is None or ctx is None:
            raise InvalidInput("This cloud has no image service.")
        image_name = body.get("image_name")
        if not isinstance(image_name, str) or not image_name:
            raise InvalidInput("image_name must be a non-empty string.")
        disk_format = body.get("disk_format", "raw")
        if disk_format not in ("raw", "qcow2"):
            raise InvalidInput(f"Invalid disk-format '{disk_format}' is specified. Allowed "
                               "disk-formats are raw, qcow2.")
        container_format = body.get("container_format", "bare")
        if container_format != "bare":
            raise InvalidInput(f"Invalid container-format '{container_format}' is "
                               "specified. Allowed container-formats are bare.")
        force = check_bool(body.get("force", False), "force")
        visibility = body.get("visibility", "private")
        protected = check_bool(body.get("protected", False), "protected")
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id, for_update=True)
            allowed = ("available", "in-use") if force else ("available",)
            if vol.status not in allowed:
                raise InvalidVolume(f"Volume status must be {' or '.join(allowed)} to "
                                    f"upload, but current status is: {vol.status}.")
            image_body: dict[str, Any] = {
                "name": image_name, "disk_format": disk_format,
                "container_format": container_format, "visibility": visibility,
                "protected": protected, "min_disk": vol.size}
            for key, value in (vol.image_metadata or {}).items():
                if key.startswith("hw_") or key.startswith("os_") and key != "os_hash_algo":
                    image_body.setdefault(key, str(value))
            previous = vol.status
            vol.status = "uploading"  # held while the image is made (outside this lock)
            backend = vol.backend
            result = {"id": vol.id, "status": "uploading",
                      "display_description": vol.description, "size": vol.size,
                      "volume_type": None, "container_format": container_format,
                      "disk_format": disk_format, "image_name": image_name,
                      "protected": protected}
        try:
            image = self.images.create(ctx, image_body)
        except Exception:
            self._settle(result["id"], previous)
            raise
        with self.db.session() as session:
            row = session.get(Volume, result["id"])
            result.update(updated_at=_time(row.updated_at) if row is not None else None,
                          image_id=image.id, visibility=image.visibility)
        self._submit(self._upload, ctx, result["id"], backend, image.id, disk_format,
                     previous)
        return result

    def _upload(self, ctx: ValidatedToken, volume_id: str, backend_name: str,
                image_id: str, disk_format: str, previous: str) -> None:
        backend = self.backend_for(backend_name)
        images = self.images
        assert images is not None
        try:
            source = backend.copy_to_image(volume_id, disk_format)

            async def chunks() -> AsyncIterator[bytes]:
                for chunk in source:
                    yield chunk

            asyncio.run(images.data.upload(ctx, image_id, chunks()))
        except Exception as exc:
            log.error("volume %s: upload to image %s failed: %s", volume_id, image_id, exc)
            try:
                images.delete(ctx, image_id)
            except Exception:
                log.exception("image %s could not be removed", image_id)
            with self.db.session() as session:
                vol = session.get(Volume, volume_id)
                if vol is not None:
                    vol.status = previous
                    self._message(session, vol.project_id, "VOLUME", vol.id, EVENT_UPLOAD,
                                  f"Uploading the volume to an image failed: {exc}")
            return
        self._settle(volume_id, previous)

    # -- snapshots ----------------------------------------------------------------------

    def create_snapshot(self, ctx: Ctx, body: dict[str, Any]) -> Snapshot:
        if "volume_id" not in body:
            raise BadRequest("Invalid input for field/attribute snapshot. Value: "
                             f"{body}. 'volume_id' is a required property")
        volume_id = body["volume_id"]
        if volume_id is None:  # Cinder's schema allows null; no such volume, then
            raise NotFound("Volume None could not be found.")
        if not isinstance(volume_id, str):
            raise BadRequest("Invalid input for field/attribute volume_id. Value: "
                             f"{volume_id!r}. {volume_id!r} is not of type 'string', "
                             "'null'")
        name = check_string(body.get("name", body.get("display_name")), "name")
        description = check_string(body.get("description",
                                            body.get("display_description")), "description")
        force = check_bool(body.get("force", False), "force")
        meta = check_metadata(body.get("metadata"))
        with quota_mod.LOCK, self.db.session() as session:
            vol = find_volume(session, ctx, volume_id)
            if vol.status == "in-use" and not force:
                raise InvalidVolume("Volume is in-use; use force to snapshot it anyway "
                                    "(the snapshot is then crash consistent).")
            if vol.status not in ("available", "in-use"):
                raise InvalidVolume(f"Volume {vol.id} status must be available or in-use, "
                                    f"but current status is: {vol.status}.")
            vt = session.get(VolumeType, vol.volume_type_id) if vol.volume_type_id else None
            self.quotas.check(session, vol.project_id, vt.name if vt else None,
                              snapshots=1, gigabytes=vol.size)
            now = utcnow()
            snap = Snapshot(id=str(uuid.uuid4()), volume_id=vol.id,
                            project_id=vol.project_id,
                            user_id=ctx.user_id if ctx is not None else None, name=name,
                            description=description, status="creating", size=vol.size,
                            volume_type_id=vol.volume_type_id, metadata_=meta,
                            created_at=now, updated_at=now)
            session.add(snap)
            backend = vol.backend
        self._submit(self._snapshot, snap.id, vol.id, backend)
        return snap

    def _snapshot(self, snapshot_id: str, volume_id: str, backend_name: str) -> None:
        backend = self.backend_for(backend_name)
        try:
            backend.create_snapshot(snapshot_id, volume_id)
        except Exception as exc:
            self._quietly(backend.delete_snapshot, snapshot_id, volume_id)
            text = str(exc) if isinstance(exc, VolumeError) else type(exc).__name__
            with self.db.session() as session:
                snap = session.get(Snapshot, snapshot_id)
                if snap is not None:
                    snap.status = "error"
                    snap.error_message = f"Creating the snapshot failed: {text}"
                    self._message(session, snap.project_id, "VOLUME_SNAPSHOT", snap.id,
                                  EVENT_SNAPSHOT, snap.error_message)
            return
        with self.db.session() as session:
            snap = session.get(Snapshot, snapshot_id)
            if snap is not None and snap.status == "creating":
                snap.status = "available"
                snap.updated_at = utcnow()

    def get_snapshot(self, ctx: Ctx, snapshot_id: str) -> Snapshot:
        with self.db.session() as session:
            return find_snapshot(session, ctx, snapshot_id)

    def list_snapshots(self, ctx: Ctx, filters: dict[str, str], all_tenants: bool = False
                       ) -> list[Snapshot]:
        with self.db.session() as session:
            query = scope_to_caller(select(Snapshot), Snapshot.project_id, ctx, all_tenants,
                                    filters.pop("project_id", None))
            snaps = list(session.scalars(query.order_by(Snapshot.created_at.desc())))
        out = []
        for snap in snaps:
            if all(str(getattr(snap, k, None)) == v for k, v in filters.items()
                   if k in ("status", "volume_id", "name")):
                out.append(snap)
        return out

    def update_snapshot(self, ctx: Ctx, snapshot_id: str, body: dict[str, Any]) -> Snapshot:
        with self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            for key in ("name", "description"):
                for field_name in (key, f"display_{key}"):
                    if field_name in body:
                        setattr(snap, key, check_string(body[field_name], field_name))
            if "metadata" in body:
                snap.metadata_ = check_metadata(body["metadata"])
            snap.updated_at = utcnow()
        return snap

    def set_snapshot_metadata(self, ctx: Ctx, snapshot_id: str, metadata: Any,
                              replace: bool) -> dict[str, str]:
        meta = check_metadata(metadata)
        with self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            snap.metadata_ = meta if replace else {**(snap.metadata_ or {}), **meta}
            return dict(snap.metadata_)

    def delete_snapshot_metadata_key(self, ctx: Ctx, snapshot_id: str, key: str) -> None:
        with self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            if key not in (snap.metadata_ or {}):
                raise NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")
            snap.metadata_ = {k: v for k, v in snap.metadata_.items() if k != key}

    def delete_snapshot(self, ctx: Ctx, snapshot_id: str, force: bool = False) -> None:
        with quota_mod.LOCK, self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            if not force and snap.status not in ("available", "error"):
                raise InvalidSnapshot(f"Volume Snapshot status must be available or error "
                                      f"(it is {snap.status}).")
            if session.scalar(select(Volume.id).where(Volume.snapshot_id == snap.id,
                                                      Volume.status == "creating")):
                raise InvalidSnapshot("A volume is being created from this snapshot.")
            snap.status = "deleting"
            vol = session.get(Volume, snap.volume_id)
            backend = vol.backend if vol is not None else self.backend_name
        self._submit(self._drop_snapshot, snap.id, snap.volume_id, backend)

    def _drop_snapshot(self, snapshot_id: str, volume_id: str, backend_name: str) -> None:
        try:
            self.backend_for(backend_name).delete_snapshot(snapshot_id, volume_id)
        except Exception as exc:
            with self.db.session() as session:
                snap = session.get(Snapshot, snapshot_id)
                if snap is not None:
                    snap.status = "error_deleting"
                    snap.error_message = f"Deleting the snapshot failed: {exc}"
            return
        with self.db.session() as session:
            snap = session.get(Snapshot, snapshot_id)
            if snap is not None:
                session.delete(snap)

    def reset_snapshot_status(self, ctx: Ctx, snapshot_id: str, status: Any) -> None:
        if status not in SNAPSHOT_STATUSES:
            raise InvalidInput(f"Must specify a valid status (got {status!r}).")
        with self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            snap.status = status

    def update_snapshot_status(self, ctx: Ctx, snapshot_id: str, args: Any) -> None:
        """``os-update_snapshot_status`` (Nova's assisted snapshots report through it):
        a creating snapshot may become available or error, a deleting one
        error_deleting; ``progress`` is a string such as ``"80%"``."""
        if not isinstance(args, dict) or "status" not in args:
            raise BadRequest("Invalid input for field/attribute os-update_snapshot_status. "
                             "'status' is a required property")
        status, progress = args["status"], args.get("progress")
        if progress is not None and not isinstance(progress, str):
            raise BadRequest(f"Invalid input for field/attribute progress. Value: "
                             f"{progress!r}. It is not of type 'string'.")
        allowed = {"creating": ("creating", "available", "error"),
                   "deleting": ("deleting", "error_deleting")}
        with self.db.session() as session:
            snap = find_snapshot(session, ctx, snapshot_id)
            if snap.status not in allowed:
                raise InvalidSnapshot(f"Snapshot status {snap.status} not allowed for "
                                      "update_snapshot_status")
            if status not in allowed[snap.status]:
                raise InvalidSnapshot(f"Provided snapshot status {status!r} not allowed "
                                      f"for snapshot with status {snap.status}.")
            snap.status = status
            if progress is not None:
                snap.progress = progress
            snap.updated_at = utcnow()

    # -- user messages ------------------------------------------------------------------

    def list_messages(self, ctx: Ctx) -> list[VolumeMessage]:
        with self.db.session() as session:
            query = select(VolumeMessage).order_by(VolumeMessage.created_at.desc())
            if not is_admin(ctx):
                assert ctx is not None
                query = query.where(VolumeMessage.project_id == ctx.project_id)
            return list(session.scalars(query))

    def get_message(self, ctx: Ctx, message_id: str) -> VolumeMessage:
        with self.db.session() as session:
            msg = session.get(VolumeMessage, message_id)
            if msg is None or not visible(ctx, msg.project_id):
                raise NotFound(f"Message {message_id} could not be found.")
            return msg

    def delete_message(self, ctx: Ctx, message_id: str) -> None:
        with self.db.session() as session:
            msg = session.get(VolumeMessage, message_id)
            if msg is None or not visible(ctx, msg.project_id):
                raise NotFound(f"Message {message_id} could not be found.")
            session.delete(msg)


def _check_not_maintenance(vol: Volume) -> None:
    if vol.status == "maintenance":
        raise InvalidVolume("Volume is in maintenance; its metadata cannot change.")


def _time(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value is not None else None


_EXACT = ("status", "name", "bootable", "availability_zone", "size", "id",
          "snapshot_id", "source_volid", "image_id", "user_id", "multiattach")


def _matches(vol: Volume, filters: dict[str, str], types: dict[str, str]) -> bool:
    for key, wanted in filters.items():
        inexact = key.endswith("~")
        name = key.rstrip("~")
        if name == "metadata":
            continue  # handled by the API (a JSON object in the query)
        if name == "volume_type":
            have = types.get(vol.volume_type_id or "", "")
            if wanted not in (have, vol.volume_type_id):
                return False
            continue
        if name not in _EXACT:
            continue
        value = getattr(vol, name)
        if isinstance(value, bool):
            if value != check_bool(wanted, name):
                return False
            continue
        text = "" if value is None else str(value)
        if inexact:
            if wanted.lower() not in text.lower():
                return False
        elif text != wanted:
            return False
    return True

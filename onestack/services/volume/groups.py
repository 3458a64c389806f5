"""Generic volume groups (Cinder 3.11+ group types, 3.13+ groups, 3.14+ group
snapshots).

A group holds volumes of the volume types it was made with, all on one backend (the
first member's). What a group gives:

* a **group snapshot**: a snapshot of every member, started together under the volume
  lock (no member changes state in between). The snapshots are taken one after the
  other by the backend, so they are crash consistent per volume, not across volumes:
  a group type asking for ``consistent_group_snapshot_enabled: <is> True`` cannot be
  placed and its groups go to ``error``, as Cinder's are when no backend can;
* a **group from a group snapshot** (each snapshot becomes a volume) or **from another
  group** (each member is cloned), made by the ordinary volume paths;
* deleting a group with its volumes.

A group or group snapshot that is ``creating`` becomes ``available`` when all its
volumes (snapshots) are, ``error`` if one fails; one that is ``deleting`` disappears
when its volumes (snapshots) are gone, or turns ``error_deleting`` if one cannot go.
The state is worked out from the members when it is read (a status an administrator
set with ``reset_status`` stands).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from onestack.db.models import Snapshot, Volume, VolumeType, utcnow
from onestack.db.models.volume_admin import GroupSnapshot, GroupType, VolumeGroup
from onestack.services.volume import quotas as quota_mod
from onestack.services.volume.common import (
    UUID_RE,
    Ctx,
    InvalidInput,
    InvalidVolume,
    check_bool,
    check_metadata,
    check_string,
    field_error,
    is_admin,
    scope_to_caller,
    visible,
)
from onestack.services.volume.hosts import op_matches

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes

GROUP_STATUSES = ("creating", "available", "updating", "deleting", "error",
                  "error_deleting", "in-use")
GROUP_SNAPSHOT_STATUSES = ("creating", "available", "deleting", "error", "error_deleting")
#: what a group snapshot's members may be in when the group is snapshotted
SNAPSHOTTABLE = ("available", "in-use")
#: the group capabilities every backend here reports
GROUP_CAPABILITIES = {"consistent_group_snapshot_enabled": False,
                      "group_replication_enabled": False,
                      "consistent_group_replication_enabled": False}


def _ids(value: Any, path: str) -> list[str]:
    """Cinder's ``add_volumes``/``remove_volumes``: ids separated by commas."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise field_error(path, value, f"{value!r} is not of type 'string', 'null'")
    return [v.strip() for v in value.split(",") if v.strip()]


def _sort_key(name: str) -> Callable[[GroupType], tuple[bool, Any]]:
    def key(gt: GroupType) -> tuple[bool, Any]:
        value = getattr(gt, name)
        return (value is None, value if value is not None else "")
    return key


# -- group types ----------------------------------------------------------------------


class GroupTypes:
    def __init__(self, volumes: Volumes) -> None:
        self.db = volumes.db

    def find(self, session: Session, ctx: Ctx, type_id: str) -> GroupType:
        gt = session.get(GroupType, type_id) if UUID_RE.match(type_id) else None
        if gt is None:
            gt = session.scalar(select(GroupType).where(GroupType.name == type_id))
        if gt is None or (not gt.is_public and not is_admin(ctx)):
            raise NotFound(f"Group type {type_id} could not be found.")
        return gt

    def get(self, ctx: Ctx, type_id: str) -> GroupType:
        with self.db.session() as session:
            return self.find(session, ctx, type_id)

    def list_types(self, ctx: Ctx, is_public: str | None, sort: str | None
                   ) -> list[GroupType]:
        with self.db.session() as session:
            types = list(session.scalars(select(GroupType).order_by(GroupType.created_at)))
        if not is_admin(ctx):
            types = [t for t in types if t.is_public]
        elif is_public is not None and is_public.strip().lower() != "none":
            wanted = check_bool(is_public, "is_public")
            types = [t for t in types if t.is_public == wanted]
        for item in reversed((sort or "").split(",") if sort else []):
            key, _, direction = item.strip().partition(":")
            if key not in ("name", "id", "created_at", "is_public", "description"):
                raise BadRequest(f"Invalid input received: Invalid sort key {key!r}.")
            if direction.lower() not in ("", "asc", "desc"):
                raise BadRequest(f"Invalid input received: Invalid sort direction "
                                 f"{direction!r}.")
            types.sort(key=_sort_key(key), reverse=direction.lower() == "desc")
        return types

    def create(self, body: Any) -> GroupType:
        if not isinstance(body, dict):
            raise field_error("group_type", body, "'group_type' is a required property")
        name = check_string(body.get("name"), "group_type/name", allow_none=False)
        assert name is not None
        if not name.strip():
            raise field_error("group_type/name", name, "The name must not be empty.")
        description = check_string(body.get("description"), "group_type/description")
        is_public = check_bool(body.get("is_public", True), "group_type/is_public")
        specs = check_metadata(body.get("group_specs"), "group_type/group_specs")
        with self.db.session() as session:
            if session.scalar(select(GroupType).where(GroupType.name == name)):
                raise Conflict(f"Group Type {name} already exists.")
            gt = GroupType(id=str(uuid.uuid4()), name=name, description=description,
                           is_public=is_public, group_specs=specs, created_at=utcnow())
            session.add(gt)
        return gt

    def update(self, ctx: Ctx, type_id: str, body: Any) -> GroupType:
        if not isinstance(body, dict):
            raise field_error("group_type", body, "'group_type' is a required property")
        if not {"name", "description", "is_public"} & set(body):
            raise BadRequest("Specify group type name, description or a combination "
                             "thereof.")
        with self.db.session() as session:
            gt = self.find(session, ctx, type_id)
            if body.get("name") is not None:
                name = check_string(body["name"], "group_type/name", allow_none=False)
                assert name is not None
                if not name.strip():
                    raise field_error("group_type/name", name, "The name must not be empty.")
                if name != gt.name and session.scalar(
                        select(GroupType).where(GroupType.name == name)):
                    raise Conflict(f"Group Type {name} already exists.")
                gt.name = name
            if "description" in body:
                gt.description = check_string(body["description"], "group_type/description")
            if "is_public" in body:
                gt.is_public = check_bool(body["is_public"], "group_type/is_public")
        return gt

    def delete(self, ctx: Ctx, type_id: str) -> None:
        with self.db.session() as session:
            gt = self.find(session, ctx, type_id)
            if session.scalar(select(VolumeGroup.id).where(
                    VolumeGroup.group_type_id == gt.id)):
                raise BadRequest(f"Invalid group type: Target group type {gt.id} is still "
                                 "in use.")
            session.delete(gt)

    def set_specs(self, ctx: Ctx, type_id: str, specs: Any) -> dict[str, str]:
        checked = check_metadata(specs, "group_specs")
        with self.db.session() as session:
            gt = self.find(session, ctx, type_id)
            gt.group_specs = {**(gt.group_specs or {}), **checked}
        return checked

    def delete_spec(self, ctx: Ctx, type_id: str, key: str) -> None:
        with self.db.session() as session:
            gt = self.find(session, ctx, type_id)
            if key not in (gt.group_specs or {}):
                raise NotFound(f"Group Type {gt.id} has no specs with key {key}.")
            gt.group_specs = {k: v for k, v in gt.group_specs.items() if k != key}


# -- groups ---------------------------------------------------------------------------


class Groups:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db
        self.types = GroupTypes(volumes)

    # lookups and derived state

    def find(self, session: Session, ctx: Ctx, group_id: str) -> VolumeGroup:
        group = session.get(VolumeGroup, group_id) if UUID_RE.match(group_id) else None
        if group is None or not visible(ctx, group.project_id):
            raise NotFound(f"Group {group_id} could not be found.")
        return group

    @staticmethod
    def members(session: Session, group_id: str) -> list[Volume]:
        return list(session.scalars(select(Volume).where(Volume.group_id == group_id)
                                    .order_by(Volume.created_at)))

    def _refresh(self, session: Session, group: VolumeGroup) -> bool:
        """Bring a creating/deleting group up to date; False: it is gone (a deleting
        group goes with its last volume)."""
        if group.status == "deleting":
            states = [v.status for v in self.members(session, group.id)]
            if not states:
                session.delete(group)
                return False
            if any(s == "error_deleting" for s in states):
                group.status = "error_deleting"
                group.updated_at = utcnow()
            return True
        if group.status != "creating" or not (group.group_snapshot_id or
                                              group.source_group_id) \
                or group.updated_at != group.created_at:
            return True  # settled, or set by an administrator's reset (which stands)
        states = [v.status for v in self.members(session, group.id)]
        if any(s == "error" for s in states):
            group.status = "error"
            group.error_message = "A volume of the group could not be created."
        elif all(s == "available" for s in states):
            group.status = "available"
        if group.status != "creating":
            group.updated_at = utcnow()
        return True

    def get(self, ctx: Ctx, group_id: str) -> tuple[VolumeGroup, list[str]]:
        with self.db.session() as session:
            group = self.find(session, ctx, group_id)
            present = self._refresh(session, group)
            members = [v.id for v in self.members(session, group.id)] if present else []
        # (raised after the session, which commits the removal of a deleted one)
        if not present:
            raise NotFound(f"Group {group_id} could not be found.")
        return group, members

    def list_groups(self, ctx: Ctx, all_tenants: bool) -> list[tuple[VolumeGroup, list[str]]]:
        with self.db.session() as session:
            query = scope_to_caller(select(VolumeGroup).order_by(
                VolumeGroup.created_at.desc()), VolumeGroup.project_id, ctx, all_tenants)
            out = []
            for group in list(session.scalars(query)):
                if self._refresh(session, group):
                    out.append((group, [v.id for v in self.members(session, group.id)]))
            return out

    # new volumes of a group (called by the volume service, in its transaction)

    def admit(self, session: Session, ctx: Ctx, group_id: Any, vt: VolumeType,
              backend: str) -> VolumeGroup | None:
        """Check that a new volume of type ``vt`` on ``backend`` may join the group;
        the group takes the backend of its first volume."""
        if group_id is None:
            return None
        if not isinstance(group_id, str):
            raise field_error("volume/group_id", group_id, "is not of type 'string'")
        group = self.find(session, ctx, group_id)
        if group.status not in ("available", "creating"):
            raise InvalidInput(f"Group {group.id} status must be available, but current "
                               f"status is: {group.status}.")
        if vt.id not in (group.volume_type_ids or []):
            raise InvalidInput(f"Invalid volume_type provided: {vt.id} (the group "
                               f"{group.id} takes volumes of types "
                               f"{', '.join(group.volume_type_ids or [])}).")
        if group.backend not in (None, backend):
            raise InvalidInput(f"Group {group.id} keeps its volumes on backend "
                               f"{group.backend}; the volume type leads to {backend}.")
        group.backend = backend
        return group

    # changes

    def _check_quota(self, session: Session, project_id: str) -> None:
        limit = self.volumes.quotas.limits(session, project_id).get("groups", -1)
        used = self.volumes.quotas.usage(session, project_id)["groups"]
        if limit >= 0 and used + 1 > limit:
            raise PayloadTooLarge(f"Maximum number of groups allowed ({limit}) exceeded "
                                  "for quota 'groups'.")

    @staticmethod
    def _placeable(gt: GroupType) -> bool:
        """Whether the backends here can give what the group type's specs ask."""
        for key, wanted in (gt.group_specs or {}).items():
            name = key.removeprefix("capabilities:")
            if name in GROUP_CAPABILITIES and not op_matches(GROUP_CAPABILITIES[name],
                                                             str(wanted)):
                return False
        return True

    def create(self, ctx: Ctx, body: Any) -> VolumeGroup:
        assert ctx is not None
        if not isinstance(body, dict):
            raise field_error("group", body, "'group' is a required property")
        name = check_string(body.get("name"), "group/name")
        description = check_string(body.get("description"), "group/description")
        type_ref = body.get("group_type")
        if not isinstance(type_ref, str) or not type_ref:
            raise field_error("group/group_type", type_ref, "'group_type' is a required "
                              "property")
        wanted = body.get("volume_types")
        if not isinstance(wanted, list) or not wanted or \
                not all(isinstance(t, str) and t for t in wanted):
            raise field_error("group/volume_types", wanted, "'volume_types' must be a "
                              "non-empty list of volume type names or ids")
        zone = body.get("availability_zone") or \
            self.volumes.config.volume.default_availability_zone
        if zone != self.volumes.config.volume.default_availability_zone:
            raise InvalidInput(f"Availability zone '{zone}' is invalid.")
        with quota_mod.LOCK, self.db.session() as session:
            gt = self.types.find(session, ctx, type_ref)
            type_ids = []
            for ref in wanted:
                vt = self.volumes.types.find(session, ctx, ref)
                if vt.id not in type_ids:
                    type_ids.append(vt.id)
            self._check_quota(session, ctx.project_id or "")
            now = utcnow()
            placeable = self._placeable(gt)
            group = VolumeGroup(
                id=str(uuid.uuid4()), project_id=ctx.project_id or "", user_id=ctx.user_id,
                name=name, description=description,
                status="available" if placeable else "error", group_type_id=gt.id,
                volume_type_ids=type_ids, availability_zone=zone, created_at=now,
                updated_at=now,
                error_message=None if placeable else "No backend can place the group: "
                "consistent group snapshots are not supported.")
            session.add(group)
            if not placeable:
                self.volumes._message(session, group.project_id, "GROUP", group.id,
                                      "VOLUME_GROUP_015_003",
                                      "create group:No valid backend was found for the "
                                      "group type's group specs.")
        return group

    def update(self, ctx: Ctx, group_id: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise field_error("group", body, "'group' is a required property")
        if not {"name", "description", "add_volumes", "remove_volumes"} & set(body):
            raise BadRequest("Name, description, add_volumes, and remove_volumes can not "
                             "be all empty in the request body.")
        name = check_string(body.get("name"), "group/name")
        description = check_string(body.get("description"), "group/description")
        add = _ids(body.get("add_volumes"), "group/add_volumes")
        remove = _ids(body.get("remove_volumes"), "group/remove_volumes")
        if set(add) & set(remove):
            raise InvalidVolume("A volume cannot be both added to and removed from the "
                                "group.")
        with quota_mod.LOCK, self.db.session() as session:
            group = self.find(session, ctx, group_id)
            if (add or remove) and group.status != "available":
                raise BadRequest(f"Invalid group: Group {group.id} status must be "
                                 f"available, but current status is: {group.status}.")
            for vid in remove:
                vol = session.get(Volume, vid)
                if vol is None or vol.group_id != group.id:
                    raise InvalidVolume(f"Cannot remove volume {vid} from group "
                                        f"{group.id} because it is not in the group.")
                if vol.status not in ("available", "in-use", "error", "error_deleting"):
                    raise InvalidVolume(f"Cannot remove volume {vid} from group {group.id} "
                                        f"because volume is in an invalid state: "
                                        f"{vol.status}.")
            adding: list[Volume] = []
            for vid in add:
                vol = session.get(Volume, vid)
                if vol is None or not visible(ctx, vol.project_id) or \
                        vol.project_id != group.project_id:
                    raise InvalidVolume(f"Cannot add volume {vid} to group {group.id} "
                                        "because volume cannot be found.")
                if vol.group_id is not None:
                    raise InvalidVolume(f"Cannot add volume {vid} to group {group.id} "
                                        f"because it is already in group {vol.group_id}.")
                if vol.status not in ("available", "in-use"):
                    raise InvalidVolume(f"Cannot add volume {vid} to group {group.id} "
                                        f"because volume is in an invalid state: "
                                        f"{vol.status}.")
                if vol.volume_type_id not in (group.volume_type_ids or []):
                    raise InvalidVolume(f"Cannot add volume {vid} to group {group.id} "
                                        "because volume type is not supported by the "
                                        "group.")
                backend = group.backend or vol.backend
                if vol.backend != backend or any(v.backend != backend for v in adding):
                    raise InvalidVolume(f"Cannot add volume {vid} to group {group.id} "
                                        "because it is on another backend than the "
                                        "group's volumes.")
                adding.append(vol)
            for vid in remove:
                vol = session.get(Volume, vid)
                assert vol is not None
                vol.group_id = None
            for vol in adding:
                vol.group_id = group.id
                group.backend = vol.backend
            if name is not None or "name" in body:
                group.name = name
            if "description" in body:
                group.description = description
            group.updated_at = utcnow()

    def reset_status(self, ctx: Ctx, group_id: str, status: Any) -> None:
        if status not in GROUP_STATUSES:
            raise BadRequest(f"Invalid input received: Group status {status!r} is not "
                             f"one of {', '.join(GROUP_STATUSES)}.")
        with self.db.session() as session:
            group = self.find(session, ctx, group_id)
            group.status = status
            group.updated_at = utcnow()

    def delete(self, ctx: Ctx, group_id: str, delete_volumes: Any) -> None:
        with_volumes = check_bool(delete_volumes, "delete/delete-volumes") \
            if delete_volumes is not None else False
        with quota_mod.LOCK, self.db.session() as session:
            group = self.find(session, ctx, group_id)
            members = self.members(session, group.id)
            if members and not with_volumes:
                raise BadRequest(f"Invalid group: Group {group.id} still contains volumes. "
                                 "The delete-volumes flag is required to delete it.")
            if session.scalar(select(GroupSnapshot.id).where(
                    GroupSnapshot.group_id == group.id)):
                raise BadRequest(f"Invalid group: Group {group.id} has existing group "
                                 "snapshots and cannot be deleted.")
            if not with_volumes and group.status not in ("available", "error"):
                raise BadRequest(f"Invalid group: Group status must be available or "
                                 f"error, but current status is: {group.status}.")
            for vol in members:
                if vol.attach_status == "attached" or vol.status == "in-use":
                    raise InvalidVolume(f"Volume {vol.id} in the group is attached; "
                                        "detach it first.")
                if session.scalar(select(Snapshot.id).where(Snapshot.volume_id == vol.id)):
                    raise InvalidVolume(f"Volume {vol.id} in the group has snapshots.")
                if vol.status not in ("available", "error", "error_restoring",
                                      "error_extending", "deleting"):
                    raise InvalidVolume(f"Volume {vol.id} in the group is {vol.status}; "
                                        "it cannot be deleted now.")
            member_ids = [v.id for v in members if v.status != "deleting"]
            group.status = "deleting"
        try:
            for vid in member_ids:
                self.volumes.delete_volume(ctx, vid)
        except Exception:
            with self.db.session() as session:
                row = session.get(VolumeGroup, group_id)
                if row is not None:
                    row.status = "error_deleting"
                    row.updated_at = utcnow()
            raise
        # the group goes with its last volume (now, if it has none)
        with self.db.session() as session:
            row = session.get(VolumeGroup, group_id)
            if row is not None:
                self._refresh(session, row)

    def create_from_source(self, ctx: Ctx, body: Any) -> VolumeGroup:
        """A new group from a group snapshot (each snapshot becomes a volume) or from
        another group (each volume is cloned)."""
        assert ctx is not None
        if not isinstance(body, dict):
            raise field_error("create-from-src", body, "must be an object")
        snap_ref, source_ref = body.get("group_snapshot_id"), body.get("source_group_id")
        if bool(snap_ref) == bool(source_ref):
            raise InvalidInput("Either 'group_snapshot_id' or 'source_group_id' must be "
                               "provided to create group from source (not both).")
        name = check_string(body.get("name"), "create-from-src/name")
        description = check_string(body.get("description"), "create-from-src/description")
        with quota_mod.LOCK, self.db.session() as session:
            sources: list[tuple[str, str | None, str | None]] = []
            if snap_ref:
                gsnap = GroupSnapshots(self.volumes).find(session, ctx, str(snap_ref))
                if gsnap.status != "available":
                    raise InvalidInput(f"Group snapshot {gsnap.id} status must be "
                                       f"available (it is {gsnap.status}).")
                origin = session.get(VolumeGroup, gsnap.group_id)
                if origin is None:
                    raise NotFound(f"Group {gsnap.group_id} could not be found.")
                for snap in session.scalars(select(Snapshot).where(
                        Snapshot.group_snapshot_id == gsnap.id)):
                    sources.append(("snapshot", snap.id, snap.volume_type_id))
            else:
                origin = self.find(session, ctx, str(source_ref))
                if origin.status != "available":
                    raise InvalidInput(f"Source group {origin.id} status must be "
                                       f"available (it is {origin.status}).")
                for vol in self.members(session, origin.id):
                    if vol.status not in ("available", "in-use"):
                        raise InvalidVolume(f"Volume {vol.id} of the source group is "
                                            f"{vol.status}.")
                    sources.append(("volume", vol.id, vol.volume_type_id))
            self._check_quota(session, ctx.project_id or "")
            now = utcnow()
            group = VolumeGroup(
                id=str(uuid.uuid4()), project_id=ctx.project_id or "", user_id=ctx.user_id,
                name=name, description=description,
                status="creating" if sources else "available",
                group_type_id=origin.group_type_id,
                volume_type_ids=list(origin.volume_type_ids or []),
                availability_zone=origin.availability_zone, backend=origin.backend,
                group_snapshot_id=str(snap_ref) if snap_ref else None,
                source_group_id=origin.id if source_ref else None,
                created_at=now, updated_at=now)
            session.add(group)
            group_id = group.id
        try:
            for kind, ref, type_id in sources:
                self.volumes.create_volume(
                    ctx, None, snapshot_id=ref if kind == "snapshot" else None,
                    source_volid=ref if kind == "volume" else None,
                    volume_type=type_id, group_id=group_id)
        except Exception:
            with self.db.session() as session:
                row = session.get(VolumeGroup, group_id)
                if row is not None:
                    row.status = "error"
                    row.error_message = "Creating the group's volumes failed."
            raise
        return group


# -- group snapshots ------------------------------------------------------------------


class GroupSnapshots:
    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes
        self.db = volumes.db

    def find(self, session: Session, ctx: Ctx, gsnap_id: str) -> GroupSnapshot:
        gsnap = session.get(GroupSnapshot, gsnap_id) if UUID_RE.match(gsnap_id) else None
        if gsnap is None or not visible(ctx, gsnap.project_id):
            raise NotFound(f"GroupSnapshot {gsnap_id} could not be found.")
        return gsnap

    def _refresh(self, session: Session, gsnap: GroupSnapshot) -> bool:
        """Bring a creating/deleting group snapshot up to date; False: it is gone."""
        if gsnap.status not in ("creating", "deleting") or (
                gsnap.status == "creating" and gsnap.updated_at != gsnap.created_at):
            return True  # settled, or set by an administrator's reset (which stands)
        states = list(session.scalars(select(Snapshot.status).where(
            Snapshot.group_snapshot_id == gsnap.id)))
        if gsnap.status == "deleting":
            if not states:
                session.delete(gsnap)
                return False
            if any(s == "error_deleting" for s in states):
                gsnap.status = "error_deleting"
            return True
        if any(s == "error" for s in states):
            gsnap.status = "error"
        elif all(s == "available" for s in states):
            gsnap.status = "available"
        if gsnap.status != "creating":
            gsnap.updated_at = utcnow()
        return True

    def get(self, ctx: Ctx, gsnap_id: str) -> GroupSnapshot:
        with self.db.session() as session:
            gsnap = self.find(session, ctx, gsnap_id)
            present = self._refresh(session, gsnap)
        # (raised after the session, which commits the removal of a deleted one)
        if not present:
            raise NotFound(f"GroupSnapshot {gsnap_id} could not be found.")
        return gsnap

    def list_snapshots(self, ctx: Ctx, all_tenants: bool) -> list[GroupSnapshot]:
        with self.db.session() as session:
            query = scope_to_caller(select(GroupSnapshot).order_by(
                GroupSnapshot.created_at.desc()), GroupSnapshot.project_id, ctx, all_tenants)
            return [g for g in session.scalars(query) if self._refresh(session, g)]

    def create(self, ctx: Ctx, body: Any) -> GroupSnapshot:
        assert ctx is not None
        if not isinstance(body, dict):
            raise field_error("group_snapshot", body, "'group_snapshot' is a required "
                              "property")
        group_ref = body.get("group_id")
        if not isinstance(group_ref, str) or not group_ref:
            raise field_error("group_snapshot/group_id", group_ref, "'group_id' is a "
                              "required property")
        name = check_string(body.get("name"), "group_snapshot/name")
        description = check_string(body.get("description"), "group_snapshot/description")
        groups = Groups(self.volumes)
        # the volume lock is held from the checks to the last member's snapshot row:
        # no member changes state (or leaves the group) in between
        with quota_mod.LOCK:
            with self.db.session() as session:
                group = groups.find(session, ctx, group_ref)
                if group.status != "available":
                    raise BadRequest(f"Invalid group: Group {group.id} status must be "
                                     f"available, but current status is: {group.status}.")
                members = groups.members(session, group.id)
                for vol in members:
                    if vol.status not in SNAPSHOTTABLE:
                        raise InvalidVolume(f"Volume {vol.id} of the group is "
                                            f"{vol.status}; it must be available or "
                                            "in-use to be snapshotted.")
                now = utcnow()
                gsnap = GroupSnapshot(id=str(uuid.uuid4()), group_id=group.id,
                                      project_id=group.project_id, user_id=ctx.user_id,
                                      name=name, description=description,
                                      status="creating" if members else "available",
                                      group_type_id=group.group_type_id,
                                      created_at=now, updated_at=now)
                session.add(gsnap)
                member_ids = [v.id for v in members]
            try:
                for vid in member_ids:
                    snap = self.volumes.create_snapshot(ctx, {
                        "volume_id": vid, "force": True,
                        "name": f"group-snapshot-{gsnap.id}",
                        "description": f"Snapshot of volume {vid} in group snapshot "
                                       f"{gsnap.id}"})
                    with self.db.session() as session:
                        row = session.get(Snapshot, snap.id)
                        if row is not None:
                            row.group_snapshot_id = gsnap.id
            except Exception:
                with self.db.session() as session:
                    failed = session.get(GroupSnapshot, gsnap.id)
                    if failed is not None:
                        failed.status = "error"
                raise
        return gsnap

    def delete(self, ctx: Ctx, gsnap_id: str) -> None:
        with quota_mod.LOCK:
            with self.db.session() as session:
                gsnap = self.find(session, ctx, gsnap_id)
                self._refresh(session, gsnap)
                if gsnap.status not in ("available", "error"):
                    raise BadRequest(f"Invalid GroupSnapshot: GroupSnapshot status must be "
                                     f"available or error, and no Group can be currently "
                                     f"using it as source for its creation (it is "
                                     f"{gsnap.status}).")
                if session.scalar(select(VolumeGroup.id).where(
                        VolumeGroup.group_snapshot_id == gsnap.id,
                        VolumeGroup.status == "creating")):
                    raise BadRequest("Invalid GroupSnapshot: a group is being created "
                                     "from it.")
                snap_ids = list(session.scalars(select(Snapshot.id).where(
                    Snapshot.group_snapshot_id == gsnap.id,
                    Snapshot.status != "deleting")))
                gsnap.status = "deleting"
                gsnap.updated_at = utcnow()
            for sid in snap_ids:
                self.volumes.delete_snapshot(ctx, sid, force=True)
            with self.db.session() as session:
                row = session.get(GroupSnapshot, gsnap_id)
                if row is not None:
                    self._refresh(session, row)

    def reset_status(self, ctx: Ctx, gsnap_id: str, status: Any) -> None:
        if status not in GROUP_SNAPSHOT_STATUSES:
            raise BadRequest(f"Invalid input received: Group snapshot status {status!r} "
                             f"is not one of {', '.join(GROUP_SNAPSHOT_STATUSES)}.")
        with self.db.session() as session:
            gsnap = self.find(session, ctx, gsnap_id)
            gsnap.status = status
            gsnap.updated_at = utcnow()

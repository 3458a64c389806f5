"""Host aggregates (os-aggregates): named sets of compute hosts with metadata, kept by
administrators.

What they mean here, as in Nova: an aggregate's ``availability_zone`` metadata is the
availability zone of every host in it. A host's zone is kept on its ``nova-compute``
service row (``compute_services.availability_zone``), which everything zone-aware
reads (os-availability-zone, os-hosts, the scheduler's zone filter, the zone a new
server is put in), so this module rewrites that row whenever a host's zone changes:
when it joins or leaves an aggregate with a zone, or the aggregate's zone changes. A
host in no aggregate with a zone keeps the zone it was registered with (the default
one, ``[compute] default_availability_zone``); leaving its last such aggregate puts it
back in the default zone.

The rules Nova keeps (and their codes, which differ by operation):

- a host is in one zone only: adding it to an aggregate whose zone differs from the
  zone of another aggregate it is in, or giving an aggregate a zone that differs from
  that of another aggregate one of its hosts is in, is refused;
- servers do not change zone: while a host runs servers, nothing may change its zone
  (joining or leaving an aggregate, or a new zone for an aggregate it is in);
- an aggregate's zone cannot be emptied, and an aggregate with hosts cannot be deleted;
- a deleted compute service leaves its aggregates (``forget_host``).

Other metadata is stored and shown; no scheduler filter reads it (Nova's default
filters do not either).
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound, OneStackError
from onestack.db.models import ComputeService, Instance, utcnow
from onestack.db.models.base import INT64_MAX, INT64_MIN
from onestack.db.models.compute import Aggregate, AggregateHost, AggregateMetadata
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: The metadata key that makes an aggregate an availability zone.
AZ_KEY = "availability_zone"
COMPUTE = "nova-compute"
_RULE = "os_compute_api:os-aggregates:"


class ImageCachingNotSupported(OneStackError):
    """Nova's 501: image pre-caching (2.81) is not something this cloud's hosts do."""

    status = 501
    title = "Not Implemented"
    fault = "notImplemented"


@dataclass
class AggregateView:
    id: int
    uuid: str
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime | None
    hosts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def availability_zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)

    @classmethod
    def of(cls, row: Aggregate) -> AggregateView:
        return cls(id=row.id, uuid=row.uuid, name=row.name, created_at=row.created_at,
                   updated_at=row.updated_at, hosts=sorted(h.host for h in row.hosts),
                   metadata={m.key: m.value for m in
                             sorted(row.metadata_items, key=lambda m: m.key)})


def _zone(row: Aggregate) -> str | None:
    return next((m.value for m in row.metadata_items if m.key == AZ_KEY), None)


def aggregate_zones(session: Session, host: str, exclude: int | None = None) -> set[str]:
    """The zones of the aggregates ``host`` is in (but ``exclude``)."""
    stmt = (select(AggregateMetadata.value)
            .join(AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
            .where(AggregateHost.host == host, AggregateMetadata.key == AZ_KEY))
    if exclude is not None:
        stmt = stmt.where(AggregateMetadata.aggregate_id != exclude)
    return set(session.scalars(stmt))


def zone_from_aggregates(session: Session, host: str) -> str | None:
    """The zone ``host``'s aggregates put it in (None: none of them has a zone)."""
    zones = sorted(aggregate_zones(session, host))
    return zones[0] if zones else None


def _not_found(aggregate_id: int | str) -> NotFound:
    return NotFound(f"Aggregate {aggregate_id} could not be found.")


class Aggregates:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    @property
    def default_zone(self) -> str:
        return self.compute.config.compute.default_availability_zone

    # -- reading --------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, aggregate_id: int, lock: bool = False) -> Aggregate:
        if not INT64_MIN <= aggregate_id <= INT64_MAX:
            raise _not_found(aggregate_id)
        stmt = select(Aggregate).where(Aggregate.id == aggregate_id)
        if lock:
            stmt = stmt.with_for_update()
        row = session.scalar(stmt)
        if row is None:
            raise _not_found(aggregate_id)
        return row

    def list_all(self, ctx: ValidatedToken) -> list[AggregateView]:
        policy.require_admin(ctx, _RULE + "index")
        with self.db.session() as session:
            return [AggregateView.of(r) for r in
                    session.scalars(select(Aggregate).order_by(Aggregate.id))]

    def get(self, ctx: ValidatedToken, aggregate_id: int) -> AggregateView:
        policy.require_admin(ctx, _RULE + "show")
        with self.db.session() as session:
            return AggregateView.of(self._row(session, aggregate_id))

    def by_host(self, session: Session, host: str) -> list[Aggregate]:
        return list(session.scalars(
            select(Aggregate).join(AggregateHost).where(AggregateHost.host == host)
            .order_by(Aggregate.id)))

    # -- zones ----------------------------------------------------------------------

    def _service(self, session: Session, host: str) -> ComputeService | None:
        return session.scalar(select(ComputeService).where(
            ComputeService.host == host, ComputeService.binary == COMPUTE))

    @staticmethod
    def _instances_on(session: Session, hosts: list[str]) -> int:
        if not hosts:
            return 0
        return int(session.scalar(select(func.count()).select_from(Instance).where(
            Instance.host.in_(hosts), Instance.deleted.is_(False))) or 0)

    def _set_zone(self, session: Session, host: str, zone: str) -> None:
        service = self._service(session, host)
        if service is not None and service.availability_zone != zone:
            service.availability_zone = zone
            service.updated_at = utcnow()

    def _check_zone_change(self, session: Session, row: Aggregate, zone: str | None,
                           hosts: list[str], fault: type[OneStackError], action: str
                           ) -> None:
        """Nova's ``is_safe_to_update_az``: ``zone`` (the aggregate's zone to be) must
        be a name, and must not put any of ``hosts`` in two zones; when it changes the
        zone of hosts running servers, it is refused too."""
        if not zone:
            raise fault(f"{action} {row.id}. Reason: Aggregate {row.name} does not "
                        "support empty named availability zone.")
        conflicting = sorted({z for h in hosts
                              for z in aggregate_zones(session, h, exclude=row.id)} - {zone})
        if conflicting:
            raise fault(f"{action} {row.id}. Reason: One or more hosts already in "
                        f"availability zone(s) {conflicting}.")

    # -- writing --------------------------------------------------------------------

    def create(self, ctx: ValidatedToken, name: str, zone: str | None) -> AggregateView:
        policy.require_admin(ctx, _RULE + "create")
        try:
            with self.db.session() as session:
                if session.scalar(select(Aggregate.id).where(Aggregate.name == name)):
                    raise Conflict(f"Aggregate {name} already exists.")
                row = Aggregate(uuid=str(uuidlib.uuid4()), name=name, created_at=utcnow(),
                                updated_at=None)
                if zone:
                    row.metadata_items.append(AggregateMetadata(key=AZ_KEY, value=zone))
                session.add(row)
                session.flush()
                return AggregateView.of(row)
        except IntegrityError:
            raise Conflict(f"Aggregate {name} already exists.") from None

    def update(self, ctx: ValidatedToken, aggregate_id: int, *, name: str | None = None,
               set_zone: bool = False, zone: str | None = None) -> AggregateView:
        """PUT: a new name and/or zone (``set_zone``; a null zone is refused)."""
        policy.require_admin(ctx, _RULE + "update")
        try:
            with self.db.session() as session:
                row = self._row(session, aggregate_id, lock=True)
                if name is not None and name != row.name:
                    if session.scalar(select(Aggregate.id).where(Aggregate.name == name)):
                        raise Conflict(f"Aggregate {name} already exists.")
                    row.name = name
                if set_zone:
                    self._change_zone(session, row, zone, "Cannot update aggregate")
                row.updated_at = utcnow()
                session.flush()
                return AggregateView.of(row)
        except IntegrityError:
            raise Conflict(f"Aggregate {name} already exists.") from None

    def _change_zone(self, session: Session, row: Aggregate, zone: str | None,
                     action: str) -> None:
        """Give ``row`` the zone ``zone`` (400s as Nova's update and set_metadata) and
        move its hosts there."""
        hosts = [h.host for h in row.hosts]
        self._check_zone_change(session, row, zone, hosts, BadRequest, action)
        assert zone is not None
        if zone != _zone(row):
            moving = [h for h in hosts if (s := self._service(session, h)) is not None
                      and s.availability_zone != zone]
            if self._instances_on(session, moving):
                raise BadRequest(f"{action} {row.id}. Reason: One or more hosts contain "
                                 "instances in this zone.")
        item = next((m for m in row.metadata_items if m.key == AZ_KEY), None)
        if item is None:
            row.metadata_items.append(AggregateMetadata(key=AZ_KEY, value=zone))
        else:
            item.value = zone
        for host in hosts:
            self._set_zone(session, host, zone)

    def set_metadata(self, ctx: ValidatedToken, aggregate_id: int,
                     metadata: dict[str, str | None]) -> AggregateView:
        """Set keys (a null value removes the key); ``availability_zone`` moves the
        aggregate's hosts to that zone, under the rules of ``update``."""
        policy.require_admin(ctx, _RULE + "set_metadata")
        with self.db.session() as session:
            row = self._row(session, aggregate_id, lock=True)
            action = "Cannot update metadata of aggregate"
            if AZ_KEY in metadata:
                self._change_zone(session, row, metadata[AZ_KEY], action)
            items = {m.key: m for m in row.metadata_items}
            for key, value in metadata.items():
                if key == AZ_KEY:
                    continue
                if value is None:
                    if key in items:
                        row.metadata_items.remove(items.pop(key))
                elif key in items:
                    items[key].value = value
                else:
                    items[key] = AggregateMetadata(key=key, value=value)
                    row.metadata_items.append(items[key])
            row.updated_at = utcnow()
            session.flush()
            return AggregateView.of(row)

    def delete(self, ctx: ValidatedToken, aggregate_id: int) -> None:
        policy.require_admin(ctx, _RULE + "delete")
        with self.db.session() as session:
            row = self._row(session, aggregate_id, lock=True)
            if row.hosts:
                raise BadRequest(f"Cannot remove host from aggregate {row.id}. Reason: "
                                 "Host aggregate is not empty.")
            session.delete(row)

    def add_host(self, ctx: ValidatedToken, aggregate_id: int, host: str) -> AggregateView:
        """Put a compute host in the aggregate (404: no such host or aggregate; 409:
        already in it, or its zone would conflict or move its servers)."""
        policy.require_admin(ctx, _RULE + "add_host")
        try:
            with self.db.session() as session:
                service = self._service(session, host)
                if service is None:
                    raise NotFound(f"Compute host {host} could not be found.")
                row = self._row(session, aggregate_id, lock=True)
                if any(h.host == host for h in row.hosts):
                    raise Conflict(f"Aggregate {row.id} already has host {host}.")
                zone = _zone(row)
                action = "Cannot add host to aggregate"
                if zone is not None:
                    self._check_zone_change(session, row, zone, [host], Conflict, action)
                    self._refuse_moving_servers(session, row, service, zone, action)
                row.hosts.append(AggregateHost(host=host))
                if zone is not None:
                    self._set_zone(session, host, zone)
                session.flush()
                return AggregateView.of(row)
        except IntegrityError:
            raise Conflict(f"Aggregate {aggregate_id} already has host {host}.") from None

    def _refuse_moving_servers(self, session: Session, row: Aggregate,
                               service: ComputeService, zone: str, action: str) -> None:
        current = service.availability_zone or self.default_zone
        if current == zone:
            return
        count = self._instances_on(session, [service.host])
        if count:
            raise Conflict(
                f"{action} {row.id}. Reason: The host cannot be moved from availability "
                f"zone '{current}' to '{zone}' as it runs {count} server(s); servers do not "
                "change availability zone. Delete them, or move them to another host "
                "first.")

    def remove_host(self, ctx: ValidatedToken, aggregate_id: int, host: str
                    ) -> AggregateView:
        """Take a host out of the aggregate; it goes back to the zone of its other
        aggregates, else the default zone (409 if that would move its servers)."""
        policy.require_admin(ctx, _RULE + "remove_host")
        missing = NotFound(f"Cannot remove host {host} in aggregate {aggregate_id}")
        with self.db.session() as session:
            service = self._service(session, host)
            if service is None:
                raise missing
            try:
                row = self._row(session, aggregate_id, lock=True)
            except NotFound:
                raise missing from None
            entry = next((h for h in row.hosts if h.host == host), None)
            if entry is None:
                raise missing
            zone = _zone(row)
            if zone is not None:
                remaining = sorted(aggregate_zones(session, host, exclude=row.id))
                after = remaining[0] if remaining else self.default_zone
                self._refuse_moving_servers(session, row, service, after,
                                            "Cannot remove host from aggregate")
                self._set_zone(session, host, after)
            row.hosts.remove(entry)
            session.flush()
            return AggregateView.of(row)

    def cache_images(self, ctx: ValidatedToken, aggregate_id: int,
                     image_ids: list[str]) -> NoReturn:
        """2.81 image pre-caching: checked as Nova does (400 duplicates, 404 unknown
        aggregate), then refused: hosts fetch an image when they first boot from it,
        and there is no way to ask them to fetch one ahead."""
        policy.require_admin(ctx, "os_compute_api:os-aggregates:images")
        if len(set(image_ids)) != len(image_ids):
            raise BadRequest("Duplicate images in request")
        with self.db.session() as session:
            self._row(session, aggregate_id)
        raise ImageCachingNotSupported(
            "Image pre-caching is not supported by this cloud: a host fetches an image "
            "when it first boots a server from it.")

    # -- for the other compute services -----------------------------------------------

    def forget_host(self, session: Session, host: str) -> None:
        """A compute service is being deleted: its host leaves every aggregate (in the
        caller's transaction)."""
        for row in self.by_host(session, host):
            for entry in [h for h in row.hosts if h.host == host]:
                row.hosts.remove(entry)

    def zone_for_new_host(self, session: Session, host: str) -> str:
        """The zone a newly registered compute service starts in."""
        return zone_from_aggregates(session, host) or self.default_zone

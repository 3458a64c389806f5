"""Flavors (Nova's flavors, os-flavor-manage, os-extra_specs and os-flavor-access).

Public flavors are seen by everyone; a private one only by administrators and the
projects on its access list (anyone else gets the same 404 as for a flavor that does not
exist). Creating, changing and deleting flavors, their extra specs and access lists is
for administrators.

Servers keep a copy of their flavor (``Flavor.snapshot``) so that later edits or
deletes of the flavor change nothing for them.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db.models import Flavor, FlavorExtraSpec, FlavorProject, utcnow
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: Nova's defaults (devstack's tiny ones too), seeded into an empty cloud:
#: (id, name, vcpus, ram MiB, disk GiB).
DEFAULT_FLAVORS = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
    ("42", "m1.nano", 1, 128, 1),
    ("84", "m1.micro", 1, 192, 1),
)

#: Nova's flavor sort keys -> our columns (``id`` is Nova's internal id: creation order).
SORT_KEYS = {
    "created_at": Flavor.created_at, "description": Flavor.description,
    "disabled": Flavor.disabled, "ephemeral_gb": Flavor.ephemeral,
    "flavorid": Flavor.id, "id": Flavor.created_at, "is_public": Flavor.is_public,
    "memory_mb": Flavor.ram, "name": Flavor.name, "root_gb": Flavor.disk,
    "rxtx_factor": Flavor.rxtx_factor, "swap": Flavor.swap, "updated_at": Flavor.updated_at,
    "vcpu_weight": Flavor.created_at, "vcpus": Flavor.vcpus,
}


@dataclass
class FlavorSpec:
    """A validated create request (the API checked the types and ranges)."""

    name: str
    ram: int
    vcpus: int
    disk: int
    id: str | None = None
    ephemeral: int = 0
    swap: int = 0
    rxtx_factor: float = 1.0
    is_public: bool = True
    description: str | None = None


def not_found(flavor_id: str) -> NotFound:
    return NotFound(f"Flavor {flavor_id} could not be found.")


def visible(ctx: ValidatedToken | None) -> ColumnElement[bool] | None:
    """The flavors ``ctx`` may see: all for admins, else public ones and private ones
    shared with its project."""
    if ctx is None or ctx.is_admin:
        return None
    shared = Flavor.id.in_(select(FlavorProject.flavor_id)
                           .where(FlavorProject.project_id == (ctx.project_id or "")))
    return or_(Flavor.is_public.is_(True), shared)


@dataclass(frozen=True)
class FlavorView:
    """A flavor as the API renders it."""

    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int
    swap: int
    rxtx_factor: float
    is_public: bool
    disabled: bool
    description: str | None
    extra_specs: dict[str, str]

    @classmethod
    def of(cls, flavor: Flavor) -> FlavorView:
        return cls(id=flavor.id, name=flavor.name, vcpus=flavor.vcpus, ram=flavor.ram,
                   disk=flavor.disk, ephemeral=flavor.ephemeral, swap=flavor.swap,
                   rxtx_factor=flavor.rxtx_factor, is_public=flavor.is_public,
                   disabled=flavor.disabled, description=flavor.description,
                   extra_specs={s.key: s.value for s in flavor.extra_specs})


class Flavors:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    # -- for other services ---------------------------------------------------------

    def get_for_boot(self, session: Session, flavor_ref: Any, ctx: ValidatedToken
                     ) -> Flavor:
        """The flavor a server create names (an id, or a link ending in the id), if the
        caller may boot it; else Nova's 400 ``Flavor <id> could not be found.``."""
        flavor_id = urlsplit(str(flavor_ref)).path.split("/")[-1]
        try:
            flavor = self._get(session, flavor_id, ctx)
        except NotFound:
            raise BadRequest(f"Flavor {flavor_id} could not be found.") from None
        if flavor.disabled:
            raise BadRequest(f"Flavor {flavor_id} could not be found.")
        return flavor

    @staticmethod
    def snapshot(flavor: Flavor) -> dict[str, Any]:
        """The copy of a flavor a server keeps (``Instance.flavor``)."""
        return {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus,
                "ram": flavor.ram, "disk": flavor.disk, "ephemeral": flavor.ephemeral,
                "swap": flavor.swap, "rxtx_factor": flavor.rxtx_factor,
                "extra_specs": {s.key: s.value for s in flavor.extra_specs}}

    def seed_defaults(self) -> None:
        """Create Nova's default flavors if the cloud has none yet (idempotent)."""
        with self.db.session() as session:
            if session.scalar(select(func.count()).select_from(Flavor)):
                return
            for flavor_id, name, vcpus, ram, disk in DEFAULT_FLAVORS:
                session.add(Flavor(id=flavor_id, name=name, vcpus=vcpus, ram=ram, disk=disk,
                                   ephemeral=0, swap=0, rxtx_factor=1.0, is_public=True,
                                   disabled=False))

    # -- lookups --------------------------------------------------------------------

    @staticmethod
    def _get(session: Session, flavor_id: str, ctx: ValidatedToken | None) -> Flavor:
        stmt = select(Flavor).where(Flavor.id == flavor_id)
        condition = visible(ctx)
        if condition is not None:
            stmt = stmt.where(condition)
        flavor = session.scalar(stmt)
        if flavor is None:
            raise not_found(flavor_id)
        return flavor

    def get(self, ctx: ValidatedToken, flavor_id: str) -> FlavorView:
        with self.db.session() as session:
            return FlavorView.of(self._get(session, flavor_id, ctx))

    def list(self, ctx: ValidatedToken, *, is_public: bool | None = True,
             min_ram: int | None = None, min_disk: int | None = None,
             sort_key: str = "flavorid", sort_dir: str = "asc", limit: int | None = None,
             marker: str | None = None) -> list[FlavorView]:
        """Nova's flavor list: non-admins see enabled public flavors and the private
        ones shared with them; admins choose with ``is_public`` (True: public ones and
        their project's private ones; False: private ones; None: all)."""
        stmt = select(Flavor)
        if ctx.is_admin:
            if is_public is not None:
                if is_public and ctx.project_id:
                    stmt = stmt.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(
                        select(FlavorProject.flavor_id)
                        .where(FlavorProject.project_id == ctx.project_id))))
                else:
                    stmt = stmt.where(Flavor.is_public.is_(is_public))
        else:
            stmt = stmt.where(visible(ctx), Flavor.disabled.is_(False))  # type: ignore[arg-type]
        if min_ram is not None:
            stmt = stmt.where(Flavor.ram >= min_ram)
        if min_disk is not None:
            stmt = stmt.where(Flavor.disk >= min_disk)
        column = SORT_KEYS.get(sort_key)
        if column is None:
            raise BadRequest(f"Invalid sort_key {sort_key!r}.")
        if sort_dir not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort_dir {sort_dir!r}.")
        order = [column, Flavor.created_at, Flavor.id]
        stmt = stmt.order_by(*(c.desc() if sort_dir == "desc" else c.asc() for c in order))
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
            if marker is not None:
                # flavors are few: find the marker in the ordered list
                index = next((i for i, f in enumerate(rows) if f.id == marker), None)
                if index is None:
                    raise BadRequest(f"marker [{marker}] not found")
                rows = rows[index + 1:]
            return [FlavorView.of(f) for f in (rows[:limit] if limit else rows)]

    # -- flavor-manage --------------------------------------------------------------

    def create(self, ctx: ValidatedToken, spec: FlavorSpec) -> FlavorView:
        policy.require_admin(ctx, "os_compute_api:os-flavor-manage:create")
        flavor_id = spec.id if spec.id not in (None, "", "auto") else str(uuid.uuid4())
        assert flavor_id is not None
        try:
            with self.db.session() as session:
                if session.get(Flavor, flavor_id) is not None:
                    raise Conflict(f"Flavor with ID {flavor_id} already exists.")
                if session.scalar(select(Flavor.id).where(Flavor.name == spec.name)):
                    raise Conflict(f"Flavor with name {spec.name} already exists.")
                now = utcnow()
                flavor = Flavor(
                    id=flavor_id, name=spec.name, vcpus=spec.vcpus, ram=spec.ram,
                    disk=spec.disk, ephemeral=spec.ephemeral, swap=spec.swap,
                    rxtx_factor=spec.rxtx_factor, is_public=spec.is_public, disabled=False,
                    description=spec.description, created_at=now, updated_at=now,
                    extra_specs=[], projects=[])
                session.add(flavor)
                session.flush()
                view = FlavorView.of(flavor)
        except IntegrityError:
            raise Conflict(f"Flavor with name {spec.name} already exists.") from None
        return view

    def update_description(self, ctx: ValidatedToken, flavor_id: str,
                           description: str | None) -> FlavorView:
        policy.require_admin(ctx, "os_compute_api:os-flavor-manage:update")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, None)
            flavor.description = description
            flavor.updated_at = utcnow()
            return FlavorView.of(flavor)

    def delete(self, ctx: ValidatedToken, flavor_id: str) -> None:
        policy.require_admin(ctx, "os_compute_api:os-flavor-manage:delete")
        with self.db.session() as session:
            session.delete(self._get(session, flavor_id, None))

    # -- extra specs ----------------------------------------------------------------

    def extra_specs(self, ctx: ValidatedToken, flavor_id: str) -> dict[str, str]:
        policy.require_reader(ctx, "os_compute_api:os-flavor-extra-specs:index",
                              ctx.project_id)
        return dict(self.get(ctx, flavor_id).extra_specs)

    def extra_spec(self, ctx: ValidatedToken, flavor_id: str, key: str) -> str:
        policy.require_reader(ctx, "os_compute_api:os-flavor-extra-specs:show",
                              ctx.project_id)
        specs = self.get(ctx, flavor_id).extra_specs
        if key not in specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        return specs[key]

    def set_extra_specs(self, ctx: ValidatedToken, flavor_id: str, specs: dict[str, str],
                        rule: str = "create") -> None:
        """Add or replace extra specs (values already strings)."""
        policy.require_admin(ctx, f"os_compute_api:os-flavor-extra-specs:{rule}")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, None)
            current = {s.key: s for s in flavor.extra_specs}
            for key, value in specs.items():
                if key in current:
                    current[key].value = value
                else:
                    flavor.extra_specs.append(
                        FlavorExtraSpec(flavor_id=flavor.id, key=key, value=value))
            flavor.updated_at = utcnow()

    def delete_extra_spec(self, ctx: ValidatedToken, flavor_id: str, key: str) -> None:
        policy.require_admin(ctx, "os_compute_api:os-flavor-extra-specs:delete")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, None)
            spec = next((s for s in flavor.extra_specs if s.key == key), None)
            if spec is None:
                raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
            flavor.extra_specs.remove(spec)
            flavor.updated_at = utcnow()

    # -- flavor access --------------------------------------------------------------

    def access_list(self, ctx: ValidatedToken, flavor_id: str) -> builtins.list[str]:
        policy.require_admin(ctx, "os_compute_api:os-flavor-access")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, ctx)
            if flavor.is_public:
                raise NotFound("Access list not available for public flavors.")
            return sorted(p.project_id for p in flavor.projects)

    def _verify_project(self, project_id: str) -> bool:
        try:
            self.compute.identity.projects.get(project_id)
        except NotFound:
            return False
        return True

    def add_access(self, ctx: ValidatedToken, flavor_id: str, project_id: str,
                   refuse_public: bool = True) -> builtins.list[str]:
        """Share a private flavor with a project. From microversion 2.7 a public flavor
        is refused (409); before, the row is added and changes nothing."""
        policy.require_admin(ctx, "os_compute_api:os-flavor-access:add_tenant_access")
        if not self._verify_project(project_id):
            raise BadRequest(f"Project ID {project_id} is not a valid project.")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, None)
            if flavor.is_public and refuse_public:
                raise Conflict("Can not add access to a public flavor.")
            if any(p.project_id == project_id for p in flavor.projects):
                raise Conflict(f"Flavor access already exists for flavor {flavor_id} and "
                               f"project {project_id} combination.")
            flavor.projects.append(FlavorProject(flavor_id=flavor.id, project_id=project_id))
            session.flush()
            return sorted(p.project_id for p in flavor.projects)

    def remove_access(self, ctx: ValidatedToken, flavor_id: str, project_id: str
                      ) -> builtins.list[str]:
        """Unshare; the project need not exist any more."""
        policy.require_admin(ctx, "os_compute_api:os-flavor-access:remove_tenant_access")
        with self.db.session() as session:
            flavor = self._get(session, flavor_id, None)
            row = next((p for p in flavor.projects if p.project_id == project_id), None)
            if row is None:
                raise NotFound(f"Flavor access not found for {flavor_id} / {project_id} "
                               "combination.")
            flavor.projects.remove(row)
            session.flush()
            return sorted(p.project_id for p in flavor.projects)

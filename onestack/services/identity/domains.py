"""Domains: the top-level containers of projects, users and groups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, Forbidden, InvalidField
from onestack.db.models import Assignment, Domain, Group, Project, Role, User
from onestack.services.identity.base import SubService, apply_filters, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

DEFAULT_DOMAIN_ID = "default"


class Domains(SubService):
    def find_by_ref(self, session: Session, ref: dict[str, Any], path: str) -> Domain | None:
        """A domain named by ``{"id": ...}`` or ``{"name": ...}``, or None."""
        if ref.get("id") is not None:
            if not isinstance(ref["id"], str):
                raise InvalidField(f"{path}/id", "must be a string")
            return session.get(Domain, ref["id"])
        if ref.get("name") is not None:
            if not isinstance(ref["name"], str):
                raise InvalidField(f"{path}/name", "must be a string")
            return session.scalar(select(Domain).where(Domain.name == ref["name"]))
        raise InvalidField(path, "needs an id or a name")

    def authorize_create(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create``, made before the request body is read."""
        authorize(ctx, "identity:create_domain")

    def create(self, ctx: ValidatedToken | None = None, *, name: str, description: str = "",
               enabled: bool = True, id: str | None = None,
               extra: dict[str, Any] | None = None) -> Domain:
        self.authorize_create(ctx)
        with self.db.session() as session:
            if session.scalar(select(Domain.id).where(Domain.name == name)):
                raise Conflict(f"Conflict occurred attempting to store domain - "
                               f"a domain named {name!r} already exists.")
            domain = Domain(id=id or new_id(), name=name, description=description,
                            enabled=enabled, extra=extra or {})
            session.add(domain)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"A domain named {name!r} already exists.") from None
            return domain

    def get(self, ctx: ValidatedToken | None, domain_id: str) -> Domain:
        authorize(ctx, "identity:get_domain", domain_id=domain_id)
        with self.db.session() as session:
            return get_or_404(session, Domain, domain_id, "domain")

    def list(self, ctx: ValidatedToken | None, **filters: Any) -> list[Domain]:
        authorize(ctx, "identity:list_domains")
        with self.db.session() as session:
            stmt = apply_filters(select(Domain), Domain, filters).order_by(Domain.name)
            return list(session.scalars(stmt))

    def authorize_update(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``update``, made before the request body is read."""
        authorize(ctx, "identity:update_domain")

    def update(self, ctx: ValidatedToken | None, domain_id: str, changes: dict[str, Any]
               ) -> Domain:
        self.authorize_update(ctx)
        with self.db.session() as session:
            domain = get_or_404(session, Domain, domain_id, "domain")
            if "name" in changes and changes["name"] != domain.name:
                if session.scalar(select(Domain.id).where(Domain.name == changes["name"])):
                    raise Conflict(f"A domain named {changes['name']!r} already exists.")
            for key in ("name", "description", "enabled"):
                if key in changes:
                    setattr(domain, key, changes[key])
            extra = {k: v for k, v in changes.items()
                     if k not in ("name", "description", "enabled", "id")}
            if extra:
                domain.extra = {**domain.extra, **extra}
            self.changed(session)
            return domain

    def delete(self, ctx: ValidatedToken | None, domain_id: str) -> None:
        """Delete a disabled domain with everything in it."""
        authorize(ctx, "identity:delete_domain")
        with self.db.session() as session:
            domain = get_or_404(session, Domain, domain_id, "domain")
            if domain.enabled:
                raise Forbidden("Cannot delete a domain that is enabled, please disable it "
                                "first.")
            projects = list(session.scalars(
                select(Project).where(Project.domain_id == domain_id)))
            # children before parents
            while projects:
                parents = {p.parent_id for p in projects}
                leaves = [p for p in projects if p.id not in parents]
                for project in leaves:
                    self.identity.projects.delete_in(session, project)
                    projects.remove(project)
            for user_id in session.scalars(select(User.id).where(User.domain_id == domain_id)):
                self.identity.users.delete_in(session, user_id)
            for group_id in session.scalars(
                    select(Group.id).where(Group.domain_id == domain_id)):
                self.identity.groups.delete_in(session, group_id)
            session.execute(delete(Assignment).where(Assignment.target_id == domain_id))
            session.execute(delete(Role).where(Role.domain_id == domain_id))
            session.delete(domain)
            self.changed(session)

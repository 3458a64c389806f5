"""Roles and implied roles (a prior role brings the roles it implies)."""

from __future__ import annotations

from sqlalchemy import select

from onestack.common.errors import Conflict, NotFound
from onestack.db.models import ImpliedRole, Role
from onestack.services.identity.base import SubService, new_id


class Roles(SubService):
    def create(self, *, name: str, domain_id: str | None = None, description: str = "",
               id: str | None = None) -> Role:
        with self.db.session() as session:
            exists = select(Role.id).where(Role.name == name)
            exists = exists.where(Role.domain_id.is_(None) if domain_id is None
                                  else Role.domain_id == domain_id)
            if session.scalar(exists):
                raise Conflict(f"Conflict occurred attempting to store role - Duplicate "
                               f"entry found with name {name}.")
            role = Role(id=id or new_id(), name=name, domain_id=domain_id,
                        description=description)
            session.add(role)
            session.flush()
            return role

    def find(self, name: str) -> Role | None:
        with self.db.session() as session:
            return session.scalar(select(Role).where(Role.name == name,
                                                     Role.domain_id.is_(None)))

    def add_implied(self, prior_id: str, implied_id: str) -> None:
        with self.db.session() as session:
            for rid in (prior_id, implied_id):
                if session.get(Role, rid) is None:
                    raise NotFound(f"Could not find role: {rid}.")
            if session.get(ImpliedRole, (prior_id, implied_id)) is None:
                session.add(ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
                self.changed(session)

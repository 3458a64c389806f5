"""Groups of users; roles granted to a group reach every member.

Membership is effective at once: adding or removing a member changes the roles the
member's tokens carry (the write bumps the identity revision, so cached validations
are recomputed).
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, InvalidField, NotFound
from onestack.db.models import Assignment, Domain, Group, GroupMembership, User
from onestack.services.identity.base import SubService, apply_filters, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: Columns of a group; every other attribute a client sends is kept in ``extra``.
COLUMNS = ("name", "description")
#: Attributes that may be sent but never change or land in ``extra``.
FIXED = ("id", "domain_id", "links")


def _conflict(name: str, domain_id: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store group - Duplicate entry found "
                    f"with name {name} at domain ID {domain_id}.")


class Groups(SubService):
    def authorize_create(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create``, made before the request body is read."""
        authorize(ctx, "identity:create_group")

    def create(self, ctx: ValidatedToken | None = None, *, name: str,
               domain_id: str = "default", description: str = "", id: str | None = None,
               extra: dict[str, Any] | None = None) -> Group:
        """Create a group; an unknown domain is a 404, a taken name a 409."""
        self.authorize_create(ctx)
        name = name.strip()
        extra = {k: v for k, v in (extra or {}).items() if k not in COLUMNS + FIXED}
        with self.db.session() as session:
            if session.get(Domain, domain_id) is None:
                raise NotFound(f"Could not find domain: {domain_id}.")
            if session.scalar(select(Group.id).where(Group.domain_id == domain_id,
                                                     Group.name == name)):
                raise _conflict(name, domain_id)
            group = Group(id=id or new_id(), name=name, domain_id=domain_id,
                          description=description, extra=extra)
            session.add(group)
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(name, domain_id) from None
            self.changed(session)
            return group

    def get(self, ctx: ValidatedToken | None, group_id: str) -> Group:
        authorize(ctx, "identity:get_group", group_id=group_id)
        with self.db.session() as session:
            return get_or_404(session, Group, group_id, "group")

    def authorize_list(self, ctx: ValidatedToken | None) -> None:
        authorize(ctx, "identity:list_groups")

    def list(self, ctx: ValidatedToken | None, **filters: Any) -> list[Group]:
        """Groups matching equality filters (``name``, ``domain_id``)."""
        self.authorize_list(ctx)
        with self.db.session() as session:
            stmt = apply_filters(select(Group), Group, filters).order_by(Group.name, Group.id)
            return list(session.scalars(stmt))

    def authorize_update(self, ctx: ValidatedToken | None, group_id: str) -> None:
        """The policy check of ``update``, made before the request body is read."""
        authorize(ctx, "identity:update_group", group_id=group_id)

    def update(self, ctx: ValidatedToken | None, group_id: str, changes: dict[str, Any]
               ) -> Group:
        """Apply a PATCH body (already shape-checked); unknown keys go to ``extra``."""
        self.authorize_update(ctx, group_id)
        with self.db.session() as session:
            group = get_or_404(session, Group, group_id, "group")
            if "id" in changes and changes["id"] != group_id:
                raise InvalidField("group/id", "Cannot change group ID")
            if "domain_id" in changes and changes["domain_id"] != group.domain_id:
                raise InvalidField("group/domain_id", "Cannot change Domain ID")
            if "name" in changes:
                name = changes["name"].strip()
                if name != group.name and session.scalar(select(Group.id).where(
                        Group.domain_id == group.domain_id, Group.name == name)):
                    raise _conflict(name, group.domain_id)
                group.name = name
            if "description" in changes:
                group.description = changes["description"] or ""
            extra = {k: v for k, v in changes.items() if k not in COLUMNS + FIXED}
            if extra:
                group.extra = {**group.extra, **extra}
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(group.name, group.domain_id) from None
            self.changed(session)
            return group

    def delete(self, ctx: ValidatedToken | None, group_id: str) -> None:
        """Delete a group with its memberships and role assignments."""
        authorize(ctx, "identity:delete_group", group_id=group_id)
        with self.db.session() as session:
            get_or_404(session, Group, group_id, "group")
            self.delete_in(session, group_id)

    def delete_in(self, session: Session, group_id: str) -> None:
        session.execute(delete(Assignment).where(Assignment.actor_id == group_id))
        session.execute(delete(GroupMembership).where(GroupMembership.group_id == group_id))
        group = session.get(Group, group_id)
        if group is not None:
            session.delete(group)
        self.changed(session)

    # -- membership -----------------------------------------------------------------

    def _both(self, session: Session, group_id: str, user_id: str) -> None:
        get_or_404(session, Group, group_id, "group")
        get_or_404(session, User, user_id, "user")

    def add_user(self, ctx: ValidatedToken | None, group_id: str, user_id: str) -> None:
        """Make the user a member (being one already is no change)."""
        authorize(ctx, "identity:add_user_to_group", group_id=group_id, user_id=user_id)
        with self.db.session() as session:
            self._both(session, group_id, user_id)
            if session.get(GroupMembership, (user_id, group_id)) is None:
                session.add(GroupMembership(user_id=user_id, group_id=group_id))
                self.changed(session)

    def check_user(self, ctx: ValidatedToken | None, group_id: str, user_id: str) -> None:
        """Raise ``NotFound`` unless both exist and the user is a member."""
        authorize(ctx, "identity:check_user_in_group", group_id=group_id, user_id=user_id)
        with self.db.session() as session:
            self._both(session, group_id, user_id)
            if session.get(GroupMembership, (user_id, group_id)) is None:
                raise NotFound(f"User {user_id} is not a member of group {group_id}.")

    def remove_user(self, ctx: ValidatedToken | None, group_id: str, user_id: str) -> None:
        authorize(ctx, "identity:remove_user_from_group", group_id=group_id, user_id=user_id)
        with self.db.session() as session:
            self._both(session, group_id, user_id)
            membership = session.get(GroupMembership, (user_id, group_id))
            if membership is None:
                raise NotFound(f"User {user_id} is not a member of group {group_id}.")
            session.delete(membership)
            self.changed(session)

    def users(self, ctx: ValidatedToken | None, group_id: str, **filters: Any
              ) -> builtins.list[User]:
        """The members of a group, with equality filters on users."""
        authorize(ctx, "identity:list_users_in_group", group_id=group_id)
        with self.db.session() as session:
            get_or_404(session, Group, group_id, "group")
            stmt = select(User).join(GroupMembership, GroupMembership.user_id == User.id) \
                .where(GroupMembership.group_id == group_id)
            stmt = apply_filters(stmt, User, filters).order_by(User.name, User.id)
            return list(session.scalars(stmt))

    def for_user(self, ctx: ValidatedToken | None, user_id: str, **filters: Any
                 ) -> builtins.list[Group]:
        """The groups a user is a member of, with equality filters on groups."""
        authorize(ctx, "identity:list_groups_for_user", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            stmt = select(Group).join(GroupMembership, GroupMembership.group_id == Group.id) \
                .where(GroupMembership.user_id == user_id)
            stmt = apply_filters(stmt, Group, filters).order_by(Group.name, Group.id)
            return list(session.scalars(stmt))

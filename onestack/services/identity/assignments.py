"""Role assignments: grants to users and groups on projects and domains, and the
effective roles a user holds somewhere (groups, inheritance and implied roles applied)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from onestack.db.models import Assignment, GroupMembership, ImpliedRole, Project, Role
from onestack.services.identity.base import SubService

USER_PROJECT = "UserProject"
GROUP_PROJECT = "GroupProject"
USER_DOMAIN = "UserDomain"
GROUP_DOMAIN = "GroupDomain"


def expand_implied(session: Session, role_ids: Iterable[str]) -> set[str]:
    """The roles given plus every role they imply, transitively."""
    implied: dict[str, list[str]] = {}
    for prior, child in session.execute(
            select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
        implied.setdefault(prior, []).append(child)
    seen = set(role_ids)
    todo = list(seen)
    while todo:
        for child in implied.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def project_ancestors(session: Session, project: Project) -> list[str]:
    out: list[str] = []
    parent_id = project.parent_id
    while parent_id and parent_id not in out:
        out.append(parent_id)
        parent = session.get(Project, parent_id)
        parent_id = parent.parent_id if parent else None
    return out


class Assignments(SubService):
    def user_group_ids(self, session: Session, user_id: str) -> list[str]:
        return list(session.scalars(
            select(GroupMembership.group_id).where(GroupMembership.user_id == user_id)))

    def direct_role_ids(self, session: Session, user_id: str, project_id: str | None = None,
                        domain_id: str | None = None) -> set[str]:
        """Role ids held on the target through assignments (before implied roles)."""
        actors = [user_id, *self.user_group_ids(session, user_id)]
        if project_id:
            project = session.get(Project, project_id)
            if project is None:
                return set()
            ancestors = project_ancestors(session, project)
            cond = or_(
                and_(Assignment.type.in_((USER_PROJECT, GROUP_PROJECT)),
                     Assignment.target_id == project_id, Assignment.inherited.is_(False)),
                and_(Assignment.type.in_((USER_PROJECT, GROUP_PROJECT)),
                     Assignment.target_id.in_(ancestors), Assignment.inherited.is_(True)),
                and_(Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN)),
                     Assignment.target_id == project.domain_id,
                     Assignment.inherited.is_(True)),
            )
        elif domain_id:
            cond = and_(Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN)),
                        Assignment.target_id == domain_id, Assignment.inherited.is_(False))
        else:
            return set()
        return set(session.scalars(
            select(Assignment.role_id).where(Assignment.actor_id.in_(actors), cond)))

    def effective_roles(self, session: Session, user_id: str, project_id: str | None = None,
                        domain_id: str | None = None,
                        only: Iterable[str] | None = None) -> list[Role]:
        """The roles a token for this user and scope carries.

        ``only`` restricts the result to those roles (an application credential's), each
        kept only while the user still holds it, and then adds what they imply.
        """
        ids = expand_implied(session, self.direct_role_ids(session, user_id, project_id,
                                                           domain_id))
        if only is not None:
            ids = expand_implied(session, ids & set(only))
        if not ids:
            return []
        return list(session.scalars(select(Role).where(Role.id.in_(ids)).order_by(Role.name)))

    def grant(self, session: Session, type_: str, actor_id: str, target_id: str,
              role_id: str, inherited: bool = False) -> None:
        key = {"type": type_, "actor_id": actor_id, "target_id": target_id,
               "role_id": role_id, "inherited": inherited}
        if session.get(Assignment, key) is None:
            session.add(Assignment(**key))
            self.changed(session)

    def project_ids_for_user(self, session: Session, user_id: str) -> set[str]:
        """Every project on which the user holds some role (directly, through a group, or
        inherited from a domain or a parent project)."""
        actors = [user_id, *self.user_group_ids(session, user_id)]
        rows = session.execute(select(Assignment.type, Assignment.target_id,
                                      Assignment.inherited)
                               .where(Assignment.actor_id.in_(actors))).all()
        projects = {p.id: p for p in session.scalars(select(Project))}
        children: dict[str, list[str]] = {}
        for p in projects.values():
            if p.parent_id:
                children.setdefault(p.parent_id, []).append(p.id)
        out: set[str] = set()
        for type_, target, inherited in rows:
            if type_ in (USER_PROJECT, GROUP_PROJECT):
                if not inherited and target in projects:
                    out.add(target)
                elif inherited:
                    todo = list(children.get(target, []))
                    while todo:
                        pid = todo.pop()
                        out.add(pid)
                        todo.extend(children.get(pid, []))
            elif inherited:
                out.update(p.id for p in projects.values() if p.domain_id == target)
        return out

    def domain_ids_for_user(self, session: Session, user_id: str) -> set[str]:
        actors = [user_id, *self.user_group_ids(session, user_id)]
        return set(session.scalars(select(Assignment.target_id).where(
            Assignment.actor_id.in_(actors), Assignment.inherited.is_(False),
            Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN)))))

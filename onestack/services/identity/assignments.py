"""Role assignments: grants to users and groups on projects and domains, and the
effective roles a user holds somewhere (groups, inheritance and implied roles applied).

A grant is one ``Assignment`` row: (type, actor, target, role, inherited). A grant on
the system (the whole deployment, Keystone's system scope) has the target ``system``
and is never inherited. An inherited
grant on a domain reaches every project of the domain; on a project, every project
below it (not the project itself). Listing in *effective* mode expands group grants into
one entry per member, inherited grants into the projects they reach, and adds the roles
each role implies; domain-specific roles are then dropped, as they are from tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.db.models import (
    Assignment,
    Domain,
    Group,
    GroupMembership,
    ImpliedRole,
    Project,
    Role,
    User,
)
from onestack.services.identity.base import SubService, get_or_404
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

USER_PROJECT = "UserProject"
GROUP_PROJECT = "GroupProject"
USER_DOMAIN = "UserDomain"
GROUP_DOMAIN = "GroupDomain"
USER_SYSTEM = "UserSystem"
GROUP_SYSTEM = "GroupSystem"
#: The target id of every system grant (Keystone's only system, ``all``).
SYSTEM = "system"

USER_TYPES = (USER_PROJECT, USER_DOMAIN, USER_SYSTEM)
GROUP_TYPES = (GROUP_PROJECT, GROUP_DOMAIN, GROUP_SYSTEM)
PROJECT_TYPES = (USER_PROJECT, GROUP_PROJECT)
DOMAIN_TYPES = (USER_DOMAIN, GROUP_DOMAIN)
SYSTEM_TYPES = (USER_SYSTEM, GROUP_SYSTEM)


def assignment_type(user: bool, project: bool) -> str:
    if user:
        return USER_PROJECT if project else USER_DOMAIN
    return GROUP_PROJECT if project else GROUP_DOMAIN


def expand_implied(session: Session, role_ids: Iterable[str]) -> set[str]:
    """The roles given plus every role they imply, transitively."""
    implied = implied_edges(session)
    seen = set(role_ids)
    todo = list(seen)
    while todo:
        for child in implied.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def implied_edges(session: Session) -> dict[str, list[str]]:
    """prior role id -> the role ids it implies directly."""
    edges: dict[str, list[str]] = {}
    for prior, child in session.execute(
            select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
        edges.setdefault(prior, []).append(child)
    return edges


def project_ancestors(session: Session, project: Project) -> list[str]:
    out: list[str] = []
    parent_id = project.parent_id
    while parent_id and parent_id not in out:
        out.append(parent_id)
        parent = session.get(Project, parent_id)
        parent_id = parent.parent_id if parent else None
    return out


@dataclass(frozen=True)
class RoleAssignment:
    """One entry of ``GET /v3/role_assignments``.

    For a stored grant only the first six fields are set. Entries derived in effective
    mode also say where they come from (``via_*``), so that the grant behind each can be
    linked: the group the user is a member of, the project or domain an inherited grant
    sits on, and the role granted when ``role_id`` is one it implies.
    """

    role_id: str
    user_id: str | None = None
    group_id: str | None = None
    project_id: str | None = None
    domain_id: str | None = None
    #: An inherited grant, or an assignment that comes from one.
    inherited: bool = False
    via_group: str | None = None
    via_project: str | None = None
    via_domain: str | None = None
    granted_role_id: str | None = None
    #: The role that implies ``role_id`` directly (set with ``granted_role_id``).
    prior_role_id: str | None = None
    #: A grant on the system (neither project nor domain).
    system: bool = False

    @classmethod
    def from_row(cls, row: Assignment) -> RoleAssignment:
        user = row.type in USER_TYPES
        project = row.type in PROJECT_TYPES
        domain = row.type in DOMAIN_TYPES
        return cls(role_id=row.role_id,
                   user_id=row.actor_id if user else None,
                   group_id=None if user else row.actor_id,
                   project_id=row.target_id if project else None,
                   domain_id=row.target_id if domain else None,
                   inherited=row.inherited, system=row.type in SYSTEM_TYPES)


@dataclass
class AssignmentNames:
    """Names for ``include_names``: id -> (name, domain id) and domain id -> name."""

    roles: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    projects: dict[str, tuple[str, str]] = field(default_factory=dict)
    domains: dict[str, str] = field(default_factory=dict)


class _ProjectTree:
    """Every project's parent and domain, read once per listing."""

    def __init__(self, session: Session) -> None:
        self.domain: dict[str, str] = {}
        self.children: dict[str, list[str]] = {}
        self.parent: dict[str, str | None] = {}
        for pid, domain_id, parent_id in session.execute(
                select(Project.id, Project.domain_id, Project.parent_id)
                .order_by(Project.name, Project.id)):
            self.domain[pid] = domain_id
            self.parent[pid] = parent_id
            if parent_id:
                self.children.setdefault(parent_id, []).append(pid)

    def descendants(self, project_id: str) -> list[str]:
        out: list[str] = []
        todo = list(reversed(self.children.get(project_id, [])))
        while todo:
            pid = todo.pop()
            if pid in out:
                continue
            out.append(pid)
            todo.extend(reversed(self.children.get(pid, [])))
        return out

    def ancestors(self, project_id: str) -> list[str]:
        out: list[str] = []
        parent = self.parent.get(project_id)
        while parent and parent not in out:
            out.append(parent)
            parent = self.parent.get(parent)
        return out

    def in_domain(self, domain_id: str) -> list[str]:
        return [pid for pid, did in self.domain.items() if did == domain_id]


class Assignments(SubService):
    # -- what tokens carry ----------------------------------------------------------

    def user_group_ids(self, session: Session, user_id: str) -> list[str]:
        return list(session.scalars(
            select(GroupMembership.group_id).where(GroupMembership.user_id == user_id)))

    def direct_role_ids(self, session: Session, user_id: str, project_id: str | None = None,
                        domain_id: str | None = None, system: bool = False) -> set[str]:
        """Role ids held on the target through assignments (before implied roles)."""
        actors = [user_id, *self.user_group_ids(session, user_id)]
        if project_id:
            project = session.get(Project, project_id)
            if project is None:
                return set()
            ancestors = project_ancestors(session, project)
            cond = or_(
                and_(Assignment.type.in_(PROJECT_TYPES),
                     Assignment.target_id == project_id, Assignment.inherited.is_(False)),
                and_(Assignment.type.in_(PROJECT_TYPES),
                     Assignment.target_id.in_(ancestors), Assignment.inherited.is_(True)),
                and_(Assignment.type.in_(DOMAIN_TYPES),
                     Assignment.target_id == project.domain_id,
                     Assignment.inherited.is_(True)),
            )
        elif domain_id:
            cond = and_(Assignment.type.in_(DOMAIN_TYPES),
                        Assignment.target_id == domain_id, Assignment.inherited.is_(False))
        elif system:
            cond = and_(Assignment.type.in_(SYSTEM_TYPES), Assignment.target_id == SYSTEM)
        else:
            return set()
        return set(session.scalars(
            select(Assignment.role_id).where(Assignment.actor_id.in_(actors), cond)))

    def effective_roles(self, session: Session, user_id: str, project_id: str | None = None,
                        domain_id: str | None = None,
                        only: Iterable[str] | None = None,
                        system: bool = False) -> list[Role]:
        """The roles a token for this user and scope carries.

        Implied roles are added and domain-specific roles left out (they only serve to
        imply global ones). ``only`` restricts the result to those roles (an
        application credential's), each kept only while the user still holds it, and
        then adds what they imply.
        """
        ids = expand_implied(session, self.direct_role_ids(session, user_id, project_id,
                                                           domain_id, system))
        if only is not None:
            ids = expand_implied(session, ids & set(only))
        if not ids:
            return []
        return list(session.scalars(select(Role).where(
            Role.id.in_(ids), Role.domain_id.is_(None)).order_by(Role.name)))

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
        if not any(inherited for _, _, inherited in rows):  # the common case: no tree walk
            direct = {t for type_, t, _ in rows if type_ in PROJECT_TYPES}
            return set(session.scalars(select(Project.id).where(Project.id.in_(direct))))
        projects = {row.id: row for row in session.execute(
            select(Project.id, Project.parent_id, Project.domain_id))}
        children: dict[str, list[str]] = {}
        for p in projects.values():
            if p.parent_id:
                children.setdefault(p.parent_id, []).append(p.id)
        out: set[str] = set()
        for type_, target, inherited in rows:
            if type_ in PROJECT_TYPES:
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
            Assignment.type.in_(DOMAIN_TYPES))))

    # -- grants ---------------------------------------------------------------------

    def _grant_key(self, session: Session, role_id: str | None, *, user_id: str | None,
                   group_id: str | None, project_id: str | None, domain_id: str | None,
                   inherited: bool, check_actor: bool = True,
                   ) -> tuple[Role | None, Project | None, dict[str, object]]:
        """Check that what a grant names exists (404 otherwise); its primary key."""
        role = get_or_404(session, Role, role_id, "role") if role_id is not None else None
        if check_actor:
            if user_id is not None:
                get_or_404(session, User, user_id, "user")
            else:
                get_or_404(session, Group, str(group_id), "group")
        project = None
        if project_id is not None:
            project = get_or_404(session, Project, project_id, "project")
        else:
            get_or_404(session, Domain, str(domain_id), "domain")
        key: dict[str, object] = {
            "type": assignment_type(user_id is not None, project_id is not None),
            "actor_id": user_id if user_id is not None else group_id,
            "target_id": project_id if project_id is not None else domain_id,
            "role_id": role_id, "inherited": inherited}
        return role, project, key

    @staticmethod
    def _not_found(key: dict[str, object]) -> NotFound:
        return NotFound(f"Could not find role assignment with role: {key['role_id']}, user "
                        f"or group: {key['actor_id']}, project, domain, or system: "
                        f"{key['target_id']}.")

    def create_grant(self, ctx: ValidatedToken | None, role_id: str, *, user_id: str | None = None,
                     group_id: str | None = None, project_id: str | None = None,
                     domain_id: str | None = None, inherited: bool = False) -> None:
        """Grant a role to a user or group on a project or domain (idempotent)."""
        authorize(ctx, "identity:create_grant", role_id=role_id, user_id=user_id, group_id=group_id,
                  project_id=project_id, domain_id=domain_id)
        with self.db.session() as session:
            role, project, key = self._grant_key(
                session, role_id, user_id=user_id, group_id=group_id,
                project_id=project_id, domain_id=domain_id, inherited=inherited)
            assert role is not None
            if role.domain_id and project is not None and project.domain_id != role.domain_id:
                raise Forbidden(f"Project {project_id} must be in the same domain as the "
                                f"role {role_id} being assigned.")
            self.grant(session, str(key["type"]), str(key["actor_id"]),
                       str(key["target_id"]), role_id, inherited)

    def check_grant(self, ctx: ValidatedToken | None, role_id: str, *, user_id: str | None = None,
                    group_id: str | None = None, project_id: str | None = None,
                    domain_id: str | None = None, inherited: bool = False) -> Role:
        authorize(ctx, "identity:check_grant", role_id=role_id, user_id=user_id, group_id=group_id,
                  project_id=project_id, domain_id=domain_id)
        with self.db.session() as session:
            role, _, key = self._grant_key(
                session, role_id, user_id=user_id, group_id=group_id,
                project_id=project_id, domain_id=domain_id, inherited=inherited)
            if session.get(Assignment, key) is None:
                raise self._not_found(key)
            assert role is not None
            return role

    def revoke_grant(self, ctx: ValidatedToken | None, role_id: str, *, user_id: str | None = None,
                     group_id: str | None = None, project_id: str | None = None,
                     domain_id: str | None = None, inherited: bool = False) -> None:
        """Remove a grant; tokens relying on it stop validating at once.

        The user or group need not exist any more (grants of deleted actors can go).
        """
        authorize(ctx, "identity:revoke_grant", role_id=role_id, user_id=user_id,
                  group_id=group_id, project_id=project_id, domain_id=domain_id)
        with self.db.session() as session:
            _, _, key = self._grant_key(
                session, role_id, user_id=user_id, group_id=group_id,
                project_id=project_id, domain_id=domain_id, inherited=inherited,
                check_actor=False)
            row = session.get(Assignment, key)
            if row is None:
                raise self._not_found(key)
            session.delete(row)
            self.changed(session)

    def list_grants(self, ctx: ValidatedToken | None, *, user_id: str | None = None,
                    group_id: str | None = None, project_id: str | None = None,
                    domain_id: str | None = None, inherited: bool = False) -> list[Role]:
        """The roles granted directly to the actor on the target."""
        authorize(ctx, "identity:list_grants", user_id=user_id, group_id=group_id,
                  project_id=project_id, domain_id=domain_id)
        with self.db.session() as session:
            _, _, key = self._grant_key(
                session, None, user_id=user_id, group_id=group_id, project_id=project_id,
                domain_id=domain_id, inherited=inherited)
            role_ids = select(Assignment.role_id).where(
                Assignment.type == key["type"], Assignment.actor_id == key["actor_id"],
                Assignment.target_id == key["target_id"],
                Assignment.inherited.is_(inherited))
            return list(session.scalars(
                select(Role).where(Role.id.in_(role_ids)).order_by(Role.name)))

    # -- system grants --------------------------------------------------------------

    def _system_key(self, session: Session, role_id: str | None, *, user_id: str | None,
                    group_id: str | None, check_actor: bool = True,
                    ) -> tuple[Role | None, dict[str, object]]:
        role = get_or_404(session, Role, role_id, "role") if role_id is not None else None
        if check_actor:
            if user_id is not None:
                get_or_404(session, User, user_id, "user")
            else:
                get_or_404(session, Group, str(group_id), "group")
        key: dict[str, object] = {
            "type": USER_SYSTEM if user_id is not None else GROUP_SYSTEM,
            "actor_id": user_id if user_id is not None else group_id,
            "target_id": SYSTEM, "role_id": role_id, "inherited": False}
        return role, key

    @staticmethod
    def _system_rule(action: str, user_id: str | None) -> str:
        return f"identity:{action}_for_{'user' if user_id is not None else 'group'}"

    def create_system_grant(self, ctx: ValidatedToken | None, role_id: str, *,
                            user_id: str | None = None, group_id: str | None = None) -> None:
        """Grant a role to a user or group on the system (idempotent)."""
        authorize(ctx, self._system_rule("create_system_grant", user_id), role_id=role_id,
                  user_id=user_id, group_id=group_id)
        with self.db.session() as session:
            role, key = self._system_key(session, role_id, user_id=user_id,
                                         group_id=group_id)
            assert role is not None
            if role.domain_id:
                raise BadRequest(f"Role {role_id} is a domain-specific role; it cannot be "
                                 "granted on the system.")
            self.grant(session, str(key["type"]), str(key["actor_id"]), SYSTEM, role_id)

    def check_system_grant(self, ctx: ValidatedToken | None, role_id: str, *,
                           user_id: str | None = None, group_id: str | None = None) -> Role:
        authorize(ctx, self._system_rule("check_system_grant", user_id), role_id=role_id,
                  user_id=user_id, group_id=group_id)
        with self.db.session() as session:
            role, key = self._system_key(session, role_id, user_id=user_id,
                                         group_id=group_id)
            if session.get(Assignment, key) is None:
                raise self._not_found(key)
            assert role is not None
            return role

    def revoke_system_grant(self, ctx: ValidatedToken | None, role_id: str, *,
                            user_id: str | None = None, group_id: str | None = None) -> None:
        """Remove a system grant; tokens relying on it stop validating at once."""
        authorize(ctx, self._system_rule("revoke_system_grant", user_id), role_id=role_id,
                  user_id=user_id, group_id=group_id)
        with self.db.session() as session:
            _, key = self._system_key(session, role_id, user_id=user_id, group_id=group_id,
                                      check_actor=False)
            row = session.get(Assignment, key)
            if row is None:
                raise self._not_found(key)
            session.delete(row)
            self.changed(session)

    def list_system_grants(self, ctx: ValidatedToken | None, *, user_id: str | None = None,
                           group_id: str | None = None) -> list[Role]:
        """The roles granted directly to the user or group on the system."""
        authorize(ctx, self._system_rule("list_system_grants", user_id), user_id=user_id,
                  group_id=group_id)
        with self.db.session() as session:
            _, key = self._system_key(session, None, user_id=user_id, group_id=group_id)
            role_ids = select(Assignment.role_id).where(
                Assignment.type == key["type"], Assignment.actor_id == key["actor_id"],
                Assignment.target_id == SYSTEM)
            return list(session.scalars(
                select(Role).where(Role.id.in_(role_ids)).order_by(Role.name)))

    def system_holders(self, session: Session, user_id: str) -> bool:
        """Whether the user holds some role on the system (directly or via a group)."""
        return bool(self.direct_role_ids(session, user_id, system=True))

    # -- listing --------------------------------------------------------------------

    def authorize_list_role_assignments(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``list_role_assignments``, made before the query is read."""
        authorize(ctx, "identity:list_role_assignments")

    def list_role_assignments(
            self, ctx: ValidatedToken | None, *, role_id: str | None = None,
            user_id: str | None = None,
            group_id: str | None = None, project_id: str | None = None,
            domain_id: str | None = None, include_subtree: bool = False,
            inherited: bool | None = None, effective: bool = False,
            system: str | None = None) -> list[RoleAssignment]:
        """``GET /v3/role_assignments``, with Keystone's semantics.

        ``inherited``: None for all grants, True for inherited ones only, False for the
        others. ``system``: ``"all"`` lists only the grants on the system (any other
        value names no system, so nothing).
        """
        self.authorize_list_role_assignments(ctx)
        on_system = system is not None
        if on_system and (system != "all" or inherited):
            return []
        with self.db.session() as session:
            tree = _ProjectTree(session)
            subtree: list[str] = []
            if project_id and (include_subtree or effective):
                if project_id not in tree.domain:
                    raise NotFound(f"Could not find project: {project_id}.")
                if include_subtree:
                    subtree = tree.descendants(project_id)
            if not effective:
                rows = self._rows(
                    session, role_id=role_id, user_id=user_id,
                    group_ids=[group_id] if group_id else None, domain_id=domain_id,
                    project_ids=[project_id, *subtree] if project_id else None,
                    inherited=inherited, system=on_system)
                return [RoleAssignment.from_row(r) for r in rows]
            return self._effective(session, tree, role_id=role_id, user_id=user_id,
                                   group_id=group_id, project_id=project_id,
                                   domain_id=domain_id, subtree=subtree,
                                   inherited=inherited, system=on_system)

    def _rows(self, session: Session, *, role_id: str | None = None,
              user_id: str | None = None, group_ids: list[str] | None = None,
              domain_id: str | None = None, project_ids: list[str] | None = None,
              inherited: bool | None = None, system: bool = False) -> list[Assignment]:
        stmt = select(Assignment)
        if role_id is not None:
            stmt = stmt.where(Assignment.role_id == role_id)
        if user_id is not None:
            stmt = stmt.where(Assignment.actor_id == user_id,
                              Assignment.type.in_(USER_TYPES))
        elif group_ids is not None:
            stmt = stmt.where(Assignment.actor_id.in_(group_ids),
                              Assignment.type.in_(GROUP_TYPES))
        if domain_id is not None:
            stmt = stmt.where(Assignment.target_id == domain_id,
                              Assignment.type.in_(DOMAIN_TYPES))
        elif project_ids is not None:
            stmt = stmt.where(Assignment.target_id.in_(project_ids),
                              Assignment.type.in_(PROJECT_TYPES))
        elif system:
            stmt = stmt.where(Assignment.target_id == SYSTEM,
                              Assignment.type.in_(SYSTEM_TYPES))
        if inherited is not None:
            stmt = stmt.where(Assignment.inherited.is_(inherited))
        order = (Assignment.type, Assignment.target_id, Assignment.actor_id,
                 Assignment.role_id)
        return list(session.scalars(stmt.order_by(*order)))

    def _effective(self, session: Session, tree: _ProjectTree, *, role_id: str | None,
                   user_id: str | None, group_id: str | None, project_id: str | None,
                   domain_id: str | None, subtree: list[str], inherited: bool | None,
                   system: bool = False) -> list[RoleAssignment]:
        if group_id or (domain_id and inherited):
            return []  # no group or inherited-domain entries survive expansion
        if domain_id:
            inherited = False  # domains inherit nothing
        interest = [project_id, *subtree] if project_id else None

        def for_actor(user: str | None = None,
                      groups: list[str] | None = None) -> list[Assignment]:
            refs: list[Assignment] = []
            if inherited is not True:
                refs += self._rows(session, user_id=user, group_ids=groups,
                                   domain_id=domain_id, project_ids=interest,
                                   inherited=False, system=system)
            if inherited is not False and not system:
                if project_id:
                    refs += self._rows(session, user_id=user, group_ids=groups,
                                       domain_id=tree.domain[project_id], inherited=True)
                    sources = tree.ancestors(project_id)
                    if subtree:  # inherited grants inside the subtree reach below them
                        sources += [project_id, *subtree]
                    if sources:
                        refs += self._rows(session, user_id=user, group_ids=groups,
                                           project_ids=sources, inherited=True)
                else:
                    refs += self._rows(session, user_id=user, group_ids=groups,
                                       inherited=True)
            return refs

        rows = for_actor(user=user_id)
        if user_id:
            group_ids = self.user_group_ids(session, user_id)
            if group_ids:
                rows += for_actor(groups=group_ids)

        members: dict[str, list[str]] = {}

        def users_of(ref: RoleAssignment) -> list[str]:
            if ref.user_id:
                return [ref.user_id]
            if user_id:
                return [user_id]
            gid = str(ref.group_id)
            if gid not in members:
                members[gid] = list(session.scalars(
                    select(GroupMembership.user_id).where(GroupMembership.group_id == gid)
                    .order_by(GroupMembership.user_id)))
            return members[gid]

        def expand(ref: RoleAssignment) -> Iterator[RoleAssignment]:
            if ref.inherited:
                if project_id:
                    pids = list(interest or [])
                    if subtree and ref.project_id in pids:
                        pids = tree.descendants(str(ref.project_id))
                elif ref.domain_id:
                    pids = tree.in_domain(ref.domain_id)
                else:
                    pids = tree.descendants(str(ref.project_id))
                for uid in users_of(ref):
                    for pid in pids:
                        yield RoleAssignment(role_id=ref.role_id, user_id=uid,
                                             project_id=pid, inherited=True,
                                             via_group=ref.group_id,
                                             via_project=ref.project_id,
                                             via_domain=ref.domain_id)
            elif ref.group_id:
                for uid in users_of(ref):
                    yield dataclasses.replace(ref, user_id=uid, group_id=None,
                                              via_group=ref.group_id)
            else:
                yield ref

        entries = [e for row in rows for e in expand(RoleAssignment.from_row(row))]
        entries = self._add_implied(session, entries)
        global_roles = set(session.scalars(select(Role.id).where(Role.domain_id.is_(None))))
        entries = [e for e in entries if e.role_id in global_roles
                   and (role_id is None or e.role_id == role_id)]
        return list(dict.fromkeys(entries))

    def _add_implied(self, session: Session,
                     entries: list[RoleAssignment]) -> list[RoleAssignment]:
        edges = implied_edges(session)
        out: list[RoleAssignment] = []
        for entry in entries:
            out.append(entry)
            seen = {entry.role_id}
            todo = [entry.role_id]
            while todo:
                prior = todo.pop()
                for child in edges.get(prior, ()):
                    if child in seen:
                        continue
                    seen.add(child)
                    todo.append(child)
                    out.append(dataclasses.replace(entry, role_id=child,
                                                   granted_role_id=entry.role_id,
                                                   prior_role_id=prior))
        return out

    def names(self, entries: list[RoleAssignment]) -> AssignmentNames:
        """Everything ``include_names`` shows for these entries."""
        names = AssignmentNames()
        ids: dict[str, set[str]] = {"role": set(), "user": set(), "group": set(),
                                    "project": set(), "domain": set()}
        for e in entries:
            ids["role"].add(e.role_id)
            for kind, value in (("user", e.user_id), ("group", e.group_id),
                                ("project", e.project_id), ("domain", e.domain_id)):
                if value:
                    ids[kind].add(value)
        with self.db.session() as session:
            for r in session.scalars(select(Role).where(Role.id.in_(ids["role"]))):
                names.roles[r.id] = (r.name, r.domain_id)
            for u in session.scalars(select(User).where(User.id.in_(ids["user"]))):
                names.users[u.id] = (u.name, u.domain_id)
            for g in session.scalars(select(Group).where(Group.id.in_(ids["group"]))):
                names.groups[g.id] = (g.name, g.domain_id)
            for p in session.scalars(select(Project).where(Project.id.in_(ids["project"]))):
                names.projects[p.id] = (p.name, p.domain_id)
            domain_ids = set(ids["domain"])
            for table in (names.roles, names.users, names.groups, names.projects):
                domain_ids.update(d for _, d in table.values() if d)
            for d in session.scalars(select(Domain).where(Domain.id.in_(domain_ids))):
                names.domains[d.id] = d.name
        return names

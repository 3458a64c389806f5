"""Server groups (os-server-groups): named sets of servers with an (anti-)affinity
policy the scheduler honours (scheduler hint ``{"group": <id>}``).

A group belongs to a project; its members are ``server_group_members`` rows, added by
the server create (``add_member``) and shown while their servers exist. Other projects'
groups are answered with 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Instance, ServerGroup, ServerGroupMember, utcnow
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclass
class GroupView:
    """A group as the API renders it, with the members to show (servers that still
    exist)."""

    id: str
    name: str
    policy: str
    rules: dict[str, Any]
    project_id: str
    user_id: str
    members: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, group: ServerGroup, members: list[str]) -> GroupView:
        return cls(id=group.id, name=group.name, policy=group.policy,
                   rules=dict(group.rules or {}), project_id=group.project_id,
                   user_id=group.user_id, members=list(members))


def not_found(group_id: str) -> NotFound:
    return NotFound(f"Instance group {group_id} could not be found.")


def live_members(session: Session, groups: list[ServerGroup]) -> dict[str, list[str]]:
    """group id -> uuids of its members whose servers are not deleted."""
    uuids = {m.instance_uuid for g in groups for m in g.members}
    deleted: set[str] = set()
    if uuids:
        deleted = set(session.scalars(select(Instance.uuid).where(
            Instance.uuid.in_(uuids), Instance.deleted.is_(True))))
    return {g.id: [m.instance_uuid for m in g.members if m.instance_uuid not in deleted]
            for g in groups}


class ServerGroups:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    # -- for the servers service ----------------------------------------------------

    def add_member(self, session: Session, group_id: str, instance_uuid: str,
                   ctx: ValidatedToken) -> ServerGroup:
        """Put a new server into a group (the scheduler hint ``group``), in the server
        create's transaction: 400 if the caller cannot see the group, Nova's 403 if the
        group is full (quota ``server_group_members``)."""
        group = session.get(ServerGroup, group_id)
        if group is None or not policy.project_reader(ctx, group.project_id):
            raise BadRequest(f"Instance group {group_id} could not be found.")
        if any(m.instance_uuid == instance_uuid for m in group.members):
            return group
        self.compute.quotas.check(session, group.project_id, {"server_group_members": 1},
                                  user_id=ctx.user_id, group_id=group.id)
        group.members.append(ServerGroupMember(group_id=group.id,
                                               instance_uuid=instance_uuid))
        session.flush()
        return group

    @staticmethod
    def group_of(session: Session, instance_uuid: str) -> ServerGroup | None:
        """The group a server belongs to, if any."""
        return session.scalar(select(ServerGroup).join(ServerGroupMember).where(
            ServerGroupMember.instance_uuid == instance_uuid))

    @staticmethod
    def forget_instance(session: Session, instance_uuid: str) -> None:
        """Drop a (deleted) server from its group."""
        session.execute(delete(ServerGroupMember).where(
            ServerGroupMember.instance_uuid == instance_uuid))

    # -- the API --------------------------------------------------------------------

    def _get_visible(self, session: Session, ctx: ValidatedToken, group_id: str
                     ) -> ServerGroup:
        group = session.get(ServerGroup, group_id)
        if group is None or not policy.project_reader(ctx, group.project_id):
            raise not_found(group_id)
        return group

    def list(self, ctx: ValidatedToken, all_projects: bool = False, limit: int | None = None,
             offset: int = 0) -> list[GroupView]:
        """The caller's project's groups; every project's for an administrator asking
        ``all_projects`` (others asking get their own, as in Nova)."""
        policy.require_reader(ctx, "os_compute_api:os-server-groups:index", ctx.project_id)
        stmt = select(ServerGroup).order_by(ServerGroup.created_at, ServerGroup.id)
        if not (all_projects and ctx.is_admin):
            stmt = stmt.where(ServerGroup.project_id == (ctx.project_id or ""))
        if offset:
            stmt = stmt.offset(offset)
        if limit:
            stmt = stmt.limit(limit)
        with self.db.session() as session:
            groups = list(session.scalars(stmt))
            members = live_members(session, groups)
        return [GroupView.of(g, members[g.id]) for g in groups]

    def get(self, ctx: ValidatedToken, group_id: str) -> GroupView:
        with self.db.session() as session:
            group = self._get_visible(session, ctx, group_id)
            return GroupView.of(group, live_members(session, [group])[group.id])

    def create(self, ctx: ValidatedToken, name: str, policy_name: str,
               rules: dict[str, Any] | None = None) -> GroupView:
        project_id = ctx.project_id
        policy.require_member(ctx, "os_compute_api:os-server-groups:create", project_id)
        if project_id is None:
            raise BadRequest("A project-scoped token is needed to create a server group.")
        if policy_name not in POLICIES:
            raise BadRequest(f"Invalid server group policy {policy_name!r}.")
        rules = dict(rules or {})
        if rules and policy_name != "anti-affinity":
            raise BadRequest("Only anti-affinity policy supports rules.")
        with self.db.session() as session:
            self.compute.quotas.check(session, project_id, {"server_groups": 1})
            group = ServerGroup(id=str(uuid.uuid4()), name=name, project_id=project_id,
                                user_id=ctx.user_id, policy=policy_name, rules=rules,
                                created_at=utcnow(), members=[])
            session.add(group)
            session.flush()
            return GroupView.of(group, [])

    def delete(self, ctx: ValidatedToken, group_id: str) -> None:
        with self.db.session() as session:
            group = self._get_visible(session, ctx, group_id)
            policy.require_member(ctx, "os_compute_api:os-server-groups:delete",
                                  group.project_id)
            session.delete(group)

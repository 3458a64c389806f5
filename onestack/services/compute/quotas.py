"""Compute quotas (os-quota-sets, os-quota-class-sets, limits): Nova's resources, their
limits, and their usage counted from the tables themselves.

A limit comes from, in order: the project's own row in ``compute_quotas``; the
``default`` quota class (rows whose ``project_id`` is ``class:default``, set through
os-quota-class-sets, as Nova's ``quota_classes`` table); the ``[compute] quota_*``
configuration. -1 is unlimited.

Per-user limits (``?user_id=`` on os-quota-sets, Nova's ``project_user_quotas``) sit in
``compute_user_quotas``: a user's limit is its own row, else the project's. What a user
creates is checked against both the project's limits (everyone's usage) and, when the
user has rows of its own, the user's (that user's usage: its servers in the project,
its key pairs, its server groups). A user's limit may not exceed what the project has
left after the other users' limits (Nova's settable maximum), nor go below the user's
usage; a project's limit may not go below the sum of its users' limits.

There is no reservation ledger: usage is counted when checked (non-deleted instances
of the project for instances, cores and ram; the user's key pairs; the project's server
groups; a group's members), in the caller's transaction, just before the insert it
guards. Two requests racing for the last unit can both pass, as in Nova without
``recheck_quota``; the overshoot is bounded by the number of concurrent requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.db.models import (
    ComputeQuota,
    ComputeUserQuota,
    Instance,
    KeyPair,
    ServerGroup,
    ServerGroupMember,
)
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: Every resource Nova knows, in its API order (alphabetical).
RESOURCES = (
    "cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
    "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
    "metadata_items", "ram", "security_group_rules", "security_groups",
    "server_group_members", "server_groups",
)
#: nova-network's quotas: kept (always unlimited unless set) for old microversions.
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
PERSONALITY_RESOURCES = ("injected_files", "injected_file_content_bytes",
                         "injected_file_path_bytes")
#: Resources whose usage is counted (the others limit one request: metadata items of a
#: server, injected files...).
COUNTED = ("instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members")

#: ``project_id`` of the rows holding a quota class's limits.
CLASS_PREFIX = "class:"
DEFAULT_CLASS = "default"
#: The longest class name a row can hold (``project_id`` is 64 characters).
MAX_CLASS_NAME = 64 - len(CLASS_PREFIX)

_INSTANCE_RESOURCES = ("instances", "cores", "ram")


class OverQuota(Forbidden):
    """Nova answers quota errors on create with 403 ``forbidden``."""

    def __init__(self, message: str, overs: list[str]) -> None:
        super().__init__(message)
        self.overs = overs


def configured_defaults(config: Any) -> dict[str, int]:
    """The defaults from ``[compute] quota_*``; nova-network's are unlimited."""
    section = config.compute
    out = {name: -1 for name in RESOURCES}
    for name in RESOURCES:
        if name not in NETWORK_RESOURCES:
            out[name] = int(getattr(section, f"quota_{name}"))
    return out


def _over_message(overs: list[str], requested: Mapping[str, Any],
                  used: Mapping[str, int], limits: Mapping[str, int]) -> str:
    """Nova's message for each kind of resource (the first over-limit one decides)."""
    first = overs[0]
    if first in _INSTANCE_RESOURCES:
        names = [r for r in overs if r in _INSTANCE_RESOURCES]
        return ("Quota exceeded for {o}: Requested {r}, but already used {u} of {a} {o}"
                .format(o=", ".join(names),
                        r=", ".join(str(requested[n]) for n in names),
                        u=", ".join(str(used[n]) for n in names),
                        a=", ".join(str(limits[n]) for n in names)))
    if first == "key_pairs":
        return "Quota exceeded, too many key pairs."
    if first == "server_groups":
        return "Quota exceeded, too many server groups."
    if first == "server_group_members":
        return "Quota exceeded, too many servers in group"
    if first == "metadata_items":
        return f"Maximum number of metadata items exceeds {limits[first]}"
    if first == "injected_files":
        return "Personality file limit exceeded"
    if first == "injected_file_path_bytes":
        return f"Personality file path exceeds maximum {limits[first]}"
    if first == "injected_file_content_bytes":
        return f"Personality file content exceeds maximum {limits[first]}"
    return f"Quota exceeded for resources: {overs}"


def _check_bounds(name: str, value: int, minimum: int, maximum: int) -> None:
    """Nova's ``_validate_quota_limit`` (-1 is infinity on every side)."""
    def inf(v: int) -> float:
        return float("inf") if v == -1 else v

    if inf(value) < inf(minimum):
        raise BadRequest(f"Quota limit {value} for {name} must be greater than or equal "
                         f"to already used and reserved {minimum}.")
    if inf(value) > inf(maximum):
        raise BadRequest(f"Quota limit {value} for {name} must be less than or equal to "
                         f"{maximum}.")


class ComputeQuotas:
    """Limits and usage for the quota APIs, and the checks other services run before
    they create something."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    # -- limits -------------------------------------------------------------------------

    def class_limits(self, session: Session, class_name: str = DEFAULT_CLASS
                     ) -> dict[str, int]:
        """A quota class's limits: the ``default`` class's rows over the configured
        defaults, then the named class's rows (Nova's ``get_class_quotas``)."""
        out = configured_defaults(self.compute.config)
        names = [DEFAULT_CLASS] if class_name == DEFAULT_CLASS else [DEFAULT_CLASS,
                                                                     class_name]
        for name in names:
            for row in session.scalars(select(ComputeQuota).where(
                    ComputeQuota.project_id == CLASS_PREFIX + name)):
                if row.resource in out:
                    out[row.resource] = row.hard_limit
        return out

    def limits(self, session: Session, project_id: str | None) -> dict[str, int]:
        """Every resource's limit for a project."""
        out = self.class_limits(session)
        if project_id:
            for row in session.scalars(select(ComputeQuota).where(
                    ComputeQuota.project_id == project_id)):
                if row.resource in out:
                    out[row.resource] = row.hard_limit
        return out

    @staticmethod
    def user_rows(session: Session, project_id: str | None, user_id: str | None
                  ) -> dict[str, int]:
        """A user's own limits in a project (resource -> limit); empty if none."""
        if not project_id or not user_id:
            return {}
        return {row.resource: row.hard_limit for row in session.scalars(
            select(ComputeUserQuota).where(ComputeUserQuota.project_id == project_id,
                                           ComputeUserQuota.user_id == user_id))}

    def user_limits(self, session: Session, project_id: str | None, user_id: str | None
                    ) -> dict[str, int]:
        """A user's limits in a project: its own rows over the project's limits."""
        out = self.limits(session, project_id)
        out.update({k: v for k, v in self.user_rows(session, project_id, user_id).items()
                    if k in out})
        return out

    def limit(self, session: Session, project_id: str | None, resource: str) -> int:
        """One resource's limit for a project (-1: unlimited)."""
        if resource not in RESOURCES:
            raise ValueError(f"unknown compute quota resource {resource!r}")
        return self.limits(session, project_id)[resource]

    # -- usage --------------------------------------------------------------------------

    @staticmethod
    def instance_usage(session: Session, project_id: str | None, user_id: str | None = None
                       ) -> dict[str, int]:
        """``instances``, ``cores`` and ``ram`` used by a project's non-deleted servers
        (only those ``user_id`` created, when given)."""
        if not project_id:
            return {"instances": 0, "cores": 0, "ram": 0}
        stmt = select(func.count(), func.coalesce(func.sum(Instance.vcpus), 0),
                      func.coalesce(func.sum(Instance.memory_mb), 0)).where(
            Instance.project_id == project_id, Instance.deleted.is_(False))
        if user_id is not None:
            stmt = stmt.where(Instance.user_id == user_id)
        count, cores, ram = session.execute(stmt).one()
        return {"instances": int(count), "cores": int(cores), "ram": int(ram)}

    @staticmethod
    def keypair_count(session: Session, user_id: str | None) -> int:
        if not user_id:
            return 0
        return int(session.scalar(select(func.count()).select_from(KeyPair)
                                  .where(KeyPair.user_id == user_id)) or 0)

    @staticmethod
    def server_group_count(session: Session, project_id: str | None,
                           user_id: str | None = None) -> int:
        if not project_id:
            return 0
        stmt = select(func.count()).select_from(ServerGroup).where(
            ServerGroup.project_id == project_id)
        if user_id is not None:
            stmt = stmt.where(ServerGroup.user_id == user_id)
        return int(session.scalar(stmt) or 0)

    @staticmethod
    def group_member_count(session: Session, group_id: str) -> int:
        """Members of a group whose servers still exist (deleted ones do not count)."""
        deleted = select(Instance.uuid).where(Instance.deleted.is_(True))
        return int(session.scalar(
            select(func.count()).select_from(ServerGroupMember)
            .where(ServerGroupMember.group_id == group_id,
                   ServerGroupMember.instance_uuid.not_in(deleted))) or 0)

    def usages(self, session: Session, project_id: str | None) -> dict[str, int]:
        """``in_use`` per resource for a project, as Nova's quota detail and limits
        report it: key pairs and group members are per user / per group, so they show 0
        here, as in Nova."""
        out = {name: 0 for name in RESOURCES}
        out.update(self.instance_usage(session, project_id))
        out["server_groups"] = self.server_group_count(session, project_id)
        return out

    def user_usages(self, session: Session, project_id: str, user_id: str
                    ) -> dict[str, int]:
        """``in_use`` per resource for one user in a project: its servers, its key
        pairs, its server groups."""
        out = {name: 0 for name in RESOURCES}
        out.update(self.instance_usage(session, project_id, user_id))
        out["server_groups"] = self.server_group_count(session, project_id, user_id)
        out["key_pairs"] = self.keypair_count(session, user_id)
        return out

    # -- checks -------------------------------------------------------------------------

    def check(self, session: Session, project_id: str | None, deltas: Mapping[str, int],
              user_id: str | None = None, group_id: str | None = None) -> None:
        """Raise ``OverQuota`` (403, Nova's message) unless the project may add
        ``deltas`` (resource -> how many more). Counted resources compare usage + delta
        with the limit (a delta of 0 re-checks); the others (``metadata_items``,
        ``injected_*``) compare the delta itself. ``key_pairs`` needs ``user_id``,
        ``server_group_members`` needs ``group_id``. A ``user_id`` with limits of its own
        in the project is checked against those too, with its own usage."""
        self._check_project(session, project_id, deltas, user_id, group_id)
        if user_id and project_id and self.user_rows(session, project_id, user_id):
            self._check_user(session, project_id, user_id, deltas)

    def _check_user(self, session: Session, project_id: str, user_id: str,
                    deltas: Mapping[str, int]) -> None:
        limits = self.user_limits(session, project_id, user_id)
        usage = self.user_usages(session, project_id, user_id)
        used: dict[str, int] = {}
        overs: list[str] = []
        for resource, delta in deltas.items():
            limit = limits[resource]
            if limit < 0:
                continue
            used[resource] = usage[resource] if resource in COUNTED else 0
            if resource == "server_group_members":
                continue  # per group, checked with the project
            if used[resource] + delta > limit:
                overs.append(resource)
        if overs:
            raise OverQuota(_over_message(overs, deltas, used, limits), overs)

    def _check_project(self, session: Session, project_id: str | None,
                       deltas: Mapping[str, int], user_id: str | None,
                       group_id: str | None) -> None:
        limits = self.limits(session, project_id)
        used: dict[str, int] = {}
        instance_usage: dict[str, int] | None = None
        overs: list[str] = []
        for resource, delta in deltas.items():
            if resource not in RESOURCES:
                raise ValueError(f"unknown compute quota resource {resource!r}")
            limit = limits[resource]
            if limit < 0:
                continue
            if resource in _INSTANCE_RESOURCES:
                if instance_usage is None:
                    instance_usage = self.instance_usage(session, project_id)
                used[resource] = instance_usage[resource]
            elif resource == "key_pairs":
                used[resource] = self.keypair_count(session, user_id)
            elif resource == "server_groups":
                used[resource] = self.server_group_count(session, project_id)
            elif resource == "server_group_members":
                used[resource] = self.group_member_count(session, group_id) if group_id else 0
            else:
                used[resource] = 0
            if used[resource] + delta > limit:
                overs.append(resource)
        if overs:
            raise OverQuota(_over_message(overs, deltas, used, limits), overs)

    def check_instances(self, session: Session, project_id: str, vcpus: int,
                        memory_mb: int, min_count: int = 1, max_count: int = 1,
                        user_id: str | None = None) -> int:
        """How many of ``max_count`` servers of this size the project (and ``user_id``,
        when it has limits of its own) may still create (at least ``min_count``), as
        Nova's ``check_num_instances_quota``; raises ``OverQuota`` with Nova's message
        when not even ``min_count`` fit."""
        count = self._count_instances(self.limits(session, project_id),
                                      self.instance_usage(session, project_id),
                                      vcpus, memory_mb, min_count, max_count)
        if user_id and self.user_rows(session, project_id, user_id):
            count = self._count_instances(self.user_limits(session, project_id, user_id),
                                          self.instance_usage(session, project_id, user_id),
                                          vcpus, memory_mb, min_count, count)
        return count

    @staticmethod
    def _count_instances(limits: Mapping[str, int], used: Mapping[str, int], vcpus: int,
                         memory_mb: int, min_count: int, max_count: int) -> int:
        per_server = {"instances": 1, "cores": vcpus, "ram": memory_mb}
        allowed = max_count
        for resource, each in per_server.items():
            if limits[resource] >= 0 and each > 0:
                allowed = min(allowed, (limits[resource] - used[resource]) // each)
        if allowed >= max_count:
            return max_count
        if allowed >= min_count:
            return allowed
        requested: dict[str, Any] = {r: each * max_count for r, each in per_server.items()}
        requested["instances"] = (str(min_count) if min_count == max_count
                                  else f"{min_count}-{max_count}")
        overs = [r for r in _INSTANCE_RESOURCES if limits[r] >= 0
                 and used[r] + per_server[r] * max(min_count, 1) > limits[r]]
        raise OverQuota(_over_message(overs or ["instances"], requested, used, limits),
                        overs or ["instances"])

    # -- the quota APIs -----------------------------------------------------------------

    def _verify_project(self, project_id: str) -> None:
        """Nova asks Keystone whether the project exists: 400 if not."""
        try:
            self.compute.identity.projects.get(project_id)
        except NotFound:
            raise BadRequest(f"Project ID {project_id} is not a valid project.") from None

    def show(self, ctx: ValidatedToken, project_id: str, user_id: str | None = None
             ) -> dict[str, int]:
        """A project's limits, or a user's in it (its own over the project's)."""
        policy.require_reader(ctx, "os_compute_api:os-quota-sets:show", project_id)
        self._verify_project(project_id)
        with self.db.session() as session:
            if user_id is not None:
                return self.user_limits(session, project_id, user_id)
            return self.limits(session, project_id)

    def detail(self, ctx: ValidatedToken, project_id: str, user_id: str | None = None
               ) -> dict[str, dict[str, int]]:
        policy.require_reader(ctx, "os_compute_api:os-quota-sets:detail", project_id)
        self._verify_project(project_id)
        with self.db.session() as session:
            if user_id is not None:
                limits = self.user_limits(session, project_id, user_id)
                used = self.user_usages(session, project_id, user_id)
            else:
                limits = self.limits(session, project_id)
                used = self.usages(session, project_id)
        return {name: {"in_use": used[name], "limit": limits[name], "reserved": 0}
                for name in RESOURCES}

    def defaults(self, ctx: ValidatedToken, project_id: str) -> dict[str, int]:
        self._verify_project(project_id)
        with self.db.session() as session:
            return self.class_limits(session)

    def update(self, ctx: ValidatedToken, project_id: str, changes: Mapping[str, int],
               force: bool = False, user_id: str | None = None) -> dict[str, int]:
        """Set some of a project's limits, or of a user in it. Without ``force``, Nova's
        bounds (400 with its messages): a project's limit not below its usage nor the
        sum of its users' limits; a user's not below the user's usage nor above what
        the project has left after its other users' limits."""
        policy.require_admin(ctx, "os_compute_api:os-quota-sets:update")
        self._verify_project(project_id)
        with self.db.session() as session:
            if user_id is not None:
                if not force:
                    self._check_user_bounds(session, project_id, user_id, changes)
                self._store_user(session, project_id, user_id, changes)
                return self.user_limits(session, project_id, user_id)
            if not force:
                used = self.usages(session, project_id)
                current = self.limits(session, project_id)
                given = self._users_total(session, project_id)
                for name, value in changes.items():
                    minimum = used[name]
                    if current[name] >= 0:
                        minimum = max(minimum, given.get(name, 0))
                    _check_bounds(name, value, minimum, -1)
            self._store(session, project_id, changes)
            return self.limits(session, project_id)

    def _check_user_bounds(self, session: Session, project_id: str, user_id: str,
                           changes: Mapping[str, int]) -> None:
        project = self.limits(session, project_id)
        used = self.user_usages(session, project_id, user_id)
        others = self._users_total(session, project_id, but=user_id)
        for name, value in changes.items():
            maximum = -1 if project[name] < 0 else max(project[name] - others.get(name, 0),
                                                       0)
            _check_bounds(name, value, used[name], maximum)

    @staticmethod
    def _users_total(session: Session, project_id: str, but: str | None = None
                     ) -> dict[str, int]:
        """Per resource, the sum of the project's users' own (limited) limits."""
        stmt = select(ComputeUserQuota.resource, func.sum(ComputeUserQuota.hard_limit)) \
            .where(ComputeUserQuota.project_id == project_id,
                   ComputeUserQuota.hard_limit >= 0)
        if but is not None:
            stmt = stmt.where(ComputeUserQuota.user_id != but)
        return {str(r): int(total or 0)
                for r, total in session.execute(stmt.group_by(ComputeUserQuota.resource))}

    def reset(self, ctx: ValidatedToken, project_id: str, user_id: str | None = None
              ) -> None:
        """Forget a project's own limits and its users' (back to the defaults), or only
        one user's (back to the project's), as Nova's delete."""
        policy.require_admin(ctx, "os_compute_api:os-quota-sets:delete")
        with self.db.session() as session:
            users = delete(ComputeUserQuota).where(ComputeUserQuota.project_id == project_id)
            if user_id is not None:
                session.execute(users.where(ComputeUserQuota.user_id == user_id))
                return
            session.execute(users)
            session.execute(delete(ComputeQuota).where(ComputeQuota.project_id == project_id))

    def show_class(self, ctx: ValidatedToken, class_name: str) -> dict[str, int]:
        policy.require_admin(ctx, "os_compute_api:os-quota-class-sets:show")
        with self.db.session() as session:
            return self.class_limits(session, class_name)

    def update_class(self, ctx: ValidatedToken, class_name: str,
                     changes: Mapping[str, int]) -> dict[str, int]:
        policy.require_admin(ctx, "os_compute_api:os-quota-class-sets:update")
        if not 1 <= len(class_name) <= MAX_CLASS_NAME:
            raise BadRequest(f"quota_class_name has a length of {len(class_name)}; it must "
                             f"be 1 to {MAX_CLASS_NAME} characters long.")
        with self.db.session() as session:
            self._store(session, CLASS_PREFIX + class_name, changes)
            return self.class_limits(session, class_name)

    @staticmethod
    def _store_user(session: Session, project_id: str, user_id: str,
                    changes: Mapping[str, int]) -> None:
        for name, value in changes.items():
            row = session.get(ComputeUserQuota, (project_id, user_id, name))
            if row is None:
                session.add(ComputeUserQuota(project_id=project_id, user_id=user_id,
                                             resource=name, hard_limit=value))
            else:
                row.hard_limit = value
        session.flush()

    @staticmethod
    def _store(session: Session, owner: str, changes: Mapping[str, int]) -> None:
        for name, value in changes.items():
            row = session.get(ComputeQuota, (owner, name))
            if row is None:
                session.add(ComputeQuota(project_id=owner, resource=name, hard_limit=value))
            else:
                row.hard_limit = value
        session.flush()

    def absolute_limits(self, ctx: ValidatedToken, project_id: str | None
                        ) -> tuple[dict[str, int], dict[str, int]]:
        """(limits, usage) of a project for GET /limits; another project's need admin."""
        if project_id is not None:
            policy.require_admin(ctx, "os_compute_api:limits:other_project")
        else:
            project_id = ctx.project_id
        with self.db.session() as session:
            return self.limits(session, project_id), self.usages(session, project_id)

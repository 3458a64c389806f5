"""Who may do what in Compute: Nova's default policy, as named checks.

Nova's defaults come in three flavours, and every rule here is one of them:

- ``ADMIN``: cloud administrators only (flavor management, hosts, quota updates, ...);
- ``PROJECT_READER_OR_ADMIN``: anyone with a role on the target project (show and list);
- ``PROJECT_MEMBER_OR_ADMIN``: the ``member`` role on the target project (create, delete).

A refused check is Nova's 403 ``Policy doesn't allow <rule> to be performed.``. Services
call ``require`` beside the operation; resources of other projects are answered with the
resource's own 404 by the service before any rule is checked, so that their existence
does not leak.
"""

from __future__ import annotations

from onestack.common.errors import Forbidden
from onestack.services.identity.context import ValidatedToken


def forbidden(rule: str) -> Forbidden:
    return Forbidden(f"Policy doesn't allow {rule} to be performed.")


def is_admin(ctx: ValidatedToken) -> bool:
    return ctx.is_admin


def project_reader(ctx: ValidatedToken, project_id: str | None) -> bool:
    return ctx.is_admin or (ctx.project_id is not None and ctx.project_id == project_id)


def project_member(ctx: ValidatedToken, project_id: str | None) -> bool:
    if ctx.is_admin:
        return True
    return (ctx.project_id is not None and ctx.project_id == project_id
            and "member" in ctx.role_names)


def require_admin(ctx: ValidatedToken, rule: str) -> None:
    if not ctx.is_admin:
        raise forbidden(rule)


def require_reader(ctx: ValidatedToken, rule: str, project_id: str | None) -> None:
    if not project_reader(ctx, project_id):
        raise forbidden(rule)


def require_member(ctx: ValidatedToken, rule: str, project_id: str | None) -> None:
    if not project_member(ctx, project_id):
        raise forbidden(rule)

"""Who may do what in Identity.

One table: rule name -> check. A check gets the caller and the target (ids of the
user/project/domain the request is about) and answers yes or no. Administrators (the
`admin` role on the token's scope, the system included) may do everything, a
system-scoped reader reads everything; other users manage only
themselves: their own user record, password, application credentials, projects, groups
and tokens.

The identity service methods check these rules themselves: a method the API calls takes
the caller's token first and calls ``authorize`` (``None`` is the system itself and
passes); its ``authorize_*`` companion lets a route refuse before reading the body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onestack.common.errors import Forbidden
from onestack.services.identity.context import ValidatedToken

Check = Callable[[ValidatedToken, dict[str, Any]], bool]


def admin(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    return ctx.is_admin


def system_reader(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    """A system-scoped token with any role (``reader`` is implied by the others): it
    reads everything Identity holds, as Keystone's default policy lets it."""
    return ctx.system and bool(ctx.roles)


def owner(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    """The request is about the caller's own user."""
    return target.get("user_id") == ctx.user_id


def own_project(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    return ctx.project_id is not None and target.get("project_id") == ctx.project_id


def own_domain(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    domain_id = target.get("domain_id")
    if ctx.domain_id is not None:
        return domain_id == ctx.domain_id
    return ctx.project is not None and ctx.project["domain"]["id"] == domain_id


def trustor(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    return target.get("trustor_user_id") == ctx.user_id


def trustee(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    return target.get("trustee_user_id") == ctx.user_id


def not_trust_scoped(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    """A trust-scoped token acts only within its trust: it makes no application
    credentials, as in Keystone."""
    return ctx.trust is None


def authenticated(ctx: ValidatedToken, target: dict[str, Any]) -> bool:
    return True


def any_of(*checks: Check) -> Check:
    return lambda ctx, target: any(c(ctx, target) for c in checks)


ADMIN_OR_OWNER = any_of(admin, owner)

_ADMIN_RULES = [
    f"identity:{verb}_{thing}"
    for thing in ("domain", "project", "user", "group", "role", "implied_role", "region",
                  "service", "endpoint", "policy", "endpoint_group", "consumer")
    for verb in ("create", "update", "delete")
] + [
    "identity:list_domains", "identity:list_projects", "identity:list_users",
    "identity:list_groups", "identity:get_group", "identity:list_users_in_group",
    "identity:add_user_to_group", "identity:remove_user_from_group",
    "identity:check_user_in_group", "identity:list_roles", "identity:get_role",
    "identity:list_implied_roles", "identity:get_implied_role",
    "identity:check_implied_role", "identity:list_role_inference_rules",
    "identity:create_grant", "identity:revoke_grant", "identity:check_grant",
    "identity:list_grants", "identity:list_role_assignments",
    *(f"identity:{action}_for_{actor}" for actor in ("user", "group")
      for action in ("create_system_grant", "check_system_grant", "revoke_system_grant",
                     "list_system_grants")),
    "identity:get_region", "identity:list_regions", "identity:get_service",
    "identity:list_services", "identity:get_endpoint", "identity:list_endpoints",
    "identity:get_policy", "identity:list_policies", "identity:get_endpoint_group",
    "identity:list_endpoint_groups", "identity:get_consumer", "identity:list_consumers",
]

_READS = ("identity:list_", "identity:get_", "identity:check_")
RULES: dict[str, Check] = {
    name: any_of(admin, system_reader) if name.startswith(_READS) else admin
    for name in _ADMIN_RULES}
RULES.update({
    "identity:get_domain": any_of(admin, own_domain),
    "identity:get_project": any_of(admin, own_project),
    "identity:get_user": ADMIN_OR_OWNER,
    "identity:list_user_projects": ADMIN_OR_OWNER,
    "identity:list_groups_for_user": ADMIN_OR_OWNER,
    "identity:list_project_tags": any_of(admin, own_project),
    "identity:get_project_tag": any_of(admin, own_project),
    "identity:update_project_tags": admin,
    "identity:create_project_tag": admin,
    "identity:delete_project_tag": admin,
    "identity:delete_project_tags": admin,
    # the original password authorizes the change; an administrator who knows it may
    # make it too (Keystone does not restrict this call by role at all)
    "identity:change_password": ADMIN_OR_OWNER,
    "identity:create_application_credential":
        lambda ctx, target: not_trust_scoped(ctx, target) and ADMIN_OR_OWNER(ctx, target),
    "identity:get_application_credential": ADMIN_OR_OWNER,
    "identity:list_application_credentials": ADMIN_OR_OWNER,
    "identity:delete_application_credential": ADMIN_OR_OWNER,
    "identity:list_access_rules": ADMIN_OR_OWNER,
    "identity:get_access_rule": ADMIN_OR_OWNER,
    "identity:delete_access_rule": ADMIN_OR_OWNER,
    **{f"identity:{verb}_credential": ADMIN_OR_OWNER
       for verb in ("create", "get", "update", "delete", "ec2_create", "ec2_get",
                    "ec2_delete")},
    "identity:list_credentials": ADMIN_OR_OWNER,
    # OS-OAUTH1: any user delegates their own roles (the service checks they hold
    # them) and manages their own access tokens
    "identity:authorize_request_token": authenticated,
    "identity:list_access_tokens": ADMIN_OR_OWNER,
    "identity:ec2_list_credentials": ADMIN_OR_OWNER,
    # OS-TRUST: any user is a trustor (the service checks the roles are theirs); a trust
    # is read by its trustor and trustee, deleted by its trustor
    "identity:create_trust": authenticated,
    "identity:list_trusts": admin,
    "identity:list_trusts_for_trustor": any_of(admin, trustor),
    "identity:list_trusts_for_trustee": any_of(admin, trustee),
    "identity:get_trust": any_of(admin, trustor, trustee),
    "identity:delete_trust": any_of(admin, trustor),
    "identity:list_roles_for_trust": any_of(admin, trustor, trustee),
    "identity:get_role_for_trust": any_of(admin, trustor, trustee),
    "identity:validate_token": ADMIN_OR_OWNER,
    "identity:check_token": ADMIN_OR_OWNER,
    "identity:revoke_token": ADMIN_OR_OWNER,
    "identity:get_auth_catalog": authenticated,
    # regions are public knowledge in Keystone's default policy
    "identity:get_region": authenticated,
    "identity:list_regions": authenticated,
    "identity:get_auth_projects": authenticated,
    "identity:get_auth_domains": authenticated,
    "identity:get_auth_system": authenticated,
})

for _name in list(RULES):
    if _name.startswith(_READS) and RULES[_name] is not authenticated \
            and _name not in _ADMIN_RULES:
        RULES[_name] = any_of(RULES[_name], system_reader)
RULES["identity:validate_token"] = any_of(ADMIN_OR_OWNER, system_reader)


def enforce(ctx: ValidatedToken, rule: str, **target: Any) -> None:
    """Raise ``Forbidden`` unless the caller may do ``rule`` on ``target``."""
    check = RULES[rule]  # a KeyError here is a programming error: every rule is listed
    if not check(ctx, target):
        raise Forbidden(f"You are not authorized to perform the requested action: {rule}.")


def allowed(ctx: ValidatedToken, rule: str, **target: Any) -> bool:
    return RULES[rule](ctx, target)


def authorize(ctx: ValidatedToken | None, rule: str, **target: Any) -> None:
    """The check a service method makes for its caller: ``enforce`` for an API caller's
    token, nothing for ``None`` (the system itself: bootstrap, ``onestack admin``, other
    services, tests)."""
    if ctx is not None:
        enforce(ctx, rule, **target)

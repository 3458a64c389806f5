"""Grants (/v3/projects|domains/{id}/users|groups/{id}/roles/..., and their
OS-INHERIT forms) and /v3/role_assignments"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, caller, json_response, no_content, query_bool
from onestack.api.identity.common import identity, list_links
from onestack.api.identity.roles import query_value, render_role
from onestack.common.errors import BadRequest
from onestack.services.identity.assignments import AssignmentNames, RoleAssignment

Handler = Callable[[Request], Any]

# -- grants ------------------------------------------------------------------------


def _grant_handlers(target: str, actor: str, inherited: bool) -> dict[str, Handler]:
    """PUT/GET(+HEAD)/DELETE of one grant and GET of the list, for one kind of grant."""

    def args(request: Request) -> dict[str, Any]:
        p = request.path_params
        return {f"{target}_id": p[f"{target}_id"], f"{actor}_id": p[f"{actor}_id"],
                "inherited": inherited}

    async def create(request: Request) -> Response:
        ctx = caller(request)
        identity(request).assignments.create_grant(ctx, request.path_params["role_id"],
                                                   **args(request))
        return no_content()

    async def check(request: Request) -> Response:
        ctx = caller(request)
        identity(request).assignments.check_grant(ctx, request.path_params["role_id"],
                                                  **args(request))
        return no_content()

    async def revoke(request: Request) -> Response:
        ctx = caller(request)
        identity(request).assignments.revoke_grant(ctx, request.path_params["role_id"],
                                                   **args(request))
        return no_content()

    async def list_(request: Request) -> Response:
        ctx = caller(request)
        roles = identity(request).assignments.list_grants(ctx, **args(request))
        return json_response({"roles": [render_role(request, r) for r in roles],
                              "links": list_links(request)})

    return {"create": create, "check": check, "revoke": revoke, "list": list_}


def _grant_routes() -> list[Route]:
    out: list[Route] = []
    for target, actor, inherited in [
            (t, a, i) for i in (False, True) for t in ("project", "domain")
            for a in ("user", "group")]:
        h = _grant_handlers(target, actor, inherited)
        base = f"/{target}s/{{{target}_id}}/{actor}s/{{{actor}_id}}/roles"
        if inherited:
            one = f"/v3/OS-INHERIT{base}/{{role_id}}/inherited_to_projects"
            many = f"/v3/OS-INHERIT{base}/inherited_to_projects"
        else:
            one = f"/v3{base}/{{role_id}}"
            many = f"/v3{base}"
        out += [
            Route(one, h["create"], methods=["PUT"]),
            Route(one, h["check"], methods=["GET"]),  # HEAD too: 204 either way
            Route(one, h["revoke"], methods=["DELETE"]),
            Route(many, h["list"], methods=["GET"]),
        ]
    return out


def _system_grant_routes() -> list[Route]:
    """/v3/system/{users,groups}/{id}/roles[/{role_id}]: grants on the system."""
    out: list[Route] = []
    for actor in ("user", "group"):
        def args(request: Request, actor: str = actor) -> dict[str, Any]:
            return {f"{actor}_id": request.path_params[f"{actor}_id"]}

        async def create(request: Request, args: Handler = args) -> Response:
            identity(request).assignments.create_system_grant(
                caller(request), request.path_params["role_id"], **args(request))
            return no_content()

        async def check(request: Request, args: Handler = args) -> Response:
            identity(request).assignments.check_system_grant(
                caller(request), request.path_params["role_id"], **args(request))
            return no_content()

        async def revoke(request: Request, args: Handler = args) -> Response:
            identity(request).assignments.revoke_system_grant(
                caller(request), request.path_params["role_id"], **args(request))
            return no_content()

        async def list_(request: Request, args: Handler = args) -> Response:
            roles = identity(request).assignments.list_system_grants(caller(request),
                                                                     **args(request))
            return json_response({"roles": [render_role(request, r) for r in roles],
                                  "links": list_links(request)})

        many = f"/v3/system/{actor}s/{{{actor}_id}}/roles"
        one = f"{many}/{{role_id}}"
        out += [
            Route(one, create, methods=["PUT"]),
            Route(one, check, methods=["GET"]),  # HEAD too: 204 either way
            Route(one, revoke, methods=["DELETE"]),
            Route(many, list_, methods=["GET"]),
        ]
    return out


# -- /v3/role_assignments ----------------------------------------------------------


def _filter(request: Request, name: str) -> str | None:
    return query_value(request, name) or None


def render_assignment(request: Request, e: RoleAssignment,
                      names: AssignmentNames | None) -> dict[str, Any]:
    """An entry as Keystone shows it, with the link to the grant behind it."""
    v3 = f"{base_url(request)}/v3"
    links: dict[str, str] = {}
    out: dict[str, Any] = {"links": links}

    def domain_ref(domain_id: str) -> dict[str, str]:
        assert names is not None
        return {"id": domain_id, "name": names.domains.get(domain_id, "")}

    if e.project_id:
        project: dict[str, Any] = {"id": e.project_id}
        if names is not None:
            name, did = names.projects.get(e.project_id, ("", ""))
            project.update(name=name, domain=domain_ref(did))
        out["scope"] = {"project": project}
        if e.via_domain:
            link = f"/domains/{e.via_domain}"
        else:
            link = f"/projects/{e.via_project or e.project_id}"
    elif e.system:
        out["scope"] = {"system": {"all": True}}
        link = "/system"
    else:
        domain: dict[str, Any] = {"id": e.domain_id}
        if names is not None:
            domain = domain_ref(str(e.domain_id))
        out["scope"] = {"domain": domain}
        link = f"/domains/{e.domain_id}"

    actor_kind, actor_id = ("user", e.user_id) if e.user_id else ("group", e.group_id)
    actor: dict[str, Any] = {"id": actor_id}
    if names is not None:
        table = names.users if actor_kind == "user" else names.groups
        name, did = table.get(str(actor_id), ("", ""))
        actor.update(name=name, domain=domain_ref(did) if did else {"id": "", "name": ""})
    out[actor_kind] = actor
    if e.via_group:
        links["membership"] = f"{v3}/groups/{e.via_group}/users/{e.user_id}"
        link += f"/groups/{e.via_group}"
    else:
        link += f"/{actor_kind}s/{actor_id}"

    role: dict[str, Any] = {"id": e.role_id}
    if names is not None:
        name, role_domain = names.roles.get(e.role_id, ("", None))
        role["name"] = name
        if role_domain:
            role["domain"] = domain_ref(role_domain)
    out["role"] = role
    link += f"/roles/{e.granted_role_id or e.role_id}"

    if e.inherited:
        out["scope"]["OS-INHERIT:inherited_to"] = "projects"
        link = f"/OS-INHERIT{link}/inherited_to_projects"
    links["assignment"] = f"{v3}{link}"
    if e.granted_role_id:
        links["prior_role"] = f"{v3}/roles/{e.prior_role_id}/implies/{e.role_id}"
    return out


async def list_role_assignments(request: Request) -> Response:
    ctx = caller(request)
    identity(request).assignments.authorize_list_role_assignments(ctx)  # before the query
    user_id, group_id = _filter(request, "user.id"), _filter(request, "group.id")
    project_id = _filter(request, "scope.project.id")
    domain_id = _filter(request, "scope.domain.id")
    system = _filter(request, "scope.system")
    inherited_to = query_value(request, "scope.OS-INHERIT:inherited_to")
    inherited = None if inherited_to is None else inherited_to == "projects"
    effective = bool(query_bool(request, "effective"))
    include_names = bool(query_bool(request, "include_names"))
    include_subtree = bool(query_bool(request, "include_subtree"))

    if include_subtree and not project_id:
        raise BadRequest("scope.project.id must be specified if include_subtree is also "
                         "specified")
    if domain_id and project_id:
        raise BadRequest("Specify a domain or project, not both")
    if system and domain_id:
        raise BadRequest("Specify system or domain, not both")
    if system and project_id:
        raise BadRequest("Specify system or project, not both")
    if user_id and group_id:
        raise BadRequest("Specify a user or group, not both")
    if effective and group_id:
        raise BadRequest("Combining effective and group filter will always result in an "
                         "empty list.")
    if effective and inherited and domain_id:
        raise BadRequest("Combining effective, domain and inherited filters will always "
                         "result in an empty list.")

    service = identity(request).assignments
    entries = service.list_role_assignments(
        ctx, role_id=_filter(request, "role.id"), user_id=user_id, group_id=group_id,
        project_id=project_id, domain_id=domain_id, include_subtree=include_subtree,
        inherited=inherited, effective=effective, system=system)
    names = service.names(entries) if include_names else None
    return json_response({
        "role_assignments": [render_assignment(request, e, names) for e in entries],
        "links": list_links(request)})


routes = [
    *_grant_routes(),
    *_system_grant_routes(),
    Route("/v3/role_assignments", list_role_assignments, methods=["GET"]),
]

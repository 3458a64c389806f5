"""/v3/projects and /v3/projects/{id}/tags"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import (
    base_url,
    body_part,
    caller,
    json_response,
    no_content,
    parse,
    query_bool,
    read_json,
)
from onestack.api.identity.common import Text, filters, identity, list_links, self_link
from onestack.common.errors import BadRequest, InvalidField
from onestack.db.models import Domain, Project
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.projects import check_tags

ProjectName = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64,
                                               pattern=r"\S")]
Reference = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Tag = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255,
                                       pattern=r"^[^,/]*$")]
Tags = Annotated[list[Tag], Field(max_length=80)]


class ProjectOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    immutable: StrictBool | None = None


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: ProjectName
    description: Text | None = ""
    domain_id: Reference | None = None
    parent_id: Reference | None = None
    enabled: StrictBool = True
    is_domain: StrictBool = False
    tags: Tags = []
    options: ProjectOptions = ProjectOptions()


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: ProjectName | None = None
    description: Text | None = None
    domain_id: Reference | None = None
    parent_id: Reference | None = None
    enabled: StrictBool | None = None
    is_domain: StrictBool | None = None
    tags: Tags | None = None
    options: ProjectOptions | None = None


def render_project(request: Request, p: Project) -> dict[str, Any]:
    return {**p.extra, "id": p.id, "name": p.name, "domain_id": p.domain_id,
            "parent_id": p.parent_id or p.domain_id, "description": p.description,
            "enabled": p.enabled, "is_domain": False, "tags": sorted(t.name for t in p.tags),
            "options": p.extra.get("options") or {},
            "links": self_link(request, f"projects/{p.id}")}


def render_domain_as_project(request: Request, d: Domain) -> dict[str, Any]:
    """A domain seen through /v3/projects, as Keystone shows projects acting as domains."""
    return {**d.extra, "id": d.id, "name": d.name, "domain_id": None, "parent_id": None,
            "description": d.description, "enabled": d.enabled, "is_domain": True,
            "tags": d.extra.get("tags", []), "options": d.extra.get("options", {}),
            "links": self_link(request, f"projects/{d.id}")}


def _unique_tags(tags: list[str] | None, path: str) -> None:
    if tags is not None:
        check_tags(tags, path)


def _tag_filter(request: Request, name: str) -> list[str] | None:
    value = request.query_params.get(name)
    return value.split(",") if value is not None else None


async def create_project(request: Request) -> Response:
    ctx = caller(request)
    identity(request).projects.authorize_create(ctx)  # before the body: a 403, not a 400
    body = parse(ProjectCreate, body_part(await read_json(request), "project"), "project")
    _unique_tags(body.tags, "project/tags")
    extra = body.model_extra or {}
    options = body.options.model_dump(exclude_unset=True)
    ident = identity(request)
    if body.is_domain:
        if body.parent_id:
            raise InvalidField("project/parent_id",
                               "only root projects are allowed to act as domains")
        if body.tags:
            extra = {**extra, "tags": body.tags}
        if options:
            extra = {**extra, "options": options}
        domain = ident.domains.create(name=body.name, description=body.description or "",
                                      enabled=body.enabled, extra=extra)
        return json_response({"project": render_domain_as_project(request, domain)},
                             status=201)
    domain_id = body.domain_id
    if domain_id is None and body.parent_id is None:
        # Keystone: the domain of a domain-scoped token, else the default domain
        domain_id = ctx.domain_id or "default"
    project = ident.projects.create(
        ctx, name=body.name, domain_id=domain_id, parent_id=body.parent_id,
        description=body.description or "", enabled=body.enabled, tags=body.tags,
        options=options, extra=extra)
    return json_response({"project": render_project(request, project)}, status=201)


async def list_projects(request: Request) -> Response:
    ctx = caller(request)
    ident = identity(request)
    ident.projects.authorize_list(ctx)
    wanted = filters(request, "name", "domain_id", "enabled", "parent_id")
    if ctx.domain_id is not None:
        # a domain-scoped token sees its own domain only, as in Keystone
        if wanted.setdefault("domain_id", ctx.domain_id) != ctx.domain_id:
            return json_response({"projects": [], "links": list_links(request)})
    if query_bool(request, "is_domain"):
        domains = ident.domains.list(None, **{k: v for k, v in wanted.items()
                                        if k in ("name", "enabled")})
        if "domain_id" in wanted or "parent_id" in wanted:
            domains = []  # projects acting as domains have neither
        body = [render_domain_as_project(request, d) for d in domains]
        return json_response({"projects": body, "links": list_links(request)})
    projects = ident.projects.list(
        ctx, **wanted, tags=_tag_filter(request, "tags"),
        tags_any=_tag_filter(request, "tags-any"), not_tags=_tag_filter(request, "not-tags"),
        not_tags_any=_tag_filter(request, "not-tags-any"))
    return json_response({"projects": [render_project(request, p) for p in projects],
                          "links": list_links(request)})


def _hierarchy(request: Request, ctx: ValidatedToken, project: Project,
               body: dict[str, Any]) -> None:
    """Keystone's ``parents_as_list|ids`` and ``subtree_as_list|ids`` query options."""
    flags = {name: bool(query_bool(request, name)) for name in
             ("parents_as_list", "parents_as_ids", "subtree_as_list", "subtree_as_ids")}
    if flags["parents_as_list"] and flags["parents_as_ids"]:
        raise BadRequest("Cannot use parents_as_list and parents_as_ids query params at "
                         "the same time.")
    if flags["subtree_as_list"] and flags["subtree_as_ids"]:
        raise BadRequest("Cannot use subtree_as_list and subtree_as_ids query params at "
                         "the same time.")
    if not any(flags.values()):
        return
    ident = identity(request)
    with ident.db.session() as session:
        reachable = ident.assignments.project_ids_for_user(session, ctx.user_id)
    if flags["parents_as_ids"] or flags["parents_as_list"]:
        parents = ident.projects.parents(project.id)
        if flags["parents_as_list"]:
            body["parents"] = [{"project": render_project(request, p)} for p in parents
                               if p.id in reachable]
        else:
            tree: dict[str, Any] | None = {project.domain_id: None}
            for parent in reversed(parents):
                tree = {parent.id: tree}
            body["parents"] = tree
    if flags["subtree_as_ids"] or flags["subtree_as_list"]:
        subtree = ident.projects.subtree(project.id)
        if flags["subtree_as_list"]:
            body["subtree"] = [{"project": render_project(request, p)} for p in subtree
                               if p.id in reachable]
        else:
            children: dict[str, list[str]] = {}
            for p in subtree:
                children.setdefault(p.parent_id or "", []).append(p.id)

            def ids_below(project_id: str) -> dict[str, Any] | None:
                below = children.get(project_id)
                return {c: ids_below(c) for c in below} if below else None

            body["subtree"] = ids_below(project.id)


def _acting_domain(request: Request, project_id: str) -> bool:
    """Whether ``project_id`` names a domain: Keystone's projects acting as domains are
    read, changed and deleted through /v3/projects too (with the domain policies)."""
    ident = identity(request)
    with ident.db.session() as session:
        return len(project_id) <= 64 and session.get(Domain, project_id) is not None


async def _update_acting_domain(request: Request, ctx: ValidatedToken,
                                domain_id: str) -> Response:
    ident = identity(request)
    ident.domains.authorize_update(ctx)  # before the body
    body = parse(ProjectUpdate, body_part(await read_json(request), "project"), "project")
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidField("project", "at least one attribute must be given")
    for key in ("domain_id", "parent_id"):
        if changes.get(key) is not None:
            raise InvalidField(f"project/{key}", "a project acting as a domain has none")
    if changes.get("is_domain") is False:
        raise InvalidField("project/is_domain", "Update of `is_domain` is not allowed.")
    for key in ("name", "enabled"):
        if key in changes and changes[key] is None:
            raise InvalidField(f"project/{key}", "None is not allowed")
    _unique_tags(body.tags, "project/tags")
    kept = {k: v for k, v in changes.items()
            if k not in ("domain_id", "parent_id", "is_domain")}
    if body.options is not None:
        kept["options"] = body.options.model_dump(exclude_unset=True)
    domain = ident.domains.update(ctx, domain_id, kept)
    return json_response({"project": render_domain_as_project(request, domain)})


async def get_project(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    if _acting_domain(request, project_id):
        domain = identity(request).domains.get(ctx, project_id)
        return json_response({"project": render_domain_as_project(request, domain)})
    project = identity(request).projects.show(ctx, project_id)
    body = render_project(request, project)
    _hierarchy(request, ctx, project, body)
    return json_response({"project": body})


async def update_project(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    if _acting_domain(request, project_id):
        return await _update_acting_domain(request, ctx, project_id)
    identity(request).projects.authorize_update(ctx, project_id)  # before the body
    body = parse(ProjectUpdate, body_part(await read_json(request), "project"), "project")
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidField("project", "at least one attribute must be given")
    if body.options is not None:
        changes["options"] = body.options.model_dump(exclude_unset=True)
    for key in ("name", "enabled", "is_domain"):
        if key in changes and changes[key] is None:
            raise InvalidField(f"project/{key}", "None is not allowed")
    _unique_tags(body.tags, "project/tags")
    project = identity(request).projects.update(ctx, project_id, changes)
    return json_response({"project": render_project(request, project)})


async def delete_project(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    if _acting_domain(request, project_id):
        identity(request).domains.delete(ctx, project_id)
        return no_content()
    identity(request).projects.delete(ctx, project_id)
    return no_content()


# -- tags ---------------------------------------------------------------------------

def _tags_body(request: Request, tags: list[str]) -> dict[str, Any]:
    return {"tags": tags, "links": {"self": f"{base_url(request)}{request.url.path}"}}


async def list_project_tags(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    return json_response(_tags_body(request, identity(request).projects.tags(ctx, project_id)))


async def update_project_tags(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    identity(request).projects.authorize_set_tags(ctx, project_id)  # before the body
    tags = (await read_json(request)).get("tags")
    if not isinstance(tags, list):
        raise InvalidField("tags", "is a required property and must be an array")
    tags = identity(request).projects.set_tags(ctx, project_id, tags)
    return json_response(_tags_body(request, tags))


async def delete_project_tags(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    identity(request).projects.clear_tags(ctx, project_id)
    return no_content()


async def check_project_tag(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    identity(request).projects.check_tag(ctx, project_id, request.path_params["tag"])
    return no_content()


async def add_project_tag(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    tag = request.path_params["tag"]
    identity(request).projects.add_tag(ctx, project_id, tag)
    location = f"{base_url(request)}/v3/projects/{quote(project_id, safe='')}/tags/" \
        f"{quote(tag, safe='')}"
    return Response(status_code=201, headers={"Location": location})


async def delete_project_tag(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    identity(request).projects.remove_tag(ctx, project_id, request.path_params["tag"])
    return no_content()


routes = [
    Route("/v3/projects", create_project, methods=["POST"]),
    Route("/v3/projects", list_projects, methods=["GET"]),
    Route("/v3/projects/{project_id}", get_project, methods=["GET"]),
    Route("/v3/projects/{project_id}", update_project, methods=["PATCH"]),
    Route("/v3/projects/{project_id}", delete_project, methods=["DELETE"]),
    Route("/v3/projects/{project_id}/tags", list_project_tags, methods=["GET"]),
    Route("/v3/projects/{project_id}/tags", update_project_tags, methods=["PUT"]),
    Route("/v3/projects/{project_id}/tags", delete_project_tags, methods=["DELETE"]),
    Route("/v3/projects/{project_id}/tags/{tag}", check_project_tag, methods=["GET"]),
    Route("/v3/projects/{project_id}/tags/{tag}", add_project_tag, methods=["PUT"]),
    Route("/v3/projects/{project_id}/tags/{tag}", delete_project_tag, methods=["DELETE"]),
]

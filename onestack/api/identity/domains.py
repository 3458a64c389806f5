"""/v3/domains"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import body_part, caller, json_response, no_content, parse, read_json
from onestack.api.identity.common import filters, identity, list_links, self_link
from onestack.common.errors import BadRequest, Forbidden, OneStackError
from onestack.db.models import Domain
from onestack.services.identity.policy import authorize

#: Keystone's domain name: 1 to 64 characters, not only blanks.
DomainName = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"\S")]


class DomainCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: DomainName
    description: StrictStr = ""
    enabled: StrictBool = True
    explicit_domain_id: StrictStr | None = None


class DomainUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: DomainName | None = None
    description: StrictStr | None = None
    enabled: StrictBool | None = None


def render_domain(request: Request, d: Domain) -> dict[str, Any]:
    return {**d.extra, "id": d.id, "name": d.name, "description": d.description,
            "enabled": d.enabled, "tags": d.extra.get("tags", []),
            "options": d.extra.get("options", {}), "links": self_link(request, f"domains/{d.id}")}


async def create_domain(request: Request) -> Response:
    ctx = caller(request)
    identity(request).domains.authorize_create(ctx)  # before the body: a 403, not a 400
    body = parse(DomainCreate, body_part(await read_json(request), "domain"), "domain")
    extra = body.model_extra or {}
    domain = identity(request).domains.create(
        ctx, name=body.name, description=body.description, enabled=body.enabled,
        id=body.explicit_domain_id, extra=extra)
    return json_response({"domain": render_domain(request, domain)}, status=201)


async def list_domains(request: Request) -> Response:
    ctx = caller(request)
    domains = identity(request).domains.list(ctx, **filters(request, "name", "enabled"))
    return json_response({"domains": [render_domain(request, d) for d in domains],
                          "links": list_links(request)})


async def get_domain(request: Request) -> Response:
    ctx = caller(request)
    domain_id = request.path_params["domain_id"]
    domain = identity(request).domains.get(ctx, domain_id)
    return json_response({"domain": render_domain(request, domain)})


async def update_domain(request: Request) -> Response:
    ctx = caller(request)
    identity(request).domains.authorize_update(ctx)  # before the body
    body = parse(DomainUpdate, body_part(await read_json(request), "domain"), "domain")
    changes = body.model_dump(exclude_unset=True)
    domain = identity(request).domains.update(ctx, request.path_params["domain_id"], changes)
    return json_response({"domain": render_domain(request, domain)})


async def delete_domain(request: Request) -> Response:
    ctx = caller(request)
    identity(request).domains.delete(ctx, request.path_params["domain_id"])
    return no_content()


class NotImplementedFault(OneStackError):
    status = 501
    title = "Not Implemented"


async def domain_config(request: Request) -> Response:
    """``/v3/domains/{id}/config[/{group}[/{option}]]`` and ``/v3/domains/config/...
    /default``: Keystone's domain configuration API configures domain-specific identity
    drivers (an LDAP server per domain). OneStack keeps every user in its own database
    and has no such drivers, so the API is refused (501) for the administrators who may
    call it; everyone else gets the 403 of the call."""
    ctx = caller(request)
    rule = "identity:list_domains" if request.method == "GET" else "identity:update_domain"
    authorize(ctx, rule)
    # Bad input is refused first, as Keystone would: an unknown domain (404), a group
    # without per-domain options (403), a body that is not {"config": {...}} (400).
    params = request.path_params
    if "domain_id" in params:
        identity(request).domains.get(ctx, params["domain_id"])
    if params.get("group", _CONFIG_GROUPS[0]) not in _CONFIG_GROUPS:
        raise Forbidden("Only the identity and ldap groups can be configured per domain.")
    if request.method in ("PUT", "PATCH"):
        body = await read_json(request)
        if not isinstance(body.get("config"), dict):
            raise BadRequest("The request body must be an object with a 'config' object.")
    raise NotImplementedFault("Domain-specific configuration is not supported: this cloud "
                              "has no domain-specific identity drivers.")


_CONFIG = "/v3/domains/{domain_id}/config"
#: Keystone's option groups a domain may configure.
_CONFIG_GROUPS = ("identity", "ldap")
routes = [
    Route(_CONFIG, domain_config, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route(f"{_CONFIG}/{{group}}", domain_config, methods=["GET", "PATCH", "DELETE"]),
    Route(f"{_CONFIG}/{{group}}/{{option}}", domain_config,
          methods=["GET", "PATCH", "DELETE"]),
    Route("/v3/domains/config/default", domain_config, methods=["GET"]),
    Route("/v3/domains/config/{group}/default", domain_config, methods=["GET"]),
    Route("/v3/domains/config/{group}/{option}/default", domain_config, methods=["GET"]),
    Route("/v3/domains", create_domain, methods=["POST"]),
    Route("/v3/domains", list_domains, methods=["GET"]),
    Route("/v3/domains/{domain_id}", get_domain, methods=["GET"]),
    Route("/v3/domains/{domain_id}", update_domain, methods=["PATCH"]),
    Route("/v3/domains/{domain_id}", delete_domain, methods=["DELETE"]),
]

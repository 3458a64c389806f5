"""What every Networking API module uses: list queries, fields, pagination links, the
standard attributes, lenient Neutron types for bodies.

A resource module follows the same shape for each route: ``caller`` -> parse (pydantic,
``parse_member``) -> a service call (policy is applied by the service, which knows the
resource's owner) -> render with ``standard`` + its own attributes -> ``show`` or
``listing``. The list, show and delete handlers, the same for every resource but for
names, service calls and renderer, come from ``read_and_delete``. ``list_query`` turns
any query string into the service's ``ListQuery``:

- every parameter that is not one of the reserved names below filters on the attribute
  of that name; repeated values are alternatives (``?status=ACTIVE&status=DOWN``);
- ``fields=a&fields=b`` (or ``fields=a,b``) keeps only those attributes;
- ``sort_key``/``sort_dir`` (repeatable, paired in order; ``asc`` by default);
- ``limit``/``marker``/``page_reverse``: one page, with ``<collection>_links`` holding
  ``next``/``previous`` hrefs;
- ``tags``, ``tags-any``, ``not-tags``, ``not-tags-any``: comma-separated tag filters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from pydantic import BaseModel, BeforeValidator, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from onestack.api.common import (
    base_url,
    body_part,
    bounded_int,
    caller,
    json_response,
    no_content,
    parse,
    read_json,
)
from onestack.api.policy import Endpoint
from onestack.common.errors import BadRequest, InvalidField
from onestack.db.models.base import INT64_MAX, INT64_MIN
from onestack.services.identity.context import ValidatedToken
from onestack.services.network.base import ListQuery, Page, isotime

if TYPE_CHECKING:
    from onestack.services.network.service import Networking

log = logging.getLogger(__name__)

PAGING = ("limit", "marker", "page_reverse")
RESERVED = {"fields", "sort_key", "sort_dir", *PAGING, "tags", "tags-any", "not-tags",
            "not-tags-any"}
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def networking(request: Request) -> Networking:
    """The ``Networking`` service of the app."""
    service: Networking = request.app.state.network
    return service


# -- request bodies ------------------------------------------------------------------


def _to_bool(value: Any) -> Any:
    """Neutron's ``convert_to_boolean``: true/false, "True"/"false", 0/1."""
    if isinstance(value, str):
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


#: A boolean as Neutron accepts it; an integer that may come as a numeric string (and
#: that a database column can hold).
Bool = Annotated[bool, BeforeValidator(_to_bool), Field(strict=True)]
Int = Annotated[int, BeforeValidator(_to_int),
                Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
#: ``name`` and ``description`` (Neutron: at most 255 characters).
Name = Annotated[str, StringConstraints(strict=True, max_length=255)]
Tag = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255,
                                       pattern=r"^[^,]*$")]
Id = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]


async def read_member(request: Request, member: str) -> dict[str, Any]:
    """``body[member]`` of the request's JSON body (e.g. ``{"network": {...}}``)."""
    return body_part(await read_json(request), member)


async def create_one_or_many(request: Request, member: str, collection: str,
                             create: Callable[[dict[str, Any]], dict[str, Any]],
                             delete: Callable[[str], None]) -> Response:
    """A create ``POST``: ``{member: {...}}`` makes one resource; ``{collection: [...]}``
    (Neutron's bulk create) makes each in order, all or nothing: when one fails, those
    already made are deleted again and the failure is the answer. ``create`` takes one
    member's body and returns the rendered resource."""
    body = await read_json(request)
    if member in body or collection not in body:
        return show(request, member, create(body_part(body, member)), status=201)
    items = body[collection]
    if not isinstance(items, list) or not items:
        raise BadRequest(f"Invalid input: '{collection}' must be a non-empty list.",
                         fault="InvalidInput")
    if not all(isinstance(item, dict) for item in items):
        raise BadRequest(f"Invalid input: each item of '{collection}' must be an object.",
                         fault="InvalidInput")
    made: list[dict[str, Any]] = []
    try:
        for item in items:
            made.append(create(item))
    except BaseException:
        for done in reversed(made):
            try:
                delete(done["id"])
            except Exception:  # the first failure is the answer; this one is logged
                log.exception("bulk create of %s: could not delete %s again", collection,
                              done["id"])
        raise
    fields = wanted_fields(request)
    return json_response({collection: [only(b, fields) for b in made]}, status=201)


def parse_member(model: type[BaseModel], data: dict[str, Any], member: str) -> Any:
    return parse(model, data, member)


def project_of(data: BaseModel) -> str | None:
    """The ``project_id`` / ``tenant_id`` a create body names (they must agree)."""
    project = getattr(data, "project_id", None)
    tenant = getattr(data, "tenant_id", None)
    if project and tenant and project != tenant:
        raise BadRequest("'project_id' and 'tenant_id' do not match")
    return project or tenant


# -- list queries --------------------------------------------------------------------


def _bool_param(name: str, value: str) -> bool:
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise BadRequest(f"Invalid value {value!r} for {name}: expected true or false.")


def _split(values: list[str]) -> list[str]:
    return [t for v in values for t in v.split(",") if t]


def list_query(request: Request) -> ListQuery:
    """The service's ``ListQuery`` from the query string (see the module docstring)."""
    query = ListQuery()
    if not request.url.query:
        return query
    params = request.query_params
    for name, value in params.multi_items():
        if name not in RESERVED:
            query.filters.setdefault(name, []).append(value)
    query.tags = _split(params.getlist("tags"))
    query.tags_any = _split(params.getlist("tags-any"))
    query.not_tags = _split(params.getlist("not-tags"))
    query.not_tags_any = _split(params.getlist("not-tags-any"))
    keys, dirs = params.getlist("sort_key"), params.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    for index, key in enumerate(keys):
        direction = dirs[index].lower() if dirs else "asc"
        if direction not in ("asc", "desc"):
            raise BadRequest(f"{dirs[index]} is an invalid value for sort_dir, valid values "
                             "are 'asc' and 'desc'")
        query.sorts.append((key, direction == "asc"))
    if "limit" in params:
        raw = params["limit"]
        limit = bounded_int("limit", raw)
        if limit is None or limit < 0:
            raise BadRequest(f"Limit must be an integer 0 or greater and not '{raw}'")
        query.limit = limit or None
    if params.get("marker"):
        query.marker = params["marker"]
    if "page_reverse" in params:
        query.page_reverse = _bool_param("page_reverse", params["page_reverse"])
    return query


def wanted_fields(request: Request) -> list[str] | None:
    if not request.url.query:
        return None
    fields = _split(request.query_params.getlist("fields"))
    return fields or None


def only(body: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """``body`` reduced to ``fields`` (all of it when None)."""
    if not fields:
        return body
    return {k: body[k] for k in fields if k in body}


# -- rendering -----------------------------------------------------------------------


def standard(row: Any, page: Page) -> dict[str, Any]:
    """The standard attributes of a row (``name`` only where the resource has one)."""
    body: dict[str, Any] = {"id": row.id}
    if hasattr(row, "name"):
        body["name"] = row.name
    body.update({
        "tenant_id": row.project_id, "project_id": row.project_id,
        "description": row.description, "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at), "revision_number": row.revision_number,
        "tags": page.tags.get(row.id, []),
    })
    return body


def show(request: Request, member: str, body: dict[str, Any], status: int = 200) -> Response:
    """``{member: body}``, reduced to ``fields=`` if the request asked."""
    return json_response({member: only(body, wanted_fields(request))}, status=status)


def _link(request: Request, rel: str, marker: str, reverse: bool) -> dict[str, str]:
    params = [(k, v) for k, v in request.query_params.multi_items()
              if k not in ("marker", "page_reverse")]
    params.append(("marker", marker))
    if reverse:
        params.append(("page_reverse", "True"))
    href = f"{base_url(request)}{request.url.path}?{urlencode(params)}"
    return {"rel": rel, "href": href}


def page_links(request: Request, query: ListQuery, page: Page) -> list[dict[str, str]]:
    """Neutron's ``next`` / ``previous`` links for a page of a paginated list."""
    if not query.limit or not page.items:
        return []
    first, last = page.items[0].id, page.items[-1].id
    links = []
    more_after = page.has_more if not query.page_reverse else query.marker is not None
    more_before = page.has_more if query.page_reverse else query.marker is not None
    if more_after:
        links.append(_link(request, "next", last, reverse=False))
    if more_before:
        links.append(_link(request, "previous", first, reverse=True))
    return links


def listing(request: Request, collection: str, query: ListQuery, page: Page,
            bodies: list[dict[str, Any]]) -> Response:
    """``{collection: [...]}`` with ``fields=`` applied and, for a paginated request,
    ``<collection>_links``."""
    fields = wanted_fields(request)
    out: dict[str, Any] = {collection: [only(b, fields) for b in bodies]}
    if query.limit:
        out[f"{collection}_links"] = page_links(request, query, page)
    return json_response(out)


def changes_of(data: BaseModel, member: str, not_null: tuple[str, ...]) -> dict[str, Any]:
    """The attributes an update body set; ``null`` only where the attribute allows it."""
    changes = data.model_dump(exclude_unset=True)
    for key in not_null:
        if key in changes and changes[key] is None:
            raise InvalidField(f"{member}/{key}", "None is not allowed")
    return changes


# -- list, show and delete -----------------------------------------------------------

#: How a resource module renders one row of a page for the caller (some attributes are
#: shown to administrators only).
Render = Callable[[Any, Page, ValidatedToken], dict[str, Any]]


def read_and_delete(
        member: str, collection: str, path_param: str, render: Render, *,
        list_call: Callable[[Networking], Callable[[ValidatedToken, ListQuery], Page]],
        get_call: Callable[[Networking], Callable[[ValidatedToken, str], Page]],
        delete_call: Callable[[Networking], Callable[[ValidatedToken, str], None]],
) -> tuple[Endpoint, Endpoint, Endpoint]:
    """The list, show and delete handlers of a resource:

    - list: ``{collection: [...]}``, the rendered page ``list_call`` returns for the
      request's ``list_query`` (with ``fields=`` and pagination links);
    - show: ``{member: {...}}``, the resource ``get_call`` returns for the id in the
      path parameter ``path_param``;
    - delete: ``delete_call`` with that id, then 204.

    Each call is reached from the app's ``Networking``, e.g. ``lambda net:
    net.ports.get``. The handlers are named ``list_<collection>``, ``get_<member>`` and
    ``delete_<member>``: the policy rule a route declared without one refuses with."""

    async def list_resources(request: Request) -> Response:
        ctx = caller(request)
        query = list_query(request)
        page = list_call(networking(request))(ctx, query)
        return listing(request, collection, query, page,
                       [render(row, page, ctx) for row in page.items])

    async def get_resource(request: Request) -> Response:
        ctx = caller(request)
        page = get_call(networking(request))(ctx, request.path_params[path_param])
        return show(request, member, render(page.one(), page, ctx))

    async def delete_resource(request: Request) -> Response:
        ctx = caller(request)
        delete_call(networking(request))(ctx, request.path_params[path_param])
        return no_content()

    for handler, name in ((list_resources, f"list_{collection}"),
                          (get_resource, f"get_{member}"),
                          (delete_resource, f"delete_{member}")):
        handler.__name__ = handler.__qualname__ = name
    return list_resources, get_resource, delete_resource

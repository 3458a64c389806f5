"""/v2.1/flavors, their os-extra_specs and os-flavor-access (Nova's flavor APIs)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import bounded_int, caller, json_response, read_json
from onestack.api.compute.common import (
    MAX_INT,
    check_bool,
    check_description,
    check_int,
    check_name,
    check_object,
    compute,
    limit_and_marker,
    next_links,
    only_keys,
    query_param,
    refuse_unknown_query,
    resource_links,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, reader
from onestack.common.errors import BadRequest, InvalidField, NotFound
from onestack.services.compute.flavors import SORT_KEYS, FlavorSpec, FlavorView

if TYPE_CHECKING:
    from onestack.services.compute.flavors import Flavors

_FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_RXTX = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_SPEC_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
_SQL_SP_FLOAT_MAX = 3.40282e38


def _flavors(request: Request) -> Flavors:
    return compute(request).flavors


def render_flavor(request: Request, flavor: FlavorView, detail: bool = True,
                  with_specs: bool | None = None) -> dict[str, Any]:
    """A flavor as Nova shows it at the request's microversion; from 2.61 with its extra
    specs when the caller may read them (``with_specs``; None: ask the token)."""
    v = version(request)
    body: dict[str, Any] = {"id": flavor.id, "name": flavor.name}
    if detail:
        body.update({
            "ram": flavor.ram, "disk": flavor.disk,
            "swap": flavor.swap if v >= (2, 75) else (flavor.swap or ""),
            "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
            "OS-FLV-DISABLED:disabled": flavor.disabled, "vcpus": flavor.vcpus,
            "os-flavor-access:is_public": flavor.is_public,
            "rxtx_factor": flavor.rxtx_factor or "",
        })
    body["links"] = resource_links(request, "flavors", flavor.id)
    if v >= (2, 55):
        body["description"] = flavor.description
    if with_specs is None:
        with_specs = _may_read_specs(request)
    if detail and v >= (2, 61) and with_specs:
        body["extra_specs"] = dict(flavor.extra_specs)
    return body


def _may_read_specs(request: Request) -> bool:
    ctx = caller(request)
    return ctx.is_admin or ctx.project_id is not None


# -- list / show ---------------------------------------------------------------------

_LIST_QUERY = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")


def _parse_is_public(request: Request, raw: str | None) -> bool | None:
    if raw is None:
        return True
    if raw.strip().lower() == "none":
        return None
    # oslo's strict bool_from_string, as Nova parses this filter.
    word = raw.strip().lower()
    if word in ("1", "t", "true", "on", "y", "yes"):
        return True
    if word in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid is_public filter [{raw}]")


def _min_filter(request: Request, name: str) -> int | None:
    raw = query_param(request, name)
    if raw is None:
        return None
    value = bounded_int(name, raw)
    if value is None:
        raise BadRequest(f"Invalid {name} filter [{raw}]")
    return value


def _list(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, _LIST_QUERY)
    limit, marker = limit_and_marker(request)
    sort_key = query_param(request, "sort_key") or "flavorid"
    sort_dir = query_param(request, "sort_dir") or "asc"
    if sort_key not in SORT_KEYS:
        raise InvalidField("sort_key", f"{sort_key!r} is not one of {sorted(SORT_KEYS)}")
    if sort_dir not in ("asc", "desc"):
        raise InvalidField("sort_dir", f"{sort_dir!r} is not one of ['asc', 'desc']")
    flavors = _flavors(request).list(
        ctx, is_public=_parse_is_public(request, query_param(request, "is_public")),
        min_ram=_min_filter(request, "minRam"), min_disk=_min_filter(request, "minDisk"),
        sort_key=sort_key, sort_dir=sort_dir, limit=limit, marker=marker)
    with_specs = _may_read_specs(request)
    out: dict[str, Any] = {"flavors": [render_flavor(request, f, detail, with_specs)
                                       for f in flavors]}
    links = next_links(request, "flavors/detail" if detail else "flavors", len(flavors),
                       flavors[-1].id if flavors else None)
    if links:
        out["flavors_links"] = links
    return json_response(out)


async def list_flavors(request: Request) -> Response:
    return _list(request, detail=False)


async def list_flavors_detail(request: Request) -> Response:
    return _list(request, detail=True)


async def show_flavor(request: Request) -> Response:
    ctx = caller(request)
    flavor = _flavors(request).get(ctx, request.path_params["flavor_id"])
    return json_response({"flavor": render_flavor(request, flavor)})


# -- flavor-manage -------------------------------------------------------------------


def _flavor_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidField("flavor/id", f"{value!r} is not of type 'string', 'number', "
                           "'null'")
    if isinstance(value, str):
        if not 1 <= len(value) <= 255 or not _FLAVOR_ID.match(value):
            raise InvalidField("flavor/id", f"{value!r} does not match "
                               f"'{_FLAVOR_ID.pattern}'")
        return value
    return str(value)


def _rxtx(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidField("flavor/rxtx_factor", f"{value!r} is not of type 'number', "
                           "'string'")
    if isinstance(value, str):
        if not _RXTX.match(value):
            raise InvalidField("flavor/rxtx_factor", f"{value!r} is not a number")
        value = float(value)
    if not 0 < value <= _SQL_SP_FLOAT_MAX:
        raise InvalidField("flavor/rxtx_factor",
                           f"must be a float between 0 and {_SQL_SP_FLOAT_MAX:g}")
    return float(value)


def parse_create(request: Request, body: dict[str, Any]) -> FlavorSpec:
    only_keys("body", body, ("flavor",), ("flavor",))
    data = check_object("flavor", body["flavor"])
    allowed = ["name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public"]
    if version(request) >= (2, 55):
        allowed.append("description")
    only_keys("flavor", data, allowed, ("name", "ram", "vcpus", "disk"))
    swap = data.get("swap", 0)
    return FlavorSpec(
        name=check_name("flavor/name", data["name"]),
        id=_flavor_id(data.get("id")),
        ram=check_int("flavor/ram", data["ram"], 1, MAX_INT),
        vcpus=check_int("flavor/vcpus", data["vcpus"], 1, MAX_INT),
        disk=check_int("flavor/disk", data["disk"], 0, MAX_INT),
        ephemeral=check_int("flavor/OS-FLV-EXT-DATA:ephemeral",
                            data.get("OS-FLV-EXT-DATA:ephemeral", 0), 0, MAX_INT),
        swap=0 if swap == "" else check_int("flavor/swap", swap, 0, MAX_INT),
        rxtx_factor=_rxtx(data.get("rxtx_factor", 1.0)),
        is_public=check_bool("flavor/os-flavor-access:is_public",
                             data.get("os-flavor-access:is_public", True)),
        description=check_description("flavor/description", data.get("description"),
                                       65535),
    )


async def create_flavor(request: Request) -> Response:
    ctx = caller(request)
    spec = parse_create(request, await read_json(request))
    flavor = _flavors(request).create(ctx, spec)
    return json_response({"flavor": render_flavor(request, flavor)})


async def update_flavor(request: Request) -> Response:
    ctx = caller(request)
    if version(request) < (2, 55):
        raise NotFound("The resource could not be found.")
    body = await read_json(request)
    only_keys("body", body, ("flavor",), ("flavor",))
    data = check_object("flavor", body["flavor"])
    only_keys("flavor", data, ("description",), ("description",))
    description = check_description("flavor/description", data["description"], 65535)
    flavor = _flavors(request).update_description(ctx, request.path_params["flavor_id"],
                                                  description)
    return json_response({"flavor": render_flavor(request, flavor)})


async def delete_flavor(request: Request) -> Response:
    ctx = caller(request)
    _flavors(request).delete(ctx, request.path_params["flavor_id"])
    return Response(status_code=202)


# -- extra specs ---------------------------------------------------------------------


def _specs(field: str, data: Any) -> dict[str, str]:
    """Nova's extra specs: keys of ``[a-zA-Z0-9-_:. ]``, values strings or numbers of at
    most 255 characters (numbers are stored as their text)."""
    data = check_object(field, data)
    out = {}
    for key, value in data.items():
        if not _SPEC_KEY.match(key):
            raise InvalidField(field, f"{key!r} does not match '{_SPEC_KEY.pattern}'")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidField(f"{field}/{key}", f"{value!r} is not of type 'string', "
                               "'number'")
        text = value if isinstance(value, str) else str(value)
        if len(text) > 255:
            raise InvalidField(f"{field}/{key}", "is longer than 255 characters")
        out[key] = text
    return out


async def list_extra_specs(request: Request) -> Response:
    ctx = caller(request)
    specs = _flavors(request).extra_specs(ctx, request.path_params["flavor_id"])
    return json_response({"extra_specs": specs})


async def create_extra_specs(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    only_keys("body", body, ("extra_specs",), ("extra_specs",))
    specs = _specs("extra_specs", body["extra_specs"])
    _flavors(request).set_extra_specs(ctx, request.path_params["flavor_id"], specs)
    return json_response(body)


async def show_extra_spec(request: Request) -> Response:
    ctx = caller(request)
    key = request.path_params["key"]
    value = _flavors(request).extra_spec(ctx, request.path_params["flavor_id"], key)
    return json_response({key: value})


async def update_extra_spec(request: Request) -> Response:
    ctx = caller(request)
    key = request.path_params["key"]
    body = await read_json(request)
    specs = _specs("body", body)
    if len(specs) != 1:
        raise BadRequest("Invalid input for field/attribute body: the body must hold "
                         "exactly one extra spec.")
    if key not in specs:
        raise BadRequest("Request body and URI mismatch")
    _flavors(request).set_extra_specs(ctx, request.path_params["flavor_id"], specs,
                                      rule="update")
    return json_response(body)


async def delete_extra_spec(request: Request) -> Response:
    ctx = caller(request)
    _flavors(request).delete_extra_spec(ctx, request.path_params["flavor_id"],
                                        request.path_params["key"])
    return Response(status_code=200)


# -- flavor access -------------------------------------------------------------------


def _access_body(flavor_id: str, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p} for p in projects]}


async def list_flavor_access(request: Request) -> Response:
    ctx = caller(request)
    flavor_id = request.path_params["flavor_id"]
    return json_response(_access_body(flavor_id,
                                      _flavors(request).access_list(ctx, flavor_id)))


def _tenant(body: dict[str, Any], action: str) -> str:
    data = check_object(action, body[action])
    only_keys(action, data, ("tenant",), ("tenant",))
    tenant = data["tenant"]
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= 255:
        raise InvalidField(f"{action}/tenant", "must be a string of 1 to 255 characters")
    return tenant


async def flavor_action(request: Request) -> Response:
    ctx = caller(request)
    flavor_id = request.path_params["flavor_id"]
    body = await read_json(request)
    if len(body) != 1 or next(iter(body)) not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest("There is no such action: " + ", ".join(map(str, body)))
    if "addTenantAccess" in body:
        projects = _flavors(request).add_access(
            ctx, flavor_id, _tenant(body, "addTenantAccess"),
            refuse_public=version(request) >= (2, 7))
    else:
        projects = _flavors(request).remove_access(
            ctx, flavor_id, _tenant(body, "removeTenantAccess"))
    return json_response(_access_body(flavor_id, projects))


routes = [
    Route("/v2.1/flavors", reader(list_flavors), methods=["GET"]),
    Route("/v2.1/flavors", admin(create_flavor), methods=["POST"]),
    Route("/v2.1/flavors/detail", reader(list_flavors_detail), methods=["GET"]),
    Route("/v2.1/flavors/{flavor_id}", reader(show_flavor), methods=["GET"]),
    Route("/v2.1/flavors/{flavor_id}", admin(update_flavor), methods=["PUT"]),
    Route("/v2.1/flavors/{flavor_id}", admin(delete_flavor), methods=["DELETE"]),
    Route("/v2.1/flavors/{flavor_id}/action", admin(flavor_action), methods=["POST"]),
    Route("/v2.1/flavors/{flavor_id}/os-flavor-access", admin(list_flavor_access), methods=["GET"]),
    Route("/v2.1/flavors/{flavor_id}/os-extra_specs", reader(list_extra_specs), methods=["GET"]),
    Route("/v2.1/flavors/{flavor_id}/os-extra_specs", admin(create_extra_specs), methods=["POST"]),
    Route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", reader(show_extra_spec),
          methods=["GET"]),
    Route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", admin(update_extra_spec),
          methods=["PUT"]),
    Route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", admin(delete_extra_spec),
          methods=["DELETE"]),
]

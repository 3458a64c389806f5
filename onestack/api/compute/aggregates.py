"""/v2.1/os-aggregates (Nova's host aggregates, administrators only).

Bodies are checked as Nova's schemas check them (400), then the service answers
(``services/compute/aggregates.py``: 404 unknown aggregate or host, 409 duplicate name
or host, zone conflicts). Nova's shapes: ``id`` (an integer), ``name``,
``availability_zone``, ``hosts``, ``metadata``, the timestamps, ``deleted`` and
``deleted_at`` (aggregates are deleted for good: always false and null), ``uuid`` from
2.41; the create answer has no ``hosts`` or ``metadata``. Create, delete and the
actions answer 200, as Nova does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    check_name,
    check_object,
    compute,
    nova_time,
    only_keys,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin
from onestack.api.compute.validation import check_fqdn, check_uuid
from onestack.common.errors import BadRequest, InvalidField, NotFound
from onestack.services.compute.aggregates import AZ_KEY, AggregateView

if TYPE_CHECKING:
    from onestack.services.compute.aggregates import Aggregates


def _aggregates(request: Request) -> Aggregates:
    return compute(request).aggregates


def _aggregate_id(request: Request) -> int:
    """The ``{aggregate_id}``: an integer (Nova's ``validate_integer``, 400 otherwise;
    a negative or unknown one is a 404)."""
    raw = str(request.path_params["aggregate_id"]).strip()
    if not re.fullmatch(r"[-+]?[0-9]{1,30}", raw):
        raise BadRequest(f"Invalid input received: id must be an integer (got {raw[:40]!r})")
    return int(raw)


def render(request: Request, view: AggregateView, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "availability_zone": view.availability_zone,
        "created_at": nova_time(view.created_at),
        "deleted": False,
        "deleted_at": None,
        "id": view.id,
        "name": view.name,
        "updated_at": nova_time(view.updated_at),
    }
    if full:
        body["hosts"] = list(view.hosts)
        body["metadata"] = dict(view.metadata)
    if version(request) >= (2, 41):
        body["uuid"] = view.uuid
    return body


# -- Nova's formats --------------------------------------------------------------------


def check_zone(field: str, value: Any, strip: bool = False) -> str:
    """Nova's ``az_name``: a name (1 to 255 printable characters) without ``:``, which
    would read as ``zone:host`` at server create. ``strip``: leading and trailing
    spaces are allowed and dropped (the update's form)."""
    if strip and isinstance(value, str) and value.strip(" "):
        value = value.strip(" ")
    value = check_name(field, value)
    if ":" in value:
        raise InvalidField(field, f"{value!r} is not a valid availability zone name: "
                           "printable characters except ':'")
    return value


def _loose_name(field: str, value: Any) -> str:
    """Nova's ``name_with_leading_trailing_spaces`` (the update's name), normalised:
    leading and trailing spaces are dropped, what is left must be a name."""
    if isinstance(value, str) and value.strip(" "):
        value = value.strip(" ")
    return check_name(field, value)


_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def _metadata(field: str, value: Any) -> dict[str, str | None]:
    """Nova's ``metadata_with_null``: keys of ``[a-zA-Z0-9-_:. ]{1,255}``, values strings
    of at most 255 characters or null (null removes the key)."""
    value = check_object(field, value)
    for key, item in value.items():
        if not _METADATA_KEY.match(key):
            raise InvalidField(field, f"Additional properties are not allowed ('{key}' was "
                               "unexpected)")
        if item is not None and not isinstance(item, str):
            raise InvalidField(f"{field}/{key}", f"{item!r} is not of type 'string', 'null'")
        if item is not None and len(item) > 255:
            raise InvalidField(f"{field}/{key}", f"{item!r} is too long")
    zone = value.get(AZ_KEY)
    if isinstance(zone, str) and ":" in zone:
        raise InvalidField(f"{field}/{AZ_KEY}", f"{zone!r} is not a valid availability "
                           "zone name: printable characters except ':'")
    return value


def _member(body: Any, key: str, allowed: tuple[str, ...],
            required: tuple[str, ...]) -> dict[str, Any]:
    """``body[key]``, an object with only ``allowed`` keys (400 otherwise)."""
    body = check_object("body", body)
    only_keys("body", body, (key,), (key,))
    data = check_object(key, body[key])
    only_keys(key, data, allowed, required)
    return data


# -- routes ----------------------------------------------------------------------------


async def list_aggregates(request: Request) -> Response:
    views = _aggregates(request).list_all(caller(request))
    return json_response({"aggregates": [render(request, v) for v in views]})


async def create_aggregate(request: Request) -> Response:
    data = _member(await read_json(request), "aggregate", ("name", AZ_KEY), ("name",))
    name = check_name("aggregate/name", data["name"])
    zone = data.get(AZ_KEY)
    if zone is not None:
        zone = check_zone(f"aggregate/{AZ_KEY}", zone)
    view = _aggregates(request).create(caller(request), name, zone)
    return json_response({"aggregate": render(request, view, full=False)})


async def show_aggregate(request: Request) -> Response:
    aggregate_id = _aggregate_id(request)
    view = _aggregates(request).get(caller(request), aggregate_id)
    return json_response({"aggregate": render(request, view)})


async def update_aggregate(request: Request) -> Response:
    data = _member(await read_json(request), "aggregate", ("name", AZ_KEY), ())
    if "name" not in data and AZ_KEY not in data:
        raise InvalidField("aggregate", "one of 'name' and 'availability_zone' is required")
    name = _loose_name("aggregate/name", data["name"]) if "name" in data else None
    zone = data.get(AZ_KEY)
    if zone is not None:
        zone = check_zone(f"aggregate/{AZ_KEY}", zone, strip=True)
    aggregate_id = _aggregate_id(request)
    view = _aggregates(request).update(caller(request), aggregate_id, name=name,
                                       set_zone=AZ_KEY in data, zone=zone)
    return json_response({"aggregate": render(request, view)})


async def delete_aggregate(request: Request) -> Response:
    aggregate_id = _aggregate_id(request)
    _aggregates(request).delete(caller(request), aggregate_id)
    return Response(status_code=200)


async def aggregate_action(request: Request) -> Response:
    """``add_host``, ``remove_host`` or ``set_metadata`` (one per request)."""
    body = check_object("body", await read_json(request))
    if len(body) != 1:
        raise BadRequest("Malformed request body")
    name = next(iter(body))
    ctx, service = caller(request), _aggregates(request)
    if name in ("add_host", "remove_host"):
        host = check_fqdn(f"{name}/host", _member(body, name, ("host",), ("host",))["host"])
        aggregate_id = _aggregate_id(request)
        view = service.add_host(ctx, aggregate_id, host) if name == "add_host" \
            else service.remove_host(ctx, aggregate_id, host)
    elif name == "set_metadata":
        data = _member(body, name, ("metadata",), ("metadata",))
        metadata = _metadata("set_metadata/metadata", data["metadata"])
        view = service.set_metadata(ctx, _aggregate_id(request), metadata)
    else:
        raise BadRequest(f"There is no such action: {name}")
    return json_response({"aggregate": render(request, view)})


async def cache_aggregate_images(request: Request) -> Response:
    """2.81 ``POST /os-aggregates/{id}/images``: checked, then refused with a 501
    (``Aggregates.cache_images``)."""
    if version(request) < (2, 81):
        raise NotFound("The resource could not be found.")
    body = check_object("body", await read_json(request))
    only_keys("body", body, ("cache",), ("cache",))
    cache = body["cache"]
    if not isinstance(cache, list) or not cache:
        raise InvalidField("cache", f"{cache!r} is not a non-empty array")
    image_ids = []
    for index, item in enumerate(cache):
        entry = check_object(f"cache/{index}", item)
        only_keys(f"cache/{index}", entry, ("id",), ("id",))
        image_ids.append(check_uuid(f"cache/{index}/id", entry["id"]))
    _aggregates(request).cache_images(caller(request), _aggregate_id(request), image_ids)


_ONE = "/v2.1/os-aggregates/{aggregate_id}"

routes = [
    Route("/v2.1/os-aggregates", admin(list_aggregates), methods=["GET"]),
    Route("/v2.1/os-aggregates", admin(create_aggregate), methods=["POST"]),
    Route(_ONE, admin(show_aggregate), methods=["GET"]),
    Route(_ONE, admin(update_aggregate), methods=["PUT"]),
    Route(_ONE, admin(delete_aggregate), methods=["DELETE"]),
    Route(f"{_ONE}/action", admin(aggregate_action), methods=["POST"]),
    Route(f"{_ONE}/images", admin(cache_aggregate_images), methods=["POST"]),
]

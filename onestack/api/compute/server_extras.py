"""Nova routes the stock clients call for features OneStack has only in part, or not at
all, answered the way Nova answers a cloud without them (instead of a bare 404):

- ``/servers/{id}/os-interface`` (``openstack server remove port|network``,
  ``conn.compute.server_interfaces``): the server's ports are listed and shown;
  attaching and detaching interfaces is a 501 (Nova's answer when the virt driver
  cannot hot-plug).
- ``/servers/{id}/diagnostics``: 501 (Nova's answer when the driver has none).
- ``/servers/{id}/os-server-password``: always empty (no guest agent posts one); the
  ``DELETE`` that clears it is a 204.
- ``/servers/{id}/migrations`` and ``/os-migrations`` (``openstack server migration
  list``): always empty (there are no migrations; resizes are in place).

Host aggregates are real: ``api/compute/aggregates.py``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import check_object, compute, server_id
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, member, reader
from onestack.common.errors import BadRequest, NotFound
from onestack.hostlink import capabilities as caps
from onestack.services.compute import policy
from onestack.services.compute.server_views import ServerView


async def _body(request: Request, key: str) -> dict[str, Any]:
    """Nova's schema check comes before the feature check: the body must be
    ``{key: {...}}`` (400 otherwise)."""
    body = await read_json(request)
    if key not in body:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: None. "
                         f"'{key}' is a required property")
    return check_object(key, body[key])


def _server(request: Request) -> ServerView:
    """The server (Nova's 404 when the caller cannot see it)."""
    return compute(request).servers.get(caller(request), server_id(request))


# -- os-interface --------------------------------------------------------------------------


def _interface(request: Request, entry: dict[str, Any]) -> dict[str, Any]:
    body = dict(entry)
    tag = body.pop("tag", None)
    if version(request) >= (2, 70):
        body["tag"] = tag
    return body


def _refuse(request: Request, capability: str, feature: str, otherwise: str) -> NoReturn:
    """501: the server's host cannot do ``capability``, or this cloud has no such
    operation (``otherwise``)."""
    compute(request).actions.refuse_unsupported(caller(request), server_id(request),
                                                capability, feature, otherwise)


async def list_interfaces(request: Request) -> Response:
    entries = compute(request).servers.interfaces(caller(request), server_id(request))
    return json_response({"interfaceAttachments": [_interface(request, e) for e in entries]})


async def show_interface(request: Request) -> Response:
    entries = compute(request).servers.interfaces(caller(request), server_id(request))
    port_id = request.path_params["port_id"]
    for entry in entries:
        if entry["port_id"] == port_id:
            return json_response({"interfaceAttachment": _interface(request, entry)})
    raise NotFound(f"Port {port_id} is not attached")


async def attach_interface(request: Request) -> Response:
    _server(request)
    await _body(request, "interfaceAttachment")
    _refuse(request, caps.ATTACH_INTERFACE, "attach interface",
            "Attaching interfaces to a server is not supported by this cloud; create the "
            "server with the port or network instead.")


async def detach_interface(request: Request) -> Response:
    entries = compute(request).servers.interfaces(caller(request), server_id(request))
    port_id = request.path_params["port_id"]
    if not any(e["port_id"] == port_id for e in entries):
        raise NotFound(f"Port {port_id} is not attached")
    _refuse(request, caps.ATTACH_INTERFACE, "detach interface",
            "Detaching interfaces from a server is not supported by this cloud.")


# -- diagnostics, password -----------------------------------------------------------------


async def diagnostics(request: Request) -> Response:
    _server(request)
    policy.require_admin(caller(request), "os_compute_api:os-server-diagnostics")
    _refuse(request, caps.DIAGNOSTICS, "diagnostics",
            "Unable to get diagnostics, functionality not implemented")


async def show_password(request: Request) -> Response:
    _server(request)
    return json_response({"password": ""})


async def clear_password(request: Request) -> Response:
    _server(request)
    return Response(status_code=204)


# -- migrations -----------------------------------------------------------------------------


async def list_server_migrations(request: Request) -> Response:
    _server(request)
    return json_response({"migrations": []})


async def show_server_migration(request: Request) -> Response:
    _server(request)
    migration = request.path_params["migration_id"]
    raise NotFound(f"Migration {migration} not found for instance {server_id(request)}.")


async def list_migrations(request: Request) -> Response:
    policy.require_admin(caller(request), "os_compute_api:os-migrations:index")
    return json_response({"migrations": []})


_SERVER = "/v2.1/servers/{server_id}"

routes = [
    Route(f"{_SERVER}/os-interface", reader(list_interfaces), methods=["GET"]),
    Route(f"{_SERVER}/os-interface", member(attach_interface), methods=["POST"]),
    Route(f"{_SERVER}/os-interface/{{port_id}}", reader(show_interface), methods=["GET"]),
    Route(f"{_SERVER}/os-interface/{{port_id}}", member(detach_interface), methods=["DELETE"]),
    Route(f"{_SERVER}/diagnostics", admin(diagnostics), methods=["GET"]),
    Route(f"{_SERVER}/os-server-password", reader(show_password), methods=["GET"]),
    Route(f"{_SERVER}/os-server-password", member(clear_password), methods=["DELETE"]),
    Route(f"{_SERVER}/migrations", admin(list_server_migrations), methods=["GET"]),
    Route(f"{_SERVER}/migrations/{{migration_id}}", admin(show_server_migration),
          methods=["GET", "DELETE"]),
    Route("/v2.1/os-migrations", admin(list_migrations), methods=["GET"]),
]

"""``/servers/{id}/os-interface`` (``openstack server add|remove port|network``,
``openstack port list --server``, ``conn.compute.server_interfaces``): a server's
ports, attached to and detached from the running guest
(``services/compute/interfaces.py``).

Nova's shapes: ``interfaceAttachment`` with ``port_id``, or ``net_id`` (and
``fixed_ips``, one address), or nothing (the project's only network); ``tag`` in
requests from 2.49 and in answers from 2.70. Attach answers 200 with the interface (its
``port_state`` ``DOWN`` until the host has plugged it), detach 202.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, loads_json, read_body
from onestack.api.compute.common import check_object, compute, only_keys, server_id
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import member, reader
from onestack.api.compute.validation import check_ip, check_tag, check_uuid
from onestack.common.errors import BadRequest, NotFound
from onestack.services.identity.context import ValidatedToken

FIELD = "interfaceAttachment"


def _interface(request: Request, entry: dict[str, Any]) -> dict[str, Any]:
    body = dict(entry)
    tag = body.pop("tag", None)
    if version(request) >= (2, 70):
        body["tag"] = tag
    return body


async def _attachment(request: Request) -> dict[str, Any]:
    """The ``interfaceAttachment`` object, checked as Nova's schema (an empty body, or
    none, asks for a port on the project's network)."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    body = loads_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    only_keys("body", body, [FIELD])
    if FIELD not in body:
        return {}
    attachment = check_object(FIELD, body[FIELD])
    allowed = ["net_id", "port_id", "fixed_ips"]
    if version(request) >= (2, 49):
        allowed.append("tag")
    only_keys(FIELD, attachment, allowed)
    for key in ("net_id", "port_id"):
        if key in attachment:
            check_uuid(key, attachment[key])
    if "tag" in attachment:
        check_tag("tag", attachment["tag"])
    if "fixed_ips" in attachment:
        ips = attachment["fixed_ips"]
        if not isinstance(ips, list):
            raise BadRequest(f"Invalid input for field/attribute fixed_ips. Value: {ips}. "
                             f"{ips!r} is not of type 'array'")
        if len(ips) > 1:
            raise BadRequest(f"Invalid input for field/attribute fixed_ips. Value: {ips}. "
                             f"{ips!r} is too long")
        for i, item in enumerate(ips):
            item = check_object(f"fixed_ips/{i}", item)
            only_keys(f"fixed_ips/{i}", item, ["ip_address"], required=["ip_address"])
            item["ip_address"] = check_ip(f"fixed_ips/{i}/ip_address", item["ip_address"])
    return attachment


async def list_interfaces(request: Request) -> Response:
    entries = compute(request).interfaces.list(caller(request), server_id(request))
    return json_response({"interfaceAttachments": [_interface(request, e) for e in entries]})


async def show_interface(request: Request) -> Response:
    entry = compute(request).interfaces.show(caller(request), server_id(request),
                                             request.path_params["port_id"])
    return json_response({"interfaceAttachment": _interface(request, entry)})


async def attach_interface(request: Request) -> Response:
    # another project's server is its 404 before the body is read
    compute(request).servers.get(caller(request), server_id(request))
    attachment = await _attachment(request)
    ips = attachment.get("fixed_ips") or []
    entry = compute(request).interfaces.attach(
        caller(request), server_id(request), network_id=attachment.get("net_id"),
        port_id=attachment.get("port_id"),
        fixed_ip=ips[0]["ip_address"] if ips else None, tag=attachment.get("tag"))
    return json_response({"interfaceAttachment": _interface(request, entry)})


async def detach_interface(request: Request) -> Response:
    compute(request).interfaces.detach(caller(request), server_id(request),
                                       request.path_params["port_id"])
    return Response(status_code=202)


_SERVER = "/v2.1/servers/{server_id}"

routes = [
    Route(f"{_SERVER}/os-interface", reader(list_interfaces), methods=["GET"]),
    Route(f"{_SERVER}/os-interface", member(attach_interface), methods=["POST"]),
    Route(f"{_SERVER}/os-interface/{{port_id}}", reader(show_interface), methods=["GET"]),
    Route(f"{_SERVER}/os-interface/{{port_id}}", member(detach_interface), methods=["DELETE"]),
]


# -- addFixedIp / removeFixedIp (server actions, 2.1-2.43) ------------------------------

#: The last microversion with Nova's multinic actions.
MAX_MULTINIC = (2, 43)


def _multinic_body(request: Request, name: str, value: Any, key: str) -> Any:
    if version(request) > MAX_MULTINIC:
        raise NotFound("The resource could not be found.")
    body = check_object(name, value)
    only_keys(name, body, [key], required=[key])
    return body[key]


async def add_fixed_ip(request: Request, ctx: ValidatedToken, sid: str, value: Any
                       ) -> Response:
    """``{"addFixedIp": {"networkId"}}``: 202, another address on the network."""
    network_id = _multinic_body(request, "addFixedIp", value, "networkId")
    if isinstance(network_id, bool) or not isinstance(network_id, str | int) \
            or not str(network_id):
        raise BadRequest(f"Invalid input for field/attribute networkId. Value: "
                         f"{network_id}. {network_id!r} is not of type 'string', 'integer'")
    compute(request).interfaces.add_fixed_ip(ctx, sid, str(network_id))
    return Response(status_code=202)


async def remove_fixed_ip(request: Request, ctx: ValidatedToken, sid: str, value: Any
                          ) -> Response:
    """``{"removeFixedIp": {"address"}}``: 202, the address leaves the server."""
    address = check_ip("address", _multinic_body(request, "removeFixedIp", value, "address"))
    compute(request).interfaces.remove_fixed_ip(ctx, sid, address)
    return Response(status_code=202)

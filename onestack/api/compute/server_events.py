"""``POST /compute/v2.1/os-server-external-events``: other services tell Compute about
things that happened to a server (Neutron: a port changed, a VIF was plugged).

Nova uses the network events to refresh its cached view of a server's ports and to end
waits for VIF plugging. OneStack keeps no such cache (addresses are read from the ports
when a server is shown) and plugs VIFs itself, so the network events are acknowledged:
each answers ``code`` 200 for a server that exists, 404 otherwise; the response is 200
when every server was found, 207 when some were, 404 when none was. Events that would
need an action (``volume-extended``, ``power-update``, ...) are refused with 400.
Cloud administrators only (Nova: the ``service`` role; Tempest's service user has
``admin`` too).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import check_object, compute, only_keys
from onestack.api.compute.policy import admin
from onestack.api.compute.validation import check_uuid
from onestack.common.errors import InvalidField, NotFound

NETWORK_EVENTS = ("network-changed", "network-vif-plugged", "network-vif-unplugged",
                  "network-vif-deleted")
STATUSES = ("failed", "completed", "in-progress")


def _check_event(index: int, event: Any) -> dict[str, Any]:
    field = f"events/{index}"
    event = check_object(field, event)
    only_keys(field, event, ("name", "server_uuid", "status", "tag"),
              required=("name", "server_uuid"))
    if event["name"] not in NETWORK_EVENTS:
        raise InvalidField(f"{field}/name", f"{event['name']!r} is not one of "
                           f"{list(NETWORK_EVENTS)} (other events are not supported)")
    check_uuid(f"{field}/server_uuid", event["server_uuid"])
    status = event.get("status", "completed")
    if status not in STATUSES:
        raise InvalidField(f"{field}/status", f"{status!r} is not one of {list(STATUSES)}")
    out = {"name": event["name"], "server_uuid": event["server_uuid"], "status": status}
    if "tag" in event:
        tag = event["tag"]
        if not isinstance(tag, str) or len(tag) > 255:
            raise InvalidField(f"{field}/tag", f"{tag!r} is not a string of at most 255 "
                               "characters")
        out["tag"] = tag
    return out


async def create_events(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    only_keys("body", body, ("events",), required=("events",))
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise InvalidField("events", f"{events!r} is not a non-empty array")
    checked = [_check_event(i, e) for i, e in enumerate(events)]
    servers = compute(request).servers
    for event in checked:
        try:
            servers.get(ctx, event["server_uuid"])
            event["code"] = 200
        except NotFound:
            event["code"] = 404
    found = sum(1 for e in checked if e["code"] == 200)
    if not found:
        raise NotFound("No instances found for any event")
    return json_response({"events": checked}, status=200 if found == len(checked) else 207)


routes = [
    Route("/v2.1/os-server-external-events", admin(create_events), methods=["POST"]),
]

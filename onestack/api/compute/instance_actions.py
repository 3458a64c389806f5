"""/v2.1/servers/{server_id}/os-instance-actions[/{request_id}]: what was done to a
server, with the events the hosts recorded.

Per microversion: 2.21 reads actions of deleted servers; 2.51 shows events to
non-admins (without ``traceback``); 2.58 adds ``updated_at``, paging (``limit``,
``marker`` = a request id, ``links``) and ``changes-since``; 2.62 adds each event's
``hostId`` (and ``host`` for admins); 2.66 adds ``changes-before``; 2.84 adds each
event's ``details`` for admins.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import (
    MAX_LIMIT,
    capped,
    compute,
    next_links,
    nova_time,
    server_id,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import reader
from onestack.api.compute.render import host_id
from onestack.api.compute.validation import time_param
from onestack.common.errors import BadRequest
from onestack.db.models import InstanceAction


def _action(request: Request, action: InstanceAction) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action.action, "instance_uuid": action.instance_uuid,
        "request_id": action.request_id, "user_id": action.user_id,
        "project_id": action.project_id, "start_time": nova_time(action.start_time),
        "message": action.message,
    }
    if version(request) >= (2, 58):
        body["updated_at"] = nova_time(action.updated_at)
    return body


def _query(request: Request) -> dict[str, Any]:
    v = version(request)
    if v < (2, 58):
        return {}
    allowed = {"limit", "marker", "changes-since"} | ({"changes-before"} if v >= (2, 66)
                                                      else set())
    params = request.query_params
    for name in params:
        if name not in allowed:
            raise BadRequest(f"Invalid input for query parameters {name}. Additional "
                             f"properties are not allowed ('{name}' was unexpected)")
        if len(params.getlist(name)) > 1:
            raise BadRequest(f"Invalid input for query parameters {name}. Value: "
                             f"{params.getlist(name)}. is not of type 'string'")
    out: dict[str, Any] = {"limit": MAX_LIMIT}
    if "limit" in params:
        raw = params["limit"]
        if not re.match(r"^[0-9]+$", raw):
            raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}. "
                             f"'{raw}' does not match '^[0-9]*$'")
        out["limit"] = capped(raw, MAX_LIMIT)
    if "marker" in params:
        out["marker"] = params["marker"]
    if "changes-since" in params:
        out["changes_since"] = time_param("changes-since", params["changes-since"])
    if "changes-before" in params:
        out["changes_before"] = time_param("changes-before", params["changes-before"])
    since, before = out.get("changes_since"), out.get("changes_before")
    if since and before and before < since:
        raise BadRequest("The value of changes-since must be less than or equal to "
                         "changes-before.")
    return out


async def list_actions(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    sid = server_id(request)
    query = _query(request)
    actions = compute(request).actions.list_actions(ctx, sid, read_deleted=v >= (2, 21),
                                                    **query)
    out: dict[str, Any] = {"instanceActions": [_action(request, a) for a in actions]}
    if v >= (2, 58):
        links = next_links(request, f"servers/{sid}/os-instance-actions", len(actions),
                           actions[-1].request_id if actions else None)
        if links:
            out["links"] = links
    return json_response(out)


async def show_action(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    action, project_id, _ = compute(request).actions.get_action(
        ctx, server_id(request), request.path_params["request_id"],
        read_deleted=v >= (2, 21))
    body = _action(request, action)
    if ctx.is_admin or v >= (2, 51):
        events = []
        for event in action.events:
            item: dict[str, Any] = {"event": event.event,
                                    "start_time": nova_time(event.start_time),
                                    "finish_time": nova_time(event.finish_time),
                                    "result": event.result}
            if ctx.is_admin:
                item["traceback"] = event.traceback
                if v >= (2, 62):
                    item["host"] = event.host or ""
            if v >= (2, 62):
                item["hostId"] = host_id(action.project_id or project_id, event.host)
            if v >= (2, 84) and ctx.is_admin:
                item["details"] = event.details
            events.append(item)
        body["events"] = events
    return json_response({"instanceAction": body})


routes = [
    Route("/v2.1/servers/{server_id}/os-instance-actions", reader(list_actions), methods=["GET"]),
    Route("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", reader(show_action),
          methods=["GET"]),
]

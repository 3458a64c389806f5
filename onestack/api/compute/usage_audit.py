"""``GET /compute/v2.1/os-instance_usage_audit_log[/{before}]``: the state of Nova's
periodic instance usage audit (the task that emits usage notifications per period).

OneStack has no such task: usage is computed from the servers' records when asked
(``os-simple-tenant-usage``). The answer is therefore what Nova answers when its audit
is disabled (its default): the last completed monthly period (before now, or before
the timestamp given as ``%Y-%m-%d %H:%M:%S[.%f]``), every compute host in
``hosts_not_run``, no log, no errors. Cloud administrators only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import compute
from onestack.api.compute.policy import admin
from onestack.common.errors import BadRequest


def _period(before: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The last whole month that ended at or before ``before``."""
    end = before.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    begin = (end - dt.timedelta(days=1)).replace(day=1)
    return begin, end


def _report(request: Request, before: dt.datetime) -> dict[str, Any]:
    ctx = caller(request)
    hosts = sorted({h["host_name"] for h in compute(request).hosts.list_hosts(ctx)
                    if h["service"] == "compute"})
    begin, end = _period(before)
    return {"hosts_not_run": hosts, "log": {}, "num_hosts": len(hosts),
            "num_hosts_done": 0, "num_hosts_not_run": len(hosts), "num_hosts_running": 0,
            "overall_status": f"0 of {len(hosts)} hosts done. 0 errors.",
            "period_beginning": str(begin), "period_ending": str(end),
            "total_errors": 0, "total_instances": 0}


async def list_audit_logs(request: Request) -> Response:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return json_response({"instance_usage_audit_logs": _report(request, now)})


async def show_audit_log(request: Request) -> Response:
    raw = request.path_params["before"]
    try:
        before = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f" if "." in raw
                                      else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BadRequest(f"Invalid timestamp for date {raw}") from None
    return json_response({"instance_usage_audit_log": _report(request, before)})


routes = [
    Route("/v2.1/os-instance_usage_audit_log", admin(list_audit_logs), methods=["GET"]),
    Route("/v2.1/os-instance_usage_audit_log/{before}", admin(show_audit_log),
          methods=["GET"]),
]

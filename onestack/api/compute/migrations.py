"""``GET /os-migrations`` (``openstack server migration list``): the records of resizes
(``services/compute/migrations.py``), in Nova's shape for each microversion: 2.23 adds
``migration_type`` (and ``links`` for live migrations in progress, which this cloud does
not make), 2.59 ``uuid`` with ``limit``/``marker``/``changes-since`` and ``next`` links,
2.66 ``changes-before``, 2.80 ``user_id``/``project_id`` (also as filters)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import MAX_LIMIT, capped, compute, next_links, nova_time
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin
from onestack.api.compute.validation import time_param
from onestack.common.errors import BadRequest
from onestack.db.models.compute_migrations import Migration
from onestack.services.compute.migrations import MigrationQuery

_FILTERS = ("hidden", "host", "status", "instance_uuid", "source_compute", "cell_name")


def _flavor_int(flavor_id: str | None) -> int | None:
    """Nova shows its internal integer flavor ids; flavors here have only the public
    id, shown when it is a number."""
    return int(flavor_id) if flavor_id and flavor_id.isdigit() else None


def render(request: Request, m: Migration) -> dict[str, Any]:
    v = version(request)
    body: dict[str, Any] = {
        "id": m.id, "status": m.status, "instance_uuid": m.instance_uuid,
        "source_node": m.source_node, "source_compute": m.source_compute,
        "dest_node": m.dest_node, "dest_compute": m.dest_compute, "dest_host": m.dest_host,
        "old_instance_type_id": _flavor_int(m.old_flavor_id),
        "new_instance_type_id": _flavor_int(m.new_flavor_id),
        "created_at": nova_time(m.created_at), "updated_at": nova_time(m.updated_at),
    }
    if v >= (2, 23):
        body["migration_type"] = m.migration_type
    if v >= (2, 59):
        body["uuid"] = m.uuid
    if v >= (2, 80):
        body["user_id"] = m.user_id
        body["project_id"] = m.project_id
    return body


def _query(request: Request) -> MigrationQuery:
    v = version(request)
    params = request.query_params
    allowed = set(_FILTERS)
    if v >= (2, 23):
        allowed.add("migration_type")
    if v >= (2, 59):
        allowed |= {"limit", "marker", "changes-since"}
    if v >= (2, 66):
        allowed.add("changes-before")
    if v >= (2, 80):
        allowed |= {"user_id", "project_id"}
    q = MigrationQuery()
    for name in params:
        if name not in allowed:
            if v >= (2, 59):
                raise BadRequest(f"Invalid input for query parameters {name}. Additional "
                                 f"properties are not allowed ('{name}' was unexpected)")
            continue   # Nova ignores unknown parameters before 2.59
        value = params[name]
        if name == "limit":
            if not re.match(r"^[0-9]+$", value):
                raise BadRequest(f"Invalid input for query parameters limit. Value: "
                                 f"{value}. '{value}' does not match '^[0-9]*$'")
            q.limit = capped(value, MAX_LIMIT)
        elif name == "changes-since":
            q.changes_since = time_param(name, value)
        elif name == "changes-before":
            q.changes_before = time_param(name, value)
        elif name in ("hidden", "cell_name"):
            continue
        elif name == "marker":
            q.marker = value
        else:
            setattr(q, name, value)
    if q.changes_since and q.changes_before and q.changes_before < q.changes_since:
        raise BadRequest("The value of changes-since must be less than or equal to "
                         "changes-before.")
    if v >= (2, 59) and q.limit is None:
        q.limit = MAX_LIMIT
    return q


async def list_migrations(request: Request) -> Response:
    query = _query(request)
    rows = compute(request).migrations.list(caller(request), query)
    out: dict[str, Any] = {"migrations": [render(request, m) for m in rows]}
    if version(request) >= (2, 59):
        links = next_links(request, "os-migrations", len(rows),
                           rows[-1].uuid if rows else None)
        if links:
            out["migrations_links"] = links
    return json_response(out)


routes = [
    Route("/v2.1/os-migrations", admin(list_migrations), methods=["GET"]),
]

"""What the Block Storage API modules share: the service, the project in the URL,
access levels (Cinder's 403 text), links, time format, sorting and paging."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from onestack.api.access import AccessLevels
from onestack.api.common import base_url, bounded_int, caller
from onestack.api.volume.microversion import OWN_PROJECT, project_in_url, version
from onestack.common.errors import BadRequest, NotFound
from onestack.services.identity.context import ValidatedToken
from onestack.services.volume import Volumes
from onestack.services.volume.common import check_project, forbidden

T = TypeVar("T")

#: endpoint -> Cinder's policy rule name (the one a refusal names).
RULES = {
    "list_volumes": "volume:get_all", "list_volumes_detail": "volume:get_all",
    "create_volume": "volume:create", "show_volume": "volume:get",
    "update_volume": "volume:update", "delete_volume": "volume:delete",
    "volume_action": "volume_extension:volume_actions",
    "volume_summary": "volume:get_volume_summary",
    "volume_metadata": "volume:get_volume_metadata",
    "volume_metadata_item": "volume:update_volume_metadata",
    "list_snapshots": "volume:get_all_snapshots", "create_snapshot": "volume:create_snapshot",
    "show_snapshot": "volume:get_snapshot", "update_snapshot": "volume:update_snapshot",
    "delete_snapshot": "volume:delete_snapshot",
    "snapshot_metadata": "volume:get_snapshot_metadata",
    "snapshot_metadata_item": "volume:update_snapshot_metadata",
    "snapshot_action": "volume_extension:snapshot_admin_actions:reset_status",
    "list_types": "volume_extension:types_manage", "create_type": "volume_extension:types_manage",
    "show_type": "volume_extension:type_get", "update_type": "volume_extension:types_manage",
    "delete_type": "volume_extension:types_manage",
    "type_extra_specs": "volume_extension:types_extra_specs:index",
    "type_extra_spec": "volume_extension:types_extra_specs:show",
    "type_action": "volume_extension:volume_type_access:addProjectAccess",
    "type_access": "volume_extension:volume_type_access",
    "list_qos": "volume_extension:qos_specs_manage:get_all",
    "create_qos": "volume_extension:qos_specs_manage:create",
    "qos_item": "volume_extension:qos_specs_manage:get",
    "qos_associate": "volume_extension:qos_specs_manage:update",
    "quota_set": "volume_extension:quotas:show",
    "quota_defaults": "volume_extension:quotas:show",
    "show_limits": "limits_extension:used_limits",
    "list_attachments": "volume:attachment_get_all",
    "create_attachment": "volume:attachment_create",
    "attachment_item": "volume:attachment_update",
    "attachment_action": "volume:attachment_complete",
    "list_transfers": "volume:get_all_transfers", "create_transfer": "volume:create_transfer",
    "transfer_item": "volume:get_transfer", "accept_transfer": "volume:accept_transfer",
    "list_zones": "volume_extension:availability_zone_list",
    "list_services": "volume_extension:services:index",
    "list_messages": "message:get_all", "message_item": "message:get",
    "list_backups": "backup:get_all", "backup_item": "backup:get",
    "create_backup": "backup:create", "list_extensions": "volume_extension:extensions",
    "list_backups_detail": "backup:get_all", "show_backup": "backup:get",
    "update_backup": "backup:update", "delete_backup": "backup:delete",
    "restore_backup": "backup:restore", "backup_action": "backup:backup-reset_status",
    "export_record": "backup:export-import", "import_record": "backup:backup-import",
    "get_pools": "scheduler_extension:scheduler_stats:get_pools",
    "service_action": "volume_extension:services:update",
    "list_hosts": "volume_extension:hosts", "show_host": "volume_extension:hosts",
    "show_capabilities": "volume_extension:capabilities",
    "quota_class_set": "volume_extension:quota_classes",
    "group_types": "group:group_types_manage", "group_type": "group:group_types_manage",
    "default_group_type": "group:group_types:show",
    "group_specs": "group:group_types_specs", "group_spec": "group:group_types_specs",
    "list_groups": "group:get_all", "create_group": "group:create",
    "group_item": "group:update", "group_action": "group:delete",
    "groups_action": "group:create_group_from_src",
    "list_group_snapshots": "group:get_all_group_snapshots",
    "create_group_snapshot": "group:create_group_snapshot",
    "group_snapshot_item": "group:delete_group_snapshot",
    "group_snapshot_action": "group:reset_group_snapshot_status",
}


ACCESS = AccessLevels(forbidden, RULES)
reader = ACCESS.reader
member = ACCESS.member
admin = ACCESS.admin
reads_and_writes = ACCESS.reads_and_writes
reads_and_admin_writes = ACCESS.reads_and_admin_writes


def volumes(request: Request) -> Volumes:
    service: Volumes = request.app.state.services.volume
    return service


def context(request: Request) -> ValidatedToken:
    """The caller, once the ``{project_id}`` of the URL is checked against its token."""
    ctx = caller(request)
    project = request.path_params.get("project_id")
    if project is not None and project != OWN_PROJECT:
        check_project(ctx, project)
    return ctx


def url_project(request: Request, ctx: ValidatedToken) -> str:
    project = request.path_params.get("project_id")
    if project in (None, OWN_PROJECT):
        return ctx.project_id or ""
    return str(project)


def path_id(request: Request, name: str) -> str:
    return str(request.path_params[name])


def api_root(request: Request) -> str:
    return f"{base_url(request)}/volume"


def _project_part(request: Request) -> str:
    """``{project_id}/`` as the client's URL had it (nothing if it left it out)."""
    if not project_in_url(request):
        return ""
    return f"{request.path_params.get('project_id', OWN_PROJECT)}/"


def links(request: Request, collection: str, ident: str) -> list[dict[str, str]]:
    project = _project_part(request)
    root = api_root(request)
    return [{"rel": "self", "href": f"{root}/v3/{project}{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{root}/{project}{collection}/{ident}"}]


def cinder_time(value: dt.datetime | None) -> str | None:
    """Cinder's timestamps: ``2013-02-25T02:40:21.000000``."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def query(request: Request, name: str) -> str | None:
    if not request.scope.get("query_string"):
        return None
    return request.query_params.get(name)


def query_flag(request: Request, name: str) -> bool:
    raw = query(request, name)
    return raw is not None and raw.strip().lower() in ("1", "t", "true", "on", "y", "yes")


#: Parameters that are not filters.
NOT_FILTERS = ("limit", "marker", "offset", "sort", "sort_key", "sort_dir", "all_tenants",
               "with_count", "is_public")


def filters(request: Request) -> dict[str, str]:
    out = {}
    for key, value in request.query_params.items():
        if key in NOT_FILTERS:
            continue
        if key.endswith("~") and version(request) < (3, 34):
            continue
        out[key] = value
    return out


def _sort_spec(request: Request, allowed: Sequence[str]) -> list[tuple[str, str]]:
    sort = query(request, "sort")
    keys: list[tuple[str, str]] = []
    if sort:
        for item in sort.split(","):
            key, _, direction = item.strip().partition(":")
            keys.append((key, direction or "desc"))
    elif query(request, "sort_key"):
        keys = [(query(request, "sort_key") or "", query(request, "sort_dir") or "desc")]
    for key, direction in keys:
        if key not in allowed:
            raise BadRequest(f"Invalid input received: Invalid sort key {key!r} (one of "
                             f"{', '.join(allowed)}).")
        if direction.lower() not in ("asc", "desc"):
            raise BadRequest(f"Invalid input received: Invalid sort direction "
                             f"{direction!r}.")
    return keys or [("created_at", "desc")]


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, dt.datetime):
        return (1, value.isoformat())
    return (1, value)


def sort_and_page(request: Request, items: list[T], allowed: Sequence[str],
                  key_of: Callable[[T, str], Any], id_of: Callable[[T], str],
                  max_limit: int = 1000) -> tuple[list[T], bool, int]:
    """Sort (Cinder's ``sort=k:dir,...`` or ``sort_key``/``sort_dir``), then page
    (``marker``, ``limit``, ``offset``). Returns the page, whether to link a next page
    (Cinder's rule: the page is full), and the count before paging."""
    for key, direction in reversed(_sort_spec(request, allowed)):
        items = sorted(items, key=lambda item: _sortable(key_of(item, key)),
                       reverse=direction.lower() == "desc")
    total = len(items)
    marker = query(request, "marker")
    if marker:
        ids = [id_of(i) for i in items]
        if marker not in ids:
            raise NotFound(f"Marker {marker} could not be found.")
        items = items[ids.index(marker) + 1:]
    offset_raw = query(request, "offset")
    if offset_raw is not None:
        offset = bounded_int("offset", offset_raw)
        if offset is None or offset < 0:
            raise BadRequest(f"Invalid input received: offset param must be an integer "
                             f"0 or greater (got {offset_raw!r}).")
        items = items[offset:]
    limit_raw = query(request, "limit")
    limit = max_limit
    if limit_raw is not None:
        value = bounded_int("limit", limit_raw)
        if value is None or value < 0:
            raise BadRequest(f"Invalid input received: limit param must be an integer 0 or "
                             f"greater (got {limit_raw!r}).")
        limit = min(value, max_limit)
    # Cinder links a next page whenever this one is full (even if nothing follows)
    page = items[:limit]
    return page, bool(limit) and len(page) == limit, total


def next_link(request: Request, collection: str, last_id: str) -> list[dict[str, str]]:
    params = dict(request.query_params)
    params["marker"] = last_id
    return [{"rel": "next", "href": f"{api_root(request)}/v3/{_project_part(request)}"
             f"{collection}?{urlencode(params)}"}]

"""/v2.1/servers: create, list (``/servers``, ``/servers/detail``), show, update, delete.

Bodies follow Nova's JSON schemas of the negotiated microversion (which keys exist,
their types and formats; the value formats are in ``validation``); the service does the
rest. Servers become bodies in ``render``.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content, read_json
from onestack.api.compute.common import (
    MAX_LIMIT,
    capped,
    check_bool,
    check_description,
    check_int,
    check_name,
    check_object,
    compute,
    next_links,
    only_keys,
    resource_links,
    server_id,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import member, reader
from onestack.api.compute.render import location_of, render_server
from onestack.api.compute.validation import (
    check_disk_config,
    check_fqdn,
    check_hostname,
    check_ip,
    check_metadata,
    check_personality,
    check_string,
    check_tag,
    check_tags,
    check_user_data,
    check_uuid,
    time_param,
)
from onestack.common.errors import BadRequest, Forbidden, InvalidField
from onestack.services.compute import states
from onestack.services.compute.server_lists import SORT_COLUMNS
from onestack.services.compute.server_requests import BootRequest, NetworkRequest, ServerQuery
from onestack.services.identity.context import ValidatedToken

# -- create ------------------------------------------------------------------------------

_CREATE_KEYS = ("name", "imageRef", "flavorRef", "adminPass", "metadata", "networks",
                "OS-DCF:diskConfig", "accessIPv4", "accessIPv6", "availability_zone",
                "block_device_mapping", "block_device_mapping_v2", "config_drive",
                "key_name", "min_count", "max_count", "return_reservation_id",
                "security_groups", "user_data")
_BDM_KEYS = ("virtual_name", "volume_id", "snapshot_id", "volume_size", "device_name",
             "delete_on_termination", "no_device", "connection_info", "source_type", "uuid",
             "image_id", "destination_type", "guest_format", "device_type", "disk_bus",
             "boot_index")


def _create_keys(v: tuple[int, int]) -> list[str]:
    keys = list(_CREATE_KEYS)
    if v < (2, 57):
        keys.append("personality")
    if v >= (2, 19):
        keys.append("description")
    if v >= (2, 52):
        keys.append("tags")
    if v >= (2, 63):
        keys.append("trusted_image_certificates")
    if v >= (2, 74):
        keys += ["host", "hypervisor_hostname"]
    if v >= (2, 90):
        keys.append("hostname")
    return keys


def _network_tags_allowed(v: tuple[int, int]) -> bool:
    return (2, 32) <= v <= (2, 36) or v >= (2, 42)


def _bdm_tags_allowed(v: tuple[int, int]) -> bool:
    return v == (2, 32) or v >= (2, 42)


def parse_networks(request: Request, value: Any) -> list[NetworkRequest] | str:
    v = version(request)
    if v >= (2, 37) and isinstance(value, str):
        if value not in ("auto", "none"):
            raise InvalidField("server/networks", f"{value!r} is not one of ['none', "
                               "'auto']")
        return value
    if not isinstance(value, list):
        raise InvalidField("server/networks", f"{value!r} is not of type 'array'")
    keys = ["fixed_ip", "port", "uuid"]
    if _network_tags_allowed(v):
        keys.append("tag")
    out: list[NetworkRequest] = []
    ports: set[str] = set()
    for index, item in enumerate(value):
        field = f"server/networks/{index}"
        item = check_object(field, item)
        only_keys(field, item, keys)
        req = NetworkRequest()
        if "fixed_ip" in item:
            req.fixed_ip = check_ip(f"{field}/fixed_ip", item["fixed_ip"])
        if item.get("port") is not None:
            req.port_id = check_uuid(f"{field}/port", item["port"])
        if "tag" in item:
            req.tag = check_tag(f"{field}/tag", item["tag"])
        if req.port_id:
            if req.port_id in ports:
                raise BadRequest(f"Port ID '{req.port_id}' was specified twice: you cannot "
                                 "attach a port multiple times.")
            if req.fixed_ip is not None:
                raise BadRequest(f"Specified Fixed IP '{req.fixed_ip}' cannot be used with "
                                 f"port '{req.port_id}': the two cannot be specified "
                                 "together.")
            ports.add(req.port_id)
        else:
            if "uuid" not in item:
                raise BadRequest("Bad network format: missing 'uuid'")
            net_id = check_string(f"{field}/uuid", item["uuid"])
            if v >= (2, 37):
                check_uuid(f"{field}/uuid", net_id)
            else:
                try:
                    uuidlib.UUID(net_id)
                except ValueError:
                    raise BadRequest("Bad networks format: network uuid is not in proper "
                                     f"format ({net_id})") from None
            req.network_id = net_id
        out.append(req)
    return out


def parse_bdms(request: Request, value: Any) -> list[dict[str, Any]]:
    v = version(request)
    if not isinstance(value, list):
        raise InvalidField("server/block_device_mapping_v2", f"{value!r} is not of type "
                           "'array'")
    keys = list(_BDM_KEYS)
    if _bdm_tags_allowed(v):
        keys.append("tag")
    if v >= (2, 67):
        keys.append("volume_type")
    out = []
    for index, item in enumerate(value):
        field = f"server/block_device_mapping_v2/{index}"
        item = check_object(field, item)
        only_keys(field, item, keys)
        if "source_type" in item and item["source_type"] not in ("volume", "image",
                                                                 "snapshot", "blank"):
            raise InvalidField(f"{field}/source_type", f"{item['source_type']!r} is not one "
                               "of ['volume', 'image', 'snapshot', 'blank']")
        if "destination_type" in item and item["destination_type"] not in ("local",
                                                                           "volume"):
            raise InvalidField(f"{field}/destination_type", f"{item['destination_type']!r} "
                               "is not one of ['local', 'volume']")
        if item.get("image_id") is not None:
            check_uuid(f"{field}/image_id", item["image_id"])
        if item.get("uuid") is not None:
            check_string(f"{field}/uuid", item["uuid"])
        boot_index = item.get("boot_index")
        if boot_index is not None:
            if isinstance(boot_index, bool) or not (
                    isinstance(boot_index, int)
                    or (isinstance(boot_index, str) and re.match(r"^-?[0-9]+$", boot_index))):
                raise InvalidField(f"{field}/boot_index", f"{boot_index!r} is not a valid "
                                   "boot index")
            item = {**item, "boot_index": int(boot_index)}
        if "delete_on_termination" in item:
            check_bool(f"{field}/delete_on_termination", item["delete_on_termination"])
        out.append(item)
    return out


def parse_create(request: Request, body: dict[str, Any]) -> tuple[BootRequest, bool]:
    """The service's ``BootRequest`` and ``return_reservation_id`` from a create body."""
    v = version(request)
    only_keys("body", body, ("server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"),
              required=("server",))
    server = check_object("server", body["server"])
    required = ["name", "flavorRef"] + (["networks"] if v >= (2, 37) else [])
    only_keys("server", server, _create_keys(v), required)
    req = BootRequest(name=check_name("server/name", server["name"]), flavor_ref="")
    flavor_ref = server["flavorRef"]
    if isinstance(flavor_ref, bool) or not isinstance(flavor_ref, (str, int)) or \
            flavor_ref == "":
        raise InvalidField("server/flavorRef", f"{flavor_ref!r} is not a valid flavor "
                           "reference")
    req.flavor_ref = urlsplit(str(flavor_ref)).path.split("/")[-1]
    image_ref = server.get("imageRef", "")
    if image_ref != "":
        image_ref = check_uuid("server/imageRef", image_ref)
    req.image_ref = image_ref
    if "adminPass" in server:
        req.admin_pass = check_string("server/adminPass", server["adminPass"])
    if "metadata" in server:
        req.metadata = check_metadata("server/metadata", server["metadata"])
    if "networks" in server:
        req.networks = parse_networks(request, server["networks"])
    if "OS-DCF:diskConfig" in server:
        req.auto_disk_config = check_disk_config("server/OS-DCF:diskConfig",
                                                 server["OS-DCF:diskConfig"]) == "AUTO"
    if "accessIPv4" in server:
        req.access_ip_v4 = check_ip("server/accessIPv4", server["accessIPv4"], 4)
    if "accessIPv6" in server:
        req.access_ip_v6 = check_ip("server/accessIPv6", server["accessIPv6"], 6)
    if "availability_zone" in server:
        req.availability_zone = check_name("server/availability_zone",
                                           server["availability_zone"])
    if "personality" in server:
        req.personality = check_personality("server/personality", server["personality"])
    if server.get("block_device_mapping"):
        raise BadRequest("The legacy block_device_mapping is not supported; use "
                         "block_device_mapping_v2 with source_type image and "
                         "destination_type local.")
    if "block_device_mapping_v2" in server:
        req.block_device_mapping = parse_bdms(request, server["block_device_mapping_v2"])
    if "config_drive" in server:
        req.config_drive = check_bool("server/config_drive", server["config_drive"])
    if "key_name" in server:
        req.key_name = check_name("server/key_name", server["key_name"])
    if "min_count" in server:
        req.min_count = check_int("server/min_count", server["min_count"], 1)
    req.max_count = check_int("server/max_count", server["max_count"], 1) \
        if "max_count" in server else req.min_count
    return_reservation_id = False
    if "return_reservation_id" in server:
        return_reservation_id = check_bool("server/return_reservation_id",
                                           server["return_reservation_id"])
    if "security_groups" in server:
        groups = server["security_groups"]
        if not isinstance(groups, list):
            raise InvalidField("server/security_groups", f"{groups!r} is not of type "
                               "'array'")
        names = []
        for index, group in enumerate(groups):
            field = f"server/security_groups/{index}"
            group = check_object(field, group)
            only_keys(field, group, ("name",))
            if "name" in group:
                names.append(check_name(f"{field}/name", group["name"]))
        req.security_groups = names
    if "user_data" in server:
        req.user_data = check_user_data("server/user_data", server["user_data"])
    req.description = req.name if v < (2, 19) else None
    if "description" in server:
        req.description = check_description("server/description", server["description"],
                                            255)
    if "tags" in server:
        req.tags = check_tags("server/tags", server["tags"])
    if server.get("trusted_image_certificates") is not None:
        raise BadRequest("Image certificate validation is not supported by this cloud: "
                         "trusted_image_certificates must be null.")
    if "host" in server:
        req.requested_host = check_fqdn("server/host", server["host"])
    if "hypervisor_hostname" in server:
        req.requested_node = check_fqdn("server/hypervisor_hostname",
                                        server["hypervisor_hostname"])
    if "hostname" in server:
        req.hostname = check_hostname(request, "server/hostname", server["hostname"])
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints"))
    if hints is not None:
        hints = check_object("os:scheduler_hints", hints)
        group = hints.get("group")
        if group is not None:
            for item in group if isinstance(group, list) else [group]:
                check_uuid("os:scheduler_hints/group", item)
        for key in ("same_host", "different_host"):
            value = hints.get(key)
            if value is not None:
                for item in value if isinstance(value, list) else [value]:
                    check_uuid(f"os:scheduler_hints/{key}", item)
        req.scheduler_hints = dict(hints)
    return req, return_reservation_id


async def create_server(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    req, return_reservation_id = parse_create(request, body)
    result = compute(request).servers.create(ctx, req)
    if return_reservation_id:
        return json_response({"reservation_id": result.reservation_id}, status=202)
    uuid = result.uuids[0]
    groups = body["server"].get("security_groups", [{"name": "default"}])
    disk_config = "AUTO" if compute(request).servers.get(ctx, uuid).auto_disk_config \
        else "MANUAL"
    server = {"id": uuid, "links": resource_links(request, "servers", uuid),
              "OS-DCF:diskConfig": disk_config, "security_groups": groups,
              "adminPass": result.admin_pass}
    return json_response({"server": server}, status=202, headers=location_of(request, uuid))


# -- list ------------------------------------------------------------------------------

#: Query parameters Nova's index schema knows (besides those of later versions).
_KNOWN = {
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image", "kernel_id",
    "ramdisk_id", "hostname", "key_name", "power_state", "vm_state", "task_state", "host",
    "node", "flavor", "reservation_id", "launched_at", "terminated_at", "availability_zone",
    "name", "display_name", "description", "display_description", "locked_by", "uuid",
    "root_device_name", "config_drive", "access_ip_v4", "access_ip_v6", "auto_disk_config",
    "progress", "sort_key", "sort_dir", "all_tenants", "soft_deleted", "deleted", "status",
    "changes-since", "ip", "ip6", "created_at", "limit", "marker",
    "block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
    "security_groups", "pci_devices",
}
_JOINED = {"block_device_mapping", "services", "metadata", "system_metadata",
           "info_cache", "security_groups", "pci_devices"}
_TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
#: Sort keys Nova accepts but ignores (before 2.75; from then on they are refused).
_IGNORED_SORT_KEYS = {"architecture", "cell_name", "cleaned", "default_ephemeral_device",
                      "default_swap_device", "deleted", "deleted_at", "disable_terminate",
                      "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
                      "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
                      "shutdown_terminate", "user_data", "vcpus", "vm_mode"}
_SORT_KEYS = {"access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone",
              "config_drive", "created_at", "display_description", "display_name", "host",
              "hostname", "image_ref", "instance_type_id", "kernel_id", "key_name",
              "launch_index", "launched_at", "locked_by", "node", "power_state", "progress",
              "project_id", "ramdisk_id", "root_device_name", "task_state", "terminated_at",
              "updated_at", "user_id", "uuid", "vm_state"}
#: Filter -> column for Nova's regular-expression filters.
_REGEX = {"name": "display_name", "display_name": "display_name",
          "description": "display_description",
          "display_description": "display_description", "hostname": "hostname",
          "key_name": "key_name", "node": "node", "reservation_id": "reservation_id",
          "availability_zone": "availability_zone", "access_ip_v4": "access_ip_v4",
          "access_ip_v6": "access_ip_v6", "launched_at": "launched_at",
          "terminated_at": "terminated_at", "created_at": "created_at",
          "progress": "progress", "power_state": "power_state", "locked_by": "locked_by",
          "launch_index": "launch_index"}
#: Filter -> column for exact filters.
_EXACT = {"user_id": "user_id", "vm_state": "vm_state", "task_state": "task_state",
          "host": "host", "uuid": "uuid"}


def _allowed_filters(v: tuple[int, int]) -> set[str]:
    """What non-admins may filter on (Nova's ``_get_server_search_options``)."""
    allowed = {"reservation_id", "name", "status", "image", "flavor", "ip",
               "changes-since", "all_tenants"}
    if v >= (2, 5):
        allowed.add("ip6")
    if v >= (2, 26):
        allowed.update(_TAG_FILTERS)
    if v >= (2, 66):
        allowed.add("changes-before")
    if v >= (2, 73):
        allowed.add("locked")
    if v >= (2, 83):
        allowed.update({"availability_zone", "config_drive", "key_name", "created_at",
                        "launched_at", "terminated_at", "power_state", "task_state",
                        "vm_state", "progress", "user_id"})
    if v >= (2, 90):
        allowed.add("hostname")
    return allowed


def _known(v: tuple[int, int]) -> set[str]:
    known = set(_KNOWN)
    if v >= (2, 26):
        known.update(_TAG_FILTERS)
    if v >= (2, 66):
        known.add("changes-before")
    if v >= (2, 73):
        known.add("locked")
    return known



def _last(request: Request, name: str) -> str:
    return request.query_params.getlist(name)[-1]


def _loose_bool(raw: str) -> bool:
    """oslo's ``bool_from_string`` without strict: anything unknown is False."""
    return raw.strip().lower() in ("1", "t", "true", "on", "y", "yes")


def _strict_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return True
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Unrecognized value '{raw}', acceptable values are: '0', '1', 'f', "
                     "'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'")


def parse_list_query(request: Request, ctx: ValidatedToken, detail: bool) -> ServerQuery:
    """Nova's server list parameters at the request's microversion: which are honoured
    (non-admins get a subset; the rest is ignored, or refused from 2.75), and what they
    mean."""
    v = version(request)
    params = request.query_params
    known = _known(v)
    if v >= (2, 75):
        for name in params:
            if name not in known and not name.startswith("_"):
                raise BadRequest(f"Invalid input for query parameters {name}. Additional "
                                 f"properties are not allowed ('{name}' was unexpected)")
    query = ServerQuery(detail=detail)
    # paging and sorting are checked by the schema for everybody
    if "limit" in params:
        raw = _last(request, "limit")
        if not re.match(r"^[0-9]+$", raw):
            raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}. "
                             f"'{raw}' does not match '^[0-9]*$'")
        query.limit = capped(raw, MAX_LIMIT)
    if "marker" in params:
        query.marker = _last(request, "marker")
    keys = [k.strip() for k in params.getlist("sort_key")]
    dirs = [d.strip() for d in params.getlist("sort_dir")]
    valid_keys = _SORT_KEYS | ({"locked"} if v >= (2, 73) else set())
    ignored = set() if v >= (2, 75) else _IGNORED_SORT_KEYS - valid_keys
    for key in keys:
        if key not in valid_keys and key not in ignored:
            raise BadRequest(f"Invalid input for query parameters sort_key. Value: {key}. "
                             f"'{key}' is not one of {sorted(valid_keys | ignored)}")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise BadRequest("Unknown sort direction, must be 'desc' or 'asc'")
    if len(dirs) > max(len(keys), 1):
        raise BadRequest("Sort direction size exceeds sort key size")
    default_dir = dirs[0] if dirs else "desc"
    for index, key in enumerate(keys):
        direction = dirs[index] if index < len(dirs) else default_dir
        if key in ignored:
            continue
        column = {"display_name": "display_name"}.get(key, key)
        if column in SORT_COLUMNS:
            query.sorts.append((column, direction == "asc"))
    if not any(k == "created_at" for k, _ in query.sorts):
        query.sorts.append(("created_at", default_dir == "asc"))
    # filters: non-admins only get those Nova allows them; admins get everything
    names = [n for n in dict.fromkeys(params.keys())
             if n not in ("limit", "marker", "sort_key", "sort_dir")]
    if not ctx.is_admin:
        allowed = _allowed_filters(v)
        names = [n for n in names if n in allowed]
    else:
        for name in names:
            if name in _JOINED or name.startswith("_"):
                raise BadRequest(f"Invalid filter field: {name}.")
    for name in names:
        raw = _last(request, name)
        if name == "status":
            statuses = params.getlist("status")
            vm_states, task_states = states.states_for_statuses(statuses)
            if not vm_states:
                if v >= (2, 38):
                    raise BadRequest("Invalid status value")
                query.vm_states = set()
                continue
            query.vm_states, query.task_states = vm_states, task_states
        elif name in ("changes-since", "changes-before"):
            value = time_param(name, raw)
            if name == "changes-since":
                query.changes_since = value
            else:
                query.changes_before = value
        elif name == "deleted":
            query.deleted = _loose_bool(raw)
        elif name == "all_tenants":
            query.all_tenants = True if raw == "" else _strict_bool("all_tenants", raw)
        elif name == "locked":
            query.locked = _strict_bool("locked", raw)
        elif name in ("project_id", "tenant_id"):
            continue  # below: they count only with all_tenants
        elif name in ("image", "image_ref"):
            query.image = urlsplit(raw).path.split("/")[-1]
        elif name == "flavor":
            query.flavor = urlsplit(raw).path.split("/")[-1]
        elif name == "ip":
            query.ip = raw
        elif name == "ip6":
            query.ip6 = raw
        elif name in _TAG_FILTERS:
            if v < (2, 26):
                continue
            tags = [t for t in raw.split(",") if t]
            {"tags": query.tags, "tags-any": query.tags_any, "not-tags": query.not_tags,
             "not-tags-any": query.not_tags_any}[name].extend(tags)
        elif name == "config_drive":
            query.exact["config_drive"] = [_loose_bool(raw)]
        elif name in _EXACT:
            query.exact[_EXACT[name]] = params.getlist(name) if name in (
                "vm_state", "task_state") else [raw]
        elif name in _REGEX:
            query.regex[_REGEX[name]] = raw
    if query.changes_since and query.changes_before and \
            query.changes_before < query.changes_since:
        raise BadRequest("The value of changes-since must be less than or equal to "
                         "changes-before.")
    if query.vm_states is not None and query.vm_states == {states.DELETED}:
        if not ctx.is_admin:
            raise Forbidden("Only administrators may list deleted instances")
        query.deleted = True
    if query.all_tenants:
        project = params.get("project_id") or params.get("tenant_id")
        if project and ctx.is_admin:
            query.exact["project_id"] = [project]
    return query


def _list(request: Request, detail: bool) -> Response:
    ctx = caller(request)
    query = parse_list_query(request, ctx, detail)
    views = compute(request).servers.list(ctx, query)
    if detail:
        servers = [render_server(request, ctx, view, kind="detail") for view in views]
    else:
        servers = [{"id": view.uuid, "name": view.display_name,
                    "links": resource_links(request, "servers", view.uuid)}
                   for view in views]
    out: dict[str, Any] = {"servers": servers}
    links = next_links(request, "servers/detail" if detail else "servers", len(views),
                       views[-1].uuid if views else None)
    if links:
        out["servers_links"] = links
    return json_response(out)


async def list_servers(request: Request) -> Response:
    return _list(request, detail=False)


async def list_servers_detail(request: Request) -> Response:
    return _list(request, detail=True)


# -- one server ------------------------------------------------------------------------


async def show_server(request: Request) -> Response:
    ctx = caller(request)
    view = compute(request).servers.get(ctx, server_id(request))
    return json_response({"server": render_server(request, ctx, view)})


async def update_server(request: Request) -> Response:
    ctx = caller(request)
    v = version(request)
    body = await read_json(request)
    only_keys("body", body, ("server",), required=("server",))
    server = check_object("server", body["server"])
    keys = ["name", "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"]
    if v >= (2, 19):
        keys.append("description")
    if v >= (2, 90):
        keys.append("hostname")
    only_keys("server", server, keys)
    changes: dict[str, Any] = {}
    if "name" in server:
        changes["display_name"] = check_name("server/name", server["name"])
    if "description" in server:
        changes["display_description"] = check_description(
            "server/description", server["description"], 255)
    if "hostname" in server:
        changes["hostname"] = check_hostname(request, "server/hostname", server["hostname"])
    if "accessIPv4" in server:
        changes["access_ip_v4"] = check_ip("server/accessIPv4", server["accessIPv4"], 4)
    if "accessIPv6" in server:
        changes["access_ip_v6"] = check_ip("server/accessIPv6", server["accessIPv6"], 6)
    if "OS-DCF:diskConfig" in server:
        changes["auto_disk_config"] = check_disk_config(
            "server/OS-DCF:diskConfig", server["OS-DCF:diskConfig"]) == "AUTO"
    view = compute(request).servers.update(ctx, server_id(request), changes)
    return json_response({"server": render_server(request, ctx, view, kind="update")})


async def delete_server(request: Request) -> Response:
    ctx = caller(request)
    compute(request).servers.delete(ctx, server_id(request))
    return no_content()


routes = [
    Route("/v2.1/servers", reader(list_servers), methods=["GET"]),
    Route("/v2.1/servers", member(create_server), methods=["POST"]),
    Route("/v2.1/servers/detail", reader(list_servers_detail), methods=["GET"]),
    Route("/v2.1/servers/{server_id}", reader(show_server), methods=["GET"]),
    Route("/v2.1/servers/{server_id}", member(update_server), methods=["PUT"]),
    Route("/v2.1/servers/{server_id}", member(delete_server), methods=["DELETE"]),
]

"""/v2.1/os-quota-sets, /v2.1/os-quota-class-sets and /v2.1/limits (Nova's quotas).

Which resources a body holds depends on the microversion: nova-network's quotas go at
2.36 (2.50 for quota classes), injected files at 2.57; quota classes gain
``server_groups`` and ``server_group_members`` at 2.50.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    MAX_INT,
    check_bool,
    check_int,
    check_object,
    compute,
    only_keys,
    query_param,
    refuse_unknown_query,
)
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, reader
from onestack.common.errors import BadRequest
from onestack.services.compute.quotas import (
    NETWORK_RESOURCES,
    PERSONALITY_RESOURCES,
    RESOURCES,
    ComputeQuotas,
)


def _quotas(request: Request) -> ComputeQuotas:
    return compute(request).quotas


def shown_resources(request: Request) -> list[str]:
    """The quota-set resources of the request's microversion."""
    v = version(request)
    hidden: tuple[str, ...] = ()
    if v >= (2, 57):
        hidden = NETWORK_RESOURCES + PERSONALITY_RESOURCES
    elif v >= (2, 36):
        hidden = NETWORK_RESOURCES
    return [r for r in RESOURCES if r not in hidden]


def class_resources(request: Request) -> list[str]:
    """The quota-class resources of the request's microversion."""
    v = version(request)
    if v >= (2, 57):
        hidden: tuple[str, ...] = NETWORK_RESOURCES + PERSONALITY_RESOURCES
    elif v >= (2, 50):
        hidden = NETWORK_RESOURCES
    else:
        hidden = ("server_groups", "server_group_members")
    return [r for r in RESOURCES if r not in hidden]


def _quota_set(resources: list[str], values: dict[str, Any], ident: str | None
               ) -> dict[str, Any]:
    body: dict[str, Any] = {"id": ident} if ident is not None else {}
    body.update({r: values[r] for r in resources})
    return body


def _parse_limits(body: dict[str, Any], member: str, resources: list[str],
                  allow_force: bool) -> tuple[dict[str, int], bool]:
    only_keys("body", body, (member,), (member,))
    data = check_object(member, body[member])
    allowed = [*resources, "force"] if allow_force else resources
    only_keys(member, data, allowed)
    force = False
    changes: dict[str, int] = {}
    for key, value in data.items():
        if key == "force":
            force = check_bool(f"{member}/force", value)
            continue
        if value == "":
            continue  # Nova skips empty values
        changes[key] = check_int(f"{member}/{key}", value, -1, MAX_INT, signed=True)
    return changes, force


def _user_id(request: Request) -> str | None:
    """``?user_id=``: the quotas of one user of the project (Nova reads an empty one as
    none)."""
    user_id = query_param(request, "user_id")
    if not user_id:
        return None
    if len(user_id) > 64:
        raise BadRequest(f"Invalid user_id {user_id[:64]}...: at most 64 characters.")
    return user_id


# -- os-quota-sets -------------------------------------------------------------------


async def show_quota_set(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    project_id = request.path_params["project_id"]
    limits = _quotas(request).show(ctx, project_id, _user_id(request))
    return json_response({"quota_set": _quota_set(shown_resources(request), limits,
                                                  project_id)})


async def show_quota_set_detail(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    project_id = request.path_params["project_id"]
    detail = _quotas(request).detail(ctx, project_id, _user_id(request))
    return json_response({"quota_set": _quota_set(shown_resources(request), detail,
                                                  project_id)})


async def show_quota_set_defaults(request: Request) -> Response:
    ctx = caller(request)
    project_id = request.path_params["project_id"]
    limits = _quotas(request).defaults(ctx, project_id)
    return json_response({"quota_set": _quota_set(shown_resources(request), limits,
                                                  project_id)})


async def update_quota_set(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    user_id = _user_id(request)
    changes, force = _parse_limits(await read_json(request), "quota_set",
                                   shown_resources(request), allow_force=True)
    limits = _quotas(request).update(ctx, request.path_params["project_id"], changes,
                                     force=force, user_id=user_id)
    return json_response({"quota_set": _quota_set(shown_resources(request), limits, None)})


async def delete_quota_set(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("user_id",))
    _quotas(request).reset(ctx, request.path_params["project_id"], _user_id(request))
    return Response(status_code=202)


# -- os-quota-class-sets -------------------------------------------------------------


async def show_quota_class(request: Request) -> Response:
    ctx = caller(request)
    class_name = request.path_params["class_name"]
    limits = _quotas(request).show_class(ctx, class_name)
    return json_response({"quota_class_set": _quota_set(class_resources(request), limits,
                                                        class_name)})


async def update_quota_class(request: Request) -> Response:
    ctx = caller(request)
    changes, _ = _parse_limits(await read_json(request), "quota_class_set",
                               class_resources(request), allow_force=False)
    limits = _quotas(request).update_class(ctx, request.path_params["class_name"], changes)
    return json_response({"quota_class_set": _quota_set(class_resources(request), limits,
                                                        None)})


# -- limits --------------------------------------------------------------------------

#: quota resource -> the absolute limits that show it.
LIMIT_NAMES = {
    "ram": ("maxTotalRAMSize",), "instances": ("maxTotalInstances",),
    "cores": ("maxTotalCores",), "key_pairs": ("maxTotalKeypairs",),
    "floating_ips": ("maxTotalFloatingIps",),
    "metadata_items": ("maxServerMeta", "maxImageMeta"),
    "injected_files": ("maxPersonality",),
    "injected_file_content_bytes": ("maxPersonalitySize",),
    "security_groups": ("maxSecurityGroups",),
    "security_group_rules": ("maxSecurityGroupRules",),
    "server_groups": ("maxServerGroups",),
    "server_group_members": ("maxServerGroupMembers",),
}
USED_NAMES = {
    "totalRAMUsed": "ram", "totalCoresUsed": "cores", "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips", "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}


def absolute_limits(request: Request, limits: dict[str, int], used: dict[str, int]
                    ) -> dict[str, int]:
    v = version(request)
    hidden: set[str] = set()
    if v >= (2, 36):
        hidden |= {"floating_ips", "security_groups", "security_group_rules"}
    if v >= (2, 57):
        hidden |= {"injected_files", "injected_file_content_bytes"}
    out: dict[str, int] = {}
    for resource, names in LIMIT_NAMES.items():
        if resource in hidden:
            continue
        for name in names:
            if name == "maxImageMeta" and v >= (2, 39):
                continue
            out[name] = limits[resource]
    for name, resource in USED_NAMES.items():
        if resource not in hidden:
            out[name] = used[resource]
    return out


async def show_limits(request: Request) -> Response:
    ctx = caller(request)
    refuse_unknown_query(request, ("tenant_id",))
    tenant_id = query_param(request, "tenant_id") if request.scope.get("query_string") \
        and "tenant_id" in request.query_params else None
    limits, used = _quotas(request).absolute_limits(ctx, tenant_id)
    return json_response({"limits": {"rate": [],
                                      "absolute": absolute_limits(request, limits, used)}})


routes = [
    Route("/v2.1/os-quota-sets/{project_id}", reader(show_quota_set), methods=["GET"]),
    Route("/v2.1/os-quota-sets/{project_id}", admin(update_quota_set), methods=["PUT"]),
    Route("/v2.1/os-quota-sets/{project_id}", admin(delete_quota_set), methods=["DELETE"]),
    Route("/v2.1/os-quota-sets/{project_id}/detail",
          reader(show_quota_set_detail), methods=["GET"]),
    Route("/v2.1/os-quota-sets/{project_id}/defaults", reader(show_quota_set_defaults),
          methods=["GET"]),
    Route("/v2.1/os-quota-class-sets/{class_name}", admin(show_quota_class), methods=["GET"]),
    Route("/v2.1/os-quota-class-sets/{class_name}", admin(update_quota_class), methods=["PUT"]),
    Route("/v2.1/limits", reader(show_limits), methods=["GET"]),
]

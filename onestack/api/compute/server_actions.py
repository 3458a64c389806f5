"""POST /v2.1/servers/{server_id}/action: every server action, dispatched on the body's
one key as Nova does (``There is no such action: X`` for an unknown one, 404 for one
the negotiated microversion does not have, 501 for Nova's actions this cloud lacks:
``UNSUPPORTED``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import base_url, caller, json_response, read_json
from onestack.api.compute.common import (
    NotImplementedFault,
    check_description,
    check_name,
    check_object,
    compute,
    only_keys,
    server_id,
)
from onestack.api.compute.consoles import console_url
from onestack.api.compute.interfaces import add_fixed_ip, remove_fixed_ip
from onestack.api.compute.microversion import version
from onestack.api.compute.network_proxies import add_floating_ip, remove_floating_ip
from onestack.api.compute.policy import member
from onestack.api.compute.render import location_of, render_server
from onestack.api.compute.validation import (
    check_disk_config,
    check_hostname,
    check_ip,
    check_metadata,
    check_personality,
    check_string,
    check_user_data,
    check_uuid,
)
from onestack.common.errors import BadRequest, InvalidField, NotFound
from onestack.hostlink import capabilities as caps
from onestack.services.compute import rescue as rescue_service
from onestack.services.compute import shelve as shelve_service
from onestack.services.compute.actions import RebuildRequest
from onestack.services.compute.server_requests import validate_user_data
from onestack.services.identity.context import ValidatedToken

Handler = Callable[[Request, ValidatedToken, str, Any], Awaitable[Response]]


def accepted() -> Response:
    return Response(status_code=202)


# -- power and state ---------------------------------------------------------------------


async def stop(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    compute(request).actions.stop(ctx, sid)
    return accepted()


async def start(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    compute(request).actions.start(ctx, sid)
    return accepted()


async def reboot(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    value = check_object("reboot", value)
    only_keys("reboot", value, ("type",), required=("type",))
    kind = value["type"]
    if kind not in ("HARD", "Hard", "hard", "SOFT", "Soft", "soft"):
        raise InvalidField("reboot/type", f"{kind!r} is not one of ['HARD', 'Hard', 'hard', "
                           "'SOFT', 'Soft', 'soft']")
    compute(request).actions.reboot(ctx, sid, hard=kind.upper() == "HARD")
    return accepted()


def _simple(name: str) -> Handler:
    async def handler(request: Request, ctx: ValidatedToken, sid: str, value: Any
                      ) -> Response:
        getattr(compute(request).actions, name)(ctx, sid)
        return accepted()
    handler.__name__ = name
    return handler


# -- rebuild, resize, images --------------------------------------------------------------


async def rebuild(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    v = version(request)
    value = check_object("rebuild", value)
    keys = ["name", "imageRef", "adminPass", "metadata", "preserve_ephemeral",
            "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"]
    if v < (2, 57):
        keys.append("personality")
    if v >= (2, 19):
        keys.append("description")
    if v >= (2, 54):
        keys.append("key_name")
    if v >= (2, 57):
        keys.append("user_data")
    if v >= (2, 63):
        keys.append("trusted_image_certificates")
    if v >= (2, 90):
        keys.append("hostname")
    only_keys("rebuild", value, keys, required=("imageRef",))
    req = RebuildRequest(image_ref=check_uuid("rebuild/imageRef", value["imageRef"]))
    if "name" in value:
        req.name = check_name("rebuild/name", value["name"])
    if "adminPass" in value:
        req.admin_pass = check_string("rebuild/adminPass", value["adminPass"])
    if "metadata" in value:
        req.metadata = check_metadata("rebuild/metadata", value["metadata"])
    if "OS-DCF:diskConfig" in value:
        req.auto_disk_config = check_disk_config("rebuild/OS-DCF:diskConfig",
                                                 value["OS-DCF:diskConfig"]) == "AUTO"
    if "accessIPv4" in value:
        req.access_ip_v4 = check_ip("rebuild/accessIPv4", value["accessIPv4"], 4)
    if "accessIPv6" in value:
        req.access_ip_v6 = check_ip("rebuild/accessIPv6", value["accessIPv6"], 6)
    if "personality" in value:
        req.personality = check_personality("rebuild/personality", value["personality"])
    if "description" in value:
        req.description = check_description("rebuild/description", value["description"],
                                            255)
        req.set_description = True
    if "key_name" in value:
        key = value["key_name"]
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 255):
            raise InvalidField("rebuild/key_name", f"{key!r} is not a valid key name")
        req.key_name, req.set_key_name = key, True
    if "user_data" in value:
        req.user_data = check_user_data("rebuild/user_data", value["user_data"],
                                        nullable=True)
        req.set_user_data = True
        if req.user_data is not None:
            validate_user_data(req.user_data)
    if value.get("trusted_image_certificates") is not None:
        raise BadRequest("Image certificate validation is not supported by this cloud: "
                         "trusted_image_certificates must be null.")
    if "hostname" in value:
        req.hostname = check_hostname(request, "rebuild/hostname", value["hostname"])
    view, admin_pass = compute(request).actions.rebuild(ctx, sid, req)
    body = render_server(request, ctx, view, kind="rebuild")
    body["adminPass"] = admin_pass
    if v >= (2, 57):
        body["user_data"] = view.user_data
    return json_response({"server": body}, status=202, headers=location_of(request, sid))


async def resize(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    value = check_object("resize", value)
    only_keys("resize", value, ("flavorRef", "OS-DCF:diskConfig"), required=("flavorRef",))
    ref = value["flavorRef"]
    if isinstance(ref, bool) or not isinstance(ref, (str, int)) or ref == "":
        raise InvalidField("resize/flavorRef", f"{ref!r} is not a valid flavor reference")
    auto_disk_config = None
    if "OS-DCF:diskConfig" in value:
        auto_disk_config = check_disk_config("resize/OS-DCF:diskConfig",
                                             value["OS-DCF:diskConfig"]) == "AUTO"
    compute(request).actions.resize(ctx, sid, str(ref), auto_disk_config)
    return accepted()


async def confirm_resize(request: Request, ctx: ValidatedToken, sid: str, value: Any
                         ) -> Response:
    compute(request).actions.confirm_resize(ctx, sid)
    return Response(status_code=204)


async def create_image(request: Request, ctx: ValidatedToken, sid: str, value: Any
                       ) -> Response:
    value = check_object("createImage", value)
    only_keys("createImage", value, ("name", "metadata"), required=("name",))
    name = check_name("createImage/name", value["name"])
    metadata = check_metadata("createImage/metadata", value.get("metadata", {}))
    image_id = compute(request).actions.create_image(ctx, sid, name, metadata)
    if version(request) >= (2, 45):
        return json_response({"image_id": image_id}, status=202)
    image_url = f"{base_url(request)}/image/v2/images/{image_id}"
    return Response(status_code=202, headers={"Location": image_url})


_NON_NEGATIVE = re.compile(r"^[0-9]+$")


async def create_backup(request: Request, ctx: ValidatedToken, sid: str, value: Any
                        ) -> Response:
    value = check_object("createBackup", value)
    only_keys("createBackup", value, ("name", "backup_type", "rotation", "metadata"),
              required=("name", "backup_type", "rotation"))
    name = check_name("createBackup/name", value["name"])
    backup_type = check_string("createBackup/backup_type", value["backup_type"])
    rotation = value["rotation"]
    if isinstance(rotation, bool) or not (
            isinstance(rotation, int) or (isinstance(rotation, str)
                                          and _NON_NEGATIVE.match(rotation))):
        raise InvalidField("createBackup/rotation", f"{rotation!r} is not a non-negative "
                           "integer")
    rotation = int(rotation)
    if rotation < 0:
        raise InvalidField("createBackup/rotation", f"{rotation} is less than the minimum "
                           "of 0")
    metadata = check_metadata("createBackup/metadata", value.get("metadata", {}))
    image_id = compute(request).actions.create_backup(ctx, sid, name, backup_type,
                                                      rotation, metadata)
    if version(request) >= (2, 45):
        return json_response({"image_id": image_id}, status=202)
    if rotation == 0:  # Nova gives no Location when the backup is rotated out at once
        return Response(status_code=202)
    image_url = f"{base_url(request)}/image/v2/images/{image_id}"
    return Response(status_code=202, headers={"Location": image_url})


# -- rescue ------------------------------------------------------------------------------


async def rescue(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    """Nova's ``rescue`` (200 with the admin password, as ``enable_instance_password``
    is on here): services/compute/rescue.py."""
    value = {} if value is None else check_object("rescue", value)
    only_keys("rescue", value, ("adminPass", "rescue_image_ref"))
    admin_pass = check_string("rescue/adminPass", value["adminPass"]) \
        if "adminPass" in value else None
    image_ref = check_uuid("rescue/rescue_image_ref", value["rescue_image_ref"]) \
        if "rescue_image_ref" in value else None
    password = rescue_service.rescue(compute(request), ctx, sid, admin_pass, image_ref)
    return json_response({"adminPass": password})


async def unrescue(request: Request, ctx: ValidatedToken, sid: str, value: Any
                   ) -> Response:
    rescue_service.unrescue(compute(request), ctx, sid)
    return accepted()


# -- shelve ------------------------------------------------------------------------------


def _no_arguments(name: str, value: Any) -> None:
    """``{"<name>": null}`` or ``{"<name>": {}}``: the action takes no arguments."""
    if value is not None:
        only_keys(name, check_object(name, value), ())


async def shelve(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    """Nova's ``shelve``: services/compute/shelve.py."""
    _no_arguments("shelve", value)
    shelve_service.shelve(compute(request), ctx, sid)
    return accepted()


async def shelve_offload(request: Request, ctx: ValidatedToken, sid: str, value: Any
                         ) -> Response:
    _no_arguments("shelveOffload", value)
    shelve_service.shelve_offload(compute(request), ctx, sid)
    return accepted()


async def unshelve(request: Request, ctx: ValidatedToken, sid: str, value: Any
                   ) -> Response:
    """Nova's ``unshelve``: no arguments before 2.77; ``availability_zone`` (a name,
    required when the object is given) 2.77-2.90; from 2.91 ``availability_zone``
    (``null`` unpins the server) and ``host`` (admins), either or both."""
    v = version(request)
    zone: Any = shelve_service.UNSET
    host = None
    if v < (2, 77):
        _no_arguments("unshelve", value)
    elif value is not None:
        value = check_object("unshelve", value)
        if v < (2, 91):
            only_keys("unshelve", value, ("availability_zone",),
                      required=("availability_zone",))
            zone = check_name("unshelve/availability_zone", value["availability_zone"])
        else:
            only_keys("unshelve", value, ("availability_zone", "host"))
            if "availability_zone" in value:
                zone = value["availability_zone"]
                if zone is not None and not isinstance(zone, str):
                    raise InvalidField("unshelve/availability_zone", f"{zone!r} is not "
                                       "valid under any of the given schemas")
            if "host" in value:
                host = value["host"]
                if not isinstance(host, str):
                    raise InvalidField("unshelve/host", f"{host!r} is not of type "
                                       "'string'")
    shelve_service.unshelve(compute(request), ctx, sid, zone, host)
    return accepted()


# -- locks -------------------------------------------------------------------------------


async def lock(request: Request, ctx: ValidatedToken, sid: str, value: Any) -> Response:
    reason = None
    if version(request) >= (2, 73) and value is not None:
        value = check_object("lock", value)
        only_keys("lock", value, ("locked_reason",))
        if "locked_reason" in value:
            reason = value["locked_reason"]
            if not isinstance(reason, str) or not 1 <= len(reason) <= 255:
                raise InvalidField("lock/locked_reason", f"{reason!r} is not a string of 1 "
                                   "to 255 characters")
    compute(request).actions.lock(ctx, sid, reason)
    return accepted()


# -- consoles ----------------------------------------------------------------------------

_SIGNED_INT = re.compile(r"^-?[0-9]+$")


async def console_output(request: Request, ctx: ValidatedToken, sid: str, value: Any
                         ) -> Response:
    value = check_object("os-getConsoleOutput", value)
    only_keys("os-getConsoleOutput", value, ("length",))
    length = value.get("length")
    if length is not None:
        if isinstance(length, bool) or not (
                isinstance(length, int) or (isinstance(length, str) and _SIGNED_INT.match(length))):
            raise InvalidField("os-getConsoleOutput/length", f"{length!r} is not of type "
                               "'integer', 'string', 'null'")
        length = int(length)
        if length < -1:
            raise InvalidField("os-getConsoleOutput/length", f"{length} is less than the "
                               "minimum of -1")
        if length == -1:
            length = None
    output = compute(request).actions.console_output(ctx, sid, length)
    if length is not None:
        # Nova's tail: the last ``length`` pieces of the log split on newlines (a log
        # ending in a newline counts its empty last piece), joined back.
        output = "\n".join(output.split("\n")[-length:]) if length else ""
    return json_response({"output": output})


async def serial_console(request: Request, ctx: ValidatedToken, sid: str, value: Any
                         ) -> Response:
    if version(request) > (2, 5):
        raise NotFound("The resource could not be found.")
    value = check_object("os-getSerialConsole", value)
    only_keys("os-getSerialConsole", value, ("type",), required=("type",))
    if value["type"] != "serial":
        raise InvalidField("os-getSerialConsole/type", f"{value['type']!r} is not one of "
                           "['serial']")
    token = compute(request).actions.serial_console(ctx, sid)
    return json_response({"console": {"type": "serial", "url": console_url(request, token)}})


# -- admin actions and security groups -------------------------------------------------


async def reset_state(request: Request, ctx: ValidatedToken, sid: str, value: Any
                      ) -> Response:
    value = check_object("os-resetState", value)
    only_keys("os-resetState", value, ("state",), required=("state",))
    if value["state"] not in ("active", "error"):
        raise InvalidField("os-resetState/state", f"{value['state']!r} is not one of "
                           "['active', 'error']")
    compute(request).actions.reset_state(ctx, sid, value["state"])
    return accepted()


def _network_noop(rule: str) -> Handler:
    async def handler(request: Request, ctx: ValidatedToken, sid: str, value: Any
                      ) -> Response:
        compute(request).actions.network_info_noop(ctx, sid, rule)
        return accepted()
    return handler


def _group_name(name: str, value: Any) -> str:
    value = check_object(name, value)
    only_keys(name, value, ("name",), required=("name",))
    group = value["name"]
    if not isinstance(group, str) or not group.strip():
        raise BadRequest("Security group name cannot be empty")
    return group


async def add_security_group(request: Request, ctx: ValidatedToken, sid: str, value: Any
                             ) -> Response:
    group = _group_name("addSecurityGroup", value)
    compute(request).actions.add_security_group(ctx, sid, group)
    return accepted()


async def remove_security_group(request: Request, ctx: ValidatedToken, sid: str,
                                value: Any) -> Response:
    group = _group_name("removeSecurityGroup", value)
    compute(request).actions.remove_security_group(ctx, sid, group)
    return accepted()


ACTIONS: dict[str, Handler] = {
    "os-stop": stop,
    "os-start": start,
    "reboot": reboot,
    "pause": _simple("pause"),
    "unpause": _simple("unpause"),
    "suspend": _simple("suspend"),
    "resume": _simple("resume"),
    "rebuild": rebuild,
    "resize": resize,
    "confirmResize": confirm_resize,
    "revertResize": _simple("revert_resize"),
    "createImage": create_image,
    "createBackup": create_backup,
    "rescue": rescue,
    "unrescue": unrescue,
    "shelve": shelve,
    "shelveOffload": shelve_offload,
    "unshelve": unshelve,
    "lock": lock,
    "unlock": _simple("unlock"),
    "forceDelete": _simple("force_delete"),
    "restore": _simple("restore"),
    "os-getConsoleOutput": console_output,
    "os-getSerialConsole": serial_console,
    "os-resetState": reset_state,
    "injectNetworkInfo": _network_noop("os_compute_api:os-admin-actions:inject_network_info"),
    "resetNetwork": _network_noop("os_compute_api:os-admin-actions:reset_network"),
    "addSecurityGroup": add_security_group,
    "removeSecurityGroup": remove_security_group,
    # Nova's proxies to the Networking service (2.1-2.43): network_proxies
    "addFloatingIp": add_floating_ip,
    "removeFloatingIp": remove_floating_ip,
    # Nova's multinic actions (2.1-2.43): interfaces
    "addFixedIp": add_fixed_ip,
    "removeFixedIp": remove_fixed_ip,
}


#: Nova's server actions this cloud does not have, and why: Nova's answer when a driver
#: lacks a feature (501 ``The requested functionality is not supported``), rather than
#: "There is no such action", which reads as a typo in the client.
#: Those a host's drivers decide (the capability they must declare) come first.
BY_CAPABILITY: dict[str, str] = {
    "migrate": caps.LIVE_MIGRATION, "os-migrateLive": caps.LIVE_MIGRATION,
    "evacuate": caps.LIVE_MIGRATION,
}
UNSUPPORTED: dict[str, str] = {
    "changePassword": "there is no guest agent to set it",
    "trigger_crash_dump": "the hypervisor cannot inject an NMI",
}
#: The graphical console actions of 2.1-2.5, and the console type each asks for.
_GRAPHICAL_CONSOLES = {"os-getVNCConsole": "novnc", "os-getSPICEConsole": "spice-html5",
                       "os-getRDPConsole": "rdp-html5"}


async def server_action(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    if len(body) != 1:
        raise BadRequest("Malformed request body")
    name, value = next(iter(body.items()))
    handler = ACTIONS.get(name)
    if handler is None and name in BY_CAPABILITY:
        compute(request).actions.refuse_unsupported(ctx, server_id(request),
                                                    BY_CAPABILITY[name], name,
                                                    f"The requested functionality is not "
                                                    f"supported: {name}.")
    if handler is None and name in UNSUPPORTED:
        compute(request).servers.get(ctx, server_id(request))  # 404 first, as Nova
        raise NotImplementedFault(f"The requested functionality is not supported: "
                                  f"{name} ({UNSUPPORTED[name]}).")
    if handler is None and name in _GRAPHICAL_CONSOLES:
        if version(request) > (2, 5):
            raise NotFound("The resource could not be found.")
        compute(request).servers.get(ctx, server_id(request))
        kind = value.get("type") if isinstance(value, dict) else None
        raise BadRequest(f"Unavailable console type {kind or _GRAPHICAL_CONSOLES[name]}.")
    if handler is None:
        raise BadRequest(f"There is no such action: {name}")
    return await handler(request, ctx, server_id(request), value)


routes = [
    Route("/v2.1/servers/{server_id}/action", member(server_action), methods=["POST"]),
]

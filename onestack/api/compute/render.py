"""A server as a body: ``render_server`` is the one place a ``ServerView`` becomes
Nova's JSON, for every microversion and every kind of answer (show, list detail,
update, rebuild); ``render_addresses`` is shared with ``/ips``."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from starlette.requests import Request

from onestack.api.compute.common import api_root, nova_time, resource_links
from onestack.api.compute.microversion import version
from onestack.services.compute.instances import instance_name
from onestack.services.compute.server_views import ServerView
from onestack.services.identity.context import ValidatedToken

#: Statuses whose servers show ``progress`` / ``fault``.
PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")


def isotime(value: dt.datetime | None) -> str | None:
    """Nova's ``utils.isotime``: ``2017-02-14T19:23:58Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def host_id(project_id: str, host: str | None) -> str:
    """Nova's obfuscated ``hostId``: sha224 of project and host, "" without a host."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def render_addresses(view: ServerView, extended: bool = True
                     ) -> dict[str, list[dict[str, Any]]]:
    """``addresses`` by network label; ``extended`` adds ``OS-EXT-IPS:type`` and
    ``OS-EXT-IPS-MAC:mac_addr`` (server bodies have them, ``/ips`` does not)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for label, addresses in view.addresses.items():
        items = []
        for a in addresses:
            item: dict[str, Any] = {"version": a.version, "addr": a.addr}
            if extended:
                item["OS-EXT-IPS:type"] = a.type
                item["OS-EXT-IPS-MAC:mac_addr"] = a.mac
            items.append(item)
        out[label] = items
    return out


def _flavor(request: Request, flavor: dict[str, Any]) -> dict[str, Any]:
    if not flavor:
        return {}
    if version(request) >= (2, 47):
        return {"vcpus": flavor.get("vcpus"), "ram": flavor.get("ram"),
                "disk": flavor.get("disk"), "ephemeral": flavor.get("ephemeral", 0),
                "swap": flavor.get("swap", 0), "original_name": flavor.get("name"),
                "extra_specs": dict(flavor.get("extra_specs") or {})}
    flavor_id = str(flavor.get("id"))
    return {"id": flavor_id, "links": [{"rel": "bookmark",
                                        "href": f"{api_root(request)}/flavors/{flavor_id}"}]}


def _image(request: Request, image_ref: str) -> dict[str, Any] | str:
    if not image_ref:
        return ""
    return {"id": image_ref, "links": [{"rel": "bookmark",
                                        "href": f"{api_root(request)}/images/{image_ref}"}]}


def render_server(request: Request, ctx: ValidatedToken, view: ServerView, *,
                  kind: str = "show") -> dict[str, Any]:
    """A server's body at the request's microversion. ``kind``: ``show`` (GET one),
    ``detail`` (a list entry), ``update`` (PUT) or ``rebuild``; before 2.75 the last two
    leave out what Nova's did not show there."""
    v = version(request)
    full = kind in ("show", "detail") or v >= (2, 75)
    status = view.status
    body: dict[str, Any] = {
        "accessIPv4": view.access_ip_v4 or "",
        "accessIPv6": view.access_ip_v6 or "",
        "addresses": render_addresses(view, extended=full),
        "created": isotime(view.created_at),
        "flavor": _flavor(request, view.flavor),
        "hostId": host_id(view.project_id, view.host),
        "id": view.uuid,
        "image": _image(request, view.image_ref),
        "links": resource_links(request, "servers", view.uuid),
        "metadata": view.metadata,
        "name": view.display_name,
        "status": status,
        "tenant_id": view.project_id or "",
        "user_id": view.user_id or "",
        "updated": isotime(view.updated_at),
        "OS-DCF:diskConfig": "AUTO" if view.auto_disk_config else "MANUAL",
    }
    fault = view.fault
    if status in FAULT_STATUSES and fault is not None:
        body["fault"] = {"code": fault.code, "created": isotime(fault.created_at),
                         "message": fault.message}
        if fault.details and (ctx.is_admin or fault.code != 500):
            body["fault"]["details"] = fault.details
    if status in PROGRESS_STATUSES:
        body["progress"] = view.progress or 0
    if full:
        body["OS-EXT-AZ:availability_zone"] = view.availability_zone
        body["config_drive"] = "True" if view.config_drive else ""
    if full or (kind == "rebuild" and v >= (2, 54)):
        body["key_name"] = view.key_name
    if full:
        body["OS-SRV-USG:launched_at"] = nova_time(view.launched_at)
        body["OS-SRV-USG:terminated_at"] = nova_time(view.terminated_at)
        if view.security_groups:
            body["security_groups"] = [{"name": n} for n in view.security_groups]
    extended_attrs = full and ctx.is_admin
    if extended_attrs:
        body["OS-EXT-SRV-ATTR:host"] = view.host
        body["OS-EXT-SRV-ATTR:instance_name"] = instance_name(view.uuid)
        body["OS-EXT-SRV-ATTR:hypervisor_hostname"] = view.node
        if v >= (2, 3):
            body.update({
                "OS-EXT-SRV-ATTR:hostname": view.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:launch_index": view.launch_index,
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:reservation_id": view.reservation_id,
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
            })
            if kind != "rebuild":
                body["OS-EXT-SRV-ATTR:user_data"] = view.user_data
    if full:
        body["OS-EXT-STS:task_state"] = view.task_state
        body["OS-EXT-STS:vm_state"] = view.vm_state
        body["OS-EXT-STS:power_state"] = view.power_state
        body["os-extended-volumes:volumes_attached"] = [
            vol if v >= (2, 3) else {"id": vol["id"]} for vol in view.volumes_attached]
    if v >= (2, 9):
        body["locked"] = bool(view.locked)
    if v >= (2, 16) and full and ctx.is_admin:
        body["host_status"] = view.host_status
    if v >= (2, 19):
        body["description"] = view.display_description
    if v >= (2, 26):
        body["tags"] = view.tags
    if v >= (2, 63):
        body["trusted_image_certificates"] = None
    if v >= (2, 71) and kind != "detail":
        body["server_groups"] = view.server_groups
    if v >= (2, 73):
        body["locked_reason"] = view.locked_reason
    if v >= (2, 90) and not extended_attrs:
        body["OS-EXT-SRV-ATTR:hostname"] = view.hostname
    if v >= (2, 96) and full:
        body["pinned_availability_zone"] = view.pinned_availability_zone
    return body


def location_of(request: Request, uuid: str) -> dict[str, str]:
    return {"Location": resource_links(request, "servers", uuid)[0]["href"]}


"""Nova's volume proxies: ``/v2.1/os-volumes[/detail|/{volume_id}]`` and
``/v2.1/os-snapshots[/detail|/{snapshot_id}]``, deprecated by Nova and kept for the
clients that still call them; and ``/v2.1/os-assisted-volume-snapshots``, which this
cloud refuses.

The proxies call the Block Storage service in process (``Compute.volume``, the service
behind ``/volume/v3``) as the caller, as Nova calls Cinder: which volumes a caller sees,
whether a volume may be deleted or snapshotted, and the quotas are that service's
decisions. This module translates: Nova's request schemas (``size`` required, 1 or
more; ``display_name``/``display_description``), Nova's views (``displayName``,
``availabilityZone``, ``createdAt``, ``attachments`` as ``[{}]`` when there are none,
the snapshot's ``size`` being its volume's), the list's ``limit``/``offset``, and the
answers: Cinder's quota refusal (413) is Nova's 403. Nova removed the proxies at
microversion 2.36: every route here answers 404 from then on.

Assisted volume snapshots exist for Cinder drivers that keep volumes as files on a
filesystem shared with the compute hosts (NFS and the like): Cinder asks Nova to have
the hypervisor put a qcow2 overlay on the attached file. OneStack's volume service takes
its snapshots itself, on its own backends, and never asks compute for one, so the API
checks its caller (administrators) and body as Nova does and then answers 501.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.compute.common import (
    check_bool,
    check_int,
    check_object,
    compute,
    non_negative,
    nova_time,
    only_keys,
    query_param,
)
from onestack.api.compute.microversion import version
from onestack.api.policy import Endpoint, guard
from onestack.common.errors import (
    BadRequest,
    Forbidden,
    InvalidField,
    NotFound,
    PayloadTooLarge,
)
from onestack.services.compute.policy import forbidden
from onestack.services.compute.volume_attachments import NotSupported

#: The last microversion that has the proxies (Nova's MAX_PROXY_API_SUPPORT_VERSION).
LAST_PROXY = (2, 35)
#: Nova's ``common.limited`` default page size.
MAX_LIMIT = 1000

#: endpoint -> Nova's rule name (the one a refusal names).
RULES = {
    "list_volumes": "os-volumes:list", "list_volumes_detail": "os-volumes:detail",
    "show_volume": "os-volumes:show", "create_volume": "os-volumes:create",
    "delete_volume": "os-volumes:delete",
    "list_snapshots": "os-volumes:snapshots:list",
    "list_snapshots_detail": "os-volumes:snapshots:detail",
    "show_snapshot": "os-volumes:snapshots:show",
    "create_snapshot": "os-volumes:snapshots:create",
    "delete_snapshot": "os-volumes:snapshots:delete",
    "create_assisted_snapshot": "os-assisted-volume-snapshots:create",
    "delete_assisted_snapshot": "os-assisted-volume-snapshots:delete",
}


def _denied(endpoint: str) -> Exception:
    return forbidden(f"os_compute_api:{RULES.get(endpoint, endpoint)}")


def proxy(level: str) -> Callable[[Endpoint], Endpoint]:
    """A proxy route: 404 for every caller after microversion 2.35 (Nova has no such
    method there), then the access level."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        guarded = guard(level, _denied)(endpoint)

        async def handler(request: Request) -> Response:
            if version(request) > LAST_PROXY:
                raise NotFound("The resource could not be found.")
            return await guarded(request)

        handler.__name__ = endpoint.__name__
        handler.__doc__ = endpoint.__doc__
        handler.access = level  # type: ignore[attr-defined]
        return handler
    return wrap


def _volumes(request: Request) -> Any:
    """The Block Storage service (501 in a cloud without one, as for attachments)."""
    return compute(request).volume_attachments.volume


def _cinder(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the volume service; its quota refusal becomes Nova's 403 (OverQuota)."""
    try:
        return call(*args, **kwargs)
    except PayloadTooLarge as exc:
        raise Forbidden(exc.message) from None


def _limited(request: Request, items: list[Any]) -> list[Any]:
    """Nova's ``common.limited``: ``offset`` items skipped, at most ``limit`` (0 or absent:
    1000) returned."""
    raw_offset, raw_limit = query_param(request, "offset"), query_param(request, "limit")
    offset = 0 if raw_offset is None else non_negative("offset", raw_offset)
    limit = MAX_LIMIT if raw_limit is None else non_negative("limit", raw_limit)
    limit = min(MAX_LIMIT, limit or MAX_LIMIT)
    return items[offset:offset + limit]


# -- volumes -----------------------------------------------------------------------------


def render_volume(vol: Any, attachments: list[Any], type_names: dict[str, str]
                  ) -> dict[str, Any]:
    """Nova's volume view (summary and detail are the same)."""
    attached = [a for a in attachments if a.attach_status == "attached"]
    views: list[dict[str, Any]] = []
    for att in attached:
        view = {"id": vol.id, "volumeId": vol.id, "serverId": att.instance_uuid}
        if att.mountpoint:
            view["device"] = att.mountpoint
        views.append(view)
    return {
        "id": vol.id, "status": vol.status, "size": vol.size,
        "availabilityZone": vol.availability_zone, "createdAt": nova_time(vol.created_at),
        # Nova's shape for a volume attached nowhere: one empty object
        "attachments": views or [{}],
        "displayName": vol.name, "displayDescription": vol.description,
        "volumeType": type_names.get(vol.volume_type_id or "") or vol.volume_type_id,
        "snapshotId": vol.snapshot_id, "metadata": dict(vol.metadata_ or {}),
    }


def _render(request: Request, vols: list[Any]) -> list[dict[str, Any]]:
    service = _volumes(request)
    atts = service.volume_attachments([v.id for v in vols])
    names = service.type_names()
    return [render_volume(v, atts.get(v.id, []), names) for v in vols]


def _volume_id(request: Request) -> str:
    return str(request.path_params["volume_id"])


async def _list_volumes(request: Request) -> Response:
    found = _volumes(request).list_volumes(caller(request), {})
    return json_response({"volumes": _render(request, _limited(request, found))})


async def list_volumes(request: Request) -> Response:
    return await _list_volumes(request)


async def list_volumes_detail(request: Request) -> Response:
    return await _list_volumes(request)


async def show_volume(request: Request) -> Response:
    vol = _volumes(request).get_volume(caller(request), _volume_id(request))
    return json_response({"volume": _render(request, [vol])[0]})


def _optional_string(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if key in spec and not isinstance(value, str):
        raise InvalidField(f"volume/{key}", f"{value!r} is not of type 'string'")
    return value


def check_volume_body(body: Any) -> dict[str, Any]:
    """Nova's ``os-volumes`` create schema; the checked ``volume`` object."""
    if not isinstance(body, dict) or "volume" not in body:
        raise InvalidField("volume", "'volume' is a required property")
    spec = check_object("volume", body["volume"])
    only_keys("volume", spec, ("volume_type", "metadata", "snapshot_id", "size",
                               "availability_zone", "display_name",
                               "display_description"), required=("size",))
    size = spec["size"]
    if isinstance(size, str) and not re.fullmatch(r"[0-9]+", size):
        raise InvalidField("volume/size", f"{size!r} does not match '^[0-9]+$'")
    spec["size"] = check_int("volume/size", size, 1)
    for key in ("volume_type", "snapshot_id", "availability_zone", "display_name",
                "display_description"):
        _optional_string(spec, key)
    if "metadata" in spec:
        check_object("volume/metadata", spec["metadata"])
    return dict(spec)


async def create_volume(request: Request) -> Response:
    ctx = caller(request)
    spec = check_volume_body(await read_json(request))
    service = _volumes(request)
    snapshot_id = spec.get("snapshot_id")
    if snapshot_id is not None:
        service.get_snapshot(ctx, snapshot_id)  # Nova's 404 before the create
    vol = _cinder(service.create_volume, ctx, spec["size"],
                  name=spec.get("display_name"),
                  description=spec.get("display_description"),
                  snapshot_id=snapshot_id, volume_type=spec.get("volume_type"),
                  availability_zone=spec.get("availability_zone"),
                  metadata=spec.get("metadata"), project_id=ctx.project_id)
    response = json_response({"volume": _render(request, [vol])[0]})
    response.headers["Location"] = f"{str(request.url).rstrip('/')}/{vol.id}"
    return response


async def delete_volume(request: Request) -> Response:
    _volumes(request).delete_volume(caller(request), _volume_id(request))
    return Response(status_code=202)


async def no_volume_id(request: Request) -> Response:
    """``/os-volumes/`` with an empty id: Nova's 404 (not the list a redirect would
    give)."""
    raise NotFound("Volume  could not be found.")


async def no_snapshot_id(request: Request) -> Response:
    """``/os-snapshots/`` with an empty id: Nova's 404."""
    raise NotFound("Snapshot  could not be found.")


# -- snapshots ---------------------------------------------------------------------------


def render_snapshot(snap: Any) -> dict[str, Any]:
    return {"id": snap.id, "volumeId": snap.volume_id, "status": snap.status,
            "size": snap.size, "createdAt": nova_time(snap.created_at),
            "displayName": snap.name, "displayDescription": snap.description}


async def _list_snapshots(request: Request) -> Response:
    found = _volumes(request).list_snapshots(caller(request), {})
    return json_response({"snapshots": [render_snapshot(s)
                                        for s in _limited(request, found)]})


async def list_snapshots(request: Request) -> Response:
    return await _list_snapshots(request)


async def list_snapshots_detail(request: Request) -> Response:
    return await _list_snapshots(request)


async def show_snapshot(request: Request) -> Response:
    snap = _volumes(request).get_snapshot(caller(request),
                                          str(request.path_params["snapshot_id"]))
    return json_response({"snapshot": render_snapshot(snap)})


def check_snapshot_body(body: Any) -> dict[str, Any]:
    """Nova's ``os-snapshots`` create schema; the checked ``snapshot`` object."""
    if not isinstance(body, dict) or "snapshot" not in body:
        raise InvalidField("snapshot", "'snapshot' is a required property")
    spec = check_object("snapshot", body["snapshot"])
    only_keys("snapshot", spec, ("volume_id", "force", "display_name",
                                 "display_description"), required=("volume_id",))
    for key in ("volume_id", "display_name", "display_description"):
        if key in spec and not isinstance(spec[key], str):
            raise InvalidField(f"snapshot/{key}", f"{spec[key]!r} is not of type 'string'")
    out = dict(spec)
    out["force"] = check_bool("snapshot/force", spec.get("force", False))
    return out


async def create_snapshot(request: Request) -> Response:
    spec = check_snapshot_body(await read_json(request))
    snap = _cinder(_volumes(request).create_snapshot, caller(request), {
        "volume_id": spec["volume_id"], "force": spec["force"],
        "display_name": spec.get("display_name"),
        "display_description": spec.get("display_description")})
    return json_response({"snapshot": render_snapshot(snap)})


async def delete_snapshot(request: Request) -> Response:
    _volumes(request).delete_snapshot(caller(request),
                                      str(request.path_params["snapshot_id"]))
    return Response(status_code=202)


# -- assisted volume snapshots (refused) -------------------------------------------------

_ASSISTED_REFUSAL = ("Assisted volume snapshots are not supported by this cloud: its "
                     "Block Storage service takes every snapshot itself, on its own "
                     "backends, and never asks a compute host to snapshot a volume file.")


async def create_assisted_snapshot(request: Request) -> Response:
    body = await read_json(request)
    if not isinstance(body, dict) or "snapshot" not in body:
        raise InvalidField("snapshot", "'snapshot' is a required property")
    spec = check_object("snapshot", body["snapshot"])
    only_keys("snapshot", spec, ("volume_id", "create_info"),
              required=("volume_id", "create_info"))
    if not isinstance(spec["volume_id"], str):
        raise InvalidField("snapshot/volume_id",
                           f"{spec['volume_id']!r} is not of type 'string'")
    info = check_object("snapshot/create_info", spec["create_info"])
    only_keys("snapshot/create_info", info, ("snapshot_id", "type", "new_file", "id"),
              required=("snapshot_id", "type", "new_file"))
    if info["type"] != "qcow2":
        raise InvalidField("snapshot/create_info/type",
                           f"{info['type']!r} is not one of ['qcow2']")
    raise NotSupported(_ASSISTED_REFUSAL)


async def delete_assisted_snapshot(request: Request) -> Response:
    raw = query_param(request, "delete_info")
    if raw is None:
        raise BadRequest("'delete_info'")
    raise NotSupported(_ASSISTED_REFUSAL)


routes = [
    Route("/v2.1/os-volumes", proxy("reader")(list_volumes), methods=["GET"]),
    Route("/v2.1/os-volumes", proxy("member")(create_volume), methods=["POST"]),
    Route("/v2.1/os-volumes/detail", proxy("reader")(list_volumes_detail),
          methods=["GET"]),
    Route("/v2.1/os-volumes/{volume_id}", proxy("reader")(show_volume), methods=["GET"]),
    Route("/v2.1/os-volumes/{volume_id}", proxy("member")(delete_volume),
          methods=["DELETE"]),
    Route("/v2.1/os-volumes/", proxy("reader")(no_volume_id), methods=["GET", "DELETE"]),
    Route("/v2.1/os-snapshots", proxy("reader")(list_snapshots), methods=["GET"]),
    Route("/v2.1/os-snapshots", proxy("member")(create_snapshot), methods=["POST"]),
    Route("/v2.1/os-snapshots/detail", proxy("reader")(list_snapshots_detail),
          methods=["GET"]),
    Route("/v2.1/os-snapshots/", proxy("reader")(no_snapshot_id),
          methods=["GET", "DELETE"]),
    Route("/v2.1/os-snapshots/{snapshot_id}", proxy("reader")(show_snapshot),
          methods=["GET"]),
    Route("/v2.1/os-snapshots/{snapshot_id}", proxy("member")(delete_snapshot),
          methods=["DELETE"]),
    Route("/v2.1/os-assisted-volume-snapshots",
          guard("admin", _denied)(create_assisted_snapshot), methods=["POST"]),
    Route("/v2.1/os-assisted-volume-snapshots/{snapshot_id}",
          guard("admin", _denied)(delete_assisted_snapshot), methods=["DELETE"]),
]

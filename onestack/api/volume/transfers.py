"""/v3/{project_id}/volume-transfers (3.55+) and the older /os-volume-transfer: offer
a volume to another project and accept it there."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, read_json
from onestack.api.volume.common import (
    cinder_time,
    context,
    links,
    member,
    path_id,
    query_flag,
    reader,
    reads_and_writes,
    volumes,
)
from onestack.api.volume.microversion import require, version
from onestack.db.models import VolumeTransfer
from onestack.services.volume.common import required_object


def _collection(request: Request) -> str:
    return "volume-transfers" if "/volume-transfers" in request.url.path \
        else "os-volume-transfer"


def _check_version(request: Request) -> None:
    if _collection(request) == "volume-transfers":
        require(request, (3, 55))


def render_transfer(request: Request, t: VolumeTransfer, detail: bool,
                    auth_key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": t.id, "name": t.name, "volume_id": t.volume_id,
                            "links": links(request, _collection(request), t.id)}
    if detail or auth_key is not None:
        body["created_at"] = cinder_time(t.created_at)
        if version(request) >= (3, 55):
            body["no_snapshots"] = t.no_snapshots
        if version(request) >= (3, 57):
            body.update(source_project_id=t.project_id, destination_project_id=None,
                        accepted=False)
    if auth_key is not None:
        body["auth_key"] = auth_key
    return body


async def _list(request: Request, detail: bool) -> Response:
    _check_version(request)
    ctx = context(request)
    found = volumes(request).transfers.list(ctx, query_flag(request, "all_tenants"))
    return json_response({"transfers": [render_transfer(request, t, detail) for t in found]})


async def list_transfers(request: Request) -> Response:
    return await _list(request, detail=False)


async def list_transfers_detail(request: Request) -> Response:
    return await _list(request, detail=True)


async def create_transfer(request: Request) -> Response:
    _check_version(request)
    ctx = context(request)
    body = await read_json(request)
    spec = required_object(body, "transfer")
    if version(request) < (3, 55):
        spec = {k: v for k, v in spec.items() if k != "no_snapshots"}
    transfer, key = volumes(request).transfers.create(ctx, spec)
    return json_response({"transfer": render_transfer(request, transfer, True, key)},
                         status=202)


async def transfer_item(request: Request) -> Response:
    _check_version(request)
    ctx = context(request)
    service = volumes(request).transfers
    transfer_id = path_id(request, "transfer_id")
    if request.method == "DELETE":
        service.delete(ctx, transfer_id)
        return Response(status_code=202)
    return json_response({"transfer": render_transfer(request, service.get(ctx, transfer_id),
                                                      True)})


async def accept_transfer(request: Request) -> Response:
    """Anyone with a project-scoped member token, the id and the key may accept: the
    URL's project is the accepting one (the caller's own)."""
    _check_version(request)
    ctx = caller(request)
    body = await read_json(request)
    spec = required_object(body, "accept")
    transfer = volumes(request).transfers.accept(ctx, path_id(request, "transfer_id"),
                                                 spec.get("auth_key"))
    return json_response({"transfer": {"id": transfer.id, "name": transfer.name,
                                       "volume_id": transfer.volume_id,
                                       "links": links(request, _collection(request),
                                                      transfer.id)}}, status=202)


def _routes(collection: str) -> list[Route]:
    base = f"/v3/{{project_id}}/{collection}"
    return [
        Route(base, reader(list_transfers), methods=["GET"]),
        Route(base, member(create_transfer), methods=["POST"]),
        Route(f"{base}/detail", reader(list_transfers_detail), methods=["GET"]),
        Route(f"{base}/{{transfer_id}}", reads_and_writes(transfer_item),
              methods=["GET", "DELETE"]),
        Route(f"{base}/{{transfer_id}}/accept", member(accept_transfer), methods=["POST"]),
    ]


routes = [*_routes("volume-transfers"), *_routes("os-volume-transfer")]

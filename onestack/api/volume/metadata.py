"""The ``/metadata`` and ``/metadata/{key}`` sub-resources of volumes and snapshots:
Cinder answers them alike for both. A ``MetadataOwner`` says how to reach one kind's
rows; the owner is found (its 404 comes before the body is read) before anything else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import context, path_id, volumes
from onestack.common.errors import BadRequest, NotFound
from onestack.services.identity.context import ValidatedToken
from onestack.services.volume import Volumes
from onestack.services.volume.common import field_error


class WithMetadata(Protocol):
    @property
    def metadata_(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MetadataOwner:
    """A kind of row with user metadata, as the volume service offers it."""

    #: What a 404 calls it (``Volume``), and the name of its id in the URL.
    kind: str
    id_param: str
    #: ``(service, ctx, id)``: the row (the service's 404 if the caller cannot see it).
    get: Callable[[Volumes, ValidatedToken, str], WithMetadata]
    #: ``(service, ctx, id, metadata, replace)``: all of its metadata after the change.
    set: Callable[[Volumes, ValidatedToken, str, Any, bool], dict[str, str]]
    #: ``(service, ctx, id, key)``.
    delete_key: Callable[[Volumes, ValidatedToken, str, str], None]


async def metadata_answer(request: Request, owner: MetadataOwner) -> Response:
    """``GET`` shows the metadata; ``POST`` merges the body's, ``PUT`` replaces it."""
    ctx = context(request)
    owner_id = path_id(request, owner.id_param)
    service = volumes(request)
    row = owner.get(service, ctx, owner_id)
    if request.method == "GET":
        return json_response({"metadata": dict(row.metadata_ or {})})
    body = await read_json(request)
    if "metadata" not in body:
        raise field_error("metadata", body, "'metadata' is a required property")
    meta = owner.set(service, ctx, owner_id, body["metadata"], request.method == "PUT")
    return json_response({"metadata": meta})


async def metadata_item_answer(request: Request, owner: MetadataOwner) -> Response:
    """``GET``, ``PUT`` and ``DELETE`` of the key in the URL."""
    ctx = context(request)
    owner_id = path_id(request, owner.id_param)
    key = path_id(request, "key")
    service = volumes(request)
    row = owner.get(service, ctx, owner_id)
    if request.method == "GET":
        if key not in (row.metadata_ or {}):
            raise NotFound(f"{owner.kind} {owner_id} has no metadata with key {key}.")
        return json_response({"meta": {key: row.metadata_[key]}})
    if request.method == "DELETE":
        owner.delete_key(service, ctx, owner_id, key)
        return Response(status_code=200)
    body = await read_json(request)
    meta = body.get("meta")
    if not isinstance(meta, dict) or len(meta) != 1:
        raise BadRequest("Malformed request body: 'meta' must hold exactly one item.")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    owner.set(service, ctx, owner_id, meta, False)
    return json_response({"meta": meta})

"""The ``/metadata`` and ``/metadata/{key}`` sub-resources of volumes and snapshots:
Cinder answers them alike for both. The owner's module finds the volume or snapshot
(its 404 comes before the body is read) and passes what changes its metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from onestack.api.common import json_response, read_json
from onestack.api.volume.common import path_id
from onestack.common.errors import BadRequest, NotFound
from onestack.services.volume.common import field_error

#: ``(metadata, replace) -> all of the owner's metadata after the change``.
SetMetadata = Callable[[Any, bool], dict[str, str]]


async def metadata_answer(request: Request, current: dict[str, str] | None,
                          set_metadata: SetMetadata) -> Response:
    """``GET`` shows ``current``; ``POST`` merges the body's, ``PUT`` replaces it."""
    if request.method == "GET":
        return json_response({"metadata": dict(current or {})})
    body = await read_json(request)
    if "metadata" not in body:
        raise field_error("metadata", body, "'metadata' is a required property")
    meta = set_metadata(body["metadata"], request.method == "PUT")
    return json_response({"metadata": meta})


async def metadata_item_answer(request: Request, owner: str, current: dict[str, str] | None,
                               set_metadata: SetMetadata,
                               delete_key: Callable[[str], None]) -> Response:
    """``GET``, ``PUT`` and ``DELETE`` of the key in the URL; ``owner`` names the
    volume or snapshot in a 404 (``Volume <id>``)."""
    key = path_id(request, "key")
    if request.method == "GET":
        values = current or {}
        if key not in values:
            raise NotFound(f"{owner} has no metadata with key {key}.")
        return json_response({"meta": {key: values[key]}})
    if request.method == "DELETE":
        delete_key(key)
        return Response(status_code=200)
    body = await read_json(request)
    meta = body.get("meta")
    if not isinstance(meta, dict) or len(meta) != 1:
        raise BadRequest("Malformed request body: 'meta' must hold exactly one item.")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    set_metadata(meta, False)
    return json_response({"meta": meta})

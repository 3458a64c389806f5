"""/v2/images/{id}/file (upload, download), /stage and /import (glance-direct).

Bodies stream in both directions: an upload is read chunk by chunk from the request
and a download is read from the file in 1 MiB chunks, so memory stays flat whatever
the image size.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from onestack.api.common import caller, read_json
from onestack.api.image.common import images, media_type
from onestack.api.image.policy import member, reader
from onestack.common.errors import (
    BadRequest,
    RangeNotSatisfiable,
    UnsupportedMediaType,
)
from onestack.services.image.data import STORE_ID, parse_md5

READ_CHUNK = 1 << 20
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def request_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away is a 400 (nobody will
    read it, but the service cleans up on any error)."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BadRequest("The upload was interrupted: the client went away before "
                         "sending all the data.") from None


def _upload_args(request: Request) -> dict[str, Any]:
    kind = media_type(request)
    if kind is not None and kind != "application/octet-stream":
        raise UnsupportedMediaType(f"Content type {kind} is not supported: image data "
                                   "is sent as application/octet-stream.")
    store = request.headers.get("x-image-meta-store")
    if store is not None and store != STORE_ID:
        raise BadRequest(f"Unknown store {store!r}: the only store is {STORE_ID!r}.")
    size_header = request.headers.get("x-openstack-image-size")
    size: int | None = None
    for header in (size_header, request.headers.get("content-length")):
        if header is None:
            continue
        try:
            size = int(header)
        except ValueError:
            size = -1
        if size < 0:
            raise BadRequest("Invalid or missing image size in request headers.")
        break
    md5 = request.headers.get("content-md5")
    return {"size": size, "md5": parse_md5(md5) if md5 is not None else None}


async def upload(request: Request) -> Response:
    ctx = caller(request)
    args = _upload_args(request)
    await images(request).data.upload(ctx, request.path_params["image_id"],
                                      request_chunks(request), **args)
    return Response(status_code=204)


async def stage(request: Request) -> Response:
    ctx = caller(request)
    args = _upload_args(request)
    await images(request).data.stage(ctx, request.path_params["image_id"],
                                     request_chunks(request), **args)
    return Response(status_code=204)


async def import_image(request: Request) -> Response:
    ctx = caller(request)
    body = await read_json(request)
    method = body.get("method")
    if not isinstance(method, dict):
        raise BadRequest("Import request requires a 'method' field.")
    name = method.get("name")
    if not isinstance(name, str):
        raise BadRequest("Import request requires a 'name' field.")
    for flag in ("all_stores", "all_stores_must_succeed"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"'{flag}' must be boolean value only")
    stores = body.get("stores")
    if stores is not None and (not isinstance(stores, list)
                               or not all(isinstance(s, str) for s in stores)):
        raise BadRequest("'stores' must be a list of store identifiers.")
    if stores is None and request.headers.get("x-image-meta-store"):
        stores = [request.headers["x-image-meta-store"]]
    await images(request).data.import_image(ctx, request.path_params["image_id"], name,
                                            stores)
    return Response(status_code=202)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``bytes=`` range; None for the whole file."""
    if header is None:
        return None
    match = RANGE_RE.match(header.strip())
    if match is None or match.groups() == ("", ""):
        raise RangeNotSatisfiable(f"Invalid range {header!r}: a single bytes= range is "
                                  "supported.", headers={"Content-Range": f"bytes */{size}"})
    first_s, last_s = match.groups()
    if first_s == "":
        first, last = max(0, size - int(last_s)), size - 1
    else:
        first = int(first_s)
        last = min(int(last_s), size - 1) if last_s else size - 1
    if first > last or first >= size:
        raise RangeNotSatisfiable(f"Range {header!r} is outside the {size} bytes of data.",
                                  headers={"Content-Range": f"bytes */{size}"})
    return first, last


async def read_file(file: BinaryIO, offset: int, length: int) -> AsyncIterator[bytes]:
    # The store's own positioned read (an RBD image), else pread(2) on the file.
    read_at = getattr(file, "pread", None) or functools.partial(os.pread, file.fileno())
    try:
        while length > 0:
            chunk = await asyncio.to_thread(read_at, min(READ_CHUNK, length), offset)
            if not chunk:
                break
            offset += len(chunk)
            length -= len(chunk)
            yield chunk
    finally:
        file.close()


async def download(request: Request) -> Response:
    ctx = caller(request)
    data = images(request).data.open(ctx, request.path_params["image_id"])
    if data is None:
        return Response(status_code=204)
    try:
        span = _byte_range(request.headers.get("range"), data.size)
    except BaseException:
        data.file.close()
        raise
    headers = {"Content-Type": "application/octet-stream"}
    if data.checksum:
        headers["Content-MD5"] = data.checksum
    status, offset, length = 200, 0, data.size
    if span is not None:
        status, offset, length = 206, span[0], span[1] - span[0] + 1
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{data.size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(read_file(data.file, offset, length), status_code=status,
                             headers=headers, media_type="application/octet-stream",
                             background=BackgroundTask(data.file.close))


routes = [
    Route("/v2/images/{image_id}/file", member(upload), methods=["PUT"]),
    Route("/v2/images/{image_id}/file", reader(download), methods=["GET"]),
    Route("/v2/images/{image_id}/stage", member(stage), methods=["PUT"]),
    Route("/v2/images/{image_id}/import", member(import_image), methods=["POST"]),
]

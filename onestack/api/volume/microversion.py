"""Block Storage microversions, Cinder's fault body, and URLs without a project id.

A client asks with ``OpenStack-API-Version: volume 3.59``; ``latest`` means our
maximum; no header means 3.0. A version outside [MIN, MAX] (or a malformed one) is
refused with 406. Every response under /volume echoes ``OpenStack-API-Version:
volume <version>`` with ``Vary: OpenStack-API-Version``. (Cinder never had a legacy
``X-OpenStack-Volume-API-Version`` header; it is not read.) The negotiation is
``api.microversion``'s, shared with Compute; this module says what is Block Storage's.

Cinder's URLs carry the project id (``/v3/{project_id}/volumes``); from 3.67 it may be
left out. Every such URL is accepted here whatever the version (a client that leaves it
out is one that knows it may): the middleware inserts ``-`` for it, and handlers read
``-`` as the token's own project.

Handlers compare versions with tuples: ``if version(request) >= (3, 42): ...``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from onestack.api import microversion
from onestack.api.microversion import as_text, full_path
from onestack.common.errors import NotFound, OneStackError

__all__ = ["COLLECTIONS", "MAX_VERSION", "MIN_VERSION", "OWN_PROJECT",
           "MicroversionMiddleware", "as_text", "parse_header", "project_in_url", "require",
           "version"]

MIN_VERSION = (3, 0)
#: The highest microversion whose semantics are implemented (docs/volume.md).
MAX_VERSION = (3, 70)
#: What a URL without a project id gets in its place.
OWN_PROJECT = "-"
#: First segments after /v3/ that are collections, not project ids.
COLLECTIONS = frozenset((
    "volumes", "snapshots", "types", "qos-specs", "os-quota-sets", "limits", "attachments",
    "volume-transfers", "os-volume-transfer", "os-availability-zone", "os-services",
    "messages", "backups", "extensions", "scheduler-stats", "os-hosts", "capabilities",
    "os-quota-class-sets", "group_types", "groups", "group_snapshots"))

API = microversion.Microversions(
    service="volume", minimum=MIN_VERSION, maximum=MAX_VERSION,
    malformed="API Version String {wanted} is of invalid format. Must be of format "
              "MajorNum.MinorNum.")


def parse_header(headers: Any) -> tuple[int, int]:
    """The version asked for, or raise NotAcceptable."""
    return API.parse_header(headers)


def version(request: Request) -> tuple[int, int]:
    """The microversion this request is served at."""
    return API.version(request)


def require(request: Request, minimum: tuple[int, int]) -> None:
    """A route that exists only from ``minimum``: Cinder's 404 below it."""
    if version(request) < minimum:
        raise NotFound(f"The resource could not be found: {request.url.path} needs "
                       f"microversion {as_text(minimum)} or later (this request is "
                       f"{as_text(version(request))}).")


def _with_project(scope: Scope) -> Scope:
    """``/volume/v3/volumes/...`` -> ``/volume/v3/-/volumes/...``."""
    path: str = scope["path"]
    head, sep, rest = path.partition("/v3/")
    if not sep or head not in ("", "/volume") or rest.split("/", 1)[0] not in COLLECTIONS:
        return scope
    new_path = f"{head}/v3/{OWN_PROJECT}/{rest}"
    return {**scope, "path": new_path, "raw_path": new_path.encode(),
            "volume_url_without_project": True}


def project_in_url(request: Request) -> bool:
    """Whether the client's URL carried a project id (links answer in its form)."""
    return not request.scope.get("volume_url_without_project", False)


def _empty_id(scope: Scope) -> bool:
    """``/v3/{project}/volumes/`` (an item URL with an empty id): Cinder's 404, not
    the collection."""
    path: str = scope["path"]
    _, sep, rest = path.partition("/v3/")
    return bool(sep) and path.endswith("/") and rest.count("/") >= 2


class MicroversionMiddleware(microversion.MicroversionMiddleware):
    """Negotiates the version for every request under /volume, echoes it, and renders
    errors raised by handlers (Cinder's fault body) so that they carry the headers;
    fills in the project id a URL leaves out, and answers an empty id with 404."""

    api = API

    def route(self, scope: Scope) -> Scope:
        return _with_project(scope)

    def refuse(self, scope: Scope) -> OneStackError | None:
        if not _empty_id(scope):
            return None
        return NotFound(f"The resource could not be found: {scope['method']} "
                        f"{full_path(scope)} names no resource.")

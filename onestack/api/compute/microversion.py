"""Compute microversions: negotiation, the echo headers, and comparisons in handlers.

A client asks with ``OpenStack-API-Version: compute 2.79`` (or the legacy
``X-OpenStack-Nova-API-Version: 2.79``); ``latest`` means our maximum; no header means
2.1. A version outside [MIN, MAX] is refused with 406. Every response under /compute
echoes the version it was served at, with ``Vary`` on both request headers, and carries
the request id as ``x-compute-request-id`` too. The negotiation is ``api.microversion``'s,
shared with Block Storage; this module says what is Compute's.

Handlers read the negotiated version with ``version(request)`` and compare it with
tuples: ``if version(request) >= (2, 47): ...``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from onestack.api import microversion
from onestack.api.microversion import as_text

__all__ = ["MAX_VERSION", "MIN_VERSION", "MicroversionMiddleware", "as_text",
           "parse_header", "version"]

MIN_VERSION = (2, 1)
#: The highest microversion whose semantics are implemented (see docs/compute.md).
MAX_VERSION = (2, 96)

API = microversion.Microversions(
    service="compute", minimum=MIN_VERSION, maximum=MAX_VERSION,
    malformed="Invalid API version request: {wanted!r}; expected a version such as 2.1, "
              "or 'latest'.",
    legacy_header="X-OpenStack-Nova-API-Version",
    # Nova's own name for the request id (the outer middleware adds
    # x-openstack-request-id); instance actions are found by it.
    request_id_header="x-compute-request-id")


def parse_header(headers: Any) -> tuple[int, int]:
    """The version asked for, or raise NotAcceptable."""
    return API.parse_header(headers)


def version(request: Request) -> tuple[int, int]:
    """The microversion this request is served at."""
    return API.version(request)


class MicroversionMiddleware(microversion.MicroversionMiddleware):
    """Negotiates the version for every request under /compute and echoes it back;
    errors raised by handlers are rendered here (Nova's fault body) so that they carry
    the version headers too."""

    api = API

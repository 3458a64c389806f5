"""The metadata API, mounted at /metadata: what the per-host proxies forward guests'
requests to (``onestack.agent.metadata_proxy``).

A request names its instance in ``X-Instance-ID`` and proves it came from a proxy with
``X-Instance-ID-Signature`` = hex HMAC-SHA256(shared secret, instance id), Nova's
``metadata_proxy_shared_secret`` scheme; ``X-Tenant-ID``, when sent, must be the
instance's project. Paths are those of Nova's metadata server below the root
(``/openstack/latest/meta_data.json``, ``/latest/meta-data/hostname``, ``/``).

Errors are short plain-text bodies, as Nova's (webob) metadata server answers, not the
JSON fault bodies of the other services.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from onestack.services.compute import Compute

log = logging.getLogger(__name__)

_ALLOWED = "GET, HEAD"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status_code=status, headers=headers,
                    media_type="text/plain")


def sign(secret: bytes, instance_id: str) -> str:
    """The ``X-Instance-ID-Signature`` of ``instance_id``."""
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def _single(request: Request, name: str) -> str | None | Literal[False]:
    """The header's value; None if absent; False if sent more than once."""
    values = request.headers.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        return False
    return values[0]


async def metadata(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        return _text(405, "405 Method Not Allowed", {"Allow": _ALLOWED})
    instance_id = _single(request, "x-instance-id")
    signature = _single(request, "x-instance-id-signature")
    tenant_id = _single(request, "x-tenant-id")
    if instance_id is False or signature is False or tenant_id is False:
        return _text(400, "400 Bad Request\n\nMultiple X-Instance-ID, X-Instance-ID-Signature"
                          " or X-Tenant-ID headers found within request.")
    compute: Compute = request.app.state.compute
    if not instance_id or not signature or len(signature) > 128 or not hmac.compare_digest(
            sign(compute.metadata.secret(), instance_id).encode(),
            signature.encode(errors="replace")):
        log.warning("metadata request with a missing or bad signature (instance %r, from %s)",
                    (instance_id or "")[:64], request.headers.get("x-forwarded-for"))
        return _text(403, "403 Forbidden\n\nInvalid proxy request signature.")
    if len(instance_id) > 36:
        return _text(404, "404 Not Found")
    address = (request.headers.get("x-forwarded-for") or "").split(",")[0].strip() or None
    docs = compute.metadata.documents(instance_id, address)
    if docs is None or (tenant_id is not None and tenant_id != docs.project_id):
        return _text(404, "404 Not Found")
    path = request.path_params.get("path", "")
    if "\x00" in path:
        return _text(400, "400 Bad Request")
    doc = docs.lookup(path)
    if doc is None:
        return _text(404, "404 Not Found")
    return Response(doc.body, media_type=doc.content_type)


class _Endpoint:
    """An ASGI endpoint (not a function) so the route takes every method and a 405 is
    answered here in plain text, not by the app's JSON error handler."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await metadata(Request(scope, receive))
        await response(scope, receive, send)


routes = [
    Route("/metadata", _Endpoint()),
    Route("/metadata/{path:path}", _Endpoint()),
]

"""Rendering errors: the one place an exception becomes an HTTP response.

Each service has its own fault body; which one is chosen by the service the request
was for (the first segment of its path). Identity's is Keystone's:
``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from onestack.common.errors import OneStackError


def keystone_body(exc: OneStackError) -> dict[str, Any]:
    return {"error": {"code": exc.status, "title": exc.title, "message": exc.message}}


_NEUTRON_GENERIC = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
                    404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 406: "HTTPNotAcceptable",
                    409: "HTTPConflict", 413: "HTTPRequestEntityTooLarge",
                    415: "HTTPUnsupportedMediaType", 500: "HTTPInternalServerError",
                    503: "HTTPServiceUnavailable"}


def neutron_body(exc: OneStackError) -> dict[str, Any]:
    """Neutron's ``{"NeutronError": {"type", "message", "detail"}}``; ``type`` is the
    error's own fault name (e.g. ``IpAddressGenerationFailure``) when it was given one,
    else the generic name for the status."""
    fault = exc.fault
    if fault == type(exc).fault or fault == OneStackError.fault:
        fault = _NEUTRON_GENERIC.get(exc.status, "HTTPInternalServerError")
    return {"NeutronError": {"type": fault, "message": exc.message, "detail": ""}}


def glance_body(exc: OneStackError) -> dict[str, Any]:
    """Glance answers with webob's JSON error shape."""
    return {"code": exc.status, "title": exc.title, "message": exc.message,
            "error": {"code": exc.status, "title": exc.title, "message": exc.message}}


_NOVA_GENERIC = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
                 405: "methodNotAllowed", 406: "HTTPNotAcceptable", 409: "conflictingRequest",
                 413: "overLimit", 415: "badMediaType", 501: "notImplemented",
                 503: "serviceUnavailable"}


def nova_body(exc: OneStackError) -> dict[str, Any]:
    """Nova's ``{"<faultName>": {"code": 404, "message": "..."}}``; a 500 is a
    ``computeFault``."""
    fault = _NOVA_GENERIC.get(exc.status, "computeFault")
    return {fault: {"code": exc.status, "message": exc.message}}


_CINDER_GENERIC = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
                   404: "itemNotFound", 405: "badMethod", 409: "conflictingRequest",
                   413: "overLimit", 415: "badMediaType", 429: "overLimit",
                   501: "notImplemented", 503: "serviceUnavailable"}


def cinder_body(exc: OneStackError) -> dict[str, Any]:
    """Cinder's ``{"<faultName>": {"message": "...", "code": 400}}`` (the names of
    ``cinder.api.openstack.wsgi.Fault``); a 500 is a ``computeFault`` there too."""
    fault = _CINDER_GENERIC.get(exc.status, "computeFault")
    return {fault: {"message": exc.message, "code": exc.status}}


#: First path segment -> body builder; anything else is Identity (Keystone's body).
RENDERERS: dict[str, Callable[[OneStackError], dict[str, Any]]] = {
    "network": neutron_body,
    "image": glance_body,
    "compute": nova_body,
    "volume": cinder_body,
}


def render_error(exc: OneStackError, path: str, public_url: str = "") -> Response:
    segment = path.lstrip("/").split("/", 1)[0]
    body = RENDERERS.get(segment, keystone_body)(exc)
    headers = dict(exc.headers)
    if exc.status == 401 and segment not in RENDERERS:
        headers.setdefault("WWW-Authenticate", f'Keystone uri="{public_url}"')
    return Response(json.dumps(body), status_code=exc.status, headers=headers,
                    media_type="application/json")

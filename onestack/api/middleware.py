"""The outermost layer: request id, access log, and the last line of defence that turns
an unexpected exception into a clean 500 (logged with its traceback, never sent)."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onestack.api.faults import render_error
from onestack.common.errors import OneStackError
from onestack.common.logging import request_id_var

log = logging.getLogger("onestack.api")
_INFO = logging.INFO
_ACCESS_MSG = "%s %s %s"


def _access_log(method: str, path: str, status: int, started: float) -> None:
    """The one structured line per request. Made with ``makeRecord`` + ``handle`` rather
    than ``Logger.info``, which would also walk the stack to find its caller."""
    if not log.isEnabledFor(_INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.handle(log.makeRecord(
        log.name, _INFO, __file__, 0, _ACCESS_MSG, (method, path, status), None,
        "__call__", {"method": method, "path": path, "status": status,
                     "duration_ms": duration_ms}))


class RequestContextMiddleware:
    """Gives each request an id (context variable and response header), logs it, and
    renders any exception that escaped the error handlers as a 500."""

    def __init__(self, app: ASGIApp, public_url: str = "") -> None:
        self.app = app
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        sent_start = False
        rid_header = (b"x-openstack-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status = message["status"]
                sent_start = True
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            if not sent_start:
                error = OneStackError("An unexpected error prevented the server from "
                                      f"fulfilling your request (request {request_id}).")
                response = render_error(error, scope["path"], self.public_url)
                await response(scope, receive, send_with_id)
        finally:
            _access_log(scope["method"], scope["path"], status, started)
            request_id_var.reset(token)

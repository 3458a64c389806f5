"""The dashboard's plumbing: the per-request context (session, CSRF, the user's API
client), rendering, redirects and the error page.

Handlers are written ``async def handler(ctx: Ctx) -> Response`` and wrapped with
``page`` (a signed-in user is needed: without a session a browser is sent to the login
page) and, for routes that change something, the CSRF check (form field ``csrf`` or
header ``X-CSRF-Token``, compared with the session's).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from onestack.dashboard.client import Api, ApiError
from onestack.dashboard.session import SESSION_COOKIE, Session, Sessions

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/dashboard"
SAFE_METHODS = ("GET", "HEAD")

env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _when(value: Any) -> str:
    return str(value or "").replace("T", " ").replace("Z", "")[:19]


def _size(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


env.filters["when"] = _when
env.filters["size"] = _size


class State:
    """What the dashboard keeps: its sessions and the API client (set by ``attach``)."""

    def __init__(self) -> None:
        self.sessions = Sessions()
        self.client: httpx.AsyncClient | None = None
        self.secure_cookies = False


@dataclass
class Ctx:
    request: Request
    state: State
    session: Session
    sid: str
    form: FormData | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> Api:
        assert self.state.client is not None
        return Api(self.state.client, self.session.token)

    def flash(self, text: str, kind: str = "ok") -> None:
        self.session.flash.append((kind, text))

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v for v in self.form.getlist(name) if isinstance(v, str) and v]


def state_of(request: Request) -> State:
    state: State = request.app.state.dashboard
    return state


def render(request: Request, template: str, status: int = 200,
           ctx: Ctx | None = None, **values: Any) -> HTMLResponse:
    session = ctx.session if ctx else None
    flash: list[tuple[str, str]] = []
    if session is not None:
        flash, session.flash = session.flash, []
    html = env.get_template(template).render(
        session=session, csrf=session.csrf if session else values.pop("csrf", ""),
        flash=flash, path=request.url.path, prefix=PREFIX,
        volumes_enabled=bool(session and {"block-storage", "volumev3"} & session.services),
        **values)
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
    return HTMLResponse(html, status_code=status, headers=headers)


def redirect(to: str, request: Request | None = None) -> Response:
    """A 303 to a dashboard page (an htmx request is told with HX-Redirect)."""
    url = to if to.startswith(PREFIX) else PREFIX + to
    if request is not None and request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, status: int, message: str, ctx: Ctx | None = None
               ) -> HTMLResponse:
    return render(request, "error.html", status=status, ctx=ctx, status_code=status,
                  message=message)


def set_session_cookie(state: State, response: Response, sid: str, session: Session) -> None:
    response.set_cookie(SESSION_COOKIE, sid, max_age=session.remaining(), path=PREFIX,
                        httponly=True, samesite="lax", secure=state.secure_cookies)


Handler = Callable[[Ctx], Awaitable[Response]]


def page(handler: Handler, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A route for a signed-in user (``admin``: with the admin role)."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        sid = request.cookies.get(SESSION_COOKIE)
        session = state.sessions.get(sid)
        if session is None or sid is None:
            if request.method in SAFE_METHODS:
                return redirect(f"/login?next={quote(request.url.path)}", request)
            return redirect("/login", request)
        form = None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token")
            ctype = request.headers.get("content-type", "")
            if ctype.startswith(("application/x-www-form-urlencoded",
                                 "multipart/form-data")):
                form = await request.form()
                value = form.get("csrf")
                if sent is None:
                    sent = value if isinstance(value, str) else None
            if not sent or not hmac.compare_digest(sent, session.csrf):
                return error_page(request, 403, "The form's CSRF token is missing or wrong: "
                                  "reload the page and try again.")
        ctx = Ctx(request, state, session, sid, form)
        if admin and not session.is_admin:
            return error_page(request, 403, "This page is for cloud administrators.", ctx)
        try:
            response = await handler(ctx)
        except ApiError as exc:
            if exc.status == 401:
                state.sessions.drop(sid)
                return redirect("/login?expired=1", request)
            return error_page(request, exc.status if exc.status < 500 else 502, exc.message,
                              ctx)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def admin_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    return page(handler, admin=True)


def now() -> float:
    return time.time()

"""Login, logout and the project switcher (Keystone's tokens, the user's password
only in the login request)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from onestack.dashboard.client import Api, ApiError
from onestack.dashboard.session import LOGIN_COOKIE, SESSION_COOKIE, Session
from onestack.dashboard.web import (
    PREFIX,
    Ctx,
    State,
    error_page,
    page,
    redirect,
    render,
    set_session_cookie,
    state_of,
)

AUTH_FAILED = "The user name, password or domain is wrong."


def _expiry(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _scoped_session(api: Api, token: str, project_id: str, user_name: str,
                          domain: str, projects: list[tuple[str, str]]) -> Session:
    """A project-scoped token made from ``token`` (the token method: no password kept)."""
    r = await api.call("POST", "/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": token}},
        "scope": {"project": {"id": project_id}}}})
    body: dict[str, Any] = r.json()["token"]
    roles = [role["name"] for role in body.get("roles", [])]
    return Session(
        token=r.headers["X-Subject-Token"], expires_at=_expiry(body["expires_at"]),
        user_id=body["user"]["id"], user_name=user_name, domain=domain,
        project_id=body["project"]["id"], project_name=body["project"]["name"],
        projects=projects, is_admin="admin" in roles,
        services={entry["type"] for entry in body.get("catalog", [])}, roles=roles)


def _login_form(request: Request, state: State, status: int = 200, error: str = "",
                values: dict[str, str] | None = None, notice: str = "") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, csrf=state.sessions.login_csrf(nonce),
                      error=error, notice=notice,
                      values=values or {"domain": "Default"},
                      next=request.query_params.get("next", ""))
    response.set_cookie(LOGIN_COOKIE, nonce, path=PREFIX, httponly=True, samesite="lax",
                        secure=state.secure_cookies, max_age=3600)
    return response


async def login(request: Request) -> Response:
    state = state_of(request)
    if request.method == "GET":
        if state.sessions.get(request.cookies.get(SESSION_COOKIE)):
            return redirect("/overview")
        notice = ""
        if request.query_params.get("expired"):
            notice = "Your session has ended: sign in again."
        elif request.query_params.get("out"):
            notice = "You have signed out."
        return _login_form(request, state, notice=notice)
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("name", "domain")}
    if not state.sessions.check_login_csrf(request.cookies.get(LOGIN_COOKIE),
                                           str(form.get("csrf") or "")):
        return error_page(request, 403, "The form's CSRF token is missing or wrong: reload "
                          "the page and try again.")
    password = str(form.get("password") or "")
    if not values["name"] or not password:
        return _login_form(request, state, 400, "Enter your user name and password.", values)
    assert state.client is not None
    api = Api(state.client, None)
    try:
        r = await api.call("POST", "/v3/auth/tokens?nocatalog", json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {
                "name": values["name"], "domain": {"name": values["domain"] or "Default"},
                "password": password}}}}})
        token = r.headers["X-Subject-Token"]
        user_api = Api(state.client, token)
        found = (await user_api.get("/v3/auth/projects"))["projects"]
        projects = sorted(((p["id"], p["name"]) for p in found if p.get("enabled", True)),
                          key=lambda p: p[1])
        if not projects:
            return _login_form(request, state, 403, "You have no role on any project: ask "
                               "your administrator for one.", values)
        scoped = r.json()["token"].get("project", {}).get("id")
        first = scoped if scoped in {p[0] for p in projects} else projects[0][0]
        session = await _scoped_session(api, token, first, values["name"],
                                        values["domain"] or "Default", projects)
    except ApiError as exc:
        message = AUTH_FAILED if exc.status == 401 and "requires authentication" \
            in exc.message else exc.message
        return _login_form(request, state, exc.status if exc.status < 500 else 502,
                           message, values)
    sid = state.sessions.create(session)
    target = str(form.get("next") or "")
    if not target.startswith(PREFIX + "/") or target.startswith(PREFIX + "/login"):
        target = PREFIX + "/overview"
    response = redirect(target)
    set_session_cookie(state, response, sid, session)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


async def _logout(ctx: Ctx) -> Response:
    try:   # the token ends with the session
        await ctx.api.call("DELETE", "/v3/auth/tokens",
                           headers={"X-Subject-Token": ctx.session.token})
    except ApiError:
        pass
    ctx.state.sessions.drop(ctx.sid)
    response = redirect("/login?out=1")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def _switch(ctx: Ctx) -> Response:
    project_id = ctx.field("project_id")
    if project_id not in {p[0] for p in ctx.session.projects}:
        ctx.flash("You have no role on that project.", "error")
        return redirect("/overview")
    fresh = await _scoped_session(ctx.api, ctx.session.token, project_id,
                                  ctx.session.user_name, ctx.session.domain,
                                  ctx.session.projects)
    ctx.state.sessions.replace(ctx.sid, fresh)
    fresh.flash.append(("ok", f"Switched to project {fresh.project_name}."))
    response = redirect("/overview")
    set_session_cookie(ctx.state, response, ctx.sid, fresh)
    return response


logout = page(_logout)
switch_project = page(_switch)

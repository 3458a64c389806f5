"""The web dashboard, served at ``/dashboard/`` by the same ``onestack up``.

It is a client of the public APIs with the signed-in user's own token (see
``client``): server-rendered pages (Jinja2), htmx for the parts that update by
themselves, xterm.js for the serial console, both vendored under ``static/vendor``
(docs/dashboard.md lists their versions and licences). ``create()`` makes its ASGI app,
``attach()`` points its API client at the app that serves the APIs, and
``BrowserRedirect`` sends a browser that opens the port's root page to the dashboard.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from onestack.dashboard import admin, auth, compute, images, network, volumes
from onestack.dashboard.web import HERE, PREFIX, State, error_page, redirect

__all__ = ["BrowserRedirect", "attach", "create", "mount"]

POST = ["POST"]
GET_POST = ["GET", "POST"]


async def _home(request: Request) -> Response:
    return redirect("/overview")


def create() -> Starlette:
    routes = [
        Route("/", _home, methods=["GET"]),
        Route("/login", auth.login, methods=GET_POST),
        Route("/logout", auth.logout, methods=POST),
        Route("/switch-project", auth.switch_project, methods=POST),
        Route("/overview", compute.overview, methods=["GET"]),
        Route("/instances", compute.instances, methods=["GET"]),
        Route("/instances/rows", compute.instance_rows, methods=["GET"]),
        Route("/instances/launch", compute.launch, methods=GET_POST),
        Route("/instances/{server_id}", compute.instance, methods=["GET"]),
        Route("/instances/{server_id}/action", compute.server_action, methods=POST),
        Route("/instances/{server_id}/console-log", compute.console_log, methods=["GET"]),
        Route("/instances/{server_id}/console", compute.console, methods=GET_POST),
        Route("/images", images.images, methods=GET_POST),
        Route("/images/{image_id}/data", images.image_data, methods=["PUT"]),
        Route("/images/{image_id}/visibility", images.image_visibility, methods=POST),
        Route("/images/{image_id}/delete", images.image_delete, methods=POST),
        Route("/volumes", volumes.volumes, methods=GET_POST),
        Route("/volumes/{volume_id}/action", volumes.volume_action, methods=POST),
        Route("/networks", network.networks, methods=GET_POST),
        Route("/networks/{network_id}/delete", network.network_delete, methods=POST),
        Route("/subnets/{subnet_id}/delete", network.subnet_delete, methods=POST),
        Route("/routers", network.routers, methods=GET_POST),
        Route("/routers/{router_id}/interface", network.router_interface, methods=POST),
        Route("/routers/{router_id}/delete", network.router_delete, methods=POST),
        Route("/floating-ips", network.floating_ips, methods=GET_POST),
        Route("/floating-ips/{floatingip_id}/delete", network.floating_ip_delete,
              methods=POST),
        Route("/security-groups", network.security_groups, methods=GET_POST),
        Route("/security-groups/{group_id}/delete", network.security_group_delete,
              methods=POST),
        Route("/security-group-rules/{rule_id}/delete", network.security_group_rule_delete,
              methods=POST),
        Route("/key-pairs", network.key_pairs, methods=GET_POST),
        Route("/key-pairs/{name}/delete", network.key_pair_delete, methods=POST),
        Route("/topology", network.topology_page, methods=["GET"]),
        Route("/admin/projects", admin.projects, methods=["GET"]),
        Route("/admin/users", admin.users, methods=["GET"]),
        Route("/admin/role-assignments", admin.assignments, methods=["GET"]),
        Route("/admin/flavors", admin.flavors, methods=GET_POST),
        Route("/admin/flavors/{flavor_id}/delete", admin.flavor_delete, methods=POST),
        Route("/admin/hypervisors", admin.hypervisors, methods=["GET"]),
        Route("/admin/instances", admin.all_instances, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, f"There is no page {request.url.path}.")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_page(request, 405, f"{request.method} is not allowed on "
                          f"{request.url.path}.")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.dashboard = State()
    return app


def attach(dashboard: Starlette, api_app: ASGIApp, public_url: str) -> None:
    """Point the dashboard's API client at the app serving the APIs (in process: the
    same routes, middleware and policy a remote client meets)."""
    state: State = dashboard.state.dashboard
    state.secure_cookies = public_url.startswith("https://")
    state.client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api_app, raise_app_exceptions=False),
        base_url=public_url.rstrip("/") or "http://localhost")


def mount(dashboard: Starlette) -> Mount:
    return Mount(PREFIX, app=dashboard)


class BrowserRedirect:
    """``GET /`` from a browser (it asks for HTML) goes to the dashboard; API clients
    asking for JSON still get Keystone's version document there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "GET":
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            if "text/html" in accept:
                await send({"type": "http.response.start", "status": 302,
                            "headers": [(b"location", f"{PREFIX}/".encode()),
                                        (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

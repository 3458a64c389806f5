"""The ASGI application: every service's routes, one error renderer, one middleware.

The program it serves is assembled elsewhere (``onestack.assembly``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from onestack import dashboard
from onestack.api import compute as compute_api
from onestack.api import hostlink as hostlink_api
from onestack.api import identity as identity_api
from onestack.api import image as image_api
from onestack.api import metadata as metadata_api
from onestack.api import network as network_api
from onestack.api import volume as volume_api
from onestack.api.faults import render_error
from onestack.api.middleware import RequestContextMiddleware
from onestack.common import errors
from onestack.common.config import Config
from onestack.db import Database
from onestack.services.compute import Compute
from onestack.services.hosts import HostService
from onestack.services.identity import Identity
from onestack.services.image import Images
from onestack.services.network import Networking
from onestack.services.volume import Volumes

log = logging.getLogger(__name__)

_HTTP_ERRORS = {
    400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
    404: errors.NotFound, 405: errors.MethodNotAllowed, 406: errors.NotAcceptable,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType,
}


class AppServices(Protocol):
    """What the app is given (``onestack.assembly.Services`` builds it): the services
    its routes call, and the program's start and stop."""

    config: Config
    db: Database
    identity: Identity
    images: Images
    network: Networking
    compute: Compute
    hosts: HostService
    volume: Volumes

    def start(self) -> None: ...

    def close(self) -> None: ...


def create_app(config: Config, services: AppServices) -> Starlette:

    async def onestack_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.OneStackError)
        return render_error(exc, request.url.path, config.public_url)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        cls = _HTTP_ERRORS.get(exc.status_code, errors.OneStackError)
        message = None
        if exc.status_code == 404:
            message = f"The resource could not be found: {request.method} {request.url.path}."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        err = cls(message or str(exc.detail))
        err.headers = dict(exc.headers or {})
        return render_error(err, request.url.path, config.public_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services.start()
        yield
        log.info("shutting down")
        services.close()

    web = dashboard.create()   # the web dashboard: a client of the routes above
    app = Starlette(
        lifespan=lifespan,
        routes=[*identity_api.routes, *image_api.routes, *network_api.routes,
                *compute_api.routes, *volume_api.routes, *metadata_api.routes,
                *hostlink_api.routes, dashboard.mount(web)],
        exception_handlers={errors.OneStackError: onestack_error, HTTPException: http_error},
    )
    app.add_middleware(RequestContextMiddleware, public_url=config.public_url)
    app.add_middleware(dashboard.BrowserRedirect)
    dashboard.attach(web, app, config.public_url)
    app.state.config = config
    app.state.services = services
    app.state.identity = services.identity
    app.state.images = services.images
    app.state.network = services.network
    app.state.compute = services.compute
    return app

"""The ASGI application: every service's routes, one error renderer, one middleware."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from onestack.api import compute as compute_api
from onestack.api import hostlink as hostlink_api
from onestack.api import identity as identity_api
from onestack.api import image as image_api
from onestack.api import metadata as metadata_api
from onestack.api import network as network_api
from onestack.api.faults import render_error
from onestack.api.middleware import RequestContextMiddleware
from onestack.common import errors
from onestack.common.config import Config
from onestack.common.statedir import PRIVATE_UMASK, make_private
from onestack.db import Database
from onestack.services.compute import Compute
from onestack.services.identity import Identity
from onestack.services.identity.bootstrap import BootstrapResult, bootstrap
from onestack.services.image import Images
from onestack.services.network import Networking

log = logging.getLogger(__name__)

_HTTP_ERRORS = {
    400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden,
    404: errors.NotFound, 405: errors.MethodNotAllowed, 406: errors.NotAcceptable,
    409: errors.Conflict, 413: errors.PayloadTooLarge, 415: errors.UnsupportedMediaType,
}


class Services:
    """Everything the API calls, built once per process."""

    def __init__(self, config: Config, admin_password: str | None = None) -> None:
        self.config = config
        # The state directory is no one else's business (common/statedir.py): what this
        # process creates from now on is private, and what an older install left is
        # made so.
        os.umask(PRIVATE_UMASK)
        make_private(config.state_dir)
        self.db = Database(config.database_url)
        self.db.migrate()
        self.identity = Identity(self.db, config)
        self.bootstrap: BootstrapResult = bootstrap(self.identity, config.public_url,
                                                   admin_password)
        self.images = Images(self.db, config, self.identity)
        self.network = Networking(self.db, config, self.identity)
        self.network.bootstrap(self.bootstrap.admin_project_id)
        self.compute = Compute(self.db, config, self.identity, self.images, self.network)
        self.compute.bootstrap()
        self.agent: Any = None

    def start_agent(self) -> None:
        """Run this host's agent in this process (the all-in-one mode)."""
        if self.agent is not None:
            return
        from onestack.agent.host import build_agent
        from onestack.services.image.testimage import cached_test_image

        # The test image, if it was ever built, is what the KVM probe boots.
        self.agent = build_agent(self.config, self.compute, probe_kernel=cached_test_image())
        self.compute.agents[self.agent.host] = self.agent
        self.compute.listeners.append(self.agent.wake)
        self.agent.start()

    def stop_agent(self) -> None:
        if self.agent is None:
            return
        self.compute.listeners.remove(self.agent.wake)
        self.compute.agents.pop(self.agent.host, None)
        self.agent.stop()
        self.agent = None

    def close(self) -> None:
        self.stop_agent()
        self.db.dispose()


def create_app(config: Config, services: Services | None = None) -> Starlette:
    services = services or Services(config)

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
        if config.host.agent:
            try:
                services.start_agent()
            except Exception:
                # The APIs still serve; os-services shows this host's compute as down.
                log.exception("this host's agent could not start")
        yield
        log.info("shutting down")
        services.close()

    app = Starlette(
        lifespan=lifespan,
        routes=[*identity_api.routes, *image_api.routes, *network_api.routes,
                *compute_api.routes, *metadata_api.routes, *hostlink_api.routes],
        exception_handlers={errors.OneStackError: onestack_error, HTTPException: http_error},
    )
    app.add_middleware(RequestContextMiddleware, public_url=config.public_url)
    app.state.config = config
    app.state.services = services
    app.state.identity = services.identity
    app.state.images = services.images
    app.state.network = services.network
    app.state.compute = services.compute
    return app

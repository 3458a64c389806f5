"""The Compute and Block Storage microversion middlewares, driven directly with a tiny
app under each: negotiation, the exact echo headers (names, values, order), the 406
faults and their messages, errors rendered in the service's fault body, and Block
Storage's URLs without a project id."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from onestack.api.compute import microversion as compute_mv
from onestack.api.volume import microversion as volume_mv
from onestack.common.errors import Conflict
from onestack.common.logging import request_id_var

#: The response headers the middlewares add.
ECHOED = {"openstack-api-version", "x-openstack-nova-api-version", "vary",
          "x-compute-request-id"}
NOVA_VARY = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def _with_request_id(app: ASGIApp) -> ASGIApp:
    """Sets the request id (as the outer middleware does) when the test asks for it."""

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"x-test-request-id", b"yes") in scope["headers"]:
            request_id_var.set("req-test")
        await app(scope, receive, send)

    return outer


def _client(mount: str, middleware: type, routes: list[Route]) -> TestClient:
    app = Starlette(routes=[Mount(mount, middleware=[Middleware(middleware)], routes=routes)])
    return TestClient(_with_request_id(app), raise_server_exceptions=True)


async def _compute_ok(request: Request) -> JSONResponse:
    return JSONResponse({"version": list(compute_mv.version(request))})


async def _conflict(request: Request) -> JSONResponse:
    raise Conflict("Busy.")


async def _volume_ok(request: Request) -> JSONResponse:
    return JSONResponse({"version": list(volume_mv.version(request)),
                         "project": request.path_params.get("project_id"),
                         "in_url": volume_mv.project_in_url(request),
                         "path": request.scope["path"]})


@pytest.fixture(scope="module")
def compute() -> TestClient:
    return _client("/compute", compute_mv.MicroversionMiddleware, [
        Route("/v2.1/things", _compute_ok),
        Route("/v2.1/only-get", _compute_ok, methods=["GET"]),
        Route("/v2.1/busy", _conflict)])


@pytest.fixture(scope="module")
def volume() -> TestClient:
    return _client("/volume", volume_mv.MicroversionMiddleware, [
        Route("/v3/{project_id}/volumes", _volume_ok),
        Route("/v3/{project_id}/volumes/{volume_id}", _volume_ok),
        Route("/v3/{project_id}/only-get", _volume_ok, methods=["GET"]),
        Route("/v3/{project_id}/busy", _conflict)])


def _echoed(r: Any) -> list[tuple[str, str]]:
    return [(k, v) for k, v in r.headers.multi_items() if k in ECHOED]


def _nova(version: str) -> list[tuple[str, str]]:
    return [("openstack-api-version", f"compute {version}"),
            ("x-openstack-nova-api-version", version), ("vary", NOVA_VARY)]


def _cinder(version: str) -> list[tuple[str, str]]:
    return [("openstack-api-version", f"volume {version}"),
            ("vary", "OpenStack-API-Version")]


# -- Compute -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers, served", [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.47"}, "2.47"),
    ({"OpenStack-API-Version": "compute latest"}, "2.96"),
    ({"OpenStack-API-Version": "compute LATEST"}, "2.96"),
    ({"OpenStack-API-Version": "Compute 2.10"}, "2.10"),
    ({"X-OpenStack-Nova-API-Version": "2.26"}, "2.26"),
    ({"X-OpenStack-Nova-API-Version": "latest"}, "2.96"),
    ({"OpenStack-API-Version": "volume 3.10, compute 2.9"}, "2.9"),
    ({"OpenStack-API-Version": "volume 3.10", "X-OpenStack-Nova-API-Version": "2.5"}, "2.5"),
    ({"OpenStack-API-Version": "compute 2.30", "X-OpenStack-Nova-API-Version": "2.5"},
     "2.30"),
    # the service named without a version: the legacy header is not read then
    ({"OpenStack-API-Version": "compute", "X-OpenStack-Nova-API-Version": "2.5"}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.1"}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.96"}, "2.96"),
])
def test_compute_negotiation(compute, headers, served):
    r = compute.get("/compute/v2.1/things", headers=headers)
    assert r.status_code == 200
    assert r.json() == {"version": [int(p) for p in served.split(".")]}
    assert _echoed(r) == _nova(served)


def test_compute_echoes_the_request_id_as_nova_names_it(compute):
    r = compute.get("/compute/v2.1/things", headers={"x-test-request-id": "yes",
                                                      "OpenStack-API-Version": "compute 2.3"})
    assert _echoed(r) == [*_nova("2.3"), ("x-compute-request-id", "req-test")]


@pytest.mark.parametrize("value, message", [
    ("two", "Invalid API version request: 'two'; expected a version such as 2.1, or "
            "'latest'."),
    ("2", "Invalid API version request: '2'; expected a version such as 2.1, or 'latest'."),
    ("2.01", "Invalid API version request: '2.01'; expected a version such as 2.1, or "
             "'latest'."),
    ("2.1.1", "Invalid API version request: '2.1.1'; expected a version such as 2.1, or "
              "'latest'."),
    ("2.0", "Version 2.0 is not supported by the API. Minimum is 2.1 and maximum is 2.96."),
    ("2.97", "Version 2.97 is not supported by the API. Minimum is 2.1 and maximum is "
             "2.96."),
    ("3.0", "Version 3.0 is not supported by the API. Minimum is 2.1 and maximum is 2.96."),
])
def test_compute_refuses_other_versions_with_406(compute, value, message):
    for headers in ({"OpenStack-API-Version": f"compute {value}"},
                    {"X-OpenStack-Nova-API-Version": value}):
        r = compute.get("/compute/v2.1/things", headers=headers)
        assert r.status_code == 406
        assert r.json() == {"HTTPNotAcceptable": {"code": 406, "message": message}}
        assert _echoed(r) == _nova("2.1")


def test_compute_errors_carry_the_version(compute):
    headers = {"OpenStack-API-Version": "compute 2.60", "x-test-request-id": "yes"}
    r = compute.get("/compute/v2.1/busy", headers=headers)
    assert (r.status_code, r.json()) == (409, {"conflictingRequest": {
        "code": 409, "message": "Busy."}})
    assert _echoed(r) == [*_nova("2.60"), ("x-compute-request-id", "req-test")]
    r = compute.get("/compute/v2.1/nothing", headers=headers)
    assert (r.status_code, r.json()) == (404, {"itemNotFound": {
        "code": 404, "message": "The resource could not be found: GET "
                                "/compute/v2.1/nothing."}})
    assert _echoed(r)[:3] == _nova("2.60")
    r = compute.post("/compute/v2.1/only-get", headers=headers)
    assert (r.status_code, r.json()) == (405, {"methodNotAllowed": {
        "code": 405, "message": "Method POST is not allowed on /compute/v2.1/only-get."}})
    assert _echoed(r)[:3] == _nova("2.60")


# -- Block Storage -------------------------------------------------------------------------


@pytest.mark.parametrize("headers, served", [
    ({}, "3.0"),
    ({"OpenStack-API-Version": "volume 3.59"}, "3.59"),
    ({"OpenStack-API-Version": "volume latest"}, "3.70"),
    ({"OpenStack-API-Version": "Volume 3.1"}, "3.1"),
    ({"OpenStack-API-Version": "compute 2.9, volume 3.10"}, "3.10"),
    ({"OpenStack-API-Version": "compute 2.9"}, "3.0"),
    ({"OpenStack-API-Version": "volume"}, "3.0"),
    # Cinder never had a legacy header, nor reads Nova's
    ({"X-OpenStack-Volume-API-Version": "3.5"}, "3.0"),
    ({"X-OpenStack-Nova-API-Version": "3.5"}, "3.0"),
])
def test_volume_negotiation(volume, headers, served):
    r = volume.get("/volume/v3/p1/volumes", headers={**headers, "x-test-request-id": "yes"})
    assert r.status_code == 200
    assert r.json()["version"] == [int(p) for p in served.split(".")]
    assert _echoed(r) == _cinder(served)


@pytest.mark.parametrize("value, message", [
    ("3", "API Version String 3 is of invalid format. Must be of format "
          "MajorNum.MinorNum."),
    ("three", "API Version String three is of invalid format. Must be of format "
              "MajorNum.MinorNum."),
    ("2.9", "Version 2.9 is not supported by the API. Minimum is 3.0 and maximum is 3.70."),
    ("3.71", "Version 3.71 is not supported by the API. Minimum is 3.0 and maximum is "
             "3.70."),
])
def test_volume_refuses_other_versions_with_406(volume, value, message):
    r = volume.get("/volume/v3/p1/volumes", headers={"OpenStack-API-Version": f"volume {value}"})
    assert r.status_code == 406
    assert r.json() == {"computeFault": {"message": message, "code": 406}}
    assert _echoed(r) == _cinder("3.0")


def test_volume_urls_with_and_without_a_project(volume):
    r = volume.get("/volume/v3/p1/volumes/v9")
    assert r.json() == {"version": [3, 0], "project": "p1", "in_url": True,
                        "path": "/volume/v3/p1/volumes/v9"}
    r = volume.get("/volume/v3/volumes/v9", headers={"OpenStack-API-Version": "volume 3.67"})
    assert r.json() == {"version": [3, 67], "project": "-", "in_url": False,
                        "path": "/volume/v3/-/volumes/v9"}
    assert _echoed(r) == _cinder("3.67")


def test_volume_an_empty_id_is_404(volume):
    r = volume.get("/volume/v3/p1/volumes/", headers={"OpenStack-API-Version": "volume 3.5"})
    assert (r.status_code, r.json()) == (404, {"itemNotFound": {
        "message": "The resource could not be found: GET /volume/v3/p1/volumes/ names no "
                   "resource.", "code": 404}})
    assert _echoed(r) == _cinder("3.5")
    r = volume.get("/volume/v3/volumes/", headers={"OpenStack-API-Version": "volume 3.5"})
    assert r.json()["itemNotFound"]["message"] == (
        "The resource could not be found: GET /volume/v3/-/volumes/ names no resource.")


def test_volume_errors_carry_the_version(volume):
    headers = {"OpenStack-API-Version": "volume 3.44"}
    r = volume.get("/volume/v3/p1/busy", headers=headers)
    assert (r.status_code, r.json()) == (409, {"conflictingRequest": {
        "message": "Busy.", "code": 409}})
    assert _echoed(r) == _cinder("3.44")
    r = volume.get("/volume/v3/p1/nothing", headers=headers)
    assert (r.status_code, r.json()) == (404, {"itemNotFound": {
        "message": "The resource could not be found: GET /volume/v3/p1/nothing.",
        "code": 404}})
    assert _echoed(r) == _cinder("3.44")
    r = volume.post("/volume/v3/p1/only-get", headers=headers)
    assert (r.status_code, r.json()) == (405, {"badMethod": {
        "message": "Method POST is not allowed on /volume/v3/p1/only-get.", "code": 405}})
    assert _echoed(r) == _cinder("3.44")


def test_version_helpers():
    assert (compute_mv.MIN_VERSION, compute_mv.MAX_VERSION) == ((2, 1), (2, 96))
    assert (volume_mv.MIN_VERSION, volume_mv.MAX_VERSION) == ((3, 0), (3, 70))
    assert compute_mv.as_text((2, 10)) == volume_mv.as_text((2, 10)) == "2.10"
    assert compute_mv.parse_header({"x-openstack-nova-api-version": "2.7"}) == (2, 7)
    assert volume_mv.parse_header({"openstack-api-version": "volume 3.7"}) == (3, 7)

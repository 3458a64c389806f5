"""Structured logs carry the request id of the request being served."""

from __future__ import annotations

import json
import logging

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from onestack.api.middleware import RequestContextMiddleware
from onestack.common.logging import setup_logging


def test_every_record_of_a_request_carries_its_id(tmp_path):
    setup_logging(tmp_path, "info", console=False)
    try:
        async def hello(request):
            logging.getLogger("onestack.test").info("inside the handler", extra={"k": 1})
            return PlainTextResponse("hi")

        async def boom(request):
            raise RuntimeError("secret internals")

        app = Starlette(routes=[Route("/hello", hello), Route("/boom", boom)])
        app.add_middleware(RequestContextMiddleware)
        client = TestClient(app, raise_server_exceptions=False)
        rid = client.get("/hello").headers["x-openstack-request-id"]
        r = client.get("/boom")
        assert r.status_code == 500
        assert "secret internals" not in r.text and "Traceback" not in r.text
        assert r.json()["error"]["code"] == 500
        assert r.headers["x-openstack-request-id"] in r.json()["error"]["message"]
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
        setup_logging(None, "warning", console=False)
    records = [json.loads(line) for line in (tmp_path / "onestack.log").read_text().splitlines()]
    mine = [r for r in records if r.get("request_id") == rid]
    assert {r["message"] for r in mine} == {"inside the handler", "GET /hello 200"}
    inside = next(r for r in mine if r["message"] == "inside the handler")
    assert inside["k"] == 1 and inside["logger"] == "onestack.test"
    access = next(r for r in mine if r["message"] == "GET /hello 200")
    assert access["status"] == 200 and access["duration_ms"] >= 0
    crash = [r for r in records if r["message"].startswith("unexpected error serving GET /boom")]
    assert crash and "RuntimeError: secret internals" in crash[0]["exception"]

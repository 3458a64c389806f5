"""Structured logs carry the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from onestack.api.middleware import RequestContextMiddleware
from onestack.common.logging import ConsoleFormatter, JsonFormatter, setup_logging


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


FORGED = "x\n[req-FORGED] DELETE /v3/users/admin 204"
HOSTILE = [FORGED, "a\rb", "\x1b[2J\x1b[1;31mred", "nul\x00del\x7f", "nel\x85ls\u2028ps\u2029",
           "bidi\u202egnp.exe", "tab\tvt\x0bff\x0c"]


def _record(msg: str, *args: object, name: str = "onestack.api",
            exc_info: Any = None) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)
    record.request_id = "req-1"
    return record


def test_console_escapes_control_characters_in_every_field():
    fmt = ConsoleFormatter()
    for text in HOSTILE:
        for record in (_record("%s %s", "GET", text), _record(text), _record("m", name=text)):
            record.request_id = text if record.msg == "m" else "req-1"
            line = fmt.format(record)
            assert len(line.splitlines()) == 1, repr(line)
            assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029\u202e"
                           for c in line), repr(line)
    line = fmt.format(_record("GET %s 404", "/v3/" + FORGED))
    assert line == "info    onestack.api: [req-1] GET /v3/x\\n[req-FORGED] DELETE " \
                   "/v3/users/admin 204 404"
    assert fmt.format(_record("%s", "\x1b[2J")).endswith("\\x1b[2J")
    assert fmt.format(_record("%s", "\u2028")).endswith("\\u2028")


def test_a_traceback_is_indented_and_escaped():
    try:
        raise ValueError(FORGED)
    except ValueError:
        record = _record("failed", exc_info=sys.exc_info())
    lines = ConsoleFormatter().format(record).split("\n")
    assert lines[0] == "info    onestack.api: [req-1] failed"
    assert all(line.startswith("    ") for line in lines[1:])
    # a traceback spans lines; what it quotes cannot start one that looks like a record
    assert lines[-1] == "    [req-FORGED] DELETE /v3/users/admin 204"


def test_the_json_log_keeps_one_record_per_line():
    fmt = JsonFormatter()
    for text in HOSTILE:
        line = fmt.format(_record("GET %s 404", text))
        assert len(line.splitlines()) == 1 and line.isascii(), repr(line)
        assert json.loads(line)["message"] == f"GET {text} 404"

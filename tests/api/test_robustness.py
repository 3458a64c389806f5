"""Every Identity route, fed bad input: always a 4xx with Keystone's body, never a 500.

Walks the app's route table, so new routes are covered without editing this file.
"""

from __future__ import annotations

import re

import pytest
from starlette.routing import Mount, Route

#: Version discovery and login need no token; everything else does.
OPEN_ROUTE = re.compile(r"^(/v3/?|/[a-z]*/?|/[a-z]+/versions|/[a-z]+/v[0-9.]+/?)$")

#: Keystone APIs this cloud refuses, saying why (501), once the input is valid.
NOT_IMPLEMENTED = re.compile(r"^/v3/domains/(\{domain_id\}/)?config")

BODIES = [
    b"",
    b"{not json",
    b"[1, 2]",
    b'"text"',
    b"{}",
    b'{"user": 5, "project": [], "domain": "x", "role": null, "group": true}',
    b'{"user": {"name": 7}, "project": {"name": {"a": 1}}, "domain": {"enabled": "yes"}}',
    b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {}}}}}',
    b"{\"name\": \"\\ud800\"}",
]


def routes(cloud):
    """(path, method) of every route, mounted ones included."""

    def walk(items, prefix):
        for item in items:
            if isinstance(item, Mount):
                yield from walk(item.routes, prefix + item.path)
            elif isinstance(item, Route):
                for method in sorted(item.methods or ()):
                    if method != "HEAD":
                        yield prefix + item.path, method

    yield from walk(cloud.client.app.routes, "")


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def assert_fault(r, method, path):
    assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text}"
    if r.status_code >= 400 and path.startswith("/v3"):
        assert r.json()["error"]["code"] == r.status_code, f"{method} {path}: {r.text}"


def test_no_route_answers_500_to_bad_input(cloud):
    seen = 0
    for path, method in routes(cloud):
        for ident in ("0" * 32, "default", "%20", "x" * 300):
            url = fill(path, ident)
            if method in ("POST", "PUT", "PATCH"):
                for body in BODIES:
                    r = cloud.request(method, url, content=body,
                                      headers={"Content-Type": "application/json"})
                    assert_fault(r, method, url)
                    seen += 1
            elif method == "GET":
                r = cloud.request(method, url + "?enabled=maybe&limit=-1&name=%00&effective=x")
                if r.status_code == 501 and NOT_IMPLEMENTED.match(path):
                    continue
                assert_fault(r, method, url)
                seen += 1
    assert seen > 50


@pytest.mark.parametrize("token", [None, "garbage", "gAAAAAB" + "A" * 100])
def test_every_protected_route_needs_a_valid_token(cloud, token):
    for path, method in routes(cloud):
        if OPEN_ROUTE.match(path) and method == "GET" or (path, method) in (
                ("/v3/auth/tokens", "POST"), ("/dashboard/login", "GET"),
                ("/dashboard/login", "POST")):
            continue
        url = fill(path, "0" * 32)
        r = cloud.request(method, url, token=token, json={}, follow_redirects=False)
        if path.startswith("/dashboard/"):
            # HTML pages: they know a session cookie, not a token, and send a caller
            # without a session to the login form (tests/dashboard/test_pages.py).
            assert r.status_code == 303, f"{method} {url} without a session: {r.status_code}"
            assert r.headers["location"].startswith("/dashboard/login"), r.headers
            continue
        if token is None and (path, method) == ("/v3/users/{user_id}/password", "POST"):
            # as in Keystone, the original password authenticates a tokenless change
            assert r.status_code == 400, r.text   # (its empty body)
            continue
        assert r.status_code == 401, f"{method} {url} without a valid token: {r.status_code}"


def test_strings_a_database_cannot_store_are_400(cloud):
    for text in ('"a\\u0000b"', '"\\ud800"'):
        user = f'{{"name": {text}, "domain": {{"name": "Default"}}, "password": {text}}}'
        body = '{"auth": {"identity": {"methods": ["password"], "password": {"user": ' \
            + user + "}}}}"
        r = cloud.client.post("/v3/auth/tokens", content=body.encode(),
                              headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert "auth/identity/password/user/name" in r.json()["error"]["message"]


def test_a_newline_in_the_path_cannot_forge_a_log_line(cloud, capsys):
    """An unauthenticated request whose path carries ``%0A`` makes exactly one console
    line (the access log's), with the newline escaped."""
    from onestack.common.logging import setup_logging

    capsys.readouterr()
    setup_logging(None, "info", console=True)
    try:
        r = cloud.client.get("/v3/%0A[req-FORGED]%20DELETE%20/v3/users/admin%20204%0D%1B[2J")
    finally:
        setup_logging(None, "warning", console=False)
    assert r.status_code == 404
    # The in-process host agent logs on its own thread (its first firewall pass, say);
    # its lines are not the request's.
    lines = [line for line in capsys.readouterr().err.splitlines()
             if not re.match(r"\w+ +onestack\.agent[.:]", line)]
    assert len(lines) == 1, lines
    assert lines[0].startswith("info    onestack.api: [req-") and "\\n[req-FORGED]" in lines[0]
    assert lines[0].endswith("\\r\\x1b[2J 404"), lines[0]

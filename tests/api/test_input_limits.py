"""Hostile input on every route: deeply nested JSON, oversized bodies, integers no
database can store. Each is a 4xx in the fault body of the service called (400 for bad
JSON and out-of-range integers, 413 for a body over the limit), never a 500.

Walks the app's route table (``test_robustness.routes``), so new routes are covered
without editing this file.
"""

from __future__ import annotations

from typing import Any

import pytest

from onestack.api.common import MAX_BODY, MAX_JSON_DEPTH
from tests.api.test_robustness import NOT_IMPLEMENTED, fill, routes
from tests.conftest import Cloud, running_cloud

JSON = {"Content-Type": "application/json"}
#: Routes whose body is not JSON (image data is streamed, any size).
NOT_JSON = {("/image/v2/images/{image_id}/file", "PUT"),
            ("/image/v2/images/{image_id}/stage", "PUT"),
            # OAuth 1.0a token endpoints: signed requests with form bodies (a request
            # without a signature is a 401 before any body is read)
            ("/v3/OS-OAUTH1/request_token", "POST"),
            ("/v3/OS-OAUTH1/access_token", "POST"),
            # nova-network's writes: Nova answers 410 Gone without reading the body
            ("/compute/v2.1/os-networks", "POST"),
            ("/compute/v2.1/os-networks/add", "POST"),
            ("/compute/v2.1/os-tenant-networks", "POST")}
DEEP = 50_000
HUGE = "99999999999999999999999"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running_cloud(tmp_path_factory.mktemp("limits"), host_agent=False) as c:
        yield c


def service_of(path: str) -> str:
    segment = path.lstrip("/").split("/", 1)[0]
    return segment if segment in ("network", "image", "compute", "volume", "metadata",
                                  "hostlink", "dashboard") else "identity"


def assert_fault(r: Any, method: str, url: str, expected: set[int] | None = None) -> None:
    """Not a 5xx; an error is in the body shape of the service the path belongs to."""
    what = f"{method} {url} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code < 500, what
    if expected is not None:
        assert r.status_code in expected, what
    if r.status_code < 400:
        return
    body = r.json()
    service = service_of(url)
    if service == "identity":
        assert body["error"]["code"] == r.status_code, what
    elif service == "network":
        assert set(body["NeutronError"]) == {"type", "message", "detail"}, what
        if r.status_code == 400:
            assert body["NeutronError"]["type"] in ("HTTPBadRequest", "InvalidInput"), what
    elif service == "image":
        assert body["code"] == r.status_code == body["error"]["code"], what
    elif service in ("compute", "volume"):  # Nova's and Cinder's fault bodies
        (fault, inner), = body.items()
        assert inner["code"] == r.status_code, what
        assert fault == {400: "badRequest", 413: "overLimit"}.get(r.status_code, fault), what


def write_routes(cloud: Cloud) -> list[tuple[str, str]]:
    """Routes that take JSON (the dashboard's take HTML forms, tests/dashboard/)."""
    return [(path, method) for path, method in routes(cloud)
            if method in ("POST", "PUT", "PATCH") and (path, method) not in NOT_JSON
            and service_of(path) not in ("metadata", "hostlink", "dashboard")]


NESTED = {"lists": b"[" * DEEP, "objects": b'{"a":' * DEEP,
          "closed": b'{"auth": ' + b"[" * DEEP + b"]" * DEEP + b"}"}


def test_nested_and_oversized_bodies_on_every_route(cloud: Cloud) -> None:
    """Every route that reads a JSON body says 400 to deep nesting and 413 to a body over
    the limit, before looking anything up; a route that reads no body (or looks up the
    path first, here with ids that do not exist) answers some other 4xx, never a 5xx."""
    oversized = b'{"a": "' + b"x" * MAX_BODY + b'"}'
    read_bodies = 0
    for path, method in write_routes(cloud):
        url = fill(path, "0" * 32)
        statuses = set()
        for body in NESTED.values():
            r = cloud.request(method, url, content=body, headers=JSON)
            assert_fault(r, method, url)
            statuses.add(r.status_code)
        r = cloud.request(method, url, content=oversized, headers=JSON)
        assert_fault(r, method, url)
        if statuses == {400}:
            read_bodies += 1
            assert r.status_code == 413, f"{method} {url}: {r.status_code}"
        # A collection: nothing to look up first (a path ending in "/" is an item with an
        # empty id, e.g. Glance's /v2/images/, a 404).
        if "{" not in path and not path.endswith("/"):
            assert statuses == {400} and r.status_code == 413, f"{method} {url}"
    assert read_bodies > 50, read_bodies


def test_host_routes_refuse_hostile_bodies_from_a_host(cloud: Cloud) -> None:
    """/hostlink checks the host credential before the body (a Keystone token is a 401
    there, tests/api/policy_table.toml); with one, the same limits hold."""
    from onestack.hostlink.credentials import CredentialStore, host_authorization

    secret = CredentialStore(cloud.config.state_dir).create("limits-host")
    auth = {**JSON, "Authorization": host_authorization("limits-host", secret)}
    paths = [path for path, method in write_routes_all(cloud)
             if service_of(path) == "hostlink" and method == "POST"]
    assert len(paths) > 5, paths
    for path in paths:
        for body in NESTED.values():
            r = cloud.request("POST", path, token=None, content=body, headers=auth)
            assert r.status_code == 400 and r.json()["error"]["code"] == 400, (path, r.text)
        r = cloud.request("POST", path, token=None, headers=auth,
                          content=b'{"a": "' + b"x" * MAX_BODY + b'"}')
        assert r.status_code == 413, (path, r.text)


def write_routes_all(cloud: Cloud) -> list[tuple[str, str]]:
    return [(path, method) for path, method in routes(cloud)
            if method in ("POST", "PUT", "PATCH")]


def test_nested_json_needs_no_token(cloud: Cloud) -> None:
    r = cloud.request("POST", "/v3/auth/tokens", token=None, content=b"[" * DEEP,
                      headers=JSON)
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["error"]["message"]


def test_nesting_up_to_the_limit_is_still_json(cloud: Cloud) -> None:
    inner = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)
    r = cloud.request("PUT", "/v3/projects/" + "0" * 32 + "/tags", content=(
        '{"tags": ' + inner + "}").encode(), headers=JSON)
    assert r.status_code in (400, 404), r.text
    assert "nested" not in r.text
    # brackets inside strings do not count
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "[" * DEEP, "domain_id": "default"}})
    assert r.status_code == 400 and "nested" not in r.text, r.text


def test_oversized_body_is_413_without_a_token(cloud: Cloud) -> None:
    r = cloud.request("POST", "/v3/auth/tokens", token=None,
                      content=b" " * (MAX_BODY + 1), headers=JSON)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == 413


def test_huge_limit_is_400_on_every_collection(cloud: Cloud) -> None:
    collections = [(path, method) for path, method in routes(cloud)
                   if method == "GET" and not path.endswith("}")
                   and service_of(path) not in ("metadata", "hostlink")]
    for path, _ in collections:
        for value in (HUGE, "-" + HUGE, str(2**63), "9" * 5000):
            url = fill(path, "0" * 32) + "?limit=" + value
            r = cloud.request("GET", url)
            if r.status_code == 501 and NOT_IMPLEMENTED.match(path):
                continue  # refused whatever the limit, saying why
            assert_fault(r, "GET", url)
            if path.startswith("/network/v2.0/") and "{" not in path and not path.endswith(
                    ("/", "extensions", "quotas")):  # Neutron's paginated lists
                assert r.status_code == 400, f"{url}: {r.status_code}"


def test_huge_integer_filters_are_4xx(cloud: Cloud) -> None:
    for url in ("/compute/v2.1/flavors?minRam=" + HUGE, "/compute/v2.1/flavors?minDisk=-" + HUGE,
                "/compute/v2.1/os-server-groups?offset=" + HUGE,
                "/network/v2.0/networks?mtu=" + HUGE, "/network/v2.0/subnets?ip_version=" + HUGE,
                "/network/v2.0/networks?revision_number=-" + HUGE):
        r = cloud.request("GET", url)
        assert_fault(r, "GET", url, {400})
    for value in (HUGE, "9" * 5000):
        r = cloud.request("POST", "/compute/v2.1/flavors", json={"flavor": {
            "name": "f", "ram": value, "vcpus": 1, "disk": 1}})
        assert_fault(r, "POST", "/compute/v2.1/flavors", {400})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, -(10**30)])
def test_integers_out_of_range_are_400(cloud: Cloud, value: int) -> None:
    project = cloud.admin_project_id
    r = cloud.request("PUT", f"/network/v2.0/quotas/{project}",
                      json={"quota": {"network": value}})
    assert_fault(r, "PUT", "/network/v2.0/quotas", {400})
    r = cloud.request("POST", "/network/v2.0/networks", json={"network": {"name": "n"}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]["id"]
    r = cloud.request("POST", "/network/v2.0/ports", json={"port": {
        "network_id": net, "fixed_ips": [{"subnet_id": value}]}})
    assert_fault(r, "POST", "/network/v2.0/ports", {400})
    r = cloud.request("POST", "/network/v2.0/ports", json={"port": {
        "network_id": net, "fixed_ips": [{"subnet_id": str(value)}]}})
    assert_fault(r, "POST", "/network/v2.0/ports", {400, 404})
    r = cloud.request("POST", "/compute/v2.1/os-server-groups?offset=1", json={})
    assert_fault(r, "POST", "/compute/v2.1/os-server-groups")
    r = cloud.request("GET", f"/compute/v2.1/os-server-groups?offset={abs(value)}")
    assert_fault(r, "GET", "/compute/v2.1/os-server-groups")
    r = cloud.request("PATCH", "/v3/users/" + cloud.admin_user_id,
                      json={"user": {"extra_number": value}})
    assert_fault(r, "PATCH", "/v3/users")
    r = cloud.request("POST", "/image/v2/images", json={"name": "i", "min_ram": value})
    assert_fault(r, "POST", "/image/v2/images", {400})

"""The dashboard without a browser (in process, fake drivers): the login form and its
CSRF token, lockout, the session cookie and its expiry, logout revoking the token,
every page for an admin and a member, and the admin pages refused to a member.

tests/dashboard/test_browser.py drives the same pages in Chromium.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.api.compute_helpers import boot, boot_env, latest, upload_image, wait_for
from tests.conftest import ADMIN_PASSWORD, Cloud, running_cloud

PAGES = ["overview", "instances", "instances/rows", "instances/launch", "images",
         "networks", "routers", "floating-ips", "security-groups", "key-pairs", "topology"]
ADMIN_PAGES = ["admin/projects", "admin/users", "admin/role-assignments", "admin/flavors",
               "admin/hypervisors", "admin/instances"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[Cloud]:
    with running_cloud(tmp_path_factory.mktemp("dash"),
                       identity_lockout_failure_attempts=3) as c:
        yield c


def make_user(cloud: Cloud, name: str, password: str = "pw-Secret-1") -> str:
    project = cloud.request("POST", "/v3/projects", json={"project": {"name": f"p-{name}"}})
    pid = project.json()["project"]["id"]
    user = cloud.request("POST", "/v3/users", json={"user": {"name": name,
                                                             "password": password}})
    uid = user.json()["user"]["id"]
    roles = {r["name"]: r["id"] for r in cloud.request("GET", "/v3/roles").json()["roles"]}
    r = cloud.request("PUT", f"/v3/projects/{pid}/users/{uid}/roles/{roles['member']}")
    assert r.status_code == 204, r.text
    return pid


def login_form(client: TestClient) -> str:
    page = client.get("/dashboard/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def sign_in(cloud: Cloud, name: str, password: str) -> TestClient:
    client = TestClient(cloud.client.app, base_url="http://127.0.0.1:5000")
    r = client.post("/dashboard/login", data={"csrf": login_form(client), "name": name,
                                              "password": password, "domain": "Default"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/overview", r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/dashboard" in cookie
    return client


def csrf_of(client: TestClient) -> str:
    found = re.search(r'data-csrf="([^"]+)"', client.get("/dashboard/overview").text)
    assert found
    return found.group(1)


def test_root_sends_browsers_to_the_dashboard_and_apis_to_keystone(cloud: Cloud) -> None:
    r = cloud.client.get("/", headers={"Accept": "text/html,*/*"}, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/dashboard/"
    r = cloud.client.get("/", headers={"Accept": "application/json"})
    assert r.status_code in (200, 300) and "versions" in r.json()
    r = cloud.client.get("/dashboard/overview", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")


def test_login_needs_its_csrf_token_and_says_why_it_failed(cloud: Cloud) -> None:
    make_user(cloud, "bob")
    client = TestClient(cloud.client.app, base_url="http://127.0.0.1:5000")
    r = client.post("/dashboard/login", data={"name": "bob", "password": "pw-Secret-1"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/dashboard/login", data={"csrf": "forged", "name": "bob",
                                              "password": "pw-Secret-1"})
    assert r.status_code == 403
    r = client.post("/dashboard/login", data={"csrf": login_form(client), "name": "bob",
                                              "password": "wrong", "domain": "Default"})
    assert r.status_code == 401
    assert "The user name, password or domain is wrong." in r.text
    assert "onestack_session" not in r.headers.get("set-cookie", "")


def test_lockout_is_respected(cloud: Cloud) -> None:
    make_user(cloud, "carol")
    client = TestClient(cloud.client.app, base_url="http://127.0.0.1:5000")
    for _ in range(3):
        client.post("/dashboard/login", data={"csrf": login_form(client), "name": "carol",
                                              "password": "wrong", "domain": "Default"})
    r = client.post("/dashboard/login", data={"csrf": login_form(client), "name": "carol",
                                              "password": "pw-Secret-1", "domain": "Default"})
    assert r.status_code == 401
    assert "locked" in r.text.lower()


def test_every_page_for_admin_and_member(cloud: Cloud) -> None:
    admin = sign_in(cloud, "admin", ADMIN_PASSWORD)
    for page in PAGES + ADMIN_PAGES:
        r = admin.get(f"/dashboard/{page}")
        assert r.status_code == 200, (page, r.text[:300])
        assert 'role="alert">' not in r.text, (page, r.text)
    make_user(cloud, "dave")
    member = sign_in(cloud, "dave", "pw-Secret-1")
    for page in PAGES:
        r = member.get(f"/dashboard/{page}")
        assert r.status_code == 200, (page, r.text[:300])
        assert "admin-nav" not in r.text
    for page in ADMIN_PAGES:
        r = member.get(f"/dashboard/{page}")
        assert r.status_code == 403 and "for cloud administrators" in r.text, page


def test_changes_need_the_session_csrf_token(cloud: Cloud) -> None:
    pid = make_user(cloud, "erin")
    client = sign_in(cloud, "erin", "pw-Secret-1")
    r = client.post("/dashboard/networks", data={"form": "network", "name": "nope"})
    assert r.status_code == 403
    r = client.post("/dashboard/networks", data={"form": "network", "name": "nope",
                                                 "csrf": "not-it"})
    assert r.status_code == 403
    nets = cloud.request("GET", f"/network/v2.0/networks?project_id={pid}").json()
    assert nets["networks"] == []
    r = client.post("/dashboard/networks", data={"form": "network", "name": "yes",
                                                 "csrf": csrf_of(client)})
    assert r.status_code == 200 and "Network yes created." in r.text
    # an empty subnet form: the API's own message, beside the form, nothing made
    net = cloud.request("GET", f"/network/v2.0/networks?project_id={pid}"
                        ).json()["networks"][0]
    r = client.post("/dashboard/networks", data={"form": "subnet", "network_id": net["id"],
                                                 "cidr": "", "csrf": csrf_of(client)})
    assert r.status_code == 400 and 'class="form-error"' in r.text
    assert cloud.request("GET", f"/network/v2.0/subnets?network_id={net['id']}"
                         ).json()["subnets"] == []


def test_logout_revokes_the_token_and_ends_the_session(cloud: Cloud) -> None:
    make_user(cloud, "frank")
    client = sign_in(cloud, "frank", "pw-Secret-1")
    sid = client.cookies.get("onestack_session")
    dash = next(r for r in cloud.client.app.routes if getattr(r, "path", "") == "/dashboard")
    session = dash.app.state.dashboard.sessions.get(sid)
    token = session.token
    assert cloud.request("GET", "/v3/auth/tokens", headers={
        "X-Subject-Token": token}).status_code == 200
    r = client.post("/dashboard/logout", data={"csrf": csrf_of(client)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?out=1"
    assert cloud.request("GET", "/v3/auth/tokens", headers={
        "X-Subject-Token": token}).status_code == 404
    client.cookies.set("onestack_session", sid, path="/dashboard")
    r = client.get("/dashboard/overview", follow_redirects=False)
    assert r.status_code == 303 and "/dashboard/login" in r.headers["location"]


def test_session_expiry_follows_the_token(tmp_path: Path) -> None:
    with running_cloud(tmp_path, identity_token_expiration=4) as cloud:
        client = sign_in(cloud, "admin", ADMIN_PASSWORD)
        cookie = client.cookies.jar
        assert any(c.name == "onestack_session" and c.expires and
                   c.expires - time.time() <= 5 for c in cookie)
        assert client.get("/dashboard/overview", follow_redirects=False).status_code == 200
        sid = client.cookies.get("onestack_session")
        time.sleep(5)
        client.cookies.set("onestack_session", sid, path="/dashboard")   # kept past expiry
        r = client.get("/dashboard/overview", follow_redirects=False)
        assert r.status_code == 303 and "/dashboard/login" in r.headers["location"]


def test_instance_list_pages_and_polls_while_building(cloud: Cloud) -> None:
    env = boot_env(cloud, image=upload_image(cloud, name="pager-image"), cidr="10.9.0.0/24",
                   name="pager-net")
    ids = [boot(cloud, env, name=f"pager-{i}")["id"] for i in range(3)]
    admin = sign_in(cloud, "admin", ADMIN_PASSWORD)
    first = admin.get("/dashboard/instances?name=pager-&limit=2")
    assert first.status_code == 200
    assert re.findall(r'data-server="([^"]+)"', first.text) == ["pager-0", "pager-1"]
    found = re.search(r'href="\?([^"]+)" rel="next"', first.text)
    assert found, first.text
    second = admin.get("/dashboard/instances?" + found.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-server="([^"]+)"', second.text) == ["pager-2"]
    assert 'rel="next"' not in second.text
    for server_id in ids:
        wait_for(cloud, server_id, "ACTIVE")
    rows = admin.get("/dashboard/instances/rows?name=pager-")
    assert 'data-polling="no"' in rows.text and "hx-trigger" not in rows.text
    for server_id in ids:
        assert cloud.request("DELETE", f"/compute/v2.1/servers/{server_id}",
                             headers=latest()).status_code == 204
    rows = admin.get("/dashboard/instances/rows?name=pager-")
    assert ('data-polling="yes"' in rows.text and "every 1s" in rows.text) or \
        "data-server" not in rows.text


def test_launch_boots_from_a_new_volume(cloud: Cloud) -> None:
    env = boot_env(cloud, image=upload_image(cloud, name="bfv-image"), cidr="10.8.0.0/24",
                   name="bfv-net")
    admin = sign_in(cloud, "admin", ADMIN_PASSWORD)
    form = admin.get("/dashboard/instances/launch").text
    assert 'id="l-boot"' in form   # the catalog has Block Storage
    r = admin.post("/dashboard/instances/launch", data={
        "csrf": csrf_of(admin), "name": "bfv-1", "image": env.image, "flavor": "1",
        "networks": env.network, "count": "1", "boot": "volume", "volume_size": "1"})
    assert r.status_code == 200 and "Launching bfv-1." in r.text
    servers = cloud.request("GET", "/compute/v2.1/servers/detail?name=bfv-1",
                            headers=latest()).json()["servers"]
    assert servers[0]["image"] == ""
    wait_for(cloud, servers[0]["id"], "ACTIVE")
    attached = wait_for(cloud, servers[0]["id"], "ACTIVE")[
        "os-extended-volumes:volumes_attached"]
    assert len(attached) == 1 and attached[0]["delete_on_termination"] is True
    assert cloud.request("DELETE", f"/compute/v2.1/servers/{servers[0]['id']}",
                         headers=latest()).status_code == 204

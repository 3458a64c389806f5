"""openstacksdk against a real ``onestack up``, and the raw shape of a 401."""

from __future__ import annotations

import os

import httpx
import openstack
import openstack.exceptions
import pytest

pytestmark = [
    pytest.mark.e2e,
    # openstacksdk's own deprecation notices about its internals, not about OneStack
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
]


@pytest.fixture
def conn(server, monkeypatch):
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(server.clouds_yaml))
    c = openstack.connect(cloud="onestack")
    yield c
    c.close()


def test_sdk_identity(conn, server, unique):
    token = conn.authorize()
    assert token
    info = conn.identity.validate_token(token)
    assert info.user["name"] == "admin" and info.project["name"] == "admin"
    assert "admin" in {r["name"] for r in info.roles}
    assert "identity" in {s["type"] for s in info.catalog}

    assert "admin" in {p.name for p in conn.identity.projects()}
    project = conn.identity.create_project(name=f"e2e-sdk-{unique}", domain_id="default",
                                           description="made by openstacksdk")
    user = None
    try:
        assert project.id and project.is_enabled
        assert conn.identity.get_project(project.id).description == "made by openstacksdk"
        assert conn.identity.find_project(project.name).id == project.id

        user = conn.identity.create_user(name=f"e2e-sdk-user-{unique}", password="sdk-Pass-1",
                                         domain_id="default", default_project_id=project.id)
        assert user.id and user.is_enabled and user.default_project_id == project.id
        assert user.id in {u.id for u in conn.identity.users()}
        member = conn.identity.find_role("member", ignore_missing=False)
        conn.identity.assign_project_role_to_user(project, user, member)
        assert conn.identity.validate_user_has_project_role(project, user, member)

        user_conn = openstack.connect(
            auth_url=server.auth_url, username=user.name, password="sdk-Pass-1",
            user_domain_name="Default", project_name=project.name,
            project_domain_name="Default", region_name="RegionOne",
            load_yaml_config=False, load_envvars=False)
        try:
            user_token = user_conn.authorize()
            assert [p.id for p in user_conn.identity.user_projects(user.id)] == [project.id]
        finally:
            user_conn.close()
        seen = conn.identity.validate_token(user_token)
        assert seen.user["id"] == user.id and seen.project["id"] == project.id

        conn.identity.revoke_token(user_token)
        with pytest.raises(openstack.exceptions.NotFoundException):
            conn.identity.validate_token(user_token)
    finally:
        if user is not None:
            conn.identity.delete_user(user, ignore_missing=True)
        conn.identity.delete_project(project, ignore_missing=True)
    assert conn.identity.find_project(project.name, ignore_missing=True) is None
    assert conn.identity.find_user(user.name, ignore_missing=True) is None


def test_unauthenticated_request_gets_keystone_401(server):
    for method, path in (("GET", "/v3/projects"), ("GET", "/v3/auth/catalog"),
                         ("POST", "/v3/users")):
        r = httpx.request(method, f"{server.url}{path}", timeout=10,
                          json={} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert set(body) == {"error"}
        assert body["error"]["code"] == 401
        assert body["error"]["title"] == "Unauthorized"
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert r.headers["WWW-Authenticate"] == f'Keystone uri="{server.url}"'
        assert r.headers["x-openstack-request-id"].startswith("req-")

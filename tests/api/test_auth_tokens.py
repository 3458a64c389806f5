"""POST/GET/HEAD/DELETE /v3/auth/tokens and the /v3/auth/* listings, in process."""

from __future__ import annotations

from tests.conftest import ADMIN_PASSWORD


def password_body(name="admin", password=ADMIN_PASSWORD, scope=None, user_id=None):
    user = {"id": user_id} if user_id else {"name": name, "domain": {"name": "Default"}}
    user["password"] = password
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def test_version_discovery(cloud):
    r = cloud.client.get("/")
    assert r.status_code == 300
    assert r.json()["versions"]["values"][0]["id"].startswith("v3.")
    r = cloud.client.get("/v3")
    assert r.status_code == 200
    assert r.json()["version"]["links"][0]["href"] == "http://127.0.0.1:5000/v3/"
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_issue_project_scoped_token_has_body_and_catalog(cloud):
    r = cloud.client.post("/v3/auth/tokens", json=password_body(
        scope={"project": {"name": "admin", "domain": {"id": "default"}}}))
    assert r.status_code == 201
    token = r.json()["token"]
    assert r.headers["X-Subject-Token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == "admin"
    assert token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"]["name"] == "admin"
    assert {r["name"] for r in token["roles"]} == {"admin", "member", "reader"}
    assert "identity" in [s["type"] for s in token["catalog"]]
    assert token["expires_at"].endswith("Z") and token["issued_at"].endswith("Z")
    assert len(token["audit_ids"]) == 1


def test_default_project_scope_and_unscoped(cloud):
    r = cloud.client.post("/v3/auth/tokens", json=password_body())
    assert r.json()["token"]["project"]["name"] == "admin"  # the default project
    r = cloud.client.post("/v3/auth/tokens", json=password_body(scope="unscoped"))
    assert r.status_code == 201
    assert "project" not in r.json()["token"] and "catalog" not in r.json()["token"]


def test_domain_scoped_token(cloud):
    r = cloud.client.post("/v3/auth/tokens", json=password_body(
        scope={"domain": {"name": "Default"}}))
    assert r.status_code == 201
    assert r.json()["token"]["domain"] == {"id": "default", "name": "Default"}


def test_wrong_password_and_unknown_user_are_401(cloud):
    for body in (password_body(password="nope"), password_body(name="ghost"),
                 password_body(user_id="0" * 32)):
        r = cloud.client.post("/v3/auth/tokens", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 401
        assert r.json()["error"]["title"] == "Unauthorized"
        assert "WWW-Authenticate" in r.headers


def test_bad_bodies_are_400_naming_the_field(cloud):
    r = cloud.client.post("/v3/auth/tokens", content=b"{not json")
    assert r.status_code == 400
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": "pw"}}})
    assert r.status_code == 400
    assert "auth/identity/methods" in r.json()["error"]["message"]
    body = password_body()
    body["auth"]["identity"]["password"]["user"]["password"] = 5
    r = cloud.client.post("/v3/auth/tokens", json=body)
    assert r.status_code == 400
    assert "auth/identity/password/user/password" in r.json()["error"]["message"]


def test_validate_check_revoke(cloud):
    subject = cloud.login("admin", ADMIN_PASSWORD, project="admin")
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert r.status_code == 200
    assert r.headers["X-Subject-Token"] == subject
    assert r.json()["token"]["project"]["name"] == "admin"
    r = cloud.request("GET", "/v3/auth/tokens?nocatalog",
                      headers={"X-Subject-Token": subject})
    assert "catalog" not in r.json()["token"]
    r = cloud.request("HEAD", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert r.status_code == 200 and r.content == b""
    r = cloud.request("DELETE", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert r.status_code == 204
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": subject})
    assert r.status_code == 404
    r = cloud.request("GET", "/v3/auth/catalog", token=subject)
    assert r.status_code == 401


def test_rescope_with_token_method_keeps_expiry_and_chains_audit_ids(cloud):
    r = cloud.client.post("/v3/auth/tokens", json=password_body(scope="unscoped"))
    unscoped = r.headers["X-Subject-Token"]
    original = r.json()["token"]
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert r.status_code == 201
    token = r.json()["token"]
    assert token["expires_at"] == original["expires_at"]
    assert token["audit_ids"][1] == original["audit_ids"][0]
    assert "token" in token["methods"]
    # revoking the original revokes the rescoped token too (same audit chain)
    rescoped = r.headers["X-Subject-Token"]
    cloud.request("DELETE", "/v3/auth/tokens", headers={"X-Subject-Token": unscoped})
    assert cloud.request("GET", "/v3/auth/catalog", token=rescoped).status_code == 401


def test_missing_and_garbage_tokens(cloud):
    assert cloud.request("GET", "/v3/auth/catalog", token=None).status_code == 401
    assert cloud.request("GET", "/v3/auth/catalog", token="garbage").status_code == 401
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": "garbage"})
    assert r.status_code == 404


def test_auth_catalog_projects_domains(cloud):
    r = cloud.request("GET", "/v3/auth/catalog")
    assert r.status_code == 200
    [identity] = [s for s in r.json()["catalog"] if s["type"] == "identity"]
    assert identity["endpoints"][0]["url"] == "http://127.0.0.1:5000/v3"
    r = cloud.request("GET", "/v3/auth/projects")
    assert [p["name"] for p in r.json()["projects"]] == ["admin"]
    r = cloud.request("GET", "/v3/auth/domains")
    assert [d["id"] for d in r.json()["domains"]] == ["default"]


def test_unknown_path_and_method_are_keystone_faults(cloud):
    r = cloud.request("GET", "/v3/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    r = cloud.request("PUT", "/v3/auth/tokens")
    assert r.status_code == 405 and r.json()["error"]["code"] == 405


def test_lockout_after_repeated_failures(cloud):
    """A user is locked (the admin is exempt: see test_lockout.py)."""
    cloud.config.identity.lockout_failure_attempts = 3
    cloud.services.identity.users.create(name="bob", password="pw1")
    for _ in range(3):
        assert cloud.client.post("/v3/auth/tokens",
                                 json=password_body("bob", password="x")).status_code == 401
    r = cloud.client.post("/v3/auth/tokens", json=password_body("bob", password="pw1"))
    assert r.status_code == 401
    assert "locked" in r.json()["error"]["message"]


def test_a_revoked_token_does_not_break_later_validations(cloud):
    """Regression: a failed validation used to expire cached revocation rows (500s)."""
    ident = cloud.services.identity
    user = ident.users.create(name="bob", password="pw1", default_project_id=None)
    with ident.db.session() as s:
        ident.assignments.grant(s, "UserProject", user.id, cloud.admin_project_id,
                                ident.roles.find("member").id)
    old = cloud.login("bob", "pw1", project="admin")
    ident.users.reset_password("bob", "Default", "pw2")
    for _ in range(3):
        assert cloud.request("GET", "/v3/auth/catalog", token=old).status_code == 401
        assert cloud.request("GET", "/v3/auth/catalog").status_code == 200

"""System scope: grants on the system, system-scoped tokens, what they may do."""

from __future__ import annotations

from tests.api.test_assignments import (
    PASSWORD,
    assert_error,
    assignments,
    new_group,
    new_user,
    put,
    role_id,
)
from tests.conftest import ADMIN_PASSWORD


def system_login(cloud, user_id: str, password: str = PASSWORD):
    return cloud.client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {
            "user": {"id": user_id, "password": password}}},
        "scope": {"system": {"all": True}}}})


def test_bootstrap_admin_holds_the_system_admin_role(cloud):
    rid = role_id(cloud, "admin")
    r = cloud.request("GET", f"/v3/system/users/{cloud.admin_user_id}/roles")
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["roles"]] == [rid]
    got = assignments(cloud, "?scope.system=all")
    assert [(a["user"]["id"], a["role"]["id"], a["scope"]) for a in got] == [
        (cloud.admin_user_id, rid, {"system": {"all": True}})]
    assert got[0]["links"]["assignment"].endswith(
        f"/v3/system/users/{cloud.admin_user_id}/roles/{rid}")
    # the unfiltered listing holds it too; a project filter does not
    assert any("system" in a["scope"] for a in assignments(cloud))
    assert not any("system" in a["scope"]
                   for a in assignments(cloud, f"?scope.project.id={cloud.admin_project_id}"))


def test_admin_system_token_is_an_identity_admin(cloud):
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"},
            "password": ADMIN_PASSWORD}}},
        "scope": {"system": {"all": True}}}})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["system"] == {"all": True}
    assert "project" not in token and "domain" not in token
    assert {x["name"] for x in token["roles"]} >= {"admin", "member", "reader"}
    assert {s["type"] for s in token["catalog"]} >= {"identity", "compute"}
    sys_token = r.headers["X-Subject-Token"]
    # validated, it says the same
    v = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": sys_token})
    assert v.status_code == 200 and v.json()["token"]["system"] == {"all": True}
    # it administers Identity
    r = cloud.request("POST", "/v3/domains", token=sys_token,
                      json={"domain": {"name": "by-system"}})
    assert r.status_code == 201, r.text
    assert cloud.request("GET", "/v3/auth/system", token=sys_token).json()["system"] == [
        {"all": True}]


def test_user_and_group_system_grants(cloud):
    user = new_user(cloud, "operator")
    reader = role_id(cloud, "reader")
    # no system role: no system token, and /v3/auth/system is empty
    assert system_login(cloud, user).status_code == 401
    base = f"/v3/system/users/{user}/roles"
    assert cloud.request("HEAD", f"{base}/{reader}").status_code == 404
    assert_error(cloud.request("GET", f"{base}/{reader}"), 404,
                 "Could not find role assignment")
    put(cloud, f"{base}/{reader}")
    put(cloud, f"{base}/{reader}")  # idempotent
    assert cloud.request("HEAD", f"{base}/{reader}").status_code == 204
    assert cloud.request("GET", f"{base}/{reader}").status_code == 204
    assert [x["name"] for x in cloud.request("GET", base).json()["roles"]] == ["reader"]

    r = system_login(cloud, user)
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    assert r.json()["token"]["roles"] == [{"id": reader, "name": "reader"}]
    # a system reader reads Identity, but changes nothing
    assert cloud.request("GET", "/v3/users", token=token).status_code == 200
    assert cloud.request("GET", "/v3/role_assignments", token=token).status_code == 200
    assert_error(cloud.request("POST", "/v3/domains", token=token,
                               json={"domain": {"name": "nope"}}), 403)
    assert_error(cloud.request("PUT", f"{base}/{role_id(cloud, 'admin')}", token=token), 403)
    # nor does it administer other services
    assert cloud.request("GET", "/compute/v2.1/os-hypervisors",
                         token=token).status_code == 403

    # revoking the grant ends the token at once
    assert cloud.request("DELETE", f"{base}/{reader}").status_code == 204
    assert cloud.request("GET", "/v3/users", token=token).status_code == 401
    assert_error(cloud.request("DELETE", f"{base}/{reader}"), 404)

    # through a group
    group = new_group(cloud, "operators", user)
    gbase = f"/v3/system/groups/{group}/roles"
    put(cloud, f"{gbase}/{reader}")
    assert cloud.request("HEAD", f"{gbase}/{reader}").status_code == 204
    assert [x["id"] for x in cloud.request("GET", gbase).json()["roles"]] == [reader]
    assert system_login(cloud, user).status_code == 201
    got = assignments(cloud, f"?scope.system=all&user.id={user}&effective")
    assert [(a["user"]["id"], a["role"]["id"], a["scope"]) for a in got] == [
        (user, reader, {"system": {"all": True}})]
    assert got[0]["links"]["membership"].endswith(f"/groups/{group}/users/{user}")
    assert cloud.request("DELETE", f"{gbase}/{reader}").status_code == 204
    assert system_login(cloud, user).status_code == 401


def test_system_grant_errors(cloud):
    user = new_user(cloud, "someone")
    reader = role_id(cloud, "reader")
    ghost = "0" * 32
    assert_error(cloud.request("PUT", f"/v3/system/users/{ghost}/roles/{reader}"), 404)
    assert_error(cloud.request("PUT", f"/v3/system/groups/{ghost}/roles/{reader}"), 404)
    assert_error(cloud.request("PUT", f"/v3/system/users/{user}/roles/{ghost}"), 404)
    local = cloud.services.identity.roles.create(name="local", domain_id="default").id
    assert_error(cloud.request("PUT", f"/v3/system/users/{user}/roles/{local}"), 400,
                 "domain-specific")
    # a member of nothing cannot grant itself the system
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": user, "password": PASSWORD}}}}})
    unscoped = r.headers["X-Subject-Token"]
    assert_error(cloud.request("PUT", f"/v3/system/users/{user}/roles/{reader}",
                               token=unscoped), 403)
    assert_error(cloud.request("GET", f"/v3/system/users/{user}/roles", token=unscoped), 403)
    # a malformed system scope is a 400
    for scope in ({"system": {"all": False}}, {"system": "all"},
                  {"system": {"all": True}, "project": {"id": ghost}}):
        r = cloud.client.post("/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {
                "user": {"id": user, "password": PASSWORD}}}, "scope": scope}})
        assert r.status_code == 400, (scope, r.text)


def test_rescoping_keeps_or_changes_the_system_scope(cloud):
    user = new_user(cloud, "rescoper")
    put(cloud, f"/v3/system/users/{user}/roles/{role_id(cloud, 'reader')}")
    first = system_login(cloud, user).headers["X-Subject-Token"]
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["token"], "token": {"id": first}}}})
    assert r.status_code == 201 and r.json()["token"]["system"] == {"all": True}
    unscoped = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": user, "password": PASSWORD}}},
        "scope": "unscoped"}}).headers["X-Subject-Token"]
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["token"], "token": {"id": unscoped}},
        "scope": {"system": {"all": True}}}})
    assert r.status_code == 201 and r.json()["token"]["system"] == {"all": True}

"""Application credential access rules: stored with the credential, shown, listed and
deleted under /v3/users/{id}/access_rules, and enforced on every service's API, in
process."""

from __future__ import annotations

import pytest

from onestack.services.identity.access_rules import path_matches, target
from tests.api.test_app_creds import ac_login, assert_error, create, make_user

SERVERS = {"service": "compute", "method": "GET", "path": "/v2.1/servers"}
SERVER_IPS = {"service": "compute", "method": "GET", "path": "/v2.1/servers/*/ips"}


def ac_token(cloud, cred) -> str:
    r = ac_login(cloud, id=cred["id"], secret=cred["secret"])
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def rules_of(cred):
    return [{k: v for k, v in rule.items() if k != "id"} for rule in cred["access_rules"]]


@pytest.mark.parametrize(("glob", "path", "ok"), [
    ("/v2.1/servers/*/ips", "/v2.1/servers/abc/ips", True),
    ("/v2.1/servers/*/ips", "/v2.1/servers//ips", False),
    ("/v2.1/servers/*", "/v2.1/servers/a/b", False),
    ("/v2.1/servers/**", "/v2.1/servers/a/b", True),
    ("/v2.1/servers/{server_id}", "/v2.1/servers/x", True),
    ("/v2.1/servers", "/v2.1/servers/x", False),
    ("/v2.1/server.", "/v2.1/serversX", False),
])
def test_path_globs(glob, path, ok):
    assert path_matches(glob, path) is ok


def test_requests_go_to_the_catalog_service_under_its_mount():
    assert target("/compute/v2.1/servers") == (frozenset({"compute"}), "/v2.1/servers")
    assert target("/network/v2.0/networks") == (frozenset({"network"}), "/v2.0/networks")
    assert target("/image/v2/images")[0] == frozenset({"image"})
    assert "block-storage" in target("/volume/v3/p/volumes")[0]
    assert target("/v3/users") == (frozenset({"identity"}), "/v3/users")


def test_rules_are_stored_shown_and_shared(cloud):
    uid, _, token = make_user(cloud)
    cred = create(cloud, uid, token, name="ips", access_rules=[SERVER_IPS])
    assert rules_of(cred) == [SERVER_IPS]
    rule_id = cred["access_rules"][0]["id"]
    shown = cloud.request("GET", f"/v3/users/{uid}/application_credentials/{cred['id']}",
                          token=token).json()["application_credential"]
    assert shown["access_rules"] == cred["access_rules"]
    listed = cloud.request("GET", f"/v3/users/{uid}/application_credentials",
                           token=token).json()["application_credentials"]
    assert listed[0]["access_rules"] == cred["access_rules"]
    # the same rule again, or named by id, is the same rule (one row)
    again = create(cloud, uid, token, name="again", access_rules=[SERVER_IPS])
    by_id = create(cloud, uid, token, name="by-id", access_rules=[{"id": rule_id}])
    assert again["access_rules"][0]["id"] == by_id["access_rules"][0]["id"] == rule_id
    r = cloud.request("GET", f"/v3/users/{uid}/access_rules", token=token)
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["access_rules"]] == [rule_id]
    r = cloud.request("GET", f"/v3/users/{uid}/access_rules/{rule_id}", token=token)
    assert r.status_code == 200, r.text
    assert r.json()["access_rule"] | {"links": None} == {**SERVER_IPS, "id": rule_id,
                                                         "links": None}
    r = cloud.request("GET", f"/v3/users/{uid}/access_rules?service=image", token=token)
    assert r.json()["access_rules"] == []
    # the token from such a credential shows its rules
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": ac_token(
        cloud, cred)})
    assert r.json()["token"]["application_credential"]["access_rules"] == \
        cred["access_rules"]


def test_rules_in_use_are_not_deleted(cloud):
    uid, _, token = make_user(cloud)
    cred = create(cloud, uid, token, name="mon",
                  access_rules=[{**SERVER_IPS, "service": "monitoring"}])
    rule_id = cred["access_rules"][0]["id"]
    path = f"/v3/users/{uid}/access_rules/{rule_id}"
    assert_error(cloud.request("DELETE", path, token=token), 403, "in use")
    r = cloud.request("DELETE", f"/v3/users/{uid}/application_credentials/{cred['id']}",
                      token=token)
    assert r.status_code == 204
    # the rule outlives the credential, until deleted
    assert cloud.request("GET", path, token=token).status_code == 200
    assert cloud.request("DELETE", path, token=token).status_code == 204
    assert_error(cloud.request("GET", path, token=token), 404, rule_id)
    assert cloud.request("GET", f"/v3/users/{uid}/access_rules",
                         token=token).json()["access_rules"] == []


def test_another_users_rule_is_not_found(cloud):
    uid, _, token = make_user(cloud)
    cred = create(cloud, uid, token, name="ips", access_rules=[SERVER_IPS])
    rule_id = cred["access_rules"][0]["id"]
    bob, _, bob_token = make_user(cloud, name="bob", project="bob-project")
    assert_error(cloud.request("GET", f"/v3/users/{bob}/access_rules/{rule_id}",
                               token=bob_token), 404)
    r = create(cloud, bob, bob_token, status=404, name="steal",
               access_rules=[{"id": rule_id}])
    assert rule_id in r["error"]["message"]
    assert_error(cloud.request("GET", f"/v3/users/{uid}/access_rules", token=bob_token),
                 403)


@pytest.mark.parametrize(("rule", "field"), [
    ({"service": "compute", "method": "FETCH", "path": "/"}, "0/method"),
    ({"service": "compute", "method": "GET"}, "0/path"),
    ({"service": "compute", "method": "GET", "path": "v2.1/servers"}, "0/path"),
    ({"method": "GET", "path": "/"}, "0/service"),
    ({"service": "compute", "method": "GET", "path": "/", "extra": 1}, "0"),
    ("compute GET /", "0"),
])
def test_bad_rules_are_400(cloud, rule, field):
    uid, _, token = make_user(cloud)
    r = create(cloud, uid, token, status=400, name="bad", access_rules=[rule])
    assert f"application_credential/access_rules/{field}" in r["error"]["message"]


def test_rules_are_enforced_on_every_service(cloud):
    uid, pid, token = make_user(cloud)
    cred = create(cloud, uid, token, name="servers", access_rules=[
        SERVERS, {"service": "compute", "method": "GET", "path": "/v2.1/servers/**"}])
    limited = ac_token(cloud, cred)
    # allowed: the rules' requests
    r = cloud.request("GET", "/compute/v2.1/servers", token=limited)
    assert r.status_code == 200, r.text
    r = cloud.request("GET", "/compute/v2.1/servers/detail", token=limited)
    assert r.status_code == 200, r.text
    # refused: another path, another method, another service's API, Identity itself
    for method, path in [("GET", "/compute/v2.1/flavors"),
                         ("POST", "/compute/v2.1/servers"),
                         ("GET", "/network/v2.0/networks"),
                         ("GET", "/image/v2/images"),
                         ("GET", f"/volume/v3/{pid}/volumes"),
                         ("GET", f"/v3/users/{uid}")]:
        r = cloud.request(method, path, token=limited, json={} if method == "POST" else None)
        # each service's own fault body, with the reason
        assert r.status_code == 401, (path, r.text)
        assert "access rules do not allow" in r.text and path in r.text, r.text
    # the same user's unlimited credential and password token reach them all
    free = ac_token(cloud, create(cloud, uid, token, name="free"))
    for t in (free, token):
        assert cloud.request("GET", "/network/v2.0/networks", token=t).status_code == 200
        assert cloud.request("GET", "/compute/v2.1/flavors", token=t).status_code == 200


def test_identity_rules_let_identity_calls_through(cloud):
    uid, _, token = make_user(cloud)
    cred = create(cloud, uid, token, name="me", access_rules=[
        {"service": "identity", "method": "GET", "path": "/v3/users/*"}])
    limited = ac_token(cloud, cred)
    r = cloud.request("GET", f"/v3/users/{uid}", token=limited)
    assert r.status_code == 200, r.text
    assert_error(cloud.request("GET", f"/v3/users/{uid}/projects", token=limited), 401)
    r = cloud.request("GET", "/compute/v2.1/servers", token=limited)
    assert r.status_code == 401 and "access rules" in r.text, r.text

"""/v3/users/{user_id}/application_credentials and logging in with one, in process."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import delete, update

from onestack.db.models import ApplicationCredential, Assignment

BASE = "http://127.0.0.1:5000/v3"


def make_user(cloud, name="alice", roles=("member",), project="alice-project"):
    """A user holding ``roles`` on a project of their own: (user_id, project_id, token)."""
    ident = cloud.services.identity
    proj = ident.projects.create(name=project, domain_id="default")
    user = ident.users.create(name=name, password=f"{name}-secret", domain_id="default")
    with ident.db.session() as s:
        for role in roles:
            ident.assignments.grant(s, "UserProject", user.id, proj.id,
                                    ident.roles.find(role).id)
    return user.id, proj.id, cloud.login(name, f"{name}-secret", project=project)


def create(cloud, user_id, token, status=201, **body):
    body.setdefault("name", "monitoring")
    r = cloud.request("POST", f"/v3/users/{user_id}/application_credentials", token=token,
                      json={"application_credential": body})
    assert r.status_code == status, r.text
    return r.json()["application_credential"] if status == 201 else r.json()


def ac_login(cloud, scope=None, **ref):
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": ref}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return cloud.client.post("/v3/auth/tokens", content=json.dumps(body).encode())


def assert_error(r, status, *words):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["title"] and err["message"]
    for word in words:
        assert word in err["message"], err["message"]


def role_names(roles):
    return sorted(r["name"] for r in roles)


@pytest.fixture
def alice(cloud):
    return make_user(cloud)


# -- create, list, show, delete -------------------------------------------------------

def test_create_returns_the_secret_once(cloud, alice):
    uid, pid, token = alice
    cred = create(cloud, uid, token, description="for monitoring")
    secret = cred.pop("secret")
    assert len(secret) >= 64
    assert cred == {
        "id": cred["id"], "name": "monitoring", "description": "for monitoring",
        "expires_at": None, "project_id": pid, "user_id": uid,
        "roles": cred["roles"], "unrestricted": False, "access_rules": [],
        "links": {"self": f"{BASE}/users/{uid}/application_credentials/{cred['id']}"}}
    # default: every role of the token (member and the reader it implies)
    assert role_names(cred["roles"]) == ["member", "reader"]
    assert all(set(r) == {"id", "name", "domain_id"} for r in cred["roles"])

    r = cloud.request("GET", f"/v3/users/{uid}/application_credentials/{cred['id']}",
                      token=token)
    assert r.status_code == 200
    assert r.json()["application_credential"] == cred  # no secret
    r = cloud.request("GET", f"/v3/users/{uid}/application_credentials", token=token)
    assert r.status_code == 200
    assert r.json()["application_credentials"] == [cred]
    assert r.json()["links"]["self"] == f"{BASE}/users/{uid}/application_credentials"

    # only an argon2 hash is stored
    with cloud.services.identity.db.session() as s:
        row = s.get(ApplicationCredential, cred["id"])
        assert row.secret_hash.startswith("$argon2") and secret not in row.secret_hash
        assert sorted(row.roles) == sorted(r["id"] for r in cred["roles"])


def test_list_filter_by_name_and_delete(cloud, alice):
    uid, _, token = alice
    one = create(cloud, uid, token, name="one")
    two = create(cloud, uid, token, name="two")
    path = f"/v3/users/{uid}/application_credentials"
    r = cloud.request("GET", path, token=token)
    assert [c["name"] for c in r.json()["application_credentials"]] == ["one", "two"]
    r = cloud.request("GET", f"{path}?name=two", token=token)
    assert [c["id"] for c in r.json()["application_credentials"]] == [two["id"]]
    r = cloud.request("GET", f"{path}?name=none", token=token)
    assert r.json()["application_credentials"] == []

    assert cloud.request("DELETE", f"{path}/{one['id']}", token=token).status_code == 204
    assert_error(cloud.request("GET", f"{path}/{one['id']}", token=token), 404, one["id"])
    assert_error(cloud.request("DELETE", f"{path}/{one['id']}", token=token), 404)
    r = cloud.request("GET", path, token=token)
    assert [c["id"] for c in r.json()["application_credentials"]] == [two["id"]]


def test_chosen_secret_roles_expiry_and_unrestricted(cloud, alice):
    uid, _, token = alice
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
    cred = create(cloud, uid, token, secret="my-own-secret", roles=[{"name": "reader"}],
                  expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"), unrestricted=True)
    assert cred["secret"] == "my-own-secret"
    assert role_names(cred["roles"]) == ["reader"]
    assert cred["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%S.000000")
    assert cred["unrestricted"] is True
    # by id, a naive timestamp (UTC), an offset
    member_id = cloud.services.identity.roles.find("member").id
    naive = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    cred = create(cloud, uid, token, name="by-id", roles=[{"id": member_id}],
                  expires_at=naive)
    assert role_names(cred["roles"]) == ["member"]
    assert cred["expires_at"] == naive + ".000000"
    offset = (dt.datetime.now(dt.timezone(dt.timedelta(hours=5))) + dt.timedelta(hours=1))
    cred = create(cloud, uid, token, name="offset", expires_at=offset.isoformat())
    expected = offset.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert cred["expires_at"] == expected
    # an empty access_rules list is fine
    create(cloud, uid, token, name="no-rules", access_rules=[])


@pytest.mark.parametrize("body, field", [
    ({"name": None}, "application_credential/name"),
    ({"name": ""}, "application_credential/name"),
    ({"name": 5}, "application_credential/name"),
    ({"secret": 5}, "application_credential/secret"),
    ({"description": {}}, "application_credential/description"),
    ({"expires_at": "tomorrow"}, "application_credential/expires_at"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "application_credential/expires_at"),
    ({"expires_at": 12}, "application_credential/expires_at"),
    ({"roles": "member"}, "application_credential/roles"),
    ({"roles": [{"bogus": "x"}]}, "application_credential/roles/0"),
    ({"roles": [{}]}, "application_credential/roles/0"),
    ({"unrestricted": "yes"}, "application_credential/unrestricted"),
    ({"access_rules": [{"service": "compute", "path": "/", "method": "FETCH"}]},
     "application_credential/access_rules/0/method"),
    ({"surprise": 1}, "application_credential/surprise"),
    ({"name": "\ud800"}, "application_credential/name"),
    ({"secret": "a\x00b"}, "application_credential/secret"),
    ({"description": "\udfff"}, "application_credential/description"),
    ({"roles": [{"name": "\ud800"}]}, "application_credential/roles/0/name"),
    ({"expires_at": "9999-12-31T23:59:59-05:00"}, "application_credential/expires_at"),
])
def test_bad_bodies_are_400_naming_the_field(cloud, alice, body, field):
    uid, _, token = alice
    body = {"application_credential": {"name": "x", **body}}
    # json.dumps, not json=: httpx cannot encode the unpaired surrogates tried here
    r = cloud.request("POST", f"/v3/users/{uid}/application_credentials", token=token,
                      content=json.dumps(body).encode())
    assert_error(r, 400, field)


def test_missing_body_and_name(cloud, alice):
    uid, _, token = alice
    path = f"/v3/users/{uid}/application_credentials"
    assert_error(cloud.request("POST", path, token=token, json={}), 400,
                 "application_credential")
    assert_error(cloud.request("POST", path, token=token,
                               json={"application_credential": {}}),
                 400, "application_credential/name")
    assert_error(cloud.request("POST", path, token=token, content=b"nope"), 400)


def test_roles_must_be_held_by_the_token(cloud, alice):
    uid, _, token = alice
    path = f"/v3/users/{uid}/application_credentials"
    admin_id = cloud.services.identity.roles.find("admin").id
    for roles in ([{"name": "admin"}], [{"id": admin_id}], [{"id": "0" * 32}],
                  [{"name": "reader"}, {"name": "admin"}]):
        r = cloud.request("POST", path, token=token, json={"application_credential": {
            "name": "x", "roles": roles}})
        assert_error(r, 400, "unassigned role")
    r = cloud.request("POST", path, token=token, json={"application_credential": {
        "name": "x", "roles": [{"name": "no-such-role"}]}})
    assert_error(r, 404, "no-such-role")
    assert cloud.request("GET", path, token=token).json()["application_credentials"] == []


def test_name_unique_per_user(cloud, alice):
    uid, _, token = alice
    create(cloud, uid, token)
    assert_error(cloud.request("POST", f"/v3/users/{uid}/application_credentials",
                               token=token,
                               json={"application_credential": {"name": "monitoring"}}),
                 409, "monitoring")
    # another user may use the same name
    bob_id, _, bob_token = make_user(cloud, "bob", project="bob-project")
    create(cloud, bob_id, bob_token)


def test_needs_a_project_scoped_token(cloud, alice):
    uid, _, _ = alice
    r = cloud.client.post("/v3/auth/tokens", json={"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": uid, "password": "alice-secret"}}},
        "scope": "unscoped"}})
    unscoped = r.headers["X-Subject-Token"]
    r = cloud.request("POST", f"/v3/users/{uid}/application_credentials", token=unscoped,
                      json={"application_credential": {"name": "x"}})
    assert_error(r, 400, "project-scoped")


def test_users_manage_only_their_own(cloud, alice):
    uid, _, token = alice
    cred = create(cloud, uid, token)
    bob_id, _, bob_token = make_user(cloud, "bob", project="bob-project")
    mine = f"/v3/users/{uid}/application_credentials"
    assert_error(cloud.request("GET", mine, token=bob_token), 403)
    assert_error(cloud.request("GET", f"{mine}/{cred['id']}", token=bob_token), 403)
    assert_error(cloud.request("DELETE", f"{mine}/{cred['id']}", token=bob_token), 403)
    assert_error(cloud.request("POST", mine, token=bob_token,
                               json={"application_credential": {"name": "x"}}), 403)
    # through one's own path, another user's credential does not exist
    theirs = f"/v3/users/{bob_id}/application_credentials/{cred['id']}"
    assert_error(cloud.request("GET", theirs, token=bob_token), 404)
    assert_error(cloud.request("DELETE", theirs, token=bob_token), 404)
    assert_error(cloud.request("GET", mine, token=None), 401)


def test_admin_reads_and_deletes_others_but_creates_only_own(cloud, alice):
    uid, _, token = alice
    cred = create(cloud, uid, token)
    path = f"/v3/users/{uid}/application_credentials"
    r = cloud.request("GET", path)
    assert [c["id"] for c in r.json()["application_credentials"]] == [cred["id"]]
    assert cloud.request("GET", f"{path}/{cred['id']}").status_code == 200
    assert_error(cloud.request("POST", path, json={"application_credential": {"name": "x"}}),
                 403, "another user")
    assert_error(cloud.request("GET", "/v3/users/nobody/application_credentials"), 404)
    assert cloud.request("DELETE", f"{path}/{cred['id']}").status_code == 204
    # and admins create their own
    admin = create(cloud, cloud.admin_user_id, "admin")
    assert admin["project_id"] == cloud.admin_project_id
    assert role_names(admin["roles"]) == ["admin", "member", "reader"]


# -- logging in with one --------------------------------------------------------------

def test_login_by_id_and_by_name(cloud, alice):
    uid, pid, token = alice
    cred = create(cloud, uid, token, roles=[{"name": "reader"}])
    for ref in ({"id": cred["id"], "secret": cred["secret"]},
                {"name": "monitoring", "secret": cred["secret"],
                 "user": {"name": "alice", "domain": {"name": "Default"}}},
                {"name": "monitoring", "secret": cred["secret"], "user": {"id": uid}}):
        r = ac_login(cloud, **ref)
        assert r.status_code == 201, r.text
        body = r.json()["token"]
        assert body["methods"] == ["application_credential"]
        assert body["project"]["id"] == pid and body["user"]["id"] == uid
        assert role_names(body["roles"]) == ["reader"]
        assert body["application_credential"] == {"id": cred["id"], "name": "monitoring",
                                                  "restricted": True}
        assert body["catalog"]


def test_token_roles_are_the_credentials_plus_implied(cloud):
    uid, _, token = make_user(cloud, "carol", roles=("admin",), project="carol-project")
    cred = create(cloud, uid, token, roles=[{"name": "member"}])
    r = ac_login(cloud, id=cred["id"], secret=cred["secret"])
    assert role_names(r.json()["token"]["roles"]) == ["member", "reader"]
    # a member-only credential token is no administrator
    ac_token = r.headers["X-Subject-Token"]
    assert_error(cloud.request("GET", "/v3/services", token=ac_token), 403)


def test_bad_logins_are_401(cloud, alice):
    uid, _, token = alice
    cred = create(cloud, uid, token)
    assert_error(ac_login(cloud, id=cred["id"], secret="wrong"), 401)
    assert_error(ac_login(cloud, id="0" * 32, secret=cred["secret"]), 401)
    assert_error(ac_login(cloud, name="other", secret=cred["secret"], user={"id": uid}), 401)
    assert_error(ac_login(cloud, scope={"project": {"id": cred["project_id"]}},
                          id=cred["id"], secret=cred["secret"]), 401)
    assert_error(ac_login(cloud, id=cred["id"]), 400, "secret")
    assert_error(ac_login(cloud, id=cred["id"], secret="\ud800"), 400,
                 "auth/identity/application_credential")
    assert_error(ac_login(cloud, name="monitoring", secret="x",
                          user={"name": "a\x00", "domain": {"id": "default"}}), 400)


def test_restricted_tokens_cannot_manage_credentials(cloud, alice):
    uid, _, token = alice
    restricted = create(cloud, uid, token, name="restricted")
    free = create(cloud, uid, token, name="free", unrestricted=True)
    path = f"/v3/users/{uid}/application_credentials"

    r_token = ac_login(cloud, id=restricted["id"],
                       secret=restricted["secret"]).headers["X-Subject-Token"]
    assert_error(cloud.request("POST", path, token=r_token,
                               json={"application_credential": {"name": "x"}}),
                 403, "restricted")
    assert_error(cloud.request("DELETE", f"{path}/{free['id']}", token=r_token), 403)
    assert cloud.request("GET", path, token=r_token).status_code == 200

    u_token = ac_login(cloud, id=free["id"], secret=free["secret"]).headers["X-Subject-Token"]
    child = create(cloud, uid, u_token, name="child")
    assert role_names(child["roles"]) == ["member", "reader"]
    r = cloud.request("DELETE", f"{path}/{child['id']}", token=u_token)
    assert r.status_code == 204


def test_deleting_the_credential_invalidates_its_tokens(cloud, alice):
    uid, _, token = alice
    cred = create(cloud, uid, token)
    ac_token = ac_login(cloud, id=cred["id"], secret=cred["secret"]).headers["X-Subject-Token"]
    assert cloud.request("GET", "/v3/auth/catalog", token=ac_token).status_code == 200
    r = cloud.request("DELETE", f"/v3/users/{uid}/application_credentials/{cred['id']}",
                      token=token)
    assert r.status_code == 204
    assert_error(cloud.request("GET", "/v3/auth/catalog", token=ac_token), 401)
    assert_error(ac_login(cloud, id=cred["id"], secret=cred["secret"]), 401)
    # the password token that created it is unaffected
    assert cloud.request("GET", "/v3/auth/catalog", token=token).status_code == 200


def test_expired_credentials_cannot_log_in(cloud, alice):
    uid, _, token = alice
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    cred = create(cloud, uid, token, expires_at=soon.isoformat())
    r = ac_login(cloud, id=cred["id"], secret=cred["secret"])
    assert r.status_code == 201
    # the token does not outlive the credential
    token_expiry = dt.datetime.strptime(r.json()["token"]["expires_at"],
                                        "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert token_expiry <= soon
    ac_token = r.headers["X-Subject-Token"]

    ident = cloud.services.identity
    with ident.db.session() as s:
        s.execute(update(ApplicationCredential)
                  .where(ApplicationCredential.id == cred["id"])
                  .values(expires_at=dt.datetime(2000, 1, 1)))
        ident.bump_revision(s)
    assert_error(ac_login(cloud, id=cred["id"], secret=cred["secret"]), 401, "expired")
    assert_error(cloud.request("GET", "/v3/auth/catalog", token=ac_token), 401)


def test_credential_tokens_lose_roles_the_user_loses(cloud, alice):
    uid, pid, token = alice
    cred = create(cloud, uid, token)
    ident = cloud.services.identity
    with ident.db.session() as s:
        ident.assignments.grant(s, "UserProject", uid, pid, ident.roles.find("reader").id)
    with ident.db.session() as s:
        s.execute(delete(Assignment).where(Assignment.actor_id == uid,
                                           Assignment.role_id == ident.roles.find("member").id))
        ident.bump_revision(s)
    r = ac_login(cloud, id=cred["id"], secret=cred["secret"])
    assert r.status_code == 201
    assert role_names(r.json()["token"]["roles"]) == ["reader"]

"""OS-TRUST, in process: trusts made, listed, shown and deleted by the right callers;
trust-scoped tokens carrying only the trust's roles that the trustor still holds, in the
name of the trustor or the trustee; uses, expiry, deletion and the trustor's changes
ending them; redelegation chains; Keystone's faults."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.api.network_helpers import Tenant, tenant
from tests.api.test_assignments import assert_error

T = "/v3/OS-TRUST/trusts"


def _setup(cloud) -> tuple[Tenant, Tenant, str]:
    """alice (trustor, member and "extra" on her project), bob (trustee, no roles
    there); the id of "extra"."""
    alice, bob = tenant(cloud, "alice"), tenant(cloud, "bob")
    ident = cloud.services.identity
    extra = ident.roles.create(name="extra")
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", alice.user_id, alice.project_id,
                                extra.id)
    return alice, bob, extra.id


def _trust(cloud, alice: Tenant, bob: Tenant, status: int = 201, token: str | None = None,
           **attrs: Any) -> dict[str, Any]:
    body = {"trustor_user_id": alice.user_id, "trustee_user_id": bob.user_id,
            "project_id": alice.project_id, "impersonation": False,
            "roles": [{"name": "member"}], **attrs}
    r = cloud.request("POST", T, token=token or alice.token, json={"trust": body})
    assert r.status_code == status, r.text
    return r.json()["trust"] if status == 201 else r.json()


def _password_body(name: str, password: str, trust_id: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"OS-TRUST:trust": {"id": trust_id}}}}


def _trust_token(cloud, trust_id: str, name: str = "bob-user",
                 password: str = "bob-secret") -> Any:
    return cloud.request("POST", "/v3/auth/tokens", token=None,
                         json=_password_body(name, password, trust_id))


def _valid(cloud, token: str) -> int:
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    return r.status_code


def test_create_show_list_roles_delete(cloud):
    alice, bob, extra = _setup(cloud)
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
    trust = _trust(cloud, alice, bob, impersonation=True,
                   expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert trust["trustor_user_id"] == alice.user_id
    assert trust["trustee_user_id"] == bob.user_id
    assert trust["project_id"] == alice.project_id and trust["impersonation"] is True
    assert trust["expires_at"] == expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert [r["name"] for r in trust["roles"]] == ["member"]
    assert trust["links"]["self"].endswith(f"{T}/{trust['id']}")
    assert trust["remaining_uses"] is None and trust["redelegation_count"] == 0
    # trustor and trustee read it; a stranger does not
    for who in (alice, bob):
        shown = cloud.request("GET", f"{T}/{trust['id']}", token=who.token).json()["trust"]
        assert shown["id"] == trust["id"] and len(shown["roles"]) == 1
    carol = tenant(cloud, "carol")
    assert_error(cloud.request("GET", f"{T}/{trust['id']}", token=carol.token), 403)
    # roles: the delegated one only (GET and HEAD)
    roles = cloud.request("GET", f"{T}/{trust['id']}/roles", token=alice.token).json()
    assert [r["name"] for r in roles["roles"]] == ["member"]
    member_id = roles["roles"][0]["id"]
    assert roles["roles"][0]["links"]["self"].endswith(f"/v3/roles/{member_id}")
    r = cloud.request("GET", f"{T}/{trust['id']}/roles/{member_id}", token=bob.token)
    assert r.status_code == 200 and r.json()["role"]["id"] == member_id
    assert cloud.request("HEAD", f"{T}/{trust['id']}/roles/{member_id}",
                         token=alice.token).status_code == 200
    assert_error(cloud.request("GET", f"{T}/{trust['id']}/roles/{extra}",
                               token=alice.token), 404)
    assert cloud.request("HEAD", f"{T}/{trust['id']}/roles/{extra}",
                         token=alice.token).status_code == 404
    # lists: by trustor, by trustee (each their own), everything for the admin only
    listed = cloud.request("GET", f"{T}?trustor_user_id={alice.user_id}",
                           token=alice.token).json()["trusts"]
    assert [t["id"] for t in listed] == [trust["id"]] and "roles" not in listed[0]
    listed = cloud.request("GET", f"{T}/?trustee_user_id={bob.user_id}",
                           token=bob.token).json()["trusts"]
    assert [t["id"] for t in listed] == [trust["id"]]
    assert_error(cloud.request("GET", f"{T}?trustor_user_id={alice.user_id}",
                               token=bob.token), 403)
    assert_error(cloud.request("GET", T, token=alice.token), 403)
    assert trust["id"] in [t["id"] for t in cloud.request("GET", T).json()["trusts"]]
    # only the trustor (or an admin) deletes it
    assert_error(cloud.request("DELETE", f"{T}/{trust['id']}", token=bob.token), 403)
    assert cloud.request("DELETE", f"{T}/{trust['id']}",
                         token=alice.token).status_code == 204
    assert_error(cloud.request("GET", f"{T}/{trust['id']}", token=alice.token), 404,
                 "trust")
    assert_error(cloud.request("DELETE", f"{T}/{trust['id']}", token=alice.token), 404)


def test_create_faults(cloud):
    alice, bob, extra = _setup(cloud)
    admin_role = cloud.services.identity.roles.find("admin").id
    # the caller must be the trustor
    assert_error(cloud.request("POST", T, token=bob.token, json={"trust": {
        "trustor_user_id": alice.user_id, "trustee_user_id": bob.user_id,
        "project_id": alice.project_id, "impersonation": False,
        "roles": [{"name": "member"}]}}), 403, "trustor")
    # roles the trustor does not hold there, unknown roles, no roles at all
    assert "role" in _trust(cloud, alice, bob, 404,
                            roles=[{"id": admin_role}])["error"]["message"]
    assert "role" in _trust(cloud, alice, bob, 404,
                            roles=[{"name": "admin"}])["error"]["message"]
    _trust(cloud, alice, bob, 404, roles=[{"name": "no-such-role"}])
    _trust(cloud, alice, bob, 403, roles=[])
    # unknown trustee or project, bad fields
    _trust(cloud, alice, bob, 404, trustee_user_id="0" * 32)
    _trust(cloud, alice, bob, 404, project_id="0" * 32)
    _trust(cloud, alice, bob, 400, expires_at="bad.123Z")
    _trust(cloud, alice, bob, 400, expires_at="2001-01-01T00:00:00Z")
    _trust(cloud, alice, bob, 400, remaining_uses=0)
    _trust(cloud, alice, bob, 400, remaining_uses="2")
    _trust(cloud, alice, bob, 400, impersonation="yes")
    _trust(cloud, alice, bob, 400, remaining_uses=2, allow_redelegation=True)
    _trust(cloud, alice, bob, 403, allow_redelegation=True, redelegation_count=10)
    assert_error(cloud.request("POST", T, token=alice.token, json={"nope": {}}), 400)
    assert_error(cloud.request("POST", T, token=None, json={"trust": {}}), 401)
    # roles by id work as by name
    assert [r["id"] for r in _trust(cloud, alice, bob, roles=[{"id": extra}])["roles"]] \
        == [extra]


def test_trust_token_without_impersonation(cloud):
    alice, bob, extra = _setup(cloud)
    trust = _trust(cloud, alice, bob, roles=[{"name": "member"}])
    r = _trust_token(cloud, trust["id"])
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["user"]["id"] == bob.user_id
    assert token["project"]["id"] == alice.project_id
    assert {role["name"] for role in token["roles"]} >= {"member"}
    assert "extra" not in {role["name"] for role in token["roles"]}
    assert token["OS-TRUST:trust"] == {
        "id": trust["id"], "impersonation": False,
        "trustee_user": {"id": bob.user_id}, "trustor_user": {"id": alice.user_id}}
    subject = r.headers["X-Subject-Token"]
    # the token works on the trustor's project, and validates with the same body
    assert cloud.request("GET", "/network/v2.0/networks", token=subject).status_code == 200
    shown = cloud.request("GET", "/v3/auth/tokens",
                          headers={"X-Subject-Token": subject}).json()["token"]
    assert shown["OS-TRUST:trust"]["id"] == trust["id"]
    # with a token of the trustee as well
    r = cloud.request("POST", "/v3/auth/tokens", token=None, json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": bob.token}},
        "scope": {"OS-TRUST:trust": {"id": trust["id"]}}}})
    assert r.status_code == 201 and r.json()["token"]["OS-TRUST:trust"]["id"] == trust["id"]
    # only the trustee; a trust-scoped token is not rescoped nor makes app credentials
    assert_error(_trust_token(cloud, trust["id"], "alice-user", "alice-secret"), 403,
                 "trustee")
    assert_error(cloud.request("POST", "/v3/auth/tokens", token=None, json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": subject}},
        "scope": {"project": {"id": bob.project_id}}}}), 403)
    assert_error(cloud.request("POST", f"/v3/users/{bob.user_id}/application_credentials",
                               token=subject, json={"application_credential": {
                                   "name": "x"}}), 403)
    assert_error(cloud.request("POST", "/v3/auth/tokens", token=None, json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": bob.token}},
        "scope": {"OS-TRUST:trust": {"id": trust["id"]},
                  "project": {"id": alice.project_id}}}}), 400)
    assert_error(_trust_token(cloud, "0" * 32), 401)
    # deleting the trust ends its tokens (they are checked against it)
    assert cloud.request("DELETE", f"{T}/{trust['id']}",
                         token=alice.token).status_code == 204
    assert _valid(cloud, subject) == 404
    assert cloud.request("GET", "/network/v2.0/networks", token=subject).status_code == 401
    assert_error(_trust_token(cloud, trust["id"]), 401)


def test_impersonation_and_the_trustors_roles(cloud):
    alice, bob, extra = _setup(cloud)
    trust = _trust(cloud, alice, bob, impersonation=True,
                   roles=[{"name": "member"}, {"id": extra}])
    r = _trust_token(cloud, trust["id"])
    assert r.status_code == 201, r.text
    token, subject = r.json()["token"], r.headers["X-Subject-Token"]
    assert token["user"]["id"] == alice.user_id
    assert token["OS-TRUST:trust"]["impersonation"] is True
    assert {"member", "extra"} <= {role["name"] for role in token["roles"]}
    # the trustor loses one role: it drops out of the token
    ident = cloud.services.identity
    ident.assignments.revoke_grant(None, extra, user_id=alice.user_id,
                                   project_id=alice.project_id)
    shown = cloud.request("GET", "/v3/auth/tokens",
                          headers={"X-Subject-Token": subject}).json()["token"]
    assert "extra" not in {role["name"] for role in shown["roles"]}
    assert "member" in {role["name"] for role in shown["roles"]}
    # ... and all of them: the trust gives nothing any more
    member = ident.roles.find("member").id
    ident.assignments.revoke_grant(None, member, user_id=alice.user_id,
                                   project_id=alice.project_id)
    assert _valid(cloud, subject) == 404
    assert_error(_trust_token(cloud, trust["id"]), 401)
    # back again; then the trustor is disabled
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", alice.user_id, alice.project_id,
                                member)
    subject = _trust_token(cloud, trust["id"]).headers["X-Subject-Token"]
    assert _valid(cloud, subject) == 200
    ident.users.update(None, alice.user_id, {"enabled": False})
    assert _valid(cloud, subject) == 404
    assert_error(_trust_token(cloud, trust["id"]), 401)


def test_remaining_uses_and_expiry(cloud):
    alice, bob, _ = _setup(cloud)
    trust = _trust(cloud, alice, bob, remaining_uses=2)
    first = _trust_token(cloud, trust["id"])
    assert first.status_code == 201
    shown = cloud.request("GET", f"{T}/{trust['id']}", token=alice.token).json()["trust"]
    assert shown["remaining_uses"] == 1
    assert _trust_token(cloud, trust["id"]).status_code == 201
    assert_error(_trust_token(cloud, trust["id"]), 401)
    # used up: gone for reads; the tokens it gave still work
    assert_error(cloud.request("GET", f"{T}/{trust['id']}", token=alice.token), 404)
    assert _valid(cloud, first.headers["X-Subject-Token"]) == 200
    # an expiring trust: its tokens expire with it, then it is gone
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    trust = _trust(cloud, alice, bob, expires_at=soon.isoformat())
    r = _trust_token(cloud, trust["id"])
    assert r.status_code == 201
    expires = dt.datetime.fromisoformat(r.json()["token"]["expires_at"].replace("Z",
                                                                                "+00:00"))
    assert expires <= soon + dt.timedelta(seconds=1)
    time.sleep(2.2)
    assert _valid(cloud, r.headers["X-Subject-Token"]) == 404
    assert_error(_trust_token(cloud, trust["id"]), 401)
    assert_error(cloud.request("GET", f"{T}/{trust['id']}", token=alice.token), 404)


def test_redelegation(cloud):
    alice, bob, extra = _setup(cloud)
    carol = tenant(cloud, "carol")
    trust = _trust(cloud, alice, bob, roles=[{"name": "member"}, {"id": extra}],
                   allow_redelegation=True, redelegation_count=2)
    assert trust["redelegation_count"] == 2 and trust["allow_redelegation"] is True
    bob_trust_token = _trust_token(cloud, trust["id"]).headers["X-Subject-Token"]
    base = {"trustor_user_id": bob.user_id, "trustee_user_id": carol.user_id,
            "project_id": alice.project_id, "impersonation": False,
            "roles": [{"name": "member"}], "allow_redelegation": True}

    def redelegate(token: str, **attrs: Any) -> Any:
        return cloud.request("POST", T, token=token, json={"trust": {**base, **attrs}})

    # refused: impersonation the parent does not give, uses, a changed count
    assert_error(redelegate(bob_trust_token, impersonation=True), 403, "mpersonation")
    assert_error(redelegate(bob_trust_token, allow_redelegation=False, remaining_uses=1),
                 403, "remaining_uses")
    assert_error(redelegate(bob_trust_token, redelegation_count=2), 403,
                 "redelegation_count")
    r = redelegate(bob_trust_token)
    assert r.status_code == 201, r.text
    child = r.json()["trust"]
    assert child["redelegated_trust_id"] == trust["id"]
    assert child["redelegation_count"] == 1
    # carol works on alice's project with the member role, through the chain
    r = _trust_token(cloud, child["id"], "carol-user", "carol-secret")
    assert r.status_code == 201, r.text
    carol_subject = r.headers["X-Subject-Token"]
    assert r.json()["token"]["project"]["id"] == alice.project_id
    assert {role["name"] for role in r.json()["token"]["roles"]} >= {"member"}
    assert "extra" not in {role["name"] for role in r.json()["token"]["roles"]}
    # the last link: count 1 -> a grandchild with count 0 may not go further
    dave = tenant(cloud, "dave")
    r = cloud.request("POST", T, token=carol_subject, json={"trust": {
        **base, "trustor_user_id": carol.user_id, "trustee_user_id": dave.user_id,
        "allow_redelegation": False}})
    assert r.status_code == 201, r.text
    grandchild = r.json()["trust"]
    assert grandchild["redelegation_count"] == 0
    dave_subject = _trust_token(cloud, grandchild["id"], "dave-user",
                                "dave-secret").headers["X-Subject-Token"]
    r = cloud.request("POST", T, token=dave_subject, json={"trust": {
        **base, "trustor_user_id": dave.user_id, "trustee_user_id": alice.user_id,
        "allow_redelegation": False}})
    assert_error(r, 403, "redelegation depth")
    # a trust that does not allow redelegation gives tokens that cannot delegate
    plain = _trust(cloud, alice, bob)
    plain_token = _trust_token(cloud, plain["id"]).headers["X-Subject-Token"]
    assert_error(redelegate(plain_token, allow_redelegation=False), 403, "depth")
    # deleting the root ends the whole chain
    assert cloud.request("DELETE", f"{T}/{trust['id']}",
                         token=alice.token).status_code == 204
    assert _valid(cloud, carol_subject) == 404
    assert _valid(cloud, dave_subject) == 404
    assert_error(cloud.request("GET", f"{T}/{child['id']}", token=carol.token), 404)


def test_tokens_without_a_trust_still_decode_the_old_payload(cloud):
    """Tokens of nine payload elements (all but trust-scoped ones) keep working; the
    trust id is the tenth."""
    import msgpack

    alice, bob, _ = _setup(cloud)
    fmt = cloud.services.identity.tokens.formatter
    raw = alice.token.encode() + b"=" * (-len(alice.token) % 4)
    assert len(msgpack.unpackb(fmt._current().decrypt(raw), raw=False)) == 9
    trust = _trust(cloud, alice, bob)
    subject = _trust_token(cloud, trust["id"]).headers["X-Subject-Token"]
    raw = subject.encode() + b"=" * (-len(subject) % 4)
    assert len(msgpack.unpackb(fmt._current().decrypt(raw), raw=False)) == 10
    assert fmt.decode(subject).trust_id == trust["id"]
    assert fmt.decode(alice.token).trust_id is None


def test_deleting_the_trustor_or_a_restricted_caller(cloud):
    alice, bob, _ = _setup(cloud)
    trust = _trust(cloud, alice, bob)
    subject = _trust_token(cloud, trust["id"]).headers["X-Subject-Token"]
    assert _valid(cloud, subject) == 200
    # a restricted application credential's token manages no trusts
    r = cloud.request("POST", f"/v3/users/{alice.user_id}/application_credentials",
                      token=alice.token, json={"application_credential": {"name": "ac"}})
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    r = cloud.request("POST", "/v3/auth/tokens", token=None, json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cred["id"], "secret": cred["secret"]}}}})
    assert r.status_code == 201, r.text
    ac_token = r.headers["X-Subject-Token"]
    refused = _trust(cloud, alice, bob, 403, token=ac_token)
    assert "application_credential" in refused["error"]["message"]
    assert_error(cloud.request("DELETE", f"{T}/{trust['id']}", token=ac_token), 403,
                 "application_credential")
    # the trustor deleted: the trust goes with them, and its tokens
    assert cloud.request("DELETE", f"/v3/users/{alice.user_id}").status_code == 204
    assert _valid(cloud, subject) == 404
    assert_error(cloud.request("GET", f"{T}/{trust['id']}"), 404)

"""OS-OAUTH1 delegation, in process: consumers, the three-step flow signed by an
independent OAuth 1.0a client (oauthlib), tokens holding only the delegated roles, and
the user's control over their access tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from oauthlib import oauth1

from tests.api.network_helpers import tenant
from tests.api.test_assignments import assert_error

OA = "/v3/OS-OAUTH1"


def _signed(cloud, method: str, path: str, client: oauth1.Client, headers: dict | None = None,
            json: Any = None):
    _, signed_headers, _ = client.sign(f"{_base(cloud)}{path}", http_method=method)
    return cloud.request(method, path, token=None, headers={**signed_headers,
                                                            **(headers or {})}, json=json)


def _base(cloud) -> str:
    """The URL the test client addresses, as a real client would sign it."""
    return str(cloud.client.base_url).rstrip("/")


def _consumer(cloud) -> dict[str, Any]:
    r = cloud.request("POST", f"{OA}/consumers", json={"consumer": {"description": "app"}})
    assert r.status_code == 201, r.text
    return r.json()["consumer"]


def _delegate(cloud, alice, consumer, roles=({"name": "member"},)) -> tuple[dict, str]:
    """Steps 2-4; the access token's fields and its secret."""
    c = oauth1.Client(consumer["id"], client_secret=consumer["secret"], callback_uri="oob")
    r = _signed(cloud, "POST", f"{OA}/request_token", c,
                headers={"Requested-Project-Id": alice.project_id})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
    req = dict(parse_qsl(r.text))
    assert set(req) == {"oauth_token", "oauth_token_secret", "oauth_expires_at"}
    r = cloud.request("PUT", f"{OA}/authorize/{req['oauth_token']}", token=alice.token,
                      json={"roles": list(roles)})
    assert r.status_code == 200, r.text
    verifier = r.json()["token"]["oauth_verifier"]
    c = oauth1.Client(consumer["id"], client_secret=consumer["secret"],
                      resource_owner_key=req["oauth_token"],
                      resource_owner_secret=req["oauth_token_secret"], verifier=verifier)
    r = _signed(cloud, "POST", f"{OA}/access_token", c)
    assert r.status_code == 201, r.text
    access = dict(parse_qsl(r.text))
    # the request token is spent
    assert _signed(cloud, "POST", f"{OA}/access_token", oauth1.Client(
        consumer["id"], client_secret=consumer["secret"],
        resource_owner_key=req["oauth_token"], resource_owner_secret=req["oauth_token_secret"],
        verifier=verifier)).status_code == 401
    return access, access["oauth_token_secret"]


def _oauth_token(cloud, consumer, access) -> Any:
    c = oauth1.Client(consumer["id"], client_secret=consumer["secret"],
                      resource_owner_key=access["oauth_token"],
                      resource_owner_secret=access["oauth_token_secret"])
    return _signed(cloud, "POST", "/v3/auth/tokens", c, json={
        "auth": {"identity": {"methods": ["oauth1"], "oauth1": {}}}})


def test_consumer_crud(cloud):
    consumer = _consumer(cloud)
    assert consumer["description"] == "app" and len(consumer["secret"]) > 20
    assert consumer["links"]["self"].endswith(f"{OA}/consumers/{consumer['id']}")
    listed = cloud.request("GET", f"{OA}/consumers").json()["consumers"]
    assert [c["id"] for c in listed] == [consumer["id"]] and "secret" not in listed[0]
    r = cloud.request("PATCH", f"{OA}/consumers/{consumer['id']}",
                      json={"consumer": {"description": "renamed"}})
    assert r.status_code == 200 and r.json()["consumer"]["description"] == "renamed"
    assert_error(cloud.request("PATCH", f"{OA}/consumers/{consumer['id']}",
                               json={"consumer": {"secret": "mine"}}), 400, "secret")
    assert cloud.request("DELETE", f"{OA}/consumers/{consumer['id']}").status_code == 204
    assert_error(cloud.request("GET", f"{OA}/consumers/{consumer['id']}"), 404, "consumer")
    # administrators only
    alice = tenant(cloud, "alice")
    assert_error(cloud.request("POST", f"{OA}/consumers", token=alice.token,
                               json={"consumer": {}}), 403)


def test_delegation_gives_tokens_with_only_the_delegated_roles(cloud):
    alice = tenant(cloud, "alice")
    ident = cloud.services.identity
    with ident.db.session() as session:   # alice also holds "admin"-free role "extra"
        extra = ident.roles.create(name="extra")
        ident.assignments.grant(session, "UserProject", alice.user_id, alice.project_id,
                                extra.id)
    consumer = _consumer(cloud)
    access, _ = _delegate(cloud, alice, consumer)
    r = _oauth_token(cloud, consumer, access)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["methods"] == ["oauth1"]
    assert token["user"]["id"] == alice.user_id
    assert token["project"]["id"] == alice.project_id
    assert token["OS-OAUTH1"] == {"access_token_id": access["oauth_token"],
                                  "consumer_id": consumer["id"]}
    names = {role["name"] for role in token["roles"]}
    assert "member" in names and "extra" not in names
    # the token works, and cannot be rescoped or used to delegate further
    subject = r.headers["X-Subject-Token"]
    assert cloud.request("GET", "/network/v2.0/networks", token=subject).status_code == 200
    assert_error(cloud.request("POST", "/v3/auth/tokens", token=None, json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": subject}}}}), 403)
    # a replayed request (same nonce) is refused
    c = oauth1.Client(consumer["id"], client_secret=consumer["secret"],
                      resource_owner_key=access["oauth_token"],
                      resource_owner_secret=access["oauth_token_secret"])
    _, headers, _ = c.sign(f"{_base(cloud)}/v3/auth/tokens", http_method="POST")
    body = {"auth": {"identity": {"methods": ["oauth1"], "oauth1": {}}}}
    assert cloud.request("POST", "/v3/auth/tokens", token=None, headers=headers,
                         json=body).status_code == 201
    assert_error(cloud.request("POST", "/v3/auth/tokens", token=None, headers=headers,
                               json=body), 401, "nonce")

    # alice sees and ends the delegation; its tokens stop working
    path = f"/v3/users/{alice.user_id}/OS-OAUTH1/access_tokens"
    listed = cloud.request("GET", path, token=alice.token).json()["access_tokens"]
    assert [(a["id"], a["consumer_id"], a["project_id"]) for a in listed] == [
        (access["oauth_token"], consumer["id"], alice.project_id)]
    roles = cloud.request("GET", f"{path}/{access['oauth_token']}/roles",
                          token=alice.token).json()["roles"]
    assert [role["name"] for role in roles] == ["member"]
    other = tenant(cloud, "bob")
    assert_error(cloud.request("GET", path, token=other.token), 403)
    assert cloud.request("DELETE", f"{path}/{access['oauth_token']}",
                         token=alice.token).status_code == 204
    assert cloud.request("GET", "/network/v2.0/networks", token=subject).status_code == 401
    assert _oauth_token(cloud, consumer, access).status_code == 401


def test_bad_signatures_and_refused_delegations(cloud):
    alice = tenant(cloud, "alice")
    consumer = _consumer(cloud)
    wrong = oauth1.Client(consumer["id"], client_secret="not-the-secret", callback_uri="oob")
    assert_error(_signed(cloud, "POST", f"{OA}/request_token", wrong,
                         headers={"Requested-Project-Id": alice.project_id}), 401, "signature")
    unsigned = cloud.request("POST", f"{OA}/request_token", token=None,
                             headers={"Requested-Project-Id": alice.project_id})
    assert_error(unsigned, 401, "OAuth")
    good = oauth1.Client(consumer["id"], client_secret=consumer["secret"], callback_uri="oob")
    assert_error(_signed(cloud, "POST", f"{OA}/request_token", good), 400,
                 "Requested-Project-Id")
    r = _signed(cloud, "POST", f"{OA}/request_token", good,
                headers={"Requested-Project-Id": alice.project_id})
    req = dict(parse_qsl(r.text))
    # a role alice does not hold cannot be delegated; an unknown one is a 404
    assert_error(cloud.request("PUT", f"{OA}/authorize/{req['oauth_token']}",
                               token=alice.token, json={"roles": [{"name": "admin"}]}), 401)
    assert_error(cloud.request("PUT", f"{OA}/authorize/{req['oauth_token']}",
                               token=alice.token, json={"roles": [{"name": "nope"}]}), 404)
    assert_error(cloud.request("PUT", f"{OA}/authorize/{'0' * 32}", token=alice.token,
                               json={"roles": [{"name": "member"}]}), 404)
    # without the verifier there is no access token
    c = oauth1.Client(consumer["id"], client_secret=consumer["secret"],
                      resource_owner_key=req["oauth_token"],
                      resource_owner_secret=req["oauth_token_secret"], verifier="guess")
    assert_error(_signed(cloud, "POST", f"{OA}/access_token", c), 401)
    # deleting the consumer ends its delegations
    access, _ = _delegate(cloud, alice, consumer)
    assert _oauth_token(cloud, consumer, access).status_code == 201
    assert cloud.request("DELETE", f"{OA}/consumers/{consumer['id']}").status_code == 204
    assert _oauth_token(cloud, consumer, access).status_code == 401

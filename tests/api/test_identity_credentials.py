"""/v3/credentials and OS-EC2, in process."""

from __future__ import annotations

import hashlib
import json

from tests.api.test_assignments import (
    assert_error,
    login,
    new_project,
    new_user,
    put,
    role_id,
)


def test_credentials_crud_and_ec2_ids(cloud):
    user = new_user(cloud, "keeper")
    project = new_project(cloud, "keeper-p")
    blob = json.dumps({"access": "AK1", "secret": "S1"})
    r = cloud.request("POST", "/v3/credentials", json={"credential": {
        "user_id": user, "project_id": project, "type": "ec2", "blob": blob}})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["id"] == hashlib.sha256(b"AK1").hexdigest()
    assert (cred["user_id"], cred["project_id"], cred["type"], cred["blob"]) == (
        user, project, "ec2", blob)
    assert cred["links"]["self"].endswith(f"/v3/credentials/{cred['id']}")
    # the same access key again: a conflict
    r = cloud.request("POST", "/v3/credentials", json={"credential": {
        "user_id": user, "project_id": project, "type": "ec2", "blob": blob}})
    assert_error(r, 409)
    other = cloud.request("POST", "/v3/credentials", json={"credential": {
        "user_id": cloud.admin_user_id, "type": "totp", "blob": "seed"}}).json()["credential"]
    assert len(other["id"]) == 32 and other["project_id"] is None

    new_blob = json.dumps({"access": "AK2", "secret": "S2"})
    r = cloud.request("PATCH", f"/v3/credentials/{cred['id']}",
                      json={"credential": {"blob": new_blob}})
    assert r.status_code == 200, r.text
    assert r.json()["credential"]["blob"] == new_blob
    assert r.json()["credential"]["id"] == cred["id"]
    got = cloud.request("GET", f"/v3/credentials/{cred['id']}").json()["credential"]
    assert got["blob"] == new_blob and got["project_id"] == project

    listed = cloud.request("GET", "/v3/credentials").json()["credentials"]
    assert {c["id"] for c in listed} == {cred["id"], other["id"]}
    assert [c["id"] for c in cloud.request(
        "GET", f"/v3/credentials?user_id={user}").json()["credentials"]] == [cred["id"]]
    assert [c["id"] for c in cloud.request(
        "GET", "/v3/credentials?type=totp").json()["credentials"]] == [other["id"]]

    assert cloud.request("DELETE", f"/v3/credentials/{cred['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/credentials/{cred['id']}"), 404)
    assert_error(cloud.request("DELETE", f"/v3/credentials/{cred['id']}"), 404)


def test_credential_validation(cloud):
    user = new_user(cloud, "v")
    project = new_project(cloud, "v-p")
    for body, status in [
            ({"user_id": user, "type": "ec2", "blob": '{"access": "x"}'}, 400),  # no project
            ({"user_id": user, "project_id": project, "type": "ec2", "blob": "nojson"}, 400),
            ({"user_id": user, "project_id": project, "type": "ec2", "blob": "{}"}, 400),
            ({"user_id": user, "type": "totp"}, 400),
            ({"user_id": user, "type": "totp", "blob": 5}, 400),
            ({"type": "totp", "blob": "x"}, 400),
            ({"user_id": "0" * 32, "type": "totp", "blob": "x"}, 404),
            ({"user_id": user, "project_id": "0" * 32, "type": "totp", "blob": "x"}, 404)]:
        assert_error(cloud.request("POST", "/v3/credentials", json={"credential": body}),
                     status)
    assert_error(cloud.request("POST", "/v3/credentials", json={"nothing": {}}), 400)


def test_owner_or_admin(cloud):
    alice, bob = new_user(cloud, "alice"), new_user(cloud, "bob")
    project = new_project(cloud, "shared")
    for u in (alice, bob):
        put(cloud, f"/v3/projects/{project}/users/{u}/roles/{role_id(cloud, 'member')}")
    a_tok = login(cloud, alice, project).headers["X-Subject-Token"]
    b_tok = login(cloud, bob, project).headers["X-Subject-Token"]
    r = cloud.request("POST", "/v3/credentials", token=a_tok, json={"credential": {
        "user_id": alice, "type": "totp", "blob": "alice-seed"}})
    assert r.status_code == 201, r.text
    cid = r.json()["credential"]["id"]
    # bob may not make one for alice, nor see, change or delete hers
    assert_error(cloud.request("POST", "/v3/credentials", token=b_tok, json={"credential": {
        "user_id": alice, "type": "totp", "blob": "x"}}), 403)
    assert cloud.request("GET", f"/v3/credentials/{cid}", token=b_tok).status_code == 404
    assert cloud.request("PATCH", f"/v3/credentials/{cid}", token=b_tok,
                         json={"credential": {"blob": "y"}}).status_code == 404
    assert cloud.request("DELETE", f"/v3/credentials/{cid}", token=b_tok).status_code == 404
    assert cloud.request("GET", "/v3/credentials", token=b_tok).json()["credentials"] == []
    assert cloud.request("GET", f"/v3/credentials?user_id={alice}",
                         token=b_tok).json()["credentials"] == []
    # alice may not hand hers to bob
    assert_error(cloud.request("PATCH", f"/v3/credentials/{cid}", token=a_tok,
                               json={"credential": {"user_id": bob}}), 403)
    assert [c["id"] for c in cloud.request("GET", "/v3/credentials", token=a_tok)
            .json()["credentials"]] == [cid]
    # deleting the user deletes its credentials
    assert cloud.request("DELETE", f"/v3/users/{alice}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/credentials/{cid}"), 404)


def test_ec2_extension(cloud):
    user = new_user(cloud, "ec2user")
    project = new_project(cloud, "ec2-p")
    put(cloud, f"/v3/projects/{project}/users/{user}/roles/{role_id(cloud, 'member')}")
    token = login(cloud, user, project).headers["X-Subject-Token"]
    base = f"/v3/users/{user}/credentials/OS-EC2"
    r = cloud.request("POST", base, token=token, json={"tenant_id": project})
    assert r.status_code == 201, r.text
    ec2 = r.json()["credential"]
    assert ec2["access"] and ec2["secret"] and ec2["user_id"] == user
    assert ec2["tenant_id"] == project and ec2["trust_id"] is None
    assert ec2["links"]["self"].endswith(f"{base}/{ec2['access']}")
    # it is a /v3/credentials entry of type ec2 whose id is the access key's hash
    cred = cloud.request("GET", "/v3/credentials/"
                         + hashlib.sha256(ec2["access"].encode()).hexdigest()).json()
    assert cred["credential"]["type"] == "ec2"
    assert json.loads(cred["credential"]["blob"])["secret"] == ec2["secret"]
    shown = cloud.request("GET", f"{base}/{ec2['access']}", token=token).json()["credential"]
    assert {k: shown[k] for k in ("access", "secret", "user_id", "tenant_id")} == \
        {k: ec2[k] for k in ("access", "secret", "user_id", "tenant_id")}
    assert [c["access"] for c in cloud.request("GET", base, token=token)
            .json()["credentials"]] == [ec2["access"]]
    # not on a project the user has no role on; not for another user
    assert_error(cloud.request("POST", base, token=token,
                               json={"tenant_id": new_project(cloud, "no")}), 403)
    assert_error(cloud.request("POST", base, token=token, json={"tenant_id": "0" * 32}), 404)
    assert_error(cloud.request("POST", base, token=token, json={}), 400)
    other = new_user(cloud, "other")
    assert_error(cloud.request("GET", f"/v3/users/{other}/credentials/OS-EC2",
                               token=token), 403)
    assert cloud.request("DELETE", f"{base}/{ec2['access']}", token=token).status_code == 204
    assert_error(cloud.request("GET", f"{base}/{ec2['access']}", token=token), 404)

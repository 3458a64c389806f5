"""/v3/policies, OS-EP-FILTER endpoint groups, domain names: in process."""

from __future__ import annotations

from tests.api.test_assignments import assert_error, login, new_project, new_user, put, role_id


def test_policies_are_stored_as_given(cloud):
    r = cloud.request("POST", "/v3/policies", json={"policy": {
        "blob": '{"default": ""}', "type": "application/json", "owner": "ops"}})
    assert r.status_code == 201, r.text
    policy = r.json()["policy"]
    assert (policy["blob"], policy["type"], policy["owner"]) == (
        '{"default": ""}', "application/json", "ops")
    pid = policy["id"]
    r = cloud.request("PATCH", f"/v3/policies/{pid}", json={"policy": {"type": "text/x"}})
    assert r.status_code == 200 and r.json()["policy"]["type"] == "text/x"
    got = cloud.request("GET", f"/v3/policies/{pid}").json()["policy"]
    assert (got["blob"], got["type"], got["owner"]) == ('{"default": ""}', "text/x", "ops")
    assert [p["id"] for p in cloud.request("GET", "/v3/policies").json()["policies"]] == [pid]
    assert cloud.request("GET", "/v3/policies?type=other").json()["policies"] == []
    assert cloud.request("DELETE", f"/v3/policies/{pid}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/policies/{pid}"), 404)
    for body in ({"type": "x"}, {"blob": "x"}, {"blob": 1, "type": "x"},
                 {"blob": "x", "type": "t" * 256}, {"blob": "x", "type": "x", "id": "mine"}):
        assert_error(cloud.request("POST", "/v3/policies", json={"policy": body}), 400)


def test_policies_and_endpoint_groups_are_for_admins(cloud):
    user, project = new_user(cloud, "m"), new_project(cloud, "m-p")
    put(cloud, f"/v3/projects/{project}/users/{user}/roles/{role_id(cloud, 'member')}")
    token = login(cloud, user, project).headers["X-Subject-Token"]
    for method, path in (("GET", "/v3/policies"), ("POST", "/v3/policies"),
                         ("GET", "/v3/OS-EP-FILTER/endpoint_groups"),
                         ("POST", "/v3/OS-EP-FILTER/endpoint_groups")):
        assert_error(cloud.request(method, path, token=token, json={}), 403)


def test_endpoint_groups(cloud):
    service_id = cloud.request("GET", "/v3/services?type=identity").json()["services"][0]["id"]
    base = "/v3/OS-EP-FILTER/endpoint_groups"
    r = cloud.request("POST", base, json={"endpoint_group": {
        "name": "ids", "description": "identity, public",
        "filters": {"interface": "public", "service_id": service_id}}})
    assert r.status_code == 201, r.text
    group = r.json()["endpoint_group"]
    gid = group["id"]
    assert group["filters"] == {"interface": "public", "service_id": service_id}
    assert cloud.request("HEAD", f"{base}/{gid}").status_code == 200
    endpoints = cloud.request("GET", f"{base}/{gid}/endpoints").json()["endpoints"]
    assert endpoints and all(e["service_id"] == service_id and e["interface"] == "public"
                             for e in endpoints)
    r = cloud.request("PATCH", f"{base}/{gid}", json={"endpoint_group": {
        "name": "renamed", "filters": {"interface": "admin"}}})
    assert r.status_code == 200 and r.json()["endpoint_group"]["name"] == "renamed"
    assert cloud.request("GET", f"{base}/{gid}").json()["endpoint_group"]["filters"] == {
        "interface": "admin"}
    assert [g["id"] for g in cloud.request("GET", base).json()["endpoint_groups"]] == [gid]
    for filters in ({"colour": "red"}, {"interface": "sideways"}, {"service_id": 5}):
        assert_error(cloud.request("POST", base, json={"endpoint_group": {
            "name": "bad", "filters": filters}}), 400)
    assert_error(cloud.request("POST", base, json={"endpoint_group": {"name": "x"}}), 400)
    assert cloud.request("DELETE", f"{base}/{gid}").status_code == 204
    assert cloud.request("HEAD", f"{base}/{gid}").status_code == 404
    assert_error(cloud.request("GET", f"{base}/{gid}"), 404)


def test_domain_names_are_1_to_64_characters(cloud):
    for name in ("", "   ", "a" * 65):
        assert_error(cloud.request("POST", "/v3/domains", json={"domain": {"name": name}}),
                     400)
    r = cloud.request("POST", "/v3/domains", json={"domain": {"name": "a" * 64}})
    assert r.status_code == 201, r.text
    did = r.json()["domain"]["id"]
    assert_error(cloud.request("PATCH", f"/v3/domains/{did}",
                               json={"domain": {"name": ""}}), 400)


def test_domain_configuration_is_refused_clearly(cloud):
    for method, path in (("PUT", "/v3/domains/default/config"),
                         ("GET", "/v3/domains/default/config/identity"),
                         ("PATCH", "/v3/domains/default/config/ldap/url"),
                         ("GET", "/v3/domains/config/default")):
        r = cloud.request(method, path, json={"config": {}})
        assert r.status_code == 501, r.text
        assert "domain-specific" in r.json()["error"]["message"]
    user, project = new_user(cloud, "c"), new_project(cloud, "c-p")
    put(cloud, f"/v3/projects/{project}/users/{user}/roles/{role_id(cloud, 'member')}")
    token = login(cloud, user, project).headers["X-Subject-Token"]
    assert_error(cloud.request("GET", "/v3/domains/default/config", token=token), 403)

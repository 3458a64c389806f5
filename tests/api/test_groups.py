"""/v3/groups and group membership (and the roles it brings), in process."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from onestack.db.models import Assignment, GroupMembership
from tests.api.test_users import (
    PASSWORD,
    assert_error,
    create_project,
    create_user,
    grant,
    login,
    member,
    token_for,
    token_works,
)

MISSING = "0" * 32


def create_group(cloud, name: str, **fields) -> dict:
    r = cloud.request("POST", "/v3/groups", json={"group": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["group"]


# -- CRUD -----------------------------------------------------------------------------

def test_create_show_update_delete_group(cloud):
    r = cloud.request("POST", "/v3/groups", json={"group": {
        "name": "ops", "description": "Operators", "pager": "yes"}})
    assert r.status_code == 201, r.text
    group = r.json()["group"]
    assert group["name"] == "ops" and group["description"] == "Operators"
    assert group["domain_id"] == "default" and group["pager"] == "yes"
    assert group["links"] == {"self": f"http://127.0.0.1:5000/v3/groups/{group['id']}"}
    r = cloud.request("GET", f"/v3/groups/{group['id']}")
    assert r.status_code == 200 and r.json()["group"] == group
    r = cloud.request("PATCH", f"/v3/groups/{group['id']}", json={"group": {
        "name": "sre", "description": None, "pager": "no"}})
    assert r.status_code == 200, r.text
    updated = r.json()["group"]
    assert (updated["name"], updated["description"], updated["pager"]) == ("sre", "", "no")
    assert cloud.request("GET", f"/v3/groups/{group['id']}").json()["group"] == updated
    r = cloud.request("DELETE", f"/v3/groups/{group['id']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(cloud.request("GET", f"/v3/groups/{group['id']}"), 404, "group")
    assert_error(cloud.request("DELETE", f"/v3/groups/{group['id']}"), 404)
    assert_error(cloud.request("PATCH", f"/v3/groups/{group['id']}",
                               json={"group": {"name": "x"}}), 404)


def test_duplicates_domains_and_lists(cloud):
    r = cloud.request("POST", "/v3/domains", json={"domain": {"name": "other"}})
    other = r.json()["domain"]["id"]
    a = create_group(cloud, "devs")
    b = create_group(cloud, "devs", domain_id=other)
    c = create_group(cloud, "qa")
    assert b["domain_id"] == other
    assert_error(cloud.request("POST", "/v3/groups", json={"group": {"name": "devs"}}),
                 409, "devs")
    assert_error(cloud.request("PATCH", f"/v3/groups/{c['id']}",
                               json={"group": {"name": "devs"}}), 409)
    r = cloud.request("POST", "/v3/groups", json={"group": {"name": "x", "domain_id": "no"}})
    assert_error(r, 404, "domain")
    r = cloud.request("GET", "/v3/groups")
    assert r.status_code == 200
    assert {g["id"] for g in r.json()["groups"]} == {a["id"], b["id"], c["id"]}
    assert r.json()["links"]["self"] == "http://127.0.0.1:5000/v3/groups"
    r = cloud.request("GET", "/v3/groups?name=devs")
    assert {g["id"] for g in r.json()["groups"]} == {a["id"], b["id"]}
    r = cloud.request("GET", f"/v3/groups?name=devs&domain_id={other}")
    assert [g["id"] for g in r.json()["groups"]] == [b["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "group/name"),
    ({"name": ""}, "group/name"),
    ({"name": "  "}, "group/name"),
    ({"name": "g" * 256}, "group/name"),
    ({"name": 1}, "group/name"),
    ({"name": "g", "description": 1}, "group/description"),
    ({"name": "g", "domain_id": 1}, "group/domain_id"),
])
def test_bad_create_bodies_are_400_naming_the_field(cloud, body, field):
    assert_error(cloud.request("POST", "/v3/groups", json={"group": body}), 400, field)


@pytest.mark.parametrize(("body", "word"), [
    ({}, "group"), ({"name": None}, "group/name"), ({"name": ""}, "group/name"),
    ({"domain_id": "elsewhere"}, "Domain ID"), ({"id": "other"}, "group/id"),
])
def test_bad_updates(cloud, body, word):
    group = create_group(cloud, "target")
    r = cloud.request("PATCH", f"/v3/groups/{group['id']}", json={"group": body})
    assert_error(r, 400, word)


# -- membership -------------------------------------------------------------------------

def test_membership(cloud):
    group = create_group(cloud, "team")
    alice = create_user(cloud, "alice")
    bob = create_user(cloud, "bob", enabled=False)
    url = f"/v3/groups/{group['id']}/users"
    for user in (alice, bob):
        r = cloud.request("PUT", f"{url}/{user['id']}")
        assert r.status_code == 204 and r.content == b""
    assert cloud.request("PUT", f"{url}/{alice['id']}").status_code == 204  # no change
    assert cloud.request("HEAD", f"{url}/{alice['id']}").status_code == 204
    assert cloud.request("GET", f"{url}/{alice['id']}").status_code == 204
    r = cloud.request("GET", url)
    assert r.status_code == 200
    assert [u["id"] for u in r.json()["users"]] == [alice["id"], bob["id"]]
    assert all("password" not in u for u in r.json()["users"])
    assert r.json()["links"]["self"].endswith(url)
    r = cloud.request("GET", f"{url}?enabled=false")
    assert [u["id"] for u in r.json()["users"]] == [bob["id"]]
    r = cloud.request("GET", f"{url}?name=alice")
    assert [u["id"] for u in r.json()["users"]] == [alice["id"]]
    assert cloud.request("DELETE", f"{url}/{bob['id']}").status_code == 204
    assert_error(cloud.request("DELETE", f"{url}/{bob['id']}"), 404, "not a member")
    assert_error(cloud.request("GET", f"{url}/{bob['id']}"), 404, "not a member")
    assert cloud.request("HEAD", f"{url}/{bob['id']}").status_code == 404
    assert [u["id"] for u in cloud.request("GET", url).json()["users"]] == [alice["id"]]


def test_membership_with_unknown_group_or_user_is_404(cloud):
    group = create_group(cloud, "team")
    user = create_user(cloud, "carl")
    for method in ("PUT", "GET", "DELETE"):
        assert_error(cloud.request(method, f"/v3/groups/{MISSING}/users/{user['id']}"),
                     404, "group")
        assert_error(cloud.request(method, f"/v3/groups/{group['id']}/users/{MISSING}"),
                     404, "user")
    assert_error(cloud.request("GET", f"/v3/groups/{MISSING}/users"), 404, "group")


# -- roles through groups ---------------------------------------------------------------

def test_group_roles_reach_members_while_they_are_members(cloud):
    group = create_group(cloud, "builders")
    project = create_project(cloud, "factory")
    user = create_user(cloud, "dora")
    grant(cloud, "GroupProject", group["id"], project["id"])
    assert_error(login(cloud, user["id"], project_id=project["id"]), 401)
    url = f"/v3/groups/{group['id']}/users/{user['id']}"
    assert cloud.request("PUT", url).status_code == 204
    token = token_for(cloud, user["id"], project_id=project["id"])
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    assert cloud.request("GET", f"/v3/projects/{project['id']}", token=token).status_code \
        == 200
    assert cloud.request("DELETE", url).status_code == 204
    assert not token_works(cloud, token)
    assert_error(login(cloud, user["id"], project_id=project["id"]), 401)


def test_deleting_a_group_removes_memberships_assignments_and_roles(cloud):
    group = create_group(cloud, "temps")
    project = create_project(cloud, "office")
    user = create_user(cloud, "eve")
    grant(cloud, "GroupProject", group["id"], project["id"])
    cloud.request("PUT", f"/v3/groups/{group['id']}/users/{user['id']}")
    token = token_for(cloud, user["id"], project_id=project["id"])
    assert cloud.request("DELETE", f"/v3/groups/{group['id']}").status_code == 204
    assert not token_works(cloud, token)
    ident = cloud.services.identity
    with ident.db.session() as session:
        assert session.scalar(select(Assignment).where(
            Assignment.actor_id == group["id"])) is None
        assert session.scalar(select(GroupMembership).where(
            GroupMembership.group_id == group["id"])) is None
    r = cloud.request("GET", f"/v3/users/{user['id']}/groups")
    assert r.status_code == 200 and r.json()["groups"] == []
    token_for(cloud, user["id"], PASSWORD)  # the user itself is untouched


# -- policy ------------------------------------------------------------------------------

def test_non_admins_cannot_manage_groups(cloud):
    user, _, token = member(cloud, "finn")
    group = create_group(cloud, "admins-only")
    gid = group["id"]
    for method, path, body in [
        ("POST", "/v3/groups", {"group": {"name": "mine"}}),
        ("GET", "/v3/groups", None),
        ("GET", f"/v3/groups/{gid}", None),
        ("PATCH", f"/v3/groups/{gid}", {"group": {"name": "mine"}}),
        ("DELETE", f"/v3/groups/{gid}", None),
        ("GET", f"/v3/groups/{gid}/users", None),
        ("PUT", f"/v3/groups/{gid}/users/{user['id']}", None),
        ("GET", f"/v3/groups/{gid}/users/{user['id']}", None),
        ("DELETE", f"/v3/groups/{gid}/users/{user['id']}", None),
    ]:
        assert_error(cloud.request(method, path, token=token, json=body), 403, "identity:")
    for method, path in [("GET", "/v3/groups"), ("POST", "/v3/groups"),
                         ("GET", f"/v3/groups/{gid}"),
                         ("PUT", f"/v3/groups/{gid}/users/{user['id']}")]:
        assert_error(cloud.request(method, path, token=None, json={}), 401)

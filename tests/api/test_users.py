"""/v3/users, password changes, a user's projects and groups, in process."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from onestack.db.models import ApplicationCredential, Assignment, GroupMembership, User

PASSWORD = "user-test-secret"


# -- helpers (the project and group tests use them too) -------------------------------

def assert_error(r, status: int, *words: str) -> None:
    """A Keystone error body with this status, whose message has every word given."""
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["title"] and error["message"], error
    for word in words:
        assert word in error["message"], error["message"]


def create_user(cloud, name: str, password: str | None = PASSWORD, **fields) -> dict:
    body = {"name": name, **fields}
    if password is not None:
        body["password"] = password
    r = cloud.request("POST", "/v3/users", json={"user": body})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def create_project(cloud, name: str, **fields) -> dict:
    r = cloud.request("POST", "/v3/projects", json={"project": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["project"]


def grant(cloud, type_: str, actor_id: str, target_id: str, role: str = "member") -> None:
    """A role assignment written directly (the grants API is tested on its own)."""
    ident = cloud.services.identity
    role_id = ident.roles.find(role).id
    with ident.db.session() as session:
        ident.assignments.grant(session, type_, actor_id, target_id, role_id)


def login(cloud, user_id: str, password: str = PASSWORD, project_id: str | None = None):
    """A password login by user id; returns the raw response."""
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": password}}}}}
    if project_id:
        body["auth"]["scope"] = {"project": {"id": project_id}}
    return cloud.client.post("/v3/auth/tokens", json=body)


def token_for(cloud, user_id: str, password: str = PASSWORD,
              project_id: str | None = None) -> str:
    r = login(cloud, user_id, password, project_id)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def token_works(cloud, token: str) -> bool:
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def member(cloud, name: str) -> tuple[dict, dict, str]:
    """A user with `member` on a project of its own: (user, project, project token)."""
    user = create_user(cloud, name)
    project = create_project(cloud, f"{name}-project")
    grant(cloud, "UserProject", user["id"], project["id"])
    return user, project, token_for(cloud, user["id"], project_id=project["id"])


# -- create, show ---------------------------------------------------------------------

def test_create_and_show_user(cloud):
    project = create_project(cloud, "home")
    r = cloud.request("POST", "/v3/users", json={"user": {
        "name": "alice", "password": PASSWORD, "email": "alice@example.org",
        "description": "Alice", "default_project_id": project["id"], "team": "blue",
        "options": {"ignore_password_expiry": True}}})
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert user["name"] == "alice" and user["domain_id"] == "default"
    assert user["enabled"] is True and user["email"] == "alice@example.org"
    assert user["description"] == "Alice" and user["team"] == "blue"
    assert user["default_project_id"] == project["id"]
    assert user["options"] == {"ignore_password_expiry": True}
    assert user["password_expires_at"] is None
    assert user["links"]["self"] == f"http://127.0.0.1:5000/v3/users/{user['id']}"
    assert "password" not in user and "password_hash" not in user
    r = cloud.request("GET", f"/v3/users/{user['id']}")
    assert r.status_code == 200 and r.json()["user"] == user
    assert cloud.request("HEAD", f"/v3/users/{user['id']}").status_code == 200


def test_minimal_user_has_no_password_and_no_default_project(cloud):
    user = create_user(cloud, "bare", password=None)
    assert "default_project_id" not in user and "email" not in user
    assert_error(login(cloud, user["id"], "anything"), 401)


def test_new_user_with_a_role_can_log_in(cloud):
    user = create_user(cloud, "bob")
    project = create_project(cloud, "bobs")
    r = login(cloud, user["id"], project_id=project["id"])
    assert_error(r, 401)  # no role yet
    grant(cloud, "UserProject", user["id"], project["id"])
    token = cloud.login("bob", PASSWORD, project="bobs")
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert r.json()["token"]["project"]["id"] == project["id"]
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    assert_error(login(cloud, user["id"], "wrong"), 401)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "user/name"),
    ({"name": ""}, "user/name"),
    ({"name": "   "}, "user/name"),
    ({"name": "x" * 256}, "user/name"),
    ({"name": 5}, "user/name"),
    ({"name": "u", "password": 5}, "user/password"),
    ({"name": "u", "enabled": "yes"}, "user/enabled"),
    ({"name": "u", "domain_id": 7}, "user/domain_id"),
    ({"name": "u", "default_project_id": ["x"]}, "user/default_project_id"),
    ({"name": "u", "email": {"a": 1}}, "user/email"),
    ({"name": "u", "options": {"shiny": True}}, "user/options/shiny"),
    ({"name": "u", "options": {"lock_password": "yes"}}, "user/options/lock_password"),
    ({"name": "u", "options": {"multi_factor_auth_rules": [[]]}},
     "user/options/multi_factor_auth_rules"),
    ({"name": "u", "options": []}, "user/options"),
])
def test_bad_create_bodies_are_400_naming_the_field(cloud, body, field):
    r = cloud.request("POST", "/v3/users", json={"user": body})
    assert_error(r, 400, field)


def test_bad_envelopes_are_400(cloud):
    assert_error(cloud.request("POST", "/v3/users", json={"users": {}}), 400, "user")
    assert_error(cloud.request("POST", "/v3/users", json={"user": []}), 400, "user")
    assert_error(cloud.request("POST", "/v3/users", content=b"{nope"), 400)


def test_all_known_options_are_accepted_and_null_removes(cloud):
    options = {"ignore_change_password_upon_first_use": True, "ignore_password_expiry": False,
               "ignore_lockout_failure_attempts": True, "lock_password": False,
               "ignore_user_inactivity": True, "multi_factor_auth_enabled": False,
               "multi_factor_auth_rules": [["password", "totp"]]}
    user = create_user(cloud, "opts", options=options)
    assert user["options"] == options
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"options": {
        "lock_password": True, "ignore_user_inactivity": None}}})
    assert r.status_code == 200, r.text
    expected = {**options, "lock_password": True}
    del expected["ignore_user_inactivity"]
    assert r.json()["user"]["options"] == expected


def test_minimum_password_length(cloud):
    cloud.config.identity.minimum_password_length = 12
    r = cloud.request("POST", "/v3/users", json={"user": {"name": "short", "password": "abc"}})
    assert_error(r, 400, "user/password", "12")
    user = create_user(cloud, "long", password="a-long-password")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"password": "abc"}})
    assert_error(r, 400, "user/password")


def test_duplicate_name_is_409_unknown_domain_404(cloud):
    create_user(cloud, "carol")
    r = cloud.request("POST", "/v3/users", json={"user": {"name": "carol"}})
    assert_error(r, 409, "carol")
    r = cloud.request("POST", "/v3/domains", json={"domain": {"name": "other"}})
    other = r.json()["domain"]["id"]
    assert create_user(cloud, "carol", domain_id=other)["domain_id"] == other
    r = cloud.request("POST", "/v3/users", json={"user": {"name": "dan", "domain_id": "nope"}})
    assert_error(r, 404, "nope")


def test_default_project_may_be_missing_but_not_a_domain(cloud):
    assert create_user(cloud, "erin", default_project_id="f" * 32)["default_project_id"]
    r = cloud.request("POST", "/v3/users", json={"user": {
        "name": "fred", "default_project_id": "default"}})
    assert_error(r, 400, "default_project_id")


def test_get_unknown_user_is_404(cloud):
    assert_error(cloud.request("GET", f"/v3/users/{'0' * 32}"), 404, "user")


# -- list -------------------------------------------------------------------------------

def test_list_users_with_filters(cloud):
    a = create_user(cloud, "anna")
    b = create_user(cloud, "bert", enabled=False)
    r = cloud.request("POST", "/v3/domains", json={"domain": {"name": "elsewhere"}})
    other = r.json()["domain"]["id"]
    c = create_user(cloud, "anna", domain_id=other)
    r = cloud.request("GET", "/v3/users")
    assert r.status_code == 200
    ids = {u["id"] for u in r.json()["users"]}
    assert {a["id"], b["id"], c["id"], cloud.admin_user_id} <= ids
    assert r.json()["links"] == {"self": "http://127.0.0.1:5000/v3/users",
                                 "previous": None, "next": None}
    r = cloud.request("GET", "/v3/users?name=anna")
    assert {u["id"] for u in r.json()["users"]} == {a["id"], c["id"]}
    r = cloud.request("GET", f"/v3/users?name=anna&domain_id={other}")
    assert [u["id"] for u in r.json()["users"]] == [c["id"]]
    r = cloud.request("GET", "/v3/users?enabled=false")
    assert [u["id"] for u in r.json()["users"]] == [b["id"]]
    assert all("password" not in u for u in cloud.request("GET", "/v3/users").json()["users"])


# -- update, delete ---------------------------------------------------------------------

def test_update_user(cloud):
    user = create_user(cloud, "gina", team="red")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {
        "name": "georgina", "email": "g@example.org", "description": "G", "team": "green",
        "floor": 3}})
    assert r.status_code == 200, r.text
    updated = r.json()["user"]
    assert updated["name"] == "georgina" and updated["email"] == "g@example.org"
    assert updated["description"] == "G"
    assert (updated["team"], updated["floor"]) == ("green", 3)
    assert cloud.request("GET", f"/v3/users/{user['id']}").json()["user"] == updated
    # the old name is free, the new one taken
    create_user(cloud, "gina")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"name": "gina"}})
    assert_error(r, 409)


@pytest.mark.parametrize(("body", "status", "word"), [
    ({}, 400, "user"),
    ({"domain_id": "other"}, 400, "Domain ID"),
    ({"id": "other"}, 400, "user/id"),
    ({"enabled": None}, 400, "user/enabled"),
    ({"name": None}, 400, "user/name"),
    ({"enabled": 1}, 400, "user/enabled"),
    ({"options": {"nope": True}}, 400, "user/options/nope"),
])
def test_bad_updates(cloud, body, status, word):
    user = create_user(cloud, "hank")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": body})
    assert_error(r, status, word)


def test_update_or_delete_unknown_user_is_404(cloud):
    missing = "0" * 32
    assert_error(cloud.request("PATCH", f"/v3/users/{missing}",
                               json={"user": {"name": "x"}}), 404)
    assert_error(cloud.request("DELETE", f"/v3/users/{missing}"), 404)


def test_admin_password_reset_revokes_tokens(cloud):
    user, project, token = member(cloud, "ivan")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"password": "brand-new-secret"}})
    assert r.status_code == 200, r.text
    assert "password" not in r.json()["user"]
    assert not token_works(cloud, token)
    assert_error(login(cloud, user["id"], PASSWORD), 401)
    token_for(cloud, user["id"], "brand-new-secret", project["id"])


def test_disabling_a_user_invalidates_its_tokens(cloud):
    user, project, token = member(cloud, "jane")
    unscoped = token_for(cloud, user["id"])
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"enabled": False}})
    assert r.status_code == 200 and r.json()["user"]["enabled"] is False
    assert not token_works(cloud, token) and not token_works(cloud, unscoped)
    assert_error(login(cloud, user["id"], project_id=project["id"]), 401)
    r = cloud.request("PATCH", f"/v3/users/{user['id']}", json={"user": {"enabled": True}})
    assert r.status_code == 200
    assert not token_works(cloud, token)  # revoked for good, as in Keystone
    assert token_works(cloud, token_for(cloud, user["id"], project_id=project["id"]))


def test_deleting_a_user_invalidates_tokens_and_removes_what_hangs_on_it(cloud):
    user, project, token = member(cloud, "kate")
    r = cloud.request("POST", "/v3/groups", json={"group": {"name": "kates"}})
    group_id = r.json()["group"]["id"]
    assert cloud.request("PUT", f"/v3/groups/{group_id}/users/{user['id']}").status_code == 204
    ident = cloud.services.identity
    with ident.db.session() as session:
        session.add(ApplicationCredential(id="c" * 32, name="ci", user_id=user["id"],
                                          project_id=project["id"], secret_hash="x"))
    r = cloud.request("DELETE", f"/v3/users/{user['id']}")
    assert r.status_code == 204 and r.content == b""
    assert not token_works(cloud, token)
    assert_error(cloud.request("GET", f"/v3/users/{user['id']}"), 404)
    assert_error(cloud.request("DELETE", f"/v3/users/{user['id']}"), 404)
    with ident.db.session() as session:
        assert session.scalar(select(Assignment).where(
            Assignment.actor_id == user["id"])) is None
        assert session.scalar(select(GroupMembership).where(
            GroupMembership.user_id == user["id"])) is None
        assert session.get(ApplicationCredential, "c" * 32) is None
        assert session.get(User, user["id"]) is None


# -- own password ---------------------------------------------------------------------

def change_password(cloud, user_id, token, original, new):
    return cloud.request("POST", f"/v3/users/{user_id}/password", token=token,
                         json={"user": {"original_password": original, "password": new}})


def test_change_own_password(cloud):
    user, project, token = member(cloud, "liam")
    other = token_for(cloud, user["id"])
    r = change_password(cloud, user["id"], token, PASSWORD, "liams-new-secret")
    assert r.status_code == 204 and r.content == b""
    assert not token_works(cloud, token) and not token_works(cloud, other)
    assert_error(login(cloud, user["id"], PASSWORD), 401)
    token_for(cloud, user["id"], "liams-new-secret", project["id"])


def test_change_password_needs_the_original(cloud):
    user, _, token = member(cloud, "mia")
    r = change_password(cloud, user["id"], token, "not-it", "mias-new-secret")
    assert_error(r, 401, "password")
    assert token_works(cloud, token)
    token_for(cloud, user["id"])  # unchanged


def test_change_password_is_for_oneself_and_admins(cloud):
    user, _, token = member(cloud, "ned")
    r = change_password(cloud, cloud.admin_user_id, token, "admin-secret", "owned-admin")
    assert_error(r, 403, "identity:change_password")
    # without a token (as Keystone, for a user whose password expired) the original
    # password alone authenticates the change
    r = change_password(cloud, user["id"], None, "not-it", "something-else")
    assert_error(r, 401)
    r = change_password(cloud, user["id"], None, PASSWORD, "tokenless-change")
    assert r.status_code == 204, r.text
    # an admin may make the change too, but only with the original password (it resets
    # one without it with PATCH)
    r = change_password(cloud, user["id"], "admin", "not-it", "something-else")
    assert_error(r, 401)
    r = change_password(cloud, user["id"], "admin", "tokenless-change", "something-else")
    assert r.status_code == 204, r.text
    token_for(cloud, user["id"], "something-else")


@pytest.mark.parametrize(("body", "field"), [
    ({"password": "new-secret"}, "user/original_password"),
    ({"original_password": PASSWORD}, "user/password"),
    ({"original_password": PASSWORD, "password": 5}, "user/password"),
    ({"original_password": PASSWORD, "password": "x", "extra": 1}, "user/extra"),
])
def test_change_password_bad_bodies(cloud, body, field):
    user, _, token = member(cloud, "olga")
    r = cloud.request("POST", f"/v3/users/{user['id']}/password", token=token,
                      json={"user": body})
    assert_error(r, 400, field)


def test_change_password_policy_and_lock(cloud):
    cloud.config.identity.minimum_password_length = 10
    user, _, token = member(cloud, "pete")
    assert_error(change_password(cloud, user["id"], token, PASSWORD, "short"), 400,
                 "user/password")
    r = cloud.request("PATCH", f"/v3/users/{user['id']}",
                      json={"user": {"options": {"lock_password": True}}})
    assert r.status_code == 200
    assert_error(change_password(cloud, user["id"], token, PASSWORD, "long-enough-one"),
                 403, "password")
    token_for(cloud, user["id"])  # unchanged


def test_lockout_and_the_option_that_ignores_it(cloud):
    cloud.config.identity.lockout_failure_attempts = 2
    plain = create_user(cloud, "quinn")
    immune = create_user(cloud, "rita", options={"ignore_lockout_failure_attempts": True})
    for user in (plain, immune):
        for _ in range(3):
            assert_error(login(cloud, user["id"], "wrong"), 401)
    assert_error(login(cloud, plain["id"]), 401, "locked")
    token_for(cloud, immune["id"])


# -- a user's projects and groups -------------------------------------------------------

def test_list_user_projects(cloud):
    user, project, token = member(cloud, "sam")
    other = create_project(cloud, "sams-other", enabled=False)
    grant(cloud, "UserProject", user["id"], other["id"], "reader")
    create_project(cloud, "not-sams")
    r = cloud.request("POST", "/v3/groups", json={"group": {"name": "sam-group"}})
    group_id = r.json()["group"]["id"]
    via_group = create_project(cloud, "via-group")
    grant(cloud, "GroupProject", group_id, via_group["id"])
    cloud.request("PUT", f"/v3/groups/{group_id}/users/{user['id']}")
    expected = {project["id"], other["id"], via_group["id"]}
    for tok in ("admin", token):
        r = cloud.request("GET", f"/v3/users/{user['id']}/projects", token=tok)
        assert r.status_code == 200, r.text
        assert {p["id"] for p in r.json()["projects"]} == expected
        assert r.json()["links"]["self"].endswith(f"/v3/users/{user['id']}/projects")
    r = cloud.request("GET", f"/v3/users/{user['id']}/projects?enabled=false")
    assert [p["id"] for p in r.json()["projects"]] == [other["id"]]
    r = cloud.request("GET", f"/v3/users/{user['id']}/projects?name=via-group")
    assert [p["id"] for p in r.json()["projects"]] == [via_group["id"]]
    assert_error(cloud.request("GET", f"/v3/users/{'0' * 32}/projects"), 404)


def test_list_user_groups(cloud):
    user, _, token = member(cloud, "tess")
    ids = []
    for name in ("g1", "g2"):
        r = cloud.request("POST", "/v3/groups", json={"group": {"name": name}})
        ids.append(r.json()["group"]["id"])
        cloud.request("PUT", f"/v3/groups/{ids[-1]}/users/{user['id']}")
    cloud.request("POST", "/v3/groups", json={"group": {"name": "g3"}})
    for tok in ("admin", token):
        r = cloud.request("GET", f"/v3/users/{user['id']}/groups", token=tok)
        assert r.status_code == 200, r.text
        assert [g["id"] for g in r.json()["groups"]] == ids
    r = cloud.request("GET", f"/v3/users/{user['id']}/groups?name=g2")
    assert [g["id"] for g in r.json()["groups"]] == ids[1:]
    assert_error(cloud.request("GET", f"/v3/users/{'0' * 32}/groups"), 404)


# -- policy ------------------------------------------------------------------------------

def test_non_admin_manages_only_itself(cloud):
    user, _, token = member(cloud, "uma")
    admin_id = cloud.admin_user_id
    r = cloud.request("GET", f"/v3/users/{user['id']}", token=token)
    assert r.status_code == 200 and r.json()["user"]["name"] == "uma"
    for method, path, body in [
        ("GET", f"/v3/users/{admin_id}", None),
        ("GET", "/v3/users", None),
        ("POST", "/v3/users", {"user": {"name": "mallory"}}),
        ("PATCH", f"/v3/users/{admin_id}", {"user": {"enabled": False}}),
        ("PATCH", f"/v3/users/{user['id']}", {"user": {"name": "boss"}}),
        ("DELETE", f"/v3/users/{admin_id}", None),
        ("GET", f"/v3/users/{admin_id}/projects", None),
        ("GET", f"/v3/users/{admin_id}/groups", None),
        ("GET", f"/v3/users/{'0' * 32}", None),
    ]:
        r = cloud.request(method, path, token=token, json=body)
        assert_error(r, 403, "identity:")
    for method, path in [("GET", "/v3/users"), ("POST", "/v3/users"),
                         ("GET", f"/v3/users/{admin_id}"), ("DELETE", f"/v3/users/{admin_id}")]:
        assert_error(cloud.request(method, path, token=None, json={}), 401)

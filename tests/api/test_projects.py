"""/v3/projects, the project hierarchy and /v3/projects/{id}/tags, in process."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from onestack.db.models import ApplicationCredential, Assignment
from tests.api.test_users import (
    assert_error,
    create_project,
    create_user,
    grant,
    login,
    member,
    token_works,
)

BASE = "http://127.0.0.1:5000/v3"


def create_domain(cloud, name: str) -> str:
    r = cloud.request("POST", "/v3/domains", json={"domain": {"name": name}})
    assert r.status_code == 201, r.text
    return r.json()["domain"]["id"]


def patch(cloud, project_id: str, token: str = "admin", **fields):
    return cloud.request("PATCH", f"/v3/projects/{project_id}", token=token,
                         json={"project": fields})


def names(r) -> set[str]:
    assert r.status_code == 200, r.text
    return {p["name"] for p in r.json()["projects"]}


# -- create, show ---------------------------------------------------------------------

def test_create_and_show_project(cloud):
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "web", "description": "The web tier", "tags": ["prod", "eu"],
        "cost_centre": "42", "id": "ignored"}})
    assert r.status_code == 201, r.text
    project = r.json()["project"]
    assert project["id"] != "ignored" and len(project["id"]) == 32
    assert project["name"] == "web" and project["description"] == "The web tier"
    assert project["domain_id"] == "default" and project["parent_id"] == "default"
    assert project["enabled"] is True and project["is_domain"] is False
    assert project["tags"] == ["eu", "prod"] and project["options"] == {}
    assert project["cost_centre"] == "42"
    assert project["links"] == {"self": f"{BASE}/projects/{project['id']}"}
    r = cloud.request("GET", f"/v3/projects/{project['id']}")
    assert r.status_code == 200 and r.json()["project"] == project
    assert cloud.request("HEAD", f"/v3/projects/{project['id']}").status_code == 200


def test_create_in_another_domain_and_duplicate_names(cloud):
    other = create_domain(cloud, "other")
    create_project(cloud, "shared")
    project = create_project(cloud, "shared", domain_id=other)
    assert project["domain_id"] == other and project["parent_id"] == other
    r = cloud.request("POST", "/v3/projects", json={"project": {"name": "shared"}})
    assert_error(r, 409, "shared")
    # names are trimmed, as in Keystone
    r = cloud.request("POST", "/v3/projects", json={"project": {"name": " shared "}})
    assert_error(r, 409)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "project/name"),
    ({"name": ""}, "project/name"),
    ({"name": " \t"}, "project/name"),
    ({"name": "x" * 65}, "project/name"),
    ({"name": ["x"]}, "project/name"),
    ({"name": "p", "enabled": "true"}, "project/enabled"),
    ({"name": "p", "description": 5}, "project/description"),
    ({"name": "p", "domain_id": 5}, "project/domain_id"),
    ({"name": "p", "parent_id": ""}, "project/parent_id"),
    ({"name": "p", "is_domain": "no"}, "project/is_domain"),
    ({"name": "p", "tags": "a"}, "project/tags"),
    ({"name": "p", "tags": ["a/b"]}, "project/tags"),
    ({"name": "p", "tags": ["a,b"]}, "project/tags"),
    ({"name": "p", "tags": [""]}, "project/tags"),
    ({"name": "p", "tags": ["t" * 256]}, "project/tags"),
    ({"name": "p", "tags": ["a", "a"]}, "project/tags"),
    ({"name": "p", "tags": [f"t{i}" for i in range(81)]}, "project/tags"),
    ({"name": "p", "options": {"shiny": True}}, "project/options/shiny"),
    ({"name": "p", "options": {"immutable": "yes"}}, "project/options/immutable"),
])
def test_bad_create_bodies_are_400_naming_the_field(cloud, body, field):
    r = cloud.request("POST", "/v3/projects", json={"project": body})
    assert_error(r, 400, field)


def test_unknown_domain_or_parent_is_400(cloud):
    r = cloud.request("POST", "/v3/projects", json={"project": {"name": "p",
                                                                "domain_id": "nope"}})
    assert_error(r, 400, "project/domain_id", "nope")
    r = cloud.request("POST", "/v3/projects", json={"project": {"name": "p",
                                                                "parent_id": "0" * 32}})
    assert_error(r, 400, "project/parent_id")


def test_get_unknown_project_is_404(cloud):
    assert_error(cloud.request("GET", f"/v3/projects/{'0' * 32}"), 404, "project")


def test_is_domain_creates_a_domain(cloud):
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "acme", "is_domain": True, "description": "ACME"}})
    assert r.status_code == 201, r.text
    project = r.json()["project"]
    assert project["is_domain"] is True and project["domain_id"] is None
    r = cloud.request("GET", f"/v3/domains/{project['id']}")
    assert r.status_code == 200 and r.json()["domain"]["name"] == "acme"
    r = cloud.request("GET", "/v3/projects?is_domain=true")
    assert {"Default", "acme"} <= names(r)
    assert all(p["is_domain"] for p in r.json()["projects"])
    assert "acme" not in names(cloud.request("GET", "/v3/projects"))
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "sub", "is_domain": True, "parent_id": project["id"]}})
    assert_error(r, 400, "project/parent_id")


# -- hierarchy ------------------------------------------------------------------------

def test_children_live_in_their_parents_domain(cloud):
    other = create_domain(cloud, "org")
    parent = create_project(cloud, "parent", domain_id=other)
    child = create_project(cloud, "child", parent_id=parent["id"])
    assert child["parent_id"] == parent["id"] and child["domain_id"] == other
    same = create_project(cloud, "child2", parent_id=parent["id"], domain_id=other)
    assert same["domain_id"] == other
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "lost", "parent_id": parent["id"], "domain_id": "default"}})
    assert_error(r, 400, "project/domain_id")
    # naming the domain as parent makes a top-level project
    top = create_project(cloud, "top", parent_id=other)
    assert top["parent_id"] == other and top["domain_id"] == other


def test_parent_with_children_cannot_be_deleted(cloud):
    parent = create_project(cloud, "parent")
    child = create_project(cloud, "child", parent_id=parent["id"])
    r = cloud.request("DELETE", f"/v3/projects/{parent['id']}")
    assert_error(r, 403, "not a leaf")
    assert cloud.request("DELETE", f"/v3/projects/{child['id']}").status_code == 204
    assert cloud.request("DELETE", f"/v3/projects/{parent['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/projects/{parent['id']}"), 404)
    assert_error(cloud.request("DELETE", f"/v3/projects/{parent['id']}"), 404)


def test_enabling_and_disabling_follow_the_hierarchy(cloud):
    parent = create_project(cloud, "parent")
    child = create_project(cloud, "child", parent_id=parent["id"])
    assert_error(patch(cloud, parent["id"], enabled=False), 403, "subtree")
    assert patch(cloud, child["id"], enabled=False).status_code == 200
    assert patch(cloud, parent["id"], enabled=False).json()["project"]["enabled"] is False
    assert_error(patch(cloud, child["id"], enabled=True), 403, "disabled parents")
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "grandchild", "parent_id": child["id"]}})
    assert_error(r, 400, "disabled")
    assert patch(cloud, parent["id"], enabled=True).status_code == 200
    assert patch(cloud, child["id"], enabled=True).status_code == 200


def test_hierarchy_depth_is_limited(cloud):
    parent_id = None
    for level in range(5):
        fields = {"parent_id": parent_id} if parent_id else {}
        parent_id = create_project(cloud, f"level{level}", **fields)["id"]
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "too-deep", "parent_id": parent_id}})
    assert_error(r, 403, "depth")


def test_parents_and_subtree_query_options(cloud):
    a = create_project(cloud, "a")
    b = create_project(cloud, "b", parent_id=a["id"])
    c = create_project(cloud, "c", parent_id=b["id"])
    d = create_project(cloud, "d", parent_id=b["id"])
    r = cloud.request("GET", f"/v3/projects/{c['id']}?parents_as_ids")
    assert r.json()["project"]["parents"] == {b["id"]: {a["id"]: {"default": None}}}
    r = cloud.request("GET", f"/v3/projects/{a['id']}?subtree_as_ids")
    assert r.json()["project"]["subtree"] == {b["id"]: {c["id"]: None, d["id"]: None}}
    r = cloud.request("GET", f"/v3/projects/{d['id']}?subtree_as_ids")
    assert r.json()["project"]["subtree"] is None
    # the lists show only the projects the caller holds a role on
    grant(cloud, "UserProject", cloud.admin_user_id, b["id"])
    r = cloud.request("GET", f"/v3/projects/{c['id']}?parents_as_list")
    assert [p["project"]["id"] for p in r.json()["project"]["parents"]] == [b["id"]]
    grant(cloud, "UserProject", cloud.admin_user_id, c["id"])
    r = cloud.request("GET", f"/v3/projects/{a['id']}?subtree_as_list")
    assert [p["project"]["id"] for p in r.json()["project"]["subtree"]] == [b["id"], c["id"]]
    r = cloud.request("GET", f"/v3/projects/{a['id']}?subtree_as_list&subtree_as_ids")
    assert_error(r, 400, "subtree_as_list")
    r = cloud.request("GET", f"/v3/projects/{a['id']}?parents_as_list&parents_as_ids")
    assert_error(r, 400, "parents_as_list")


# -- list -----------------------------------------------------------------------------

def test_list_projects_with_filters(cloud):
    other = create_domain(cloud, "other")
    web = create_project(cloud, "web", tags=["prod", "eu"])
    create_project(cloud, "db", tags=["prod", "us"])
    create_project(cloud, "dev", tags=["dev"], enabled=False)
    create_project(cloud, "web", domain_id=other)
    create_project(cloud, "api", parent_id=web["id"], tags=["eu"])
    r = cloud.request("GET", "/v3/projects")
    assert names(r) == {"admin", "web", "db", "dev", "api"}
    assert r.json()["links"]["self"] == f"{BASE}/projects"
    assert names(cloud.request("GET", "/v3/projects?name=web")) == {"web"}
    assert len(cloud.request("GET", "/v3/projects?name=web").json()["projects"]) == 2
    assert names(cloud.request("GET", f"/v3/projects?domain_id={other}")) == {"web"}
    assert names(cloud.request("GET", "/v3/projects?enabled=false")) == {"dev"}
    assert names(cloud.request("GET", f"/v3/projects?parent_id={web['id']}")) == {"api"}
    assert names(cloud.request("GET", "/v3/projects?parent_id=default")) == \
        {"admin", "web", "db", "dev"}
    assert names(cloud.request("GET", "/v3/projects?tags=prod")) == {"web", "db"}
    assert names(cloud.request("GET", "/v3/projects?tags=prod,eu")) == {"web"}
    assert names(cloud.request("GET", "/v3/projects?tags-any=us,dev")) == {"db", "dev"}
    # (the other domain's "web" has no tags)
    assert names(cloud.request("GET", "/v3/projects?not-tags=prod,eu")) == \
        {"admin", "db", "dev", "api", "web"}
    assert len(cloud.request("GET", "/v3/projects?not-tags=prod,eu").json()["projects"]) == 5
    assert names(cloud.request("GET", "/v3/projects?not-tags-any=prod,dev")) == \
        {"admin", "api", "web"}
    assert names(cloud.request("GET", "/v3/projects?tags=eu&not-tags=prod")) == {"api"}
    assert names(cloud.request("GET", "/v3/projects?tags=nothing")) == set()
    assert_error(cloud.request("GET", "/v3/projects?is_domain=maybe"), 400, "is_domain")


# -- update ---------------------------------------------------------------------------

def test_update_project(cloud):
    project = create_project(cloud, "blue", cost="1")
    r = patch(cloud, project["id"], name="green", description="now green", cost="2",
              owner="ops", tags=["x"])
    assert r.status_code == 200, r.text
    updated = r.json()["project"]
    assert updated["name"] == "green" and updated["description"] == "now green"
    assert (updated["cost"], updated["owner"], updated["tags"]) == ("2", "ops", ["x"])
    assert cloud.request("GET", f"/v3/projects/{project['id']}").json()["project"] == updated
    assert patch(cloud, project["id"], description=None).json()["project"]["description"] \
        == ""
    create_project(cloud, "blue")
    assert_error(patch(cloud, project["id"], name="blue"), 409)
    assert_error(patch(cloud, "0" * 32, name="x"), 404)


@pytest.mark.parametrize(("fields", "status", "word"), [
    ({}, 400, "project"),
    ({"domain_id": "other"}, 400, "domain_id"),
    ({"is_domain": True}, 400, "is_domain"),
    ({"parent_id": "0" * 32}, 403, "parent_id"),
    ({"name": None}, 400, "project/name"),
    ({"enabled": None}, 400, "project/enabled"),
    ({"enabled": "no"}, 400, "project/enabled"),
    ({"tags": ["a", "a"]}, 400, "project/tags"),
    ({"options": {"x": 1}}, 400, "project/options/x"),
])
def test_bad_updates(cloud, fields, status, word):
    project = create_project(cloud, "target")
    assert_error(patch(cloud, project["id"], **fields), status, word)


def test_immutable_projects(cloud):
    project = create_project(cloud, "frozen", options={"immutable": True})
    assert project["options"] == {"immutable": True}
    pid = project["id"]
    assert_error(patch(cloud, pid, name="thawed"), 403, "immutable")
    assert_error(patch(cloud, pid, name="thawed", options={"immutable": False}), 403)
    assert_error(cloud.request("DELETE", f"/v3/projects/{pid}"), 403, "immutable")
    assert_error(cloud.request("PUT", f"/v3/projects/{pid}/tags/x"), 403)
    assert_error(cloud.request("PUT", f"/v3/projects/{pid}/tags", json={"tags": []}), 403)
    r = patch(cloud, pid, options={"immutable": False})
    assert r.status_code == 200 and r.json()["project"]["options"] == {"immutable": False}
    assert patch(cloud, pid, name="thawed", options={"immutable": None}).status_code == 200
    assert cloud.request("DELETE", f"/v3/projects/{pid}").status_code == 204


# -- tokens ---------------------------------------------------------------------------

def test_disabling_a_project_invalidates_tokens_scoped_to_it(cloud):
    user, project, token = member(cloud, "vera")
    assert cloud.request("GET", f"/v3/projects/{project['id']}", token=token).status_code \
        == 200
    assert patch(cloud, project["id"], enabled=False).status_code == 200
    assert not token_works(cloud, token)
    assert_error(login(cloud, user["id"], project_id=project["id"]), 401)
    assert patch(cloud, project["id"], enabled=True).status_code == 200
    assert login(cloud, user["id"], project_id=project["id"]).status_code == 201


def test_deleting_a_project_removes_assignments_credentials_and_tokens(cloud):
    user, project, token = member(cloud, "walt")
    ident = cloud.services.identity
    with ident.db.session() as session:
        session.add(ApplicationCredential(id="a" * 32, name="ci", user_id=user["id"],
                                          project_id=project["id"], secret_hash="x"))
    r = cloud.request("DELETE", f"/v3/projects/{project['id']}")
    assert r.status_code == 204 and r.content == b""
    assert not token_works(cloud, token)
    with ident.db.session() as session:
        assert session.scalar(select(Assignment).where(
            Assignment.target_id == project["id"])) is None
        assert session.get(ApplicationCredential, "a" * 32) is None
    assert_error(cloud.request("GET", f"/v3/projects/{project['id']}"), 404)
    r = cloud.request("GET", f"/v3/users/{user['id']}/projects")
    assert r.status_code == 200 and r.json()["projects"] == []


# -- tags -----------------------------------------------------------------------------

def test_project_tags_api(cloud):
    pid = create_project(cloud, "tagged", tags=["a"])["id"]
    url = f"/v3/projects/{pid}/tags"
    r = cloud.request("GET", url)
    assert r.status_code == 200
    assert r.json() == {"tags": ["a"], "links": {"self": f"{BASE}/projects/{pid}/tags"}}
    r = cloud.request("PUT", url, json={"tags": ["x", "y"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["x", "y"]
    r = cloud.request("PUT", f"{url}/z")
    assert r.status_code == 201 and r.content == b""
    assert r.headers["Location"] == f"{BASE}/projects/{pid}/tags/z"
    assert cloud.request("PUT", f"{url}/z").status_code == 201  # already there: no change
    assert sorted(cloud.request("GET", url).json()["tags"]) == ["x", "y", "z"]
    assert cloud.request("GET", f"{url}/z").status_code == 204
    assert_error(cloud.request("GET", f"{url}/nope"), 404, "nope")
    assert cloud.request("DELETE", f"{url}/x").status_code == 204
    assert_error(cloud.request("DELETE", f"{url}/x"), 404)
    r = cloud.request("GET", f"/v3/projects/{pid}")
    assert sorted(r.json()["project"]["tags"]) == ["y", "z"]
    assert cloud.request("DELETE", url).status_code == 204
    assert cloud.request("GET", url).json()["tags"] == []
    r = cloud.request("PUT", f"{url}/caf%C3%A9 au lait")
    assert r.status_code == 201
    assert r.headers["Location"] == f"{BASE}/projects/{pid}/tags/caf%C3%A9%20au%20lait"
    assert cloud.request("GET", url).json()["tags"] == ["café au lait"]


def test_project_tags_bad_input(cloud):
    pid = create_project(cloud, "tagged")["id"]
    url = f"/v3/projects/{pid}/tags"
    assert_error(cloud.request("PUT", url, json={"tags": "a"}), 400, "tags")
    assert_error(cloud.request("PUT", url, json={}), 400, "tags")
    assert_error(cloud.request("PUT", url, json={"tags": ["a", "a"]}), 400, "tags")
    assert_error(cloud.request("PUT", url, json={"tags": [1]}), 400, "tags")
    assert_error(cloud.request("PUT", url, json={"tags": [f"t{i}" for i in range(81)]}),
                 400, "tags")
    assert_error(cloud.request("PUT", f"{url}/a%2Cb"), 400, "tag")
    cloud.request("PUT", url, json={"tags": [f"t{i}" for i in range(80)]})
    assert_error(cloud.request("PUT", f"{url}/one-more"), 400, "80")
    for method in ("GET", "PUT", "DELETE"):
        assert_error(cloud.request(method, f"/v3/projects/{'0' * 32}/tags", json={"tags": []}),
                     404)
        assert_error(cloud.request(method, f"/v3/projects/{'0' * 32}/tags/x"), 404)


# -- policy ---------------------------------------------------------------------------

def test_non_admin_sees_only_its_own_project(cloud):
    user, project, token = member(cloud, "xena")
    other = create_project(cloud, "not-xenas")
    pid = project["id"]
    r = cloud.request("GET", f"/v3/projects/{pid}", token=token)
    assert r.status_code == 200 and r.json()["project"]["name"] == "xena-project"
    assert cloud.request("GET", f"/v3/projects/{pid}/tags", token=token).status_code == 200
    cloud.request("PUT", f"/v3/projects/{pid}/tags/t")
    assert cloud.request("GET", f"/v3/projects/{pid}/tags/t", token=token).status_code == 204
    for method, path, body in [
        ("GET", f"/v3/projects/{other['id']}", None),
        ("GET", f"/v3/projects/{'0' * 32}", None),
        ("GET", "/v3/projects", None),
        ("POST", "/v3/projects", {"project": {"name": "mine"}}),
        ("PATCH", f"/v3/projects/{pid}", {"project": {"name": "mine"}}),
        ("DELETE", f"/v3/projects/{pid}", None),
        ("GET", f"/v3/projects/{other['id']}/tags", None),
        ("PUT", f"/v3/projects/{pid}/tags", {"tags": []}),
        ("DELETE", f"/v3/projects/{pid}/tags", None),
        ("PUT", f"/v3/projects/{pid}/tags/u", None),
        ("DELETE", f"/v3/projects/{pid}/tags/t", None),
    ]:
        assert_error(cloud.request(method, path, token=token, json=body), 403, "identity:")
    for method, path in [("GET", "/v3/projects"), ("POST", "/v3/projects"),
                         ("GET", f"/v3/projects/{pid}"), ("DELETE", f"/v3/projects/{pid}"),
                         ("GET", f"/v3/projects/{pid}/tags")]:
        assert_error(cloud.request(method, path, token=None, json={}), 401)


def test_domain_scoped_admin_lists_its_domain_only(cloud):
    other = create_domain(cloud, "corp")
    create_project(cloud, "corp-project", domain_id=other)
    token = cloud.client.post("/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "admin-secret"}}},
        "scope": {"domain": {"id": "default"}}}}).headers["X-Subject-Token"]
    r = cloud.request("GET", "/v3/projects", token=token)
    assert names(r) == {"admin"}
    assert names(cloud.request("GET", f"/v3/projects?domain_id={other}", token=token)) == set()
    # and creates in its own domain by default
    r = cloud.request("POST", "/v3/projects", token=token, json={"project": {"name": "new"}})
    assert r.json()["project"]["domain_id"] == "default"
    create_user(cloud, "yuri", domain_id=other)
    r = cloud.request("GET", "/v3/users", token=token)
    assert "yuri" not in {u["name"] for u in r.json()["users"]}


def test_a_project_acting_as_a_domain_is_read_changed_and_deleted_as_a_project(cloud):
    r = cloud.request("POST", "/v3/projects", json={"project": {
        "name": "acting", "is_domain": True, "tags": ["t1"]}})
    assert r.status_code == 201, r.text
    made = r.json()["project"]
    assert made["is_domain"] is True and made["domain_id"] is None
    pid = made["id"]
    # the same entity through both APIs
    assert cloud.request("GET", f"/v3/domains/{pid}").json()["domain"]["name"] == "acting"
    shown = cloud.request("GET", f"/v3/projects/{pid}").json()["project"]
    assert shown["id"] == pid and shown["is_domain"] is True and shown["tags"] == ["t1"]
    listed = cloud.request("GET", "/v3/projects?is_domain=true").json()["projects"]
    assert pid in [p["id"] for p in listed]
    # changed through /v3/projects: the domain changes
    r = cloud.request("PATCH", f"/v3/projects/{pid}", json={"project": {
        "enabled": False, "description": "off"}})
    assert r.status_code == 200 and r.json()["project"]["enabled"] is False, r.text
    assert cloud.request("GET", f"/v3/domains/{pid}").json()["domain"]["enabled"] is False
    assert_error(cloud.request("PATCH", f"/v3/projects/{pid}", json={"project": {
        "is_domain": False}}), 400, "is_domain")
    assert_error(cloud.request("PATCH", f"/v3/projects/{pid}", json={"project": {
        "parent_id": "default"}}), 400, "parent_id")
    # and deleted through it (disabled first, as a domain must be)
    assert cloud.request("DELETE", f"/v3/projects/{pid}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/domains/{pid}"), 404, "domain")
    assert_error(cloud.request("GET", f"/v3/projects/{pid}"), 404, "project")

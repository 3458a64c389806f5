"""/v3/roles, implied roles and /v3/role_inferences, in process."""

from __future__ import annotations

from sqlalchemy import select, text

from onestack.db.models import Assignment, ImpliedRole, Role

PASSWORD = "role-test-secret"


def role_id(cloud, name: str) -> str:
    r = cloud.request("GET", f"/v3/roles?name={name}")
    assert r.status_code == 200 and len(r.json()["roles"]) == 1, r.text
    return r.json()["roles"][0]["id"]


def create_role(cloud, name: str, **fields) -> dict:
    r = cloud.request("POST", "/v3/roles", json={"role": {"name": name, **fields}})
    assert r.status_code == 201, r.text
    return r.json()["role"]


def user_on_project(cloud, name: str, role_ids: list[str], domain_id: str = "default",
                    project_id: str | None = None) -> tuple[str, str]:
    """A new user holding the roles on a (new) project; returns (user id, project id)."""
    ident = cloud.services.identity
    user = ident.users.create(name=name, domain_id=domain_id, password=PASSWORD)
    if project_id is None:
        project_id = ident.projects.create(name=f"{name}-project", domain_id=domain_id).id
    for rid in role_ids:
        r = cloud.request("PUT", f"/v3/projects/{project_id}/users/{user.id}/roles/{rid}")
        assert r.status_code == 204, r.text
    return user.id, project_id


def login(cloud, user_id: str, project_id: str):
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": PASSWORD}}},
        "scope": {"project": {"id": project_id}}}}
    return cloud.client.post("/v3/auth/tokens", json=body)


def assert_error(r, status: int, text: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["title"] and error["message"]
    if text is not None:
        assert text in error["message"], error["message"]


# -- CRUD --------------------------------------------------------------------------

def test_create_get_list_update_delete(cloud):
    r = cloud.request("POST", "/v3/roles", json={"role": {
        "name": "auditor", "description": "Reads audit logs", "colour": "blue"}})
    assert r.status_code == 201, r.text
    role = r.json()["role"]
    assert role["name"] == "auditor" and role["description"] == "Reads audit logs"
    assert role["domain_id"] is None and role["options"] == {}
    assert role["colour"] == "blue"
    assert role["links"]["self"] == f"http://127.0.0.1:5000/v3/roles/{role['id']}"

    r = cloud.request("GET", f"/v3/roles/{role['id']}")
    assert r.status_code == 200 and r.json()["role"] == role
    assert cloud.request("HEAD", f"/v3/roles/{role['id']}").status_code == 200

    r = cloud.request("GET", "/v3/roles")
    assert r.status_code == 200
    assert {"admin", "member", "reader", "auditor"} <= {x["name"] for x in r.json()["roles"]}
    assert r.json()["links"]["self"].endswith("/v3/roles")
    r = cloud.request("GET", "/v3/roles?name=auditor")
    assert [x["id"] for x in r.json()["roles"]] == [role["id"]]
    assert cloud.request("GET", "/v3/roles?name=nobody").json()["roles"] == []

    r = cloud.request("PATCH", f"/v3/roles/{role['id']}", json={"role": {
        "name": "log-auditor", "description": "Reads all logs", "colour": "red"}})
    assert r.status_code == 200, r.text
    updated = r.json()["role"]
    assert (updated["name"], updated["description"], updated["colour"]) == \
        ("log-auditor", "Reads all logs", "red")
    assert cloud.request("GET", f"/v3/roles/{role['id']}").json()["role"] == updated

    assert cloud.request("DELETE", f"/v3/roles/{role['id']}").status_code == 204
    assert_error(cloud.request("GET", f"/v3/roles/{role['id']}"), 404,
                 f"Could not find role: {role['id']}")
    assert_error(cloud.request("DELETE", f"/v3/roles/{role['id']}"), 404)
    assert_error(cloud.request("PATCH", f"/v3/roles/{role['id']}",
                               json={"role": {"name": "x"}}), 404)


def test_bootstrap_roles_render_like_keystone(cloud):
    role = cloud.request("GET", f"/v3/roles/{role_id(cloud, 'admin')}").json()["role"]
    assert set(role) == {"id", "name", "domain_id", "description", "options", "links"}
    assert role["description"] is None and role["domain_id"] is None


def test_duplicate_names_conflict(cloud):
    create_role(cloud, "dup")
    r = cloud.request("POST", "/v3/roles", json={"role": {"name": "dup"}})
    assert_error(r, 409, "Duplicate entry")
    other = create_role(cloud, "other")
    r = cloud.request("PATCH", f"/v3/roles/{other['id']}", json={"role": {"name": "dup"}})
    assert_error(r, 409)
    # renaming to its own name is no conflict
    r = cloud.request("PATCH", f"/v3/roles/{other['id']}", json={"role": {"name": "other"}})
    assert r.status_code == 200


def test_domain_specific_roles(cloud):
    domain = cloud.services.identity.domains.create(name="acme")
    local = create_role(cloud, "member", domain_id=domain.id)  # same name, other namespace
    assert local["domain_id"] == domain.id
    assert_error(cloud.request("POST", "/v3/roles", json={
        "role": {"name": "member", "domain_id": domain.id}}), 409)
    # listing: global roles by default, a domain's own with domain_id
    names = [x["name"] for x in cloud.request("GET", "/v3/roles").json()["roles"]]
    assert names.count("member") == 1
    r = cloud.request("GET", f"/v3/roles?domain_id={domain.id}")
    assert [x["id"] for x in r.json()["roles"]] == [local["id"]]
    r = cloud.request("GET", f"/v3/roles?domain_id={domain.id}&name=member")
    assert [x["id"] for x in r.json()["roles"]] == [local["id"]]
    # the domain cannot change
    r = cloud.request("PATCH", f"/v3/roles/{local['id']}", json={"role": {"domain_id": None}})
    assert_error(r, 400, "domain_id")
    r = cloud.request("PATCH", f"/v3/roles/{local['id']}",
                      json={"role": {"domain_id": domain.id, "description": "d"}})
    assert r.status_code == 200
    r = cloud.request("POST", "/v3/roles", json={"role": {"name": "x", "domain_id": "nope"}})
    assert_error(r, 404, "Could not find domain: nope")


def test_bad_bodies_are_400_naming_the_field(cloud):
    cases = [
        ({"role": {}}, "role/name"),
        ({"role": {"name": 5}}, "role/name"),
        ({"role": {"name": ""}}, "role/name"),
        ({"role": {"name": "   "}}, "role/name"),
        ({"role": {"name": "x" * 256}}, "role/name"),
        ({"role": {"name": "x", "description": 5}}, "role/description"),
        ({"role": {"name": "x", "domain_id": 5}}, "role/domain_id"),
        ({"role": {"name": "x", "options": {"immutable": "yes"}}}, "role/options/immutable"),
        ({"role": {"name": "x", "options": {"sticky": True}}}, "role/options/sticky"),
        ({"role": "x"}, "role"),
        ({}, "role"),
    ]
    for body, field in cases:
        assert_error(cloud.request("POST", "/v3/roles", json=body), 400, field)
    rid = role_id(cloud, "reader")
    for body, field in [({"role": {}}, "role"), ({"role": {"name": None}}, "role/name"),
                        ({"role": {"options": []}}, "role/options")]:
        assert_error(cloud.request("PATCH", f"/v3/roles/{rid}", json=body), 400, field)
    assert_error(cloud.request("PATCH", f"/v3/roles/{rid}", json={"role": {"id": "x"}}), 400)
    assert_error(cloud.request("POST", "/v3/roles", content=b"{nope"), 400)
    assert_error(cloud.request("GET", "/v3/roles?name=%00"), 400)


def test_immutable_roles_refuse_change_until_made_mutable(cloud):
    role = create_role(cloud, "pinned", options={"immutable": True})
    assert role["options"] == {"immutable": True}
    url = f"/v3/roles/{role['id']}"
    assert_error(cloud.request("PATCH", url, json={"role": {"name": "moved"}}), 403,
                 "immutable")
    assert_error(cloud.request("DELETE", url), 403, "immutable")
    r = cloud.request("PATCH", url, json={"role": {"options": {"immutable": False}}})
    assert r.status_code == 200 and r.json()["role"]["options"] == {"immutable": False}
    r = cloud.request("PATCH", url, json={"role": {"options": {"immutable": None}}})
    assert r.json()["role"]["options"] == {}
    assert cloud.request("DELETE", url).status_code == 204


def test_non_admins_may_not_manage_roles(cloud):
    user_id, project_id = user_on_project(cloud, "plain", [role_id(cloud, "member")])
    token = login(cloud, user_id, project_id).headers["X-Subject-Token"]
    rid = role_id(cloud, "reader")
    for method, path, body in [
            ("POST", "/v3/roles", {"role": {"name": "mine"}}),
            ("GET", "/v3/roles", None), ("GET", f"/v3/roles/{rid}", None),
            ("PATCH", f"/v3/roles/{rid}", {"role": {"name": "r"}}),
            ("DELETE", f"/v3/roles/{rid}", None),
            ("PUT", f"/v3/roles/{rid}/implies/{role_id(cloud, 'member')}", None),
            ("GET", "/v3/role_inferences", None)]:
        r = cloud.request(method, path, token=token, json=body)
        assert_error(r, 403)
    assert_error(cloud.request("GET", "/v3/roles", token=None), 401)


def test_delete_removes_assignments_and_rules_and_invalidates_tokens(cloud):
    role = create_role(cloud, "operator")
    reader = role_id(cloud, "reader")
    assert cloud.request("PUT", f"/v3/roles/{role['id']}/implies/{reader}").status_code == 201
    user_id, project_id = user_on_project(cloud, "op", [role["id"]])
    r = login(cloud, user_id, project_id)
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"operator", "reader"}
    token = r.headers["X-Subject-Token"]

    assert cloud.request("DELETE", f"/v3/roles/{role['id']}").status_code == 204
    with cloud.services.identity.db.session() as s:
        assert s.scalars(select(Assignment).where(Assignment.role_id == role["id"])).all() == []
        assert s.scalars(select(ImpliedRole).where(
            ImpliedRole.prior_role_id == role["id"])).all() == []
    rules = cloud.request("GET", "/v3/role_inferences").json()["role_inferences"]
    assert role["id"] not in {x["prior_role"]["id"] for x in rules}
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert_error(r, 404)
    assert_error(login(cloud, user_id, project_id), 401)


def test_foreign_keys_cascade_in_sqlite(cloud):
    """The models' ON DELETE CASCADE works, i.e. PRAGMA foreign_keys is on."""
    role = create_role(cloud, "cascading")
    reader = role_id(cloud, "reader")
    cloud.request("PUT", f"/v3/roles/{role['id']}/implies/{reader}")
    user_on_project(cloud, "cascade", [role["id"]])
    with cloud.services.identity.db.session() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        s.execute(text("DELETE FROM roles WHERE id = :id"), {"id": role["id"]})
    with cloud.services.identity.db.session() as s:
        assert s.get(Role, role["id"]) is None
        assert s.scalars(select(Assignment).where(Assignment.role_id == role["id"])).all() == []
        assert s.get(ImpliedRole, (role["id"], reader)) is None


# -- implied roles -----------------------------------------------------------------

def test_implied_role_lifecycle(cloud):
    prior = create_role(cloud, "lead")
    implied = create_role(cloud, "helper")
    url = f"/v3/roles/{prior['id']}/implies/{implied['id']}"
    base = "http://127.0.0.1:5000/v3"

    r = cloud.request("PUT", url)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "role_inference": {
            "prior_role": {"id": prior["id"], "name": "lead",
                           "links": {"self": f"{base}/roles/{prior['id']}"}},
            "implies": {"id": implied["id"], "name": "helper",
                        "links": {"self": f"{base}/roles/{implied['id']}"}}},
        "links": {"self": base + url[3:]}}
    r = cloud.request("GET", url)
    assert r.status_code == 200 and r.json()["role_inference"]["implies"]["id"] == implied["id"]
    r = cloud.request("HEAD", url)
    assert r.status_code == 204 and r.content == b""

    r = cloud.request("GET", f"/v3/roles/{prior['id']}/implies")
    assert r.status_code == 200
    body = r.json()
    assert body["role_inference"]["prior_role"]["id"] == prior["id"]
    assert [x["name"] for x in body["role_inference"]["implies"]] == ["helper"]
    assert body["links"]["self"] == f"{base}/roles/{prior['id']}/implies"
    r = cloud.request("GET", f"/v3/roles/{implied['id']}/implies")
    assert r.json()["role_inference"]["implies"] == []

    rules = {x["prior_role"]["name"]: [i["name"] for i in x["implies"]]
             for x in cloud.request("GET", "/v3/role_inferences").json()["role_inferences"]}
    assert rules == {"admin": ["member"], "manager": ["member"], "member": ["reader"],
                     "lead": ["helper"]}

    assert_error(cloud.request("PUT", url), 409)  # already there
    assert cloud.request("DELETE", url).status_code == 204
    assert_error(cloud.request("GET", url), 404, f"{prior['id']} does not imply")
    assert cloud.request("HEAD", url).status_code == 404
    assert_error(cloud.request("DELETE", url), 404)


def test_implied_role_refusals(cloud):
    a, b, c = (create_role(cloud, n)["id"] for n in ("ra", "rb", "rc"))
    admin = role_id(cloud, "admin")
    assert cloud.request("PUT", f"/v3/roles/{a}/implies/{b}").status_code == 201
    assert cloud.request("PUT", f"/v3/roles/{b}/implies/{c}").status_code == 201
    # cycles: itself, directly or transitively
    assert_error(cloud.request("PUT", f"/v3/roles/{a}/implies/{a}"), 409, "imply itself")
    assert_error(cloud.request("PUT", f"/v3/roles/{b}/implies/{a}"), 409, "imply itself")
    assert_error(cloud.request("PUT", f"/v3/roles/{c}/implies/{a}"), 409, "imply itself")
    # nothing may imply admin
    assert_error(cloud.request("PUT", f"/v3/roles/{a}/implies/{admin}"), 403)
    # a global role may not imply a domain-specific one; the other way round is the point
    domain = cloud.services.identity.domains.create(name="dom")
    local = create_role(cloud, "local", domain_id=domain.id)["id"]
    assert_error(cloud.request("PUT", f"/v3/roles/{a}/implies/{local}"), 403,
                 "Global role cannot imply a domain-specific role")
    assert cloud.request("PUT", f"/v3/roles/{local}/implies/{a}").status_code == 201
    # unknown roles
    ghost = "0" * 32
    for url in (f"/v3/roles/{ghost}/implies/{a}", f"/v3/roles/{a}/implies/{ghost}"):
        for method in ("PUT", "GET", "DELETE"):
            assert_error(cloud.request(method, url), 404, f"Could not find role: {ghost}")
    assert_error(cloud.request("GET", f"/v3/roles/{ghost}/implies"), 404)


def test_implied_roles_reach_tokens(cloud):
    operator = create_role(cloud, "operator")["id"]
    member = role_id(cloud, "member")
    cloud.request("PUT", f"/v3/roles/{operator}/implies/{member}")
    user_id, project_id = user_on_project(cloud, "oper", [operator])
    r = login(cloud, user_id, project_id)
    assert r.status_code == 201
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"operator", "member", "reader"}
    token = r.headers["X-Subject-Token"]
    # dropping the rule takes the implied roles out of the existing token at once
    assert cloud.request("DELETE", f"/v3/roles/{operator}/implies/{member}").status_code == 204
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"operator"}


def test_domain_specific_roles_imply_but_never_show_in_tokens(cloud):
    ident = cloud.services.identity
    domain = ident.domains.create(name="corp")
    local = create_role(cloud, "corp-staff", domain_id=domain.id)["id"]
    member = role_id(cloud, "member")
    assert cloud.request("PUT", f"/v3/roles/{local}/implies/{member}").status_code == 201
    project = ident.projects.create(name="corp-app", domain_id=domain.id)
    user_id, _ = user_on_project(cloud, "staffer", [local], domain_id=domain.id,
                                 project_id=project.id)
    r = login(cloud, user_id, project.id)
    assert r.status_code == 201, r.text
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"member", "reader"}
    # a domain-specific role is granted only on projects of its own domain
    elsewhere = ident.projects.create(name="elsewhere")
    r = cloud.request("PUT", f"/v3/projects/{elsewhere.id}/users/{user_id}/roles/{local}")
    assert_error(r, 403, "same domain")

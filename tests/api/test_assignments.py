"""Grants (incl. OS-INHERIT) and /v3/role_assignments, in process."""

from __future__ import annotations

import json

import pytest

PASSWORD = "grant-test-secret"
V3 = "http://127.0.0.1:5000/v3"
GHOST = "0" * 32


def role_id(cloud, name: str) -> str:
    return cloud.services.identity.roles.find(name).id


def new_user(cloud, name: str, domain_id: str = "default") -> str:
    return cloud.services.identity.users.create(name=name, domain_id=domain_id,
                                                password=PASSWORD).id


def new_project(cloud, name: str, domain_id: str = "default",
                parent_id: str | None = None) -> str:
    return cloud.services.identity.projects.create(name=name, domain_id=domain_id,
                                                   parent_id=parent_id).id


def new_group(cloud, name: str, *members: str, domain_id: str = "default") -> str:
    groups = cloud.services.identity.groups
    group_id = groups.create(name=name, domain_id=domain_id).id
    for user_id in members:
        groups.add_user(None, group_id, user_id)
    return group_id


def login(cloud, user_id: str, project_id: str | None = None, domain_id: str | None = None):
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": PASSWORD}}}}}
    if project_id:
        body["auth"]["scope"] = {"project": {"id": project_id}}
    elif domain_id:
        body["auth"]["scope"] = {"domain": {"id": domain_id}}
    return cloud.client.post("/v3/auth/tokens", json=body)


def token_roles(r) -> set[str]:
    assert r.status_code in (200, 201), r.text
    return {x["name"] for x in r.json()["token"]["roles"]}


def assert_error(r, status: int, text: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == status and error["title"] and error["message"]
    if text is not None:
        assert text in error["message"], error["message"]


def put(cloud, path: str) -> None:
    r = cloud.request("PUT", path)
    assert r.status_code == 204, r.text


def assignments(cloud, query: str = "") -> list[dict]:
    r = cloud.request("GET", f"/v3/role_assignments{query}")
    assert r.status_code == 200, r.text
    assert r.json()["links"]["self"].startswith(f"{V3}/role_assignments")
    return r.json()["role_assignments"]


# -- grants ------------------------------------------------------------------------

@pytest.fixture
def world(cloud):
    """A user, a group, a project and a domain to grant on."""
    ident = cloud.services.identity
    domain_id = ident.domains.create(name="granting").id
    return {"user": new_user(cloud, "grantee"), "group": new_group(cloud, "crew"),
            "project": new_project(cloud, "site"), "domain": domain_id}


@pytest.mark.parametrize("target", ["project", "domain"])
@pytest.mark.parametrize("actor", ["user", "group"])
@pytest.mark.parametrize("inherited", [False, True])
def test_grant_check_list_revoke(cloud, world, target, actor, inherited):
    rid = role_id(cloud, "member")
    base = f"{target}s/{world[target]}/{actor}s/{world[actor]}/roles"
    if inherited:
        one, many = (f"/v3/OS-INHERIT/{base}/{rid}/inherited_to_projects",
                     f"/v3/OS-INHERIT/{base}/inherited_to_projects")
        direct = f"/v3/{base}/{rid}"
    else:
        one, many = f"/v3/{base}/{rid}", f"/v3/{base}"
        direct = f"/v3/OS-INHERIT/{base}/{rid}/inherited_to_projects"

    assert cloud.request("HEAD", one).status_code == 404
    assert_error(cloud.request("GET", one), 404, "Could not find role assignment")
    assert cloud.request("GET", many).json()["roles"] == []

    put(cloud, one)
    put(cloud, one)  # idempotent
    r = cloud.request("HEAD", one)
    assert r.status_code == 204 and r.content == b""
    assert cloud.request("GET", one).status_code == 204
    r = cloud.request("GET", many)
    assert r.status_code == 200
    roles = r.json()["roles"]
    assert [x["name"] for x in roles] == ["member"]
    assert roles[0]["links"]["self"] == f"{V3}/roles/{rid}"
    # inherited and direct grants are distinct
    assert cloud.request("HEAD", direct).status_code == 404

    assert cloud.request("DELETE", one).status_code == 204
    assert cloud.request("HEAD", one).status_code == 404
    assert_error(cloud.request("DELETE", one), 404, "Could not find role assignment")
    assert cloud.request("GET", many).json()["roles"] == []


@pytest.mark.parametrize("target", ["project", "domain"])
@pytest.mark.parametrize("actor", ["user", "group"])
def test_grants_on_unknown_things_are_404(cloud, world, target, actor):
    rid = role_id(cloud, "member")
    t, a = world[target], world[actor]
    for path, missing in [
            (f"/v3/{target}s/{GHOST}/{actor}s/{a}/roles/{rid}", target),
            (f"/v3/{target}s/{t}/{actor}s/{GHOST}/roles/{rid}", actor),
            (f"/v3/{target}s/{t}/{actor}s/{a}/roles/{GHOST}", "role"),
            (f"/v3/OS-INHERIT/{target}s/{GHOST}/{actor}s/{a}/roles/{rid}/inherited_to_projects",
             target)]:
        for method in ("PUT", "GET"):
            assert_error(cloud.request(method, path), 404, f"Could not find {missing}: {GHOST}")
        assert cloud.request("HEAD", path).status_code == 404
    # revoking names no actor check (grants of deleted actors may go): no such grant
    assert_error(cloud.request("DELETE", f"/v3/{target}s/{t}/{actor}s/{GHOST}/roles/{rid}"),
                 404, "Could not find role assignment")
    for path in (f"/v3/{target}s/{GHOST}/{actor}s/{a}/roles",
                 f"/v3/{target}s/{t}/{actor}s/{GHOST}/roles"):
        assert_error(cloud.request("GET", path), 404)


def test_non_admins_may_not_grant(cloud, world):
    rid = role_id(cloud, "member")
    grant = f"/v3/projects/{world['project']}/users/{world['user']}/roles/{rid}"
    put(cloud, grant)
    token = login(cloud, world["user"], world["project"]).headers["X-Subject-Token"]
    for method in ("PUT", "GET", "DELETE"):
        assert_error(cloud.request(method, grant, token=token), 403)
    assert_error(cloud.request("GET", "/v3/role_assignments", token=token), 403)
    assert_error(cloud.request("PUT", grant, token=None), 401)


# -- what grants do to tokens ------------------------------------------------------

def test_member_grant_gives_token_with_implied_reader(cloud):
    user_id, project_id = new_user(cloud, "newbie"), new_project(cloud, "newproj")
    assert login(cloud, user_id, project_id).status_code == 401
    put(cloud, f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id(cloud, 'member')}")
    assert token_roles(login(cloud, user_id, project_id)) == {"member", "reader"}


def test_group_grant_gives_members_tokens(cloud):
    user_id, project_id = new_user(cloud, "joiner"), new_project(cloud, "shared")
    group_id = new_group(cloud, "joiners", user_id)
    put(cloud, f"/v3/projects/{project_id}/groups/{group_id}/roles/{role_id(cloud, 'reader')}")
    assert token_roles(login(cloud, user_id, project_id)) == {"reader"}


def test_inherited_domain_grant_gives_tokens_on_its_projects(cloud):
    ident = cloud.services.identity
    domain_id = ident.domains.create(name="inheriting").id
    project_id = new_project(cloud, "inside", domain_id=domain_id)
    user_id = new_user(cloud, "heir")
    put(cloud, f"/v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/"
               f"{role_id(cloud, 'member')}/inherited_to_projects")
    assert token_roles(login(cloud, user_id, project_id)) == {"member", "reader"}
    # projects created later are covered too; the domain itself is not
    later = new_project(cloud, "later", domain_id=domain_id)
    assert token_roles(login(cloud, user_id, later)) == {"member", "reader"}
    assert login(cloud, user_id, domain_id=domain_id).status_code == 401
    # and a project elsewhere is not
    assert login(cloud, user_id, new_project(cloud, "outside")).status_code == 401


def test_inherited_project_grant_reaches_children_not_the_project(cloud):
    parent = new_project(cloud, "parent")
    child = new_project(cloud, "child", parent_id=parent)
    grandchild = new_project(cloud, "grandchild", parent_id=child)
    user_id = new_user(cloud, "descendant")
    put(cloud, f"/v3/OS-INHERIT/projects/{parent}/users/{user_id}/roles/"
               f"{role_id(cloud, 'reader')}/inherited_to_projects")
    assert login(cloud, user_id, parent).status_code == 401
    assert token_roles(login(cloud, user_id, child)) == {"reader"}
    assert token_roles(login(cloud, user_id, grandchild)) == {"reader"}


def test_domain_grant_gives_domain_token(cloud):
    ident = cloud.services.identity
    domain_id = ident.domains.create(name="scoped").id
    user_id = new_user(cloud, "domadmin")
    put(cloud, f"/v3/domains/{domain_id}/users/{user_id}/roles/{role_id(cloud, 'admin')}")
    assert token_roles(login(cloud, user_id, domain_id=domain_id)) == \
        {"admin", "member", "reader"}


def test_revoking_a_grant_invalidates_existing_tokens(cloud):
    user_id, project_id = new_user(cloud, "leaver"), new_project(cloud, "left")
    grant = f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id(cloud, 'member')}"
    put(cloud, grant)
    token = login(cloud, user_id, project_id).headers["X-Subject-Token"]
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert r.status_code == 200
    assert cloud.request("DELETE", grant).status_code == 204
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert_error(r, 404)
    assert_error(cloud.request("GET", "/v3/auth/catalog", token=token), 401)


def test_revoking_one_of_two_grants_drops_only_its_roles(cloud):
    user_id, project_id = new_user(cloud, "twice"), new_project(cloud, "twice-p")
    group_id = new_group(cloud, "twicers", user_id)
    put(cloud, f"/v3/projects/{project_id}/groups/{group_id}/roles/{role_id(cloud, 'reader')}")
    grant = f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id(cloud, 'admin')}"
    put(cloud, grant)
    token = login(cloud, user_id, project_id).headers["X-Subject-Token"]
    cloud.request("DELETE", grant)
    r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert token_roles(r) == {"reader"}


# -- /v3/role_assignments ----------------------------------------------------------

def test_list_direct_assignments_with_filters(cloud):
    admin_id, admin_project = cloud.admin_user_id, cloud.admin_project_id
    admin_role = role_id(cloud, "admin")
    every = assignments(cloud)
    assert {
        "role": {"id": admin_role}, "user": {"id": admin_id},
        "scope": {"project": {"id": admin_project}},
        "links": {"assignment":
                  f"{V3}/projects/{admin_project}/users/{admin_id}/roles/{admin_role}"},
    } in every
    assert {
        "role": {"id": admin_role}, "user": {"id": admin_id},
        "scope": {"domain": {"id": "default"}},
        "links": {"assignment": f"{V3}/domains/default/users/{admin_id}/roles/{admin_role}"},
    } in every

    user_id, project_id = new_user(cloud, "listed"), new_project(cloud, "listing")
    group_id = new_group(cloud, "listers", user_id)
    member, reader = role_id(cloud, "member"), role_id(cloud, "reader")
    put(cloud, f"/v3/projects/{project_id}/users/{user_id}/roles/{member}")
    put(cloud, f"/v3/projects/{project_id}/groups/{group_id}/roles/{reader}")
    put(cloud, f"/v3/OS-INHERIT/domains/default/groups/{group_id}/roles/{reader}"
               "/inherited_to_projects")

    mine = assignments(cloud, f"?user.id={user_id}")
    assert [(a["role"]["id"], a["scope"]) for a in mine] == \
        [(member, {"project": {"id": project_id}})]
    theirs = assignments(cloud, f"?group.id={group_id}")
    assert len(theirs) == 2 and all(a["group"] == {"id": group_id} for a in theirs)
    inherited = [a for a in theirs if "OS-INHERIT:inherited_to" in a["scope"]]
    assert inherited == [{
        "role": {"id": reader}, "group": {"id": group_id},
        "scope": {"domain": {"id": "default"}, "OS-INHERIT:inherited_to": "projects"},
        "links": {"assignment": f"{V3}/OS-INHERIT/domains/default/groups/{group_id}/roles/"
                                f"{reader}/inherited_to_projects"}}]
    on_project = assignments(cloud, f"?scope.project.id={project_id}")
    assert {(a["role"]["id"], "user" in a) for a in on_project} == \
        {(member, True), (reader, False)}
    assert {a["role"]["id"] for a in assignments(
        cloud, f"?scope.project.id={project_id}&role.id={reader}")} == {reader}
    on_domain = assignments(cloud, "?scope.domain.id=default")
    assert {a["scope"].get("OS-INHERIT:inherited_to") for a in on_domain} == {None, "projects"}
    only_inherited = assignments(cloud, "?scope.OS-INHERIT:inherited_to=projects")
    assert [a["group"]["id"] for a in only_inherited] == [group_id]
    assert assignments(cloud, f"?user.id={GHOST}") == []
    assert [a["user"]["id"] for a in assignments(cloud, "?scope.system=all")] == [
        cloud.admin_user_id]  # the bootstrap admin, on the system


def test_include_names_as_the_cli_asks(cloud):
    """``openstack role assignment list --user X --project Y --names``."""
    ident = cloud.services.identity
    domain_id = ident.domains.create(name="Named").id
    user_id = new_user(cloud, "alice", domain_id=domain_id)
    project_id = new_project(cloud, "wonderland", domain_id=domain_id)
    local = ident.roles.create(name="tea-party", domain_id=domain_id).id
    put(cloud, f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id(cloud, 'member')}")
    put(cloud, f"/v3/projects/{project_id}/users/{user_id}/roles/{local}")
    got = assignments(cloud, f"?user.id={user_id}&scope.project.id={project_id}"
                             "&include_names=True")
    named = {"id": domain_id, "name": "Named"}
    assert sorted(got, key=lambda a: a["role"]["name"]) == [
        {"role": {"id": role_id(cloud, "member"), "name": "member"},
         "user": {"id": user_id, "name": "alice", "domain": named},
         "scope": {"project": {"id": project_id, "name": "wonderland", "domain": named}},
         "links": {"assignment": f"{V3}/projects/{project_id}/users/{user_id}/roles/"
                                 f"{role_id(cloud, 'member')}"}},
        {"role": {"id": local, "name": "tea-party", "domain": named},
         "user": {"id": user_id, "name": "alice", "domain": named},
         "scope": {"project": {"id": project_id, "name": "wonderland", "domain": named}},
         "links": {"assignment": f"{V3}/projects/{project_id}/users/{user_id}/roles/"
                                 f"{local}"}},
    ]
    got = assignments(cloud, "?scope.domain.id=default&include_names")
    assert all(a["scope"]["domain"] == {"id": "default", "name": "Default"} for a in got)
    group_id = new_group(cloud, "named-group", domain_id=domain_id)
    put(cloud, f"/v3/domains/{domain_id}/groups/{group_id}/roles/{role_id(cloud, 'reader')}")
    got = assignments(cloud, f"?group.id={group_id}&include_names=1")
    assert got[0]["group"] == {"id": group_id, "name": "named-group", "domain": named}


def test_effective_expands_groups_inheritance_and_implied_roles(cloud):
    """``openstack role assignment list --user X --effective``."""
    ident = cloud.services.identity
    domain_id = ident.domains.create(name="effective").id
    p1 = new_project(cloud, "p1", domain_id=domain_id)
    p2 = new_project(cloud, "p2", domain_id=domain_id)
    user_id = new_user(cloud, "bob", domain_id=domain_id)
    group_id = new_group(cloud, "bobs", user_id, domain_id=domain_id)
    member, reader = role_id(cloud, "member"), role_id(cloud, "reader")
    local = ident.roles.create(name="local-only", domain_id=domain_id).id
    put(cloud, f"/v3/projects/{p1}/groups/{group_id}/roles/{member}")
    put(cloud, f"/v3/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{reader}"
               "/inherited_to_projects")
    put(cloud, f"/v3/projects/{p2}/users/{user_id}/roles/{local}")

    got = assignments(cloud, f"?user.id={user_id}&effective=True")
    group_grant = f"{V3}/projects/{p1}/groups/{group_id}/roles/{member}"
    inherited_grant = (f"{V3}/OS-INHERIT/domains/{domain_id}/users/{user_id}/roles/{reader}"
                       "/inherited_to_projects")
    expected = [
        # the group grant, as the member's, and the reader it implies
        {"role": {"id": member}, "user": {"id": user_id}, "scope": {"project": {"id": p1}},
         "links": {"assignment": group_grant,
                   "membership": f"{V3}/groups/{group_id}/users/{user_id}"}},
        {"role": {"id": reader}, "user": {"id": user_id}, "scope": {"project": {"id": p1}},
         "links": {"assignment": group_grant,
                   "membership": f"{V3}/groups/{group_id}/users/{user_id}",
                   "prior_role": f"{V3}/roles/{member}/implies/{reader}"}},
        # the inherited domain grant, on each project of the domain
        {"role": {"id": reader}, "user": {"id": user_id},
         "scope": {"project": {"id": p1}, "OS-INHERIT:inherited_to": "projects"},
         "links": {"assignment": inherited_grant}},
        {"role": {"id": reader}, "user": {"id": user_id},
         "scope": {"project": {"id": p2}, "OS-INHERIT:inherited_to": "projects"},
         "links": {"assignment": inherited_grant}},
    ]  # and the domain-specific role is left out, as from tokens
    def key(a):
        return json.dumps(a, sort_keys=True)

    assert sorted(got, key=key) == sorted(expected, key=key)

    # without the user filter, group grants expand to every member
    everyone = assignments(cloud, f"?scope.project.id={p1}&effective")
    assert all("group" not in a for a in everyone)
    assert {(a["user"]["id"], a["role"]["id"]) for a in everyone} == \
        {(user_id, member), (user_id, reader)}
    # role filter applies after implied roles are added
    readers = assignments(cloud, f"?user.id={user_id}&role.id={reader}&effective")
    assert {a["scope"]["project"]["id"] for a in readers} == {p1, p2} and len(readers) == 3
    # the effective view agrees with tokens
    assert token_roles(login(cloud, user_id, p1)) == {"member", "reader"}
    assert token_roles(login(cloud, user_id, p2)) == {"reader"}
    # only inherited ones
    got = assignments(cloud, f"?user.id={user_id}&effective"
                             "&scope.OS-INHERIT:inherited_to=projects")
    assert len(got) == 2 and all(a["links"]["assignment"] == inherited_grant for a in got)
    # names in effective mode
    got = assignments(cloud, f"?user.id={user_id}&scope.project.id={p2}&effective"
                             "&include_names=true")
    assert got == [{
        "role": {"id": reader, "name": "reader"},
        "user": {"id": user_id, "name": "bob", "domain": {"id": domain_id,
                                                          "name": "effective"}},
        "scope": {"project": {"id": p2, "name": "p2",
                              "domain": {"id": domain_id, "name": "effective"}},
                  "OS-INHERIT:inherited_to": "projects"},
        "links": {"assignment": inherited_grant}}]


def test_include_subtree(cloud):
    top = new_project(cloud, "top")
    mid = new_project(cloud, "mid", parent_id=top)
    leaf = new_project(cloud, "leaf", parent_id=mid)
    user_id = new_user(cloud, "tree")
    reader, member = role_id(cloud, "reader"), role_id(cloud, "member")
    put(cloud, f"/v3/projects/{top}/users/{user_id}/roles/{reader}")
    put(cloud, f"/v3/projects/{leaf}/users/{user_id}/roles/{reader}")
    put(cloud, f"/v3/OS-INHERIT/projects/{mid}/users/{user_id}/roles/{member}"
               "/inherited_to_projects")
    got = assignments(cloud, f"?scope.project.id={mid}&include_subtree=True")
    assert {(a["scope"]["project"]["id"], a["role"]["id"]) for a in got} == \
        {(mid, member), (leaf, reader)}
    got = assignments(cloud, f"?scope.project.id={top}&include_subtree")
    assert len(got) == 3
    got = assignments(cloud, f"?scope.project.id={mid}&include_subtree&effective")
    assert {(a["scope"]["project"]["id"], a["role"]["id"]) for a in got} == \
        {(leaf, member), (leaf, reader)}
    got = assignments(cloud, f"?scope.project.id={leaf}&effective")
    assert {a["role"]["id"] for a in got} == {member, reader}
    assert_error(cloud.request("GET", f"/v3/role_assignments?scope.project.id={GHOST}"
                                      "&include_subtree"), 404)
    assert_error(cloud.request("GET", "/v3/role_assignments?include_subtree"), 400,
                 "scope.project.id must be specified")


def test_role_assignment_filter_errors(cloud):
    for query, text in [
            ("?scope.project.id=a&scope.domain.id=b", "Specify a domain or project"),
            ("?user.id=a&group.id=b", "Specify a user or group"),
            ("?scope.system=all&scope.domain.id=b", "Specify system or domain"),
            ("?scope.system=all&scope.project.id=b", "Specify system or project"),
            ("?effective&group.id=a", "Combining effective and group filter"),
            ("?effective&scope.domain.id=a&scope.OS-INHERIT:inherited_to=projects",
             "Combining effective, domain and inherited"),
            ("?effective=perhaps", "effective"),
            ("?include_names=maybe", "include_names"),
            ("?user.id=%00", None)]:
        assert_error(cloud.request("GET", f"/v3/role_assignments{query}"), 400, text)
    assert_error(cloud.request("GET", f"/v3/role_assignments?scope.project.id={GHOST}"
                                      "&effective"), 404)


def test_deleted_role_leaves_no_assignments(cloud):
    user_id, project_id = new_user(cloud, "gone"), new_project(cloud, "gone-p")
    rid = cloud.services.identity.roles.create(name="temporary").id
    put(cloud, f"/v3/projects/{project_id}/users/{user_id}/roles/{rid}")
    assert len(assignments(cloud, f"?role.id={rid}")) == 1
    assert cloud.request("DELETE", f"/v3/roles/{rid}").status_code == 204
    assert assignments(cloud, f"?role.id={rid}") == []
    assert_error(cloud.request("GET", f"/v3/projects/{project_id}/users/{user_id}/roles/{rid}"),
                 404, "Could not find role")

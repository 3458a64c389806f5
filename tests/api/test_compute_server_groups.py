"""/compute/v2.1/os-server-groups: bodies per microversion, validation, projects,
members, quotas, and the functions the servers service calls."""

from __future__ import annotations

import pytest

from onestack.common.errors import BadRequest, Forbidden
from tests.api.nova_helpers import add_instance, nova, nova_error, ok, tenant


def create(cloud, token="admin", microversion="2.64", status=200, **group):
    group.setdefault("name", "g")
    if microversion and microversion >= "2.64":
        group.setdefault("policy", "anti-affinity")
    else:
        group.setdefault("policies", ["anti-affinity"])
    r = nova(cloud, "POST", "/os-server-groups", token, microversion,
             json={"server_group": group})
    return ok(r, status)["server_group"] if status == 200 else r


def test_bodies_per_microversion(cloud):
    old = create(cloud, microversion=None, name="old", policies=["affinity"])
    assert old == {"id": old["id"], "name": "old", "policies": ["affinity"],
                   "members": [], "metadata": {}}
    v213 = ok(nova(cloud, "GET", f"/os-server-groups/{old['id']}", microversion="2.13"))
    assert v213["server_group"]["project_id"] == cloud.admin_project_id
    assert v213["server_group"]["user_id"] == cloud.admin_user_id
    new = create(cloud, name="new", policy="anti-affinity", rules={"max_server_per_host": 3})
    assert new["policy"] == "anti-affinity" and new["rules"] == {"max_server_per_host": 3}
    assert "policies" not in new and "metadata" not in new
    shown = ok(nova(cloud, "GET", f"/os-server-groups/{new['id']}", microversion="2.63"))
    assert shown["server_group"]["policies"] == ["anti-affinity"]
    soft = create(cloud, microversion="2.15", name="soft", policies=["soft-affinity"])
    assert soft["policies"] == ["soft-affinity"]
    listed = ok(nova(cloud, "GET", "/os-server-groups", microversion="2.64"))["server_groups"]
    assert [g["name"] for g in listed] == ["old", "new", "soft"]
    assert nova(cloud, "DELETE", f"/os-server-groups/{old['id']}").status_code == 204
    nova_error(nova(cloud, "GET", f"/os-server-groups/{old['id']}"), 404,
               f"Instance group {old['id']} could not be found.")


@pytest.mark.parametrize("group, version", [
    ({"name": "g", "policies": ["soft-affinity"]}, "2.14"),
    ({"name": "g", "policies": ["affinity", "anti-affinity"]}, "2.1"),
    ({"name": "g", "policies": []}, "2.1"),
    ({"name": "g", "policies": "affinity"}, "2.1"),
    ({"name": "g"}, "2.1"),
    ({"name": "g", "policy": "affinity"}, "2.63"),
    ({"name": "g", "policies": ["affinity"]}, "2.64"),
    ({"name": "g", "policy": "cozy"}, "2.64"),
    ({"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}, "2.64"),
    ({"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}, "2.64"),
    ({"name": "g", "policy": "anti-affinity", "rules": {"other": 1}}, "2.64"),
    ({"name": "g", "policy": "anti-affinity", "rules": []}, "2.64"),
    ({"name": "", "policy": "affinity"}, "2.64"),
    ({"name": " x", "policy": "affinity"}, "2.64"),
    ({"name": "g", "policy": "affinity", "extra": 1}, "2.64"),
])
def test_validation(cloud, group, version):
    r = nova(cloud, "POST", "/os-server-groups", microversion=version,
             json={"server_group": group})
    nova_error(r, 400)


def test_projects(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    ga = create(cloud, a.token, name="a-group")
    create(cloud, b.token, name="b-group")
    assert [g["name"] for g in ok(nova(cloud, "GET", "/os-server-groups",
                                       a.token))["server_groups"]] == ["a-group"]
    # another project's group does not exist for you
    nova_error(nova(cloud, "GET", f"/os-server-groups/{ga['id']}", b.token), 404)
    nova_error(nova(cloud, "DELETE", f"/os-server-groups/{ga['id']}", b.token), 404)
    # admins see every project's with all_projects; others get their own
    every = ok(nova(cloud, "GET", "/os-server-groups?all_projects=True"))["server_groups"]
    assert {g["name"] for g in every} == {"a-group", "b-group"}
    assert [g["name"] for g in ok(nova(cloud, "GET", "/os-server-groups?all_projects=1",
                                       a.token))["server_groups"]] == ["a-group"]
    assert ok(nova(cloud, "GET", f"/os-server-groups/{ga['id']}"))["server_group"]["name"] \
        == "a-group"
    # limit / offset
    page = ok(nova(cloud, "GET", "/os-server-groups?all_projects=1&limit=1&offset=1"))
    assert len(page["server_groups"]) == 1
    nova_error(nova(cloud, "GET", "/os-server-groups?limit=-1"), 400)
    nova_error(nova(cloud, "GET", "/os-server-groups?offset=x"), 400)


def test_readers_cannot_create(cloud):
    reader = tenant(cloud, "gamma", role="reader")
    nova_error(create(cloud, reader.token, status=403), 403,
               "os_compute_api:os-server-groups:create")
    assert ok(nova(cloud, "GET", "/os-server-groups", reader.token)) == {"server_groups": []}


def test_quota(cloud):
    t = tenant(cloud, "alpha")
    ok(nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
            json={"quota_set": {"server_groups": 1}}))
    first = create(cloud, t.token)
    nova_error(create(cloud, t.token, status=403), 403,
               "Quota exceeded, too many server groups.")
    assert nova(cloud, "DELETE", f"/os-server-groups/{first['id']}", t.token).status_code == 204
    create(cloud, t.token)


def test_members(cloud):
    t = tenant(cloud, "alpha")
    ctx = cloud.services.identity.tokens.validate(t.token)
    groups = cloud.services.compute.server_groups
    group = create(cloud, t.token)
    ok(nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
            json={"quota_set": {"server_group_members": 2}}))
    one = add_instance(cloud, t.project_id)
    two = add_instance(cloud, t.project_id)
    three = add_instance(cloud, t.project_id)
    with cloud.services.db.session() as session:
        groups.add_member(session, group["id"], one.uuid, ctx)
        groups.add_member(session, group["id"], two.uuid, ctx)
        groups.add_member(session, group["id"], two.uuid, ctx)  # idempotent
        with pytest.raises(Forbidden, match="Quota exceeded, too many servers in group"):
            groups.add_member(session, group["id"], three.uuid, ctx)
        assert groups.group_of(session, one.uuid).id == group["id"]
        assert groups.group_of(session, three.uuid) is None
    shown = ok(nova(cloud, "GET", f"/os-server-groups/{group['id']}", t.token))
    assert sorted(shown["server_group"]["members"]) == sorted([one.uuid, two.uuid])
    # deleted servers are not shown, and no longer count
    with cloud.services.db.session() as session:
        session.get(type(one), one.uuid).deleted = True
    shown = ok(nova(cloud, "GET", f"/os-server-groups/{group['id']}", t.token))
    assert shown["server_group"]["members"] == [two.uuid]
    with cloud.services.db.session() as session:
        groups.add_member(session, group["id"], three.uuid, ctx)
        groups.forget_instance(session, one.uuid)
    # another project's group cannot be joined
    other = tenant(cloud, "beta")
    other_ctx = cloud.services.identity.tokens.validate(other.token)
    with cloud.services.db.session() as session:
        with pytest.raises(BadRequest, match="could not be found"):
            groups.add_member(session, group["id"], "x", other_ctx)
        with pytest.raises(BadRequest):
            groups.add_member(session, "0" * 32, "x", ctx)

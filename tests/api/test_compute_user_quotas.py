"""Per-user compute quotas: ``os-quota-sets/{project}?user_id=`` (show, detail, update,
delete) and their enforcement when that user creates servers, resizes and makes key
pairs (Tempest's ``admin.test_quotas.*test_get_updated_quotas``)."""

from __future__ import annotations

from typing import Any

from tests.api.compute_helpers import (
    Tenant,
    action,
    boot,
    boot_env,
    force_state,
    nova,
    nova_error,
    ok,
    tenant,
)


def second_user(cloud, t: Tenant, name: str) -> Tenant:
    """Another member of ``t``'s project (named ``name``), logged in."""
    ident = cloud.services.identity
    user = ident.users.create(name=name, password=f"{name}-secret", domain_id="default")
    project = ident.projects.get(t.project_id)
    with ident.db.session() as session:
        ident.assignments.grant(session, "UserProject", user.id, t.project_id,
                                ident.roles.find("member").id)
    return Tenant(cloud.login(name, f"{name}-secret", project=project.name), t.project_id,
                  user.id)


def quota_path(t: Tenant, user_id: str | None = None, detail: bool = False) -> str:
    path = f"/os-quota-sets/{t.project_id}" + ("/detail" if detail else "")
    return path + (f"?user_id={user_id}" if user_id else "")


def put(cloud, t: Tenant, user_id: str | None = None, **limits: Any):
    return nova(cloud, "PUT", quota_path(t, user_id), json={"quota_set": limits})


def test_user_quotas_show_update_detail_delete(cloud):
    t = tenant(cloud, "alpha")
    other = second_user(cloud, t, "alpha-two")
    assert ok(put(cloud, t, ram="5120"))["quota_set"]["ram"] == 5120
    # unset, a user's limits are the project's
    shown = ok(nova(cloud, "GET", quota_path(t, t.user_id)))["quota_set"]
    assert (shown["id"], shown["ram"], shown["instances"]) == (t.project_id, 5120, 10)
    body = ok(put(cloud, t, t.user_id, ram="2048", instances=2))["quota_set"]
    assert "id" not in body and (body["ram"], body["instances"]) == (2048, 2)
    shown = ok(nova(cloud, "GET", quota_path(t, t.user_id), microversion="2.57"))[
        "quota_set"]
    assert (shown["ram"], shown["instances"], shown["cores"]) == (2048, 2, 20)
    # the project and its other users are not changed
    assert ok(nova(cloud, "GET", quota_path(t)))["quota_set"]["ram"] == 5120
    assert ok(nova(cloud, "GET", quota_path(t, other.user_id)))["quota_set"]["ram"] == 5120
    # the owner's reader sees its own user's limits too
    mine = ok(nova(cloud, "GET", quota_path(t, t.user_id), t.token))["quota_set"]
    assert mine["ram"] == 2048
    detail = ok(nova(cloud, "GET", quota_path(t, t.user_id, detail=True)))["quota_set"]
    assert detail["ram"] == {"in_use": 0, "limit": 2048, "reserved": 0}
    # DELETE with user_id forgets that user's limits only
    assert nova(cloud, "DELETE", quota_path(t, t.user_id)).status_code == 202
    assert ok(nova(cloud, "GET", quota_path(t, t.user_id)))["quota_set"]["ram"] == 5120
    assert ok(nova(cloud, "GET", quota_path(t)))["quota_set"]["ram"] == 5120
    # DELETE of the project forgets its users' limits with its own
    ok(put(cloud, t, other.user_id, ram=1024))
    assert nova(cloud, "DELETE", quota_path(t)).status_code == 202
    assert ok(nova(cloud, "GET", quota_path(t, other.user_id)))["quota_set"]["ram"] == 51200


def test_user_limits_are_bounded_by_the_project_and_usage(cloud):
    t = tenant(cloud, "alpha")
    other = second_user(cloud, t, "alpha-two")
    ok(put(cloud, t, instances=5))
    ok(put(cloud, t, other.user_id, instances=3))
    # what is left of the project after the other user's limit: 5 - 3
    nova_error(put(cloud, t, t.user_id, instances=3), 400,
               "Quota limit 3 for instances must be less than or equal to 2.")
    nova_error(put(cloud, t, t.user_id, instances=-1), 400,
               "Quota limit -1 for instances must be less than or equal to 2.")
    assert ok(put(cloud, t, t.user_id, instances=2))["quota_set"]["instances"] == 2
    # force skips the bounds, as in Nova
    assert ok(put(cloud, t, t.user_id, instances=4, force=True))["quota_set"][
        "instances"] == 4
    # the project may not go below the sum of its users' limits
    nova_error(put(cloud, t, instances=6), 400,
               "Quota limit 6 for instances must be greater than or equal to already "
               "used and reserved 7.")
    assert ok(put(cloud, t, instances=7))["quota_set"]["instances"] == 7
    # nor a user's below its own usage
    ok(nova(cloud, "POST", "/os-keypairs", other.token,
            json={"keypair": {"name": "k1"}}))
    nova_error(put(cloud, t, other.user_id, key_pairs=0), 400,
               "Quota limit 0 for key_pairs must be greater than or equal to already used "
               "and reserved 1.")
    detail = ok(nova(cloud, "GET", quota_path(t, other.user_id, detail=True)))["quota_set"]
    assert detail["key_pairs"]["in_use"] == 1
    # bad input
    nova_error(put(cloud, t, t.user_id, instances="many"), 400)
    nova_error(nova(cloud, "GET", quota_path(t, "u" * 65)), 400, "user_id")
    # an unknown project is Nova's 400 with or without a user
    nova_error(nova(cloud, "PUT", "/os-quota-sets/nope?user_id=x",
                    json={"quota_set": {"ram": 1}}), 400, "not a valid project")


def test_user_quotas_need_an_admin(cloud):
    t = tenant(cloud, "alpha")
    nova_error(nova(cloud, "PUT", quota_path(t, t.user_id), t.token,
                    json={"quota_set": {"instances": 50}}), 403)
    nova_error(nova(cloud, "DELETE", quota_path(t, t.user_id), t.token), 403)
    b = tenant(cloud, "beta")
    nova_error(nova(cloud, "GET", quota_path(t, t.user_id), b.token), 403)


def _own_servers(cloud, t: Tenant) -> int:
    servers = ok(nova(cloud, "GET", "/servers/detail", t.token))["servers"]
    return sum(1 for s in servers if s["user_id"] == t.user_id)


def test_user_limits_are_enforced_on_create_resize_and_keypairs(quiet):
    t = tenant(quiet, "alpha")
    other = second_user(quiet, t, "alpha-two")
    env = boot_env(quiet, token=t.token)
    ok(put(quiet, t, t.user_id, instances=3, key_pairs=1, ram=3 * 512 + 1000))
    first = boot(quiet, env)["id"]
    # a min/max request gets what the user may still have: 2 of 5
    assert boot(quiet, env, min_count=1, max_count=5)["id"]
    assert _own_servers(quiet, t) == 3
    nova_error(boot(quiet, env, status=403), 403,
               "Quota exceeded for instances: Requested 1, but already used 3 of 3 "
               "instances")
    # the project's other user is held only by the project's limits (10)
    env_other = boot_env(quiet, token=other.token, cidr="10.1.0.0/24", name="two")
    assert boot(quiet, env_other, min_count=2, max_count=4)["id"]
    assert _own_servers(quiet, other) == 4
    # resizing up counts against the user's ram: 1000 MiB left, m1.small needs 1536 more
    force_state(quiet, first, vm_state="active", task_state=None, power_state=1)
    nova_error(action(quiet, first, {"resize": {"flavorRef": "2"}}, token=t.token), 403,
               "Quota exceeded for ram")
    # key pairs: one for this user, the other user is not held by it
    ok(nova(quiet, "POST", "/os-keypairs", t.token, json={"keypair": {"name": "k1"}}))
    nova_error(nova(quiet, "POST", "/os-keypairs", t.token,
                    json={"keypair": {"name": "k2"}}), 403,
               "Quota exceeded, too many key pairs.")
    for name in ("k1", "k2"):
        ok(nova(quiet, "POST", "/os-keypairs", other.token,
                json={"keypair": {"name": name}}))
    # forgetting the user's limits frees it again (the project's 10 hold: 7 used)
    assert nova(quiet, "DELETE", quota_path(t, t.user_id)).status_code == 202
    assert boot(quiet, env)["id"]
    assert _own_servers(quiet, t) == 4

"""/compute/v2.1/os-quota-sets, os-quota-class-sets and limits; ComputeQuotas.check."""

from __future__ import annotations

import pytest

from onestack.services.compute.quotas import OverQuota
from tests.api.nova_helpers import add_instance, nova, nova_error, ok, tenant

V21_FIELDS = {"id", "cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
              "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
              "metadata_items", "ram", "security_group_rules", "security_groups",
              "server_groups", "server_group_members"}
NETWORK = {"fixed_ips", "floating_ips", "security_group_rules", "security_groups"}
PERSONALITY = {"injected_file_content_bytes", "injected_file_path_bytes", "injected_files"}


def test_defaults_and_fields_per_microversion(cloud):
    t = tenant(cloud, "alpha")
    old = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}"))["quota_set"]
    assert set(old) == V21_FIELDS
    assert (old["id"], old["instances"], old["cores"], old["ram"], old["key_pairs"],
            old["metadata_items"], old["server_groups"], old["server_group_members"],
            old["injected_files"], old["floating_ips"]) == (
        t.project_id, 10, 20, 51200, 100, 128, 10, 10, 5, -1)
    v236 = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}", microversion="2.36"))
    assert set(v236["quota_set"]) == V21_FIELDS - NETWORK
    v257 = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}", microversion="2.57"))
    assert set(v257["quota_set"]) == V21_FIELDS - NETWORK - PERSONALITY
    defaults = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}/defaults", t.token))
    assert defaults["quota_set"] == old


def test_update_detail_reset(cloud):
    t = tenant(cloud, "alpha")
    r = nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}", microversion="2.57",
             json={"quota_set": {"instances": 3, "cores": "-1", "ram": 1024}})
    body = ok(r)["quota_set"]
    assert "id" not in body and body["instances"] == 3 and body["cores"] == -1
    assert ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}",
                   t.token))["quota_set"]["instances"] == 3
    add_instance(cloud, t.project_id, vcpus=2, memory_mb=512)
    detail = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}/detail", t.token,
                     "2.57"))["quota_set"]
    assert detail["id"] == t.project_id
    assert detail["instances"] == {"in_use": 1, "limit": 3, "reserved": 0}
    assert detail["cores"] == {"in_use": 2, "limit": -1, "reserved": 0}
    assert detail["ram"] == {"in_use": 512, "limit": 1024, "reserved": 0}
    # a limit below usage needs force
    nova_error(nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
                    json={"quota_set": {"ram": 256}}), 400,
               "Quota limit 256 for ram must be greater than or equal to already used and "
               "reserved 512.")
    r = nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
             json={"quota_set": {"ram": 256, "force": True}})
    assert ok(r)["quota_set"]["ram"] == 256
    assert nova(cloud, "DELETE", f"/os-quota-sets/{t.project_id}").status_code == 202
    assert ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}"))["quota_set"]["ram"] == 51200


@pytest.mark.parametrize("quota_set, version", [
    ({"instances": -2}, None), ({"instances": "many"}, None), ({"instances": 1.5}, None),
    ({"instances": True}, None), ({"bogus": 1}, None), ({"floating_ips": 1}, "2.36"),
    ({"injected_files": 1}, "2.57"), ({"force": "maybe"}, None), ({"ram": 2**31}, None),
])
def test_update_validation(cloud, quota_set, version):
    t = tenant(cloud, "alpha")
    r = nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}", microversion=version,
             json={"quota_set": quota_set})
    nova_error(r, 400)


def test_policy_and_unknown_projects(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    nova_error(nova(cloud, "GET", f"/os-quota-sets/{b.project_id}", a.token), 403,
               "os_compute_api:os-quota-sets:show")
    nova_error(nova(cloud, "GET", f"/os-quota-sets/{b.project_id}/detail", a.token), 403)
    nova_error(nova(cloud, "PUT", f"/os-quota-sets/{a.project_id}", a.token,
                    json={"quota_set": {"instances": 50}}), 403)
    nova_error(nova(cloud, "DELETE", f"/os-quota-sets/{a.project_id}", a.token), 403)
    nova_error(nova(cloud, "GET", f"/os-quota-sets/{'0' * 32}"), 400, "not a valid project")
    # a user's limits (tests/api/test_compute_user_quotas.py) leave the project's alone
    assert ok(nova(cloud, "PUT", f"/os-quota-sets/{a.project_id}?user_id=x",
                   json={"quota_set": {"instances": 5}}))["quota_set"]["instances"] == 5
    assert ok(nova(cloud, "GET", f"/os-quota-sets/{a.project_id}"))["quota_set"][
        "instances"] == 10


def test_quota_classes(cloud):
    t = tenant(cloud, "alpha")
    shown = ok(nova(cloud, "GET", "/os-quota-class-sets/default"))["quota_class_set"]
    assert shown["id"] == "default" and "server_groups" not in shown
    assert "floating_ips" in shown
    v250 = ok(nova(cloud, "GET", "/os-quota-class-sets/default", microversion="2.50"))
    assert v250["quota_class_set"]["server_groups"] == 10
    assert "floating_ips" not in v250["quota_class_set"]
    r = nova(cloud, "PUT", "/os-quota-class-sets/default", microversion="2.57",
             json={"quota_class_set": {"instances": 20, "server_groups": 4}})
    body = ok(r)["quota_class_set"]
    assert "id" not in body and body["instances"] == 20 and body["server_groups"] == 4
    # the default class is every project's default
    quota = ok(nova(cloud, "GET", f"/os-quota-sets/{t.project_id}"))["quota_set"]
    assert quota["instances"] == 20 and quota["server_groups"] == 4
    nova_error(nova(cloud, "GET", "/os-quota-class-sets/default", t.token), 403)
    nova_error(nova(cloud, "PUT", "/os-quota-class-sets/default", t.token,
                    json={"quota_class_set": {"instances": 1}}), 403)
    nova_error(nova(cloud, "PUT", "/os-quota-class-sets/default",
                    json={"quota_class_set": {"server_groups": 1}}), 400)  # before 2.50


def test_limits(cloud):
    t = tenant(cloud, "alpha")
    add_instance(cloud, t.project_id, vcpus=2, memory_mb=1024)
    add_instance(cloud, t.project_id, deleted=True)
    absolute = ok(nova(cloud, "GET", "/limits", t.token))["limits"]
    assert absolute["rate"] == []
    limits = absolute["absolute"]
    assert limits["maxTotalInstances"] == 10 and limits["totalInstancesUsed"] == 1
    assert limits["totalCoresUsed"] == 2 and limits["totalRAMUsed"] == 1024
    assert limits["maxImageMeta"] == 128 and limits["maxPersonality"] == 5
    assert "maxSecurityGroups" in limits and "totalFloatingIpsUsed" in limits
    assert limits["totalServerGroupsUsed"] == 0 and limits["maxServerGroupMembers"] == 10
    latest = ok(nova(cloud, "GET", "/limits", t.token, "2.57"))["limits"]["absolute"]
    assert set(latest) == {"maxTotalInstances", "maxTotalCores", "maxTotalRAMSize",
                           "maxTotalKeypairs", "maxServerMeta", "maxServerGroups",
                           "maxServerGroupMembers", "totalInstancesUsed", "totalCoresUsed",
                           "totalRAMUsed", "totalServerGroupsUsed"}
    # another project's limits: admins only
    other = ok(nova(cloud, "GET", f"/limits?tenant_id={t.project_id}"))["limits"]["absolute"]
    assert other["totalInstancesUsed"] == 1
    nova_error(nova(cloud, "GET", f"/limits?tenant_id={cloud.admin_project_id}", t.token), 403)


def test_check_for_other_services(cloud):
    t = tenant(cloud, "alpha")
    quotas = cloud.services.compute.quotas
    for _ in range(10):
        add_instance(cloud, t.project_id)
    with cloud.services.db.session() as session:
        with pytest.raises(OverQuota) as exc:
            quotas.check(session, t.project_id, {"instances": 1, "cores": 1, "ram": 512})
        assert exc.value.status == 403
        assert exc.value.message == ("Quota exceeded for instances: Requested 1, but already "
                                     "used 10 of 10 instances")
        quotas.check(session, t.project_id, {"cores": 10, "ram": 512})
        with pytest.raises(OverQuota, match="Quota exceeded for cores, ram: Requested 11, "
                                            "51200, but already used 10, 5120 of 20, 51200"):
            quotas.check(session, t.project_id, {"cores": 11, "ram": 51200})
        with pytest.raises(OverQuota, match="Maximum number of metadata items exceeds 128"):
            quotas.check(session, t.project_id, {"metadata_items": 129})
        assert quotas.limit(session, t.project_id, "instances") == 10
        # multi-create: how many fit
        with pytest.raises(OverQuota, match="Requested 1-3"):
            quotas.check_instances(session, t.project_id, 1, 512, 1, 3)
    ok(nova(cloud, "PUT", f"/os-quota-sets/{t.project_id}",
            json={"quota_set": {"instances": 12}}))
    with cloud.services.db.session() as session:
        assert quotas.check_instances(session, t.project_id, 1, 512, 1, 3) == 2
        assert quotas.check_instances(session, t.project_id, 1, 512, 2, 2) == 2

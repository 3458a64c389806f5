"""/v2.0/quotas: limits, defaults, usage details, policy and exhaustion, in process."""

from __future__ import annotations

from starlette.testclient import TestClient

from onestack.api.app import create_app
from onestack.assembly import Services
from onestack.services.network.quotas import NEUTRON_DEFAULTS
from tests.api.network_helpers import V2, delete, get, network, neutron_error, put, tenant
from tests.conftest import ADMIN_PASSWORD, make_config

RESOURCES = {"network", "subnet", "port", "router", "floatingip", "security_group",
             "security_group_rule"}


def test_defaults_are_neutrons(cloud):
    t = tenant(cloud, "alpha")
    quota = get(cloud, f"quotas/{t.project_id}")["quota"]
    assert quota == NEUTRON_DEFAULTS
    assert set(quota) == RESOURCES
    assert (quota["network"], quota["subnet"], quota["port"], quota["router"],
            quota["floatingip"], quota["security_group"], quota["security_group_rule"]) == (
        100, 100, 500, 10, 50, 10, 100)
    assert get(cloud, f"quotas/{t.project_id}/default")["quota"] == NEUTRON_DEFAULTS


def test_set_show_list_reset(cloud):
    t = tenant(cloud, "alpha")
    r = put(cloud, f"quotas/{t.project_id}", "quota", port=7, router=-1)
    assert r.status_code == 200, r.text
    assert r.json()["quota"] == {**NEUTRON_DEFAULTS, "port": 7, "router": -1}
    assert get(cloud, f"quotas/{t.project_id}")["quota"]["port"] == 7
    # a project reads its own
    assert get(cloud, f"quotas/{t.project_id}", t.token)["quota"]["port"] == 7
    listed = get(cloud, "quotas")["quotas"]
    assert [q["project_id"] for q in listed] == [t.project_id]
    assert listed[0]["tenant_id"] == t.project_id and listed[0]["port"] == 7
    # the defaults stay the defaults
    assert get(cloud, f"quotas/{t.project_id}/default")["quota"] == NEUTRON_DEFAULTS
    assert delete(cloud, f"quotas/{t.project_id}").status_code == 204
    assert get(cloud, f"quotas/{t.project_id}")["quota"] == NEUTRON_DEFAULTS
    assert get(cloud, "quotas")["quotas"] == []
    neutron_error(delete(cloud, f"quotas/{t.project_id}"), 404, "TenantQuotaNotFound")


def test_details_count_usage(cloud):
    t = tenant(cloud, "alpha")
    network(cloud, t.token)
    network(cloud, t.token)
    details = get(cloud, f"quotas/{t.project_id}/details", t.token)["quota"]
    assert set(details) == RESOURCES
    assert details["network"] == {"used": 2, "limit": 100, "reserved": 0}
    assert details["router"] == {"used": 0, "limit": 10, "reserved": 0}


def test_bad_values(cloud):
    t = tenant(cloud, "alpha")
    for body in ({"port": -2}, {"port": "many"}, {"port": True}, {"bogus": 1},
                 {"port": 1.5}):
        r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}", json={"quota": body})
        neutron_error(r, 400)
    neutron_error(cloud.request("PUT", f"{V2}/quotas/{t.project_id}", json={"x": {}}), 400)
    neutron_error(cloud.request("PUT", f"{V2}/quotas/{t.project_id}", content=b"[]"), 400)


def test_check_limit(cloud):
    t = tenant(cloud, "alpha")
    network(cloud, t.token)
    network(cloud, t.token)
    r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}",
                      json={"quota": {"network": 1, "check_limit": True}})
    neutron_error(r, 400, "BadRequest", "network")
    r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}",
                      json={"quota": {"network": 1, "force": True}})
    assert r.status_code == 200, r.text
    assert r.json()["quota"]["network"] == 1


def test_policy(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    neutron_error(cloud.request("GET", f"{V2}/quotas/{b.project_id}", token=a.token), 403,
                  "AdminRequired")
    neutron_error(cloud.request("GET", f"{V2}/quotas/{b.project_id}/details",
                                token=a.token), 403)
    neutron_error(cloud.request("GET", f"{V2}/quotas", token=a.token), 403)
    neutron_error(put(cloud, f"quotas/{a.project_id}", "quota", a.token, port=1000), 403)
    neutron_error(delete(cloud, f"quotas/{a.project_id}", a.token), 403)
    neutron_error(cloud.request("GET", f"{V2}/quotas", token=None), 401)


def test_exhaustion_for_networks(cloud):
    t = tenant(cloud, "alpha")
    assert put(cloud, f"quotas/{t.project_id}", "quota", network=1).status_code == 200
    network(cloud, t.token)
    r = cloud.request("POST", f"{V2}/networks", token=t.token, json={"network": {}})
    neutron_error(r, 409, "OverQuota", "network")
    # unlimited
    assert put(cloud, f"quotas/{t.project_id}", "quota", network=-1).status_code == 200
    network(cloud, t.token)


def test_defaults_from_config(tmp_path):
    config = make_config(tmp_path / "state")
    config.network.quota_router = 3
    services = Services(config, admin_password=ADMIN_PASSWORD)
    try:
        with TestClient(create_app(config, services), base_url="http://127.0.0.1:5000") as c:
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"},
                "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
            token = c.post("/v3/auth/tokens", json=body).headers["X-Subject-Token"]
            r = c.get(f"{V2}/quotas/anyproject/default", headers={"X-Auth-Token": token})
            assert r.json()["quota"]["router"] == 3
    finally:
        services.close()

"""Roles in Networking (issue 9): ``reader`` reads, ``member`` writes in its project,
``admin`` everything. A user holding only ``reader`` on a project, and an application
credential of a member limited to ``reader``, are refused every write with Neutron's
403 ``PolicyNotAuthorized``, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.network_helpers import V2, get, network, neutron_error, port, subnet
from tests.api.rbac_helpers import Callers, callers
from tests.conftest import running_cloud


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Any:
    with running_cloud(tmp_path_factory.mktemp("rbac"), host_agent=False) as cloud:
        who = callers(cloud)
        member = who.alpha.token
        net = network(cloud, member, name="alpha-net")
        sub = subnet(cloud, net["id"], "10.9.0.0/24", member)
        p = port(cloud, net["id"], member, name="alpha-port")
        groups = get(cloud, "security-groups?name=default", member)["security_groups"]
        router = cloud.request("POST", f"{V2}/routers", token=member,
                               json={"router": {"name": "alpha-router"}}).json()["router"]
        public = get(cloud, "networks?router:external=true")["networks"][0]
        yield cloud, who, {"network": net, "subnet": sub, "port": p, "router": router,
                           "default_group": groups[0], "public": public}


def readers(who: Callers) -> list[tuple[str, str]]:
    return [("reader", who.reader), ("app_cred", who.app_cred)]


def refused(r, rule: str) -> None:
    error = neutron_error(r, 403, "PolicyNotAuthorized")
    assert error["message"] == f"(rule:{rule}) is disallowed by policy", error


def snapshot(cloud) -> dict[str, Any]:
    """Everything the admin sees (the admin sees every project's resources)."""
    out = {}
    for collection in ("networks", "subnets", "ports", "routers", "floatingips",
                       "security-groups", "security-group-rules"):
        out[collection] = sorted(
            (item["id"], item.get("revision_number"), item.get("admin_state_up"),
             item.get("port_security_enabled"))
            for item in get(cloud, collection)[collection.replace("-", "_")])
    return out


def test_role_tokens_carry_implied_roles(env) -> None:
    cloud, who, _ = env
    def roles(token: str) -> set[str]:
        r = cloud.request("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
        assert r.status_code == 200, r.text
        return {role["name"] for role in r.json()["token"]["roles"]}
    assert roles(cloud.admin_token) >= {"admin", "member", "reader"}
    assert roles(who.alpha.token) == {"member", "reader"}
    assert roles(who.reader) == {"reader"}
    assert roles(who.app_cred) == {"reader"}


@pytest.mark.parametrize("name", ["reader", "app_cred"])
def test_a_reader_cannot_write(env, name: str) -> None:
    cloud, who, res = env
    token = dict(readers(who))[name]
    before = snapshot(cloud)

    def call(method: str, path: str, body: Any = None):
        return cloud.request(method, f"{V2}/{path}", token=token, json=body)

    net, sub, p, router = res["network"], res["subnet"], res["port"], res["router"]
    refused(call("POST", "networks", {"network": {"name": "x"}}), "create_network")
    refused(call("POST", "subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                                "cidr": "10.10.0.0/24"}}), "create_subnet")
    refused(call("POST", "ports", {"port": {"network_id": net["id"]}}), "create_port")
    refused(call("POST", "routers", {"router": {"name": "r"}}), "create_router")
    refused(call("POST", "floatingips",
                 {"floatingip": {"floating_network_id": res["public"]["id"]}}),
            "create_floatingip")
    refused(call("POST", "security-groups", {"security_group": {"name": "open"}}),
            "create_security_group")
    refused(call("POST", "security-group-rules", {"security_group_rule": {
        "security_group_id": res["default_group"]["id"], "direction": "ingress",
        "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"}}),
        "create_security_group_rule")
    refused(call("PUT", f"ports/{p['id']}", {"port": {"port_security_enabled": False}}),
            "update_port")
    refused(call("PUT", f"networks/{net['id']}", {"network": {"admin_state_up": False}}),
            "update_network")
    refused(call("DELETE", f"ports/{p['id']}"), "delete_port")
    refused(call("PUT", f"subnets/{sub['id']}", {"subnet": {"name": "x"}}), "update_subnet")
    refused(call("DELETE", f"networks/{net['id']}"), "delete_network")
    refused(call("PUT", f"routers/{router['id']}/add_router_interface",
                 {"subnet_id": sub["id"]}), "add_router_interface")
    refused(call("PUT", f"routers/{router['id']}", {"router": {"name": "x"}}),
            "update_router")
    refused(call("PUT", f"security-groups/{res['default_group']['id']}",
                 {"security_group": {"description": "x"}}), "update_security_group")
    refused(call("PUT", f"networks/{net['id']}/tags/x"), "create_tags")
    refused(call("PUT", f"networks/{net['id']}/tags", {"tags": ["x"]}), "update_tags")
    refused(call("PUT", f"quotas/{who.alpha.project_id}", {"quota": {"network": 100}}),
            "update_quota")
    assert snapshot(cloud) == before

    # reading is what a reader is for
    assert call("GET", f"ports/{p['id']}").status_code == 200
    assert net["id"] in [n["id"] for n in call("GET", "networks").json()["networks"]]
    assert call("GET", f"security-groups/{res['default_group']['id']}").status_code == 200


def test_the_member_writes_and_another_project_sees_nothing(env) -> None:
    cloud, who, res = env
    p = res["port"]
    r = cloud.request("PUT", f"{V2}/ports/{p['id']}", token=who.other.token,
                      json={"port": {"name": "mine"}})
    neutron_error(r, 404, "PortNotFound")
    r = cloud.request("PUT", f"{V2}/ports/{p['id']}", token=who.alpha.token,
                      json={"port": {"name": "renamed"}})
    assert r.status_code == 200, r.text
    r = cloud.request("POST", f"{V2}/security-groups", token=who.alpha.token,
                      json={"security_group": {"name": "web"}})
    assert r.status_code == 201, r.text


def test_what_only_admins_may_set(env) -> None:
    cloud, who, res = env
    member = who.alpha.token
    for attrs, rule in [({"shared": True}, "create_network:shared"),
                        ({"router:external": True}, "create_network:router:external"),
                        ({"provider:network_type": "vlan"},
                         "create_network:provider:network_type"),
                        ({"project_id": who.other.project_id}, "create_network")]:
        r = cloud.request("POST", f"{V2}/networks", token=member,
                          json={"network": {"name": "x", **attrs}})
        assert r.status_code == 403, (attrs, r.text)
        assert rule in r.json()["NeutronError"]["message"]
    r = cloud.request("PUT", f"{V2}/ports/{res['port']['id']}", token=member,
                      json={"port": {"binding:host_id": "elsewhere"}})
    assert r.status_code in (400, 403), r.text
    r = cloud.request("PUT", f"{V2}/networks/{res['network']['id']}", token=member,
                      json={"network": {"shared": True}})
    assert r.status_code == 403, r.text

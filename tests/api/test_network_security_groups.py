"""/v2.0/security-groups and /v2.0/security-group-rules: the default group, rule
validation, duplicates, in-use and policy, in process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from onestack.services.network.base import ListQuery
from tests.api.network_helpers import (
    V2,
    delete,
    get,
    ids,
    network,
    neutron_error,
    port,
    post,
    put,
    subnet,
    tenant,
)


def group(cloud, token: str | None = "admin", **attrs):
    attrs.setdefault("name", "web")
    return post(cloud, "security-groups", "security_group", token, **attrs)


def rule(cloud, group_id: str, token: str | None = "admin", status: int = 201, **attrs):
    attrs.setdefault("direction", "ingress")
    return post(cloud, "security-group-rules", "security_group_rule", token, status=status,
                security_group_id=group_id, **attrs)


def rule_error(cloud, group_id: str, status: int, type_: str | None, **attrs):
    attrs.setdefault("direction", "ingress")
    r = cloud.request("POST", f"{V2}/security-group-rules", json={"security_group_rule": {
        "security_group_id": group_id, **attrs}})
    return neutron_error(r, status, type_)


def default_group(cloud, token: str | None = "admin"):
    groups = get(cloud, "security-groups?name=default", token)["security_groups"]
    assert len(groups) == 1, groups
    return groups[0]


def shape(r: dict) -> tuple:
    return (r["direction"], r["ethertype"], r["protocol"], r["remote_ip_prefix"],
            r["remote_group_id"])


def test_default_group_has_neutrons_default_rules(cloud):
    t = tenant(cloud, "alpha")
    default = default_group(cloud, t.token)
    assert default["description"] == "Default security group"
    assert default["project_id"] == default["tenant_id"] == t.project_id
    assert default["stateful"] is True
    assert sorted(shape(r) for r in default["security_group_rules"]) == sorted([
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
        ("ingress", "IPv4", None, None, default["id"]),
        ("ingress", "IPv6", None, None, default["id"])])
    # made once: listing again finds the same group
    assert default_group(cloud, t.token)["id"] == default["id"]
    # a new port without security_groups lands in it
    net = network(cloud, t.token)
    subnet(cloud, net["id"], token=t.token)
    p = port(cloud, net["id"], t.token)
    assert p["security_groups"] == [default["id"]]


def test_default_group_is_made_once_under_concurrency(cloud):
    t = tenant(cloud, "alpha")
    ctx = cloud.services.identity.tokens.validate(t.token)
    groups = cloud.services.network.security_groups

    def first_use(_: int) -> list[str]:
        return [g.id for g in groups.list_groups(ctx, ListQuery()).items]

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(first_use, range(16)))
    assert all(len(ids_) == 1 for ids_ in seen) and len({i for s in seen for i in s}) == 1
    assert len(get(cloud, "security-groups?name=default", t.token)["security_groups"]) == 1


def test_group_lifecycle(cloud):
    g = group(cloud, name="web", description="front end", tags=["a"])
    assert (g["name"], g["description"], g["stateful"], g["tags"]) == (
        "web", "front end", True, ["a"])
    assert g["revision_number"] >= 1 and g["created_at"].endswith("Z")
    # new groups start with the two egress rules
    assert sorted(shape(r) for r in g["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None)]
    assert get(cloud, f"security-groups/{g['id']}")["security_group"]["id"] == g["id"]
    r = put(cloud, f"security-groups/{g['id']}", "security_group", name="web2",
            description="d2")
    assert r.status_code == 200, r.text
    updated = r.json()["security_group"]
    assert (updated["name"], updated["description"]) == ("web2", "d2")
    assert updated["revision_number"] > g["revision_number"]
    assert g["id"] in ids(get(cloud, "security-groups"), "security_groups")
    assert get(cloud, "security-groups?name=web2&fields=id&fields=name")[
        "security_groups"] == [{"id": g["id"], "name": "web2"}]
    assert delete(cloud, f"security-groups/{g['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/security-groups/{g['id']}"), 404,
                  "SecurityGroupNotFound")
    neutron_error(delete(cloud, f"security-groups/{g['id']}"), 404, "SecurityGroupNotFound")
    # its rules went with it
    assert get(cloud, f"security-group-rules?security_group_id={g['id']}")[
        "security_group_rules"] == []


def test_update_refuses_null(cloud):
    g = group(cloud)
    for key in ("name", "description", "stateful"):
        neutron_error(put(cloud, f"security-groups/{g['id']}", "security_group",
                          **{key: None}), 400)


def test_default_name_is_reserved(cloud):
    r = post(cloud, "security-groups", "security_group", status=409, name="Default")
    assert r["NeutronError"]["type"] == "SecurityGroupDefaultAlreadyExists"
    g = group(cloud)
    neutron_error(put(cloud, f"security-groups/{g['id']}", "security_group", name="default"),
                  409, "SecurityGroupDefaultAlreadyExists")
    default = default_group(cloud)
    neutron_error(put(cloud, f"security-groups/{default['id']}", "security_group",
                      name="other"), 409, "SecurityGroupCannotUpdateDefault")
    # its description may change
    r = put(cloud, f"security-groups/{default['id']}", "security_group", description="mine")
    assert r.status_code == 200, r.text


def test_default_group_cannot_be_removed_by_its_project(cloud):
    t = tenant(cloud, "alpha")
    default = default_group(cloud, t.token)
    neutron_error(delete(cloud, f"security-groups/{default['id']}", t.token), 409,
                  "SecurityGroupCannotRemoveDefault")
    # an admin may (cleaning up a project); it comes back when next needed
    assert delete(cloud, f"security-groups/{default['id']}").status_code == 204
    again = default_group(cloud, t.token)
    assert again["id"] != default["id"] and len(again["security_group_rules"]) == 4


def test_group_in_use_cannot_be_deleted(cloud):
    net = network(cloud)
    subnet(cloud, net["id"])
    g = group(cloud)
    p = port(cloud, net["id"], security_groups=[g["id"]])
    assert p["security_groups"] == [g["id"]]
    neutron_error(delete(cloud, f"security-groups/{g['id']}"), 409, "SecurityGroupInUse")
    r = put(cloud, f"ports/{p['id']}", "port", security_groups=[])
    assert r.status_code == 200, r.text
    assert delete(cloud, f"security-groups/{g['id']}").status_code == 204


def test_rule_lifecycle(cloud):
    g = group(cloud)
    r = rule(cloud, g["id"], protocol="tcp", port_range_min=22, port_range_max=22,
             remote_ip_prefix="0.0.0.0/0", description="ssh")
    assert (r["direction"], r["ethertype"], r["protocol"], r["port_range_min"],
            r["port_range_max"], r["remote_ip_prefix"], r["remote_group_id"],
            r["description"]) == ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", None, "ssh")
    assert r["security_group_id"] == g["id"] and r["project_id"] == g["project_id"]
    assert "tags" not in r
    assert get(cloud, f"security-group-rules/{r['id']}")["security_group_rule"] == r
    shown = get(cloud, f"security-groups/{g['id']}")["security_group"]
    assert r["id"] in [x["id"] for x in shown["security_group_rules"]]
    assert shown["revision_number"] > g["revision_number"]
    listed = get(cloud, f"security-group-rules?security_group_id={g['id']}&protocol=tcp")
    assert ids(listed, "security_group_rules") == [r["id"]]
    # the CLI filters ethertype in lower case
    listed = get(cloud, f"security-group-rules?security_group_id={g['id']}&ethertype=ipv6")
    assert [x["ethertype"] for x in listed["security_group_rules"]] == ["IPv6"]
    assert delete(cloud, f"security-group-rules/{r['id']}").status_code == 204
    neutron_error(cloud.request("GET", f"{V2}/security-group-rules/{r['id']}"), 404,
                  "SecurityGroupRuleNotFound")


@pytest.mark.parametrize("attrs, expected", [
    ({"protocol": "TCP", "port_range_min": 80, "port_range_max": 90},
     ("tcp", 80, 90)),
    ({"protocol": 17, "port_range_min": "53", "port_range_max": "53"}, ("17", 53, 53)),
    ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0}, ("icmp", 8, 0)),
    ({"protocol": "icmp", "port_range_min": 8}, ("icmp", 8, None)),
    ({"protocol": "any"}, (None, None, None)),
    ({"protocol": "ipv6-icmp", "ethertype": "ipv6"}, ("ipv6-icmp", None, None)),
    ({"protocol": "gre"}, ("gre", None, None)),
])
def test_rule_protocols(cloud, attrs, expected):
    g = group(cloud)
    r = rule(cloud, g["id"], **attrs)
    assert (r["protocol"], r["port_range_min"], r["port_range_max"]) == expected


@pytest.mark.parametrize("attrs, type_", [
    ({"protocol": "bogus"}, "HTTPBadRequest"),
    ({"protocol": 256}, "HTTPBadRequest"),
    ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
     "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 80}, "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10},
     "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}, "HTTPBadRequest"),
    ({"protocol": "tcp", "port_range_min": "x", "port_range_max": 1}, "HTTPBadRequest"),
    ({"port_range_min": 22, "port_range_max": 22}, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "icmp", "port_range_min": 256}, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 0}, "SecurityGroupMissingIcmpType"),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2},
     "SecurityGroupInvalidProtocolForPortRange"),
    ({"remote_ip_prefix": "10.0.0.0/8", "ethertype": "IPv6"},
     "SecurityGroupRuleParameterConflict"),
    ({"remote_ip_prefix": "not-a-cidr"}, "InvalidCIDR"),
    ({"protocol": "ipv6-icmp"}, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"direction": "sideways"}, "HTTPBadRequest"),
    ({"ethertype": "IPv5"}, "HTTPBadRequest"),
    ({"bogus": 1}, "HTTPBadRequest"),
])
def test_rule_validation(cloud, attrs, type_):
    g = group(cloud)
    rule_error(cloud, g["id"], 400, type_, **attrs)


def test_remote_group_and_prefix_are_exclusive(cloud):
    g = group(cloud)
    rule_error(cloud, g["id"], 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
               remote_group_id=g["id"], remote_ip_prefix="10.0.0.0/8")
    r = rule(cloud, g["id"], remote_group_id=g["id"], protocol="tcp")
    assert r["remote_group_id"] == g["id"] and r["remote_ip_prefix"] is None
    rule_error(cloud, g["id"], 404, "SecurityGroupNotFound", remote_group_id="nope")
    rule_error(cloud, "nope", 404, "SecurityGroupNotFound")


def test_remote_ip_prefix_is_kept_with_a_mask(cloud):
    """Neutron keeps the prefix as given (host bits too), adding a missing mask; the
    duplicate check compares the networks."""
    g = group(cloud)
    r = rule(cloud, g["id"], remote_ip_prefix="10.1.2.3/16")
    assert r["remote_ip_prefix"] == "10.1.2.3/16"
    rule_error(cloud, g["id"], 409, "SecurityGroupRuleExists",
               remote_ip_prefix="10.1.0.0/16")
    r = rule(cloud, g["id"], remote_ip_prefix="192.0.2.7")
    assert r["remote_ip_prefix"] == "192.0.2.7/32"
    r = rule(cloud, g["id"], remote_ip_prefix="2001:db8::1/64", ethertype="IPv6")
    assert r["remote_ip_prefix"] == "2001:db8::1/64"


def test_duplicate_rules(cloud):
    g = group(cloud)
    first = rule(cloud, g["id"], protocol="tcp", port_range_min=22, port_range_max=22,
                 remote_ip_prefix="0.0.0.0/0")
    error = rule_error(cloud, g["id"], 409, "SecurityGroupRuleExists", protocol="6",
                       port_range_min=22, port_range_max=22)
    assert first["id"] in error["message"]
    # the default egress rules already allow everything out
    rule_error(cloud, g["id"], 409, "SecurityGroupRuleExists", direction="egress")
    # different ports are a different rule
    rule(cloud, g["id"], protocol="tcp", port_range_min=23, port_range_max=23)


def test_two_projects(cloud):
    a, b = tenant(cloud, "alpha"), tenant(cloud, "beta")
    ga = group(cloud, a.token, name="a-web")
    ra = rule(cloud, ga["id"], a.token, protocol="tcp", port_range_min=80, port_range_max=80)
    # beta sees nothing of alpha's
    listed = ids(get(cloud, "security-groups", b.token), "security_groups")
    assert ga["id"] not in listed and len(listed) == 1  # its own default
    neutron_error(cloud.request("GET", f"{V2}/security-groups/{ga['id']}", token=b.token),
                  404, "SecurityGroupNotFound")
    neutron_error(put(cloud, f"security-groups/{ga['id']}", "security_group", b.token,
                      name="x"), 404, "SecurityGroupNotFound")
    neutron_error(delete(cloud, f"security-groups/{ga['id']}", b.token), 404,
                  "SecurityGroupNotFound")
    neutron_error(cloud.request("GET", f"{V2}/security-group-rules/{ra['id']}",
                                token=b.token), 404, "SecurityGroupRuleNotFound")
    neutron_error(delete(cloud, f"security-group-rules/{ra['id']}", b.token), 404,
                  "SecurityGroupRuleNotFound")
    assert ra["id"] not in ids(get(cloud, "security-group-rules", b.token),
                               "security_group_rules")
    r = cloud.request("POST", f"{V2}/security-group-rules", token=b.token, json={
        "security_group_rule": {"security_group_id": ga["id"], "direction": "ingress"}})
    neutron_error(r, 404, "SecurityGroupNotFound")
    # nor may beta use alpha's group as a remote group, or on its port
    gb = group(cloud, b.token, name="b-web")
    r = cloud.request("POST", f"{V2}/security-group-rules", token=b.token, json={
        "security_group_rule": {"security_group_id": gb["id"], "direction": "ingress",
                                "remote_group_id": ga["id"]}})
    neutron_error(r, 404, "SecurityGroupNotFound")
    net = network(cloud, b.token)
    subnet(cloud, net["id"], token=b.token)
    r = cloud.request("POST", f"{V2}/ports", token=b.token, json={"port": {
        "network_id": net["id"], "security_groups": [ga["id"]]}})
    neutron_error(r, 404, "SecurityGroupNotFound")
    # nor create a group in alpha's name
    r = cloud.request("POST", f"{V2}/security-groups", token=b.token, json={
        "security_group": {"name": "x", "project_id": a.project_id}})
    assert r.status_code == 403, r.text
    # the admin sees both, and may make groups for projects
    assert {ga["id"], gb["id"]} <= set(ids(get(cloud, "security-groups"), "security_groups"))
    made = group(cloud, project_id=a.project_id, name="by-admin")
    assert made["project_id"] == a.project_id
    assert made["id"] in ids(get(cloud, "security-groups", a.token), "security_groups")


def test_quota(cloud):
    t = tenant(cloud, "alpha")
    r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}",
                      json={"quota": {"security_group": 3, "security_group_rule": 7}})
    assert r.status_code == 200, r.text
    group(cloud, t.token, name="one")  # default (4 rules) + one (2 rules): 2 groups, 6 rules
    neutron_error(cloud.request("POST", f"{V2}/security-groups", token=t.token, json={
        "security_group": {"name": "two"}}), 409, "OverQuota", "security_group_rule")
    r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}",
                      json={"quota": {"security_group_rule": 100}})
    assert r.status_code == 200, r.text
    g = group(cloud, t.token, name="two")
    neutron_error(cloud.request("POST", f"{V2}/security-groups", token=t.token, json={
        "security_group": {"name": "three"}}), 409, "OverQuota", "security_group")
    r = cloud.request("PUT", f"{V2}/quotas/{t.project_id}",
                      json={"quota": {"security_group_rule": 9}})
    assert r.status_code == 200, r.text
    rule(cloud, g["id"], t.token, protocol="tcp")
    r = cloud.request("POST", f"{V2}/security-group-rules", token=t.token, json={
        "security_group_rule": {"security_group_id": g["id"], "direction": "ingress",
                                "protocol": "udp"}})
    neutron_error(r, 409, "OverQuota")


def test_tags_and_pagination(cloud):
    made = [group(cloud, name=f"g{i}")["id"] for i in range(3)]
    r = cloud.request("PUT", f"{V2}/security-groups/{made[0]}/tags", json={"tags": ["x"]})
    assert r.status_code == 200, r.text
    assert ids(get(cloud, "security-groups?tags=x"), "security_groups") == [made[0]]
    page = get(cloud, "security-groups?limit=2&sort_key=name&sort_dir=desc")
    assert len(page["security_groups"]) == 2 and page["security_groups_links"]

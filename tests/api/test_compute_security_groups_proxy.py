"""/compute/v2.1/os-security-groups, /os-security-group-rules and
/servers/{id}/os-security-groups: Nova's proxies to the Networking service's security
groups (gone from microversion 2.36), checked against what the Networking API then
shows of the same groups and rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.compute_helpers import add_host, boot, boot_env, force_state, quiet_cloud
from tests.api.nova_helpers import nova, nova_error, ok, tenant

V = "2.35"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[Any]:
    """One cloud for the module (no agent; one host): each test makes its own groups."""
    with quiet_cloud(tmp_path_factory.mktemp("sg-proxy")) as c:
        add_host(c, "host-a")
        yield c


@pytest.fixture(scope="module")
def alpha(cloud):
    return tenant(cloud, "sg-alpha")


@pytest.fixture(scope="module")
def beta(cloud):
    return tenant(cloud, "sg-beta")


def sg(cloud, method: str, path: str, token: str | None = "admin", microversion: str = V,
       **kw: Any):
    return nova(cloud, method, path, token=token, microversion=microversion, **kw)


def create_group(cloud, name: str, token: str | None = "admin", description: str = "d",
                 status: int = 200) -> Any:
    r = sg(cloud, "POST", "/os-security-groups", token,
           json={"security_group": {"name": name, "description": description}})
    return ok(r, status)["security_group"] if status == 200 else r


def create_rule(cloud, token: str | None = "admin", status: int = 200, **rule: Any) -> Any:
    r = sg(cloud, "POST", "/os-security-group-rules", token,
           json={"security_group_rule": rule})
    return ok(r, status)["security_group_rule"] if status == 200 else r


def neutron_group(cloud, group_id: str) -> dict[str, Any]:
    r = cloud.request("GET", f"/network/v2.0/security-groups/{group_id}")
    return ok(r)["security_group"]


def neutron_rule(cloud, rule_id: str) -> dict[str, Any]:
    return ok(cloud.request("GET", f"/network/v2.0/security-group-rules/{rule_id}"))[
        "security_group_rule"]


# -- groups ----------------------------------------------------------------------------


def test_a_group_made_here_is_the_networking_group(cloud, alpha):
    made = create_group(cloud, " web  servers ", alpha.token, description="front")
    assert made == {"id": made["id"], "name": " web  servers ", "description": "front",
                    "tenant_id": alpha.project_id, "rules": []}
    same = neutron_group(cloud, made["id"])
    assert (same["name"], same["description"], same["project_id"]) == \
        (" web  servers ", "front", alpha.project_id)
    # Neutron's two egress rules are there; Nova does not show egress
    assert sorted(r["direction"] for r in same["security_group_rules"]) == ["egress"] * 2
    shown = ok(sg(cloud, "GET", f"/os-security-groups/{made['id']}", alpha.token))
    assert shown["security_group"] == made
    listed = ok(sg(cloud, "GET", "/os-security-groups", alpha.token))["security_groups"]
    assert made in listed
    default = next(g for g in listed if g["name"] == "default")
    # the default group admits its own members (IPv4 and IPv6), shown as group rules
    assert sorted((r["group"]["name"], r["ip_range"], r["ip_protocol"], r["from_port"])
                  for r in default["rules"]) == [("default", {}, None, None)] * 2
    assert [g["name"] for g in listed] == sorted(g["name"] for g in listed)

    updated = ok(sg(cloud, "PUT", f"/os-security-groups/{made['id']}", alpha.token,
                    json={"security_group": {"name": "web", "description": "new"}}))
    assert (updated["security_group"]["name"], updated["security_group"]["description"]) \
        == ("web", "new")
    assert neutron_group(cloud, made["id"])["name"] == "web"

    r = sg(cloud, "DELETE", f"/os-security-groups/{made['id']}", alpha.token)
    assert r.status_code == 202 and not r.content
    nova_error(sg(cloud, "GET", f"/os-security-groups/{made['id']}", alpha.token), 404)
    assert cloud.request("GET", f"/network/v2.0/security-groups/{made['id']}"
                         ).status_code == 404


@pytest.mark.parametrize("body, words", [
    ({}, "Missing parameter security_group"),
    ({"security_group": "x"}, "not of type 'object'"),
    ({"security_group": {"description": "d"}}, "'name' is a required property"),
    ({"security_group": {"name": "n"}}, "'description' is a required property"),
    ({"security_group": {"name": 5, "description": "d"}}, "not of type 'string'"),
    ({"security_group": {"name": "n" * 256, "description": "d"}}, "longer than 255"),
    ({"security_group": {"name": "n", "description": "d" * 256}}, "longer than 255"),
])
def test_create_checks_its_body(cloud, body, words):
    nova_error(sg(cloud, "POST", "/os-security-groups", json=body), 400, words)


def test_group_ids_not_found_and_refusals(cloud, alpha, beta):
    missing = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        nova_error(sg(cloud, method, "/os-security-groups/not-a-uuid"), 400,
                   "Security group id should be uuid")
        nova_error(sg(cloud, method, f"/os-security-groups/{missing}"), 404)
        # an empty id names nothing (no redirect to the list)
        nova_error(sg(cloud, method, "/os-security-groups/"), 404)
    body = {"security_group": {"name": "n", "description": "d"}}
    nova_error(sg(cloud, "PUT", "/os-security-groups/not-a-uuid", json=body), 400)
    nova_error(sg(cloud, "PUT", f"/os-security-groups/{missing}", json=body), 404)
    nova_error(sg(cloud, "PUT", "/os-security-groups/", json=body), 404)
    nova_error(sg(cloud, "DELETE", "/os-security-group-rules/"), 404)

    # another project's group is not there for beta; alpha's reader may not create
    own = create_group(cloud, "mine", alpha.token)
    for method, payload in (("GET", None), ("PUT", body), ("DELETE", None)):
        nova_error(sg(cloud, method, f"/os-security-groups/{own['id']}", beta.token,
                      json=payload), 404)
    nova_error(create_rule(cloud, beta.token, 404, parent_group_id=own["id"],
                           ip_protocol="tcp", from_port=1, to_port=2), 404)
    reader = tenant(cloud, "sg-reader", role="reader")
    nova_error(sg(cloud, "POST", "/os-security-groups", reader.token, json=body), 403,
               "os_compute_api:os-security-groups:create")

    # Neutron's conflicts, as Nova answers them
    nova_error(create_group(cloud, "default", alpha.token, status=403), 403,
               "Default security group already exists")
    default = next(g for g in ok(sg(cloud, "GET", "/os-security-groups", alpha.token))[
        "security_groups"] if g["name"] == "default")
    nova_error(sg(cloud, "DELETE", f"/os-security-groups/{default['id']}", alpha.token), 400,
               "default security group")
    nova_error(sg(cloud, "PUT", f"/os-security-groups/{default['id']}", alpha.token,
                  json={"security_group": {"name": "renamed", "description": "d"}}), 400)


def test_a_group_in_use_is_not_deleted(cloud, alpha):
    group = create_group(cloud, "in-use", alpha.token)
    env = boot_env(cloud, token=alpha.token, cidr="10.9.0.0/24", name="in-use-net")
    r = cloud.request("POST", "/network/v2.0/ports", token=alpha.token, json={
        "port": {"network_id": env.network, "security_groups": [group["id"]]}})
    port = ok(r, 201)["port"]["id"]
    nova_error(sg(cloud, "DELETE", f"/os-security-groups/{group['id']}", alpha.token), 400,
               "in use")
    assert cloud.request("DELETE", f"/network/v2.0/ports/{port}",
                         token=alpha.token).status_code == 204
    assert sg(cloud, "DELETE", f"/os-security-groups/{group['id']}",
              alpha.token).status_code == 202


def test_all_tenants_is_for_administrators(cloud, alpha):
    mine = create_group(cloud, "alpha-listed", alpha.token)
    admins = create_group(cloud, "admin-listed")

    def names(token, query=""):
        return {g["id"] for g in ok(sg(cloud, "GET", f"/os-security-groups{query}",
                                       token))["security_groups"]}

    assert admins["id"] in names("admin") and mine["id"] not in names("admin")
    assert {admins["id"], mine["id"]} <= names("admin", "?all_tenants=true")
    for query in ("", "?all_tenants=true", "?all_tenants=1"):
        assert mine["id"] in names(alpha.token, query)
        assert admins["id"] not in names(alpha.token, query)
    every = ok(sg(cloud, "GET", "/os-security-groups?all_tenants=1"))["security_groups"]
    assert [(g["tenant_id"], g["name"]) for g in every] == \
        sorted((g["tenant_id"], g["name"]) for g in every)
    page = ok(sg(cloud, "GET", "/os-security-groups?all_tenants=1&offset=1&limit=2"))
    assert page["security_groups"] == every[1:3]
    nova_error(sg(cloud, "GET", "/os-security-groups?limit=-1"), 400)
    nova_error(sg(cloud, "GET", "/os-security-groups?offset=x"), 400)


def test_the_proxies_are_gone_from_2_36(cloud):
    group = create_group(cloud, "versioned")
    for version in ("2.36", "2.96"):
        nova_error(sg(cloud, "GET", "/os-security-groups", microversion=version), 404,
                   f"API version {version} is not supported on this method")
        nova_error(sg(cloud, "POST", "/os-security-groups", microversion=version,
                      json={"security_group": {"name": "n", "description": "d"}}), 404)
        nova_error(sg(cloud, "GET", f"/os-security-groups/{group['id']}",
                      microversion=version), 404)
        nova_error(sg(cloud, "POST", "/os-security-group-rules", microversion=version,
                      json={"security_group_rule": {"parent_group_id": group["id"]}}), 404)
    # 2.1 (no header) is served
    ok(nova(cloud, "GET", f"/os-security-groups/{group['id']}"))


# -- rules ------------------------------------------------------------------------------


def test_rules_are_neutron_ingress_rules(cloud, alpha):
    group = create_group(cloud, "ruled", alpha.token)
    peer = create_group(cloud, "peer", alpha.token)
    gid = group["id"]

    ssh = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="tcp",
                      from_port=22, to_port=22)
    assert ssh == {"id": ssh["id"], "parent_group_id": gid, "ip_protocol": "tcp",
                   "from_port": 22, "to_port": 22, "group": {},
                   "ip_range": {"cidr": "0.0.0.0/0"}}
    n = neutron_rule(cloud, ssh["id"])
    assert (n["direction"], n["ethertype"], n["protocol"], n["port_range_min"],
            n["port_range_max"], n["remote_ip_prefix"], n["security_group_id"]) == \
        ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", gid)

    web = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="TCP",
                      from_port="80", to_port="443", cidr="10.2.3.0/24")
    assert (web["from_port"], web["to_port"], web["ip_range"]) == \
        (80, 443, {"cidr": "10.2.3.0/24"})
    v6 = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="udp",
                     from_port=53, to_port=53, cidr="2001:db8::/64")
    assert neutron_rule(cloud, v6["id"])["ethertype"] == "IPv6"

    ping = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="icmp",
                       from_port=-1, to_port=-1)
    assert (ping["from_port"], ping["to_port"]) == (-1, -1)
    n = neutron_rule(cloud, ping["id"])
    assert (n["protocol"], n["port_range_min"], n["port_range_max"]) == ("icmp", None, None)
    echo = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="icmp",
                       from_port=8, to_port=0, cidr="192.0.2.0/24")
    assert (echo["from_port"], echo["to_port"]) == (8, 0)

    from_peer = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="tcp",
                            from_port=5432, to_port=5432, group_id=peer["id"])
    assert (from_peer["group"], from_peer["ip_range"]) == \
        ({"name": "peer", "tenant_id": alpha.project_id}, {})
    assert neutron_rule(cloud, from_peer["id"])["remote_group_id"] == peer["id"]
    # from a group, a protocol alone opens every port (TCP) or type (ICMP), nothing
    # opens everything
    all_tcp = create_rule(cloud, alpha.token, parent_group_id=gid, ip_protocol="tcp",
                          group_id=peer["id"])
    assert (all_tcp["from_port"], all_tcp["to_port"]) == (1, 65535)
    anything = create_rule(cloud, alpha.token, parent_group_id=gid, group_id=peer["id"])
    assert (anything["ip_protocol"], anything["from_port"], anything["to_port"]) == \
        (None, None, None)
    assert neutron_rule(cloud, anything["id"])["protocol"] is None

    shown = ok(sg(cloud, "GET", f"/os-security-groups/{gid}", alpha.token))["security_group"]
    made = [ssh, web, v6, ping, echo, from_peer, all_tcp, anything]
    assert sorted(r["id"] for r in shown["rules"]) == sorted(r["id"] for r in made)
    assert next(r for r in shown["rules"] if r["id"] == from_peer["id"]) == from_peer
    assert next(r for r in shown["rules"] if r["id"] == v6["id"])["ip_range"] == \
        {"cidr": "2001:db8::/64"}

    r = sg(cloud, "DELETE", f"/os-security-group-rules/{ssh['id']}", alpha.token)
    assert r.status_code == 202 and not r.content
    assert cloud.request("GET", f"/network/v2.0/security-group-rules/{ssh['id']}"
                         ).status_code == 404
    nova_error(sg(cloud, "DELETE", f"/os-security-group-rules/{ssh['id']}", alpha.token), 404)
    nova_error(sg(cloud, "DELETE", "/os-security-group-rules/nope", alpha.token), 400,
               "should be uuid")

    # deleting the peer group takes the rules that name it along
    assert sg(cloud, "DELETE", f"/os-security-groups/{peer['id']}",
              alpha.token).status_code == 202
    left = ok(sg(cloud, "GET", f"/os-security-groups/{gid}", alpha.token))
    assert sorted(r["id"] for r in left["security_group"]["rules"]) == \
        sorted(r["id"] for r in (web, v6, ping, echo))


@pytest.fixture(scope="module")
def checked(cloud):
    """A project with a group to add rules to, and a peer group."""
    owner = tenant(cloud, "sg-checked")
    return owner, create_group(cloud, "checked", owner.token), \
        create_group(cloud, "checked-peer", owner.token)


@pytest.mark.parametrize("rule, status, words", [
    ({"parent_group_id": "<absent>", "ip_protocol": "tcp", "from_port": 22, "to_port": 22},
     400, "'parent_group_id' is a required property"),
    ({"parent_group_id": "x", "ip_protocol": "tcp", "from_port": 22, "to_port": 22}, 400,
     "should be uuid"),
    ({"parent_group_id": "<missing>", "ip_protocol": "tcp", "from_port": 22,
      "to_port": 22}, 404, ""),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "group_id": "<missing>"}, 404,
     ""),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "group_id": "y"}, 400,
     "should be uuid"),
    ({"ip_protocol": "gre", "from_port": 22, "to_port": 22}, 400, "Invalid IP protocol"),
    ({"ip_protocol": "gre", "group_id": "<peer>"}, 400, "Invalid IP protocol"),
    ({"ip_protocol": "tcp", "from_port": 65536, "to_port": 22}, 400, "Invalid port range"),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 70000}, 400, "1-65535"),
    ({"ip_protocol": "tcp", "from_port": 22, "to_port": 21}, 400, "cannot be greater"),
    ({"ip_protocol": "tcp", "from_port": 0, "to_port": 21}, 400, "1-65535"),
    ({"ip_protocol": "tcp", "from_port": "a", "to_port": 21}, 400, "must be integers"),
    ({"ip_protocol": "tcp", "from_port": True, "to_port": 21}, 400, "must be integers"),
    ({"ip_protocol": "icmp", "from_port": 256, "to_port": 0}, 400, "type:code"),
    ({"ip_protocol": "icmp", "from_port": "x", "to_port": 0}, 400, "Type and Code"),
    ({"ip_protocol": "icmp", "from_port": -1, "to_port": 3}, 400, "ICMP type"),
    ({"ip_protocol": "tcp", "from_port": 22}, 400, "Not enough parameters"),
    ({"from_port": 22, "to_port": 22}, 400, "Not enough parameters"),
    ({"cidr": "10.0.0.0/8"}, 400, "Not enough parameters"),
    ({"from_port": 22, "to_port": 22, "group_id": "<peer>"}, 400, "Not enough parameters"),
    ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.300/8"}, 400,
     "not a valid IP network"),
    ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.1"}, 400,
     "not a valid IP network"),
    ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": 10}, 400,
     "not a valid IP network"),
    ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.0/0"}, 400,
     "Bad prefix"),
    ({"ip_protocol": "tcp", "from_port": 1, "to_port": 2, "cidr": "10.0.0.0/8",
      "group_id": "<peer>"}, 400, "Only one of cidr and group_id"),
    ({"ip_protocol": "udp", "from_port": 1, "to_port": 2, "cidr": "2001:db8::/64"},
     200, ""),
])
def test_rule_checks(cloud, checked, rule, status, words):
    owner, group, peer = checked
    body = {"parent_group_id": group["id"], **rule}
    for key, value in list(body.items()):
        if value == "<absent>":
            del body[key]
        elif value == "<missing>":
            body[key] = str(uuid.uuid4())
        elif value == "<peer>":
            body[key] = peer["id"]
    r = create_rule(cloud, owner.token, status=0, **body)
    rules = neutron_group(cloud, group["id"])["security_group_rules"]
    assert len([x for x in rules if x["direction"] == "ingress"]) == (status == 200)
    if status != 200:
        nova_error(r, status, words)
        return
    made = ok(r)["security_group_rule"]
    assert sg(cloud, "DELETE", f"/os-security-group-rules/{made['id']}",
              owner.token).status_code == 202


def test_a_duplicate_rule_is_a_400(cloud, alpha):
    group = create_group(cloud, "dup", alpha.token)
    rule = {"parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 22,
            "to_port": 22}
    first = create_rule(cloud, alpha.token, **rule)
    nova_error(create_rule(cloud, alpha.token, status=0, **rule), 400,
               f"This rule already exists in group {group['id']}")
    # 0.0.0.0/0 said or not is the same rule
    nova_error(create_rule(cloud, alpha.token, status=0, cidr="0.0.0.0/0", **rule), 400)
    shown = ok(sg(cloud, "GET", f"/os-security-groups/{group['id']}", alpha.token))
    assert [r["id"] for r in shown["security_group"]["rules"]] == [first["id"]]


def test_rules_over_quota_are_a_403(cloud):
    quota_tenant = tenant(cloud, "sg-quota")
    cloud.request("PUT", f"/network/v2.0/quotas/{quota_tenant.project_id}",
                  json={"quota": {"security_group_rule": 6}})
    # the default group's 4 rules and the new group's 2 egress rules fill it
    group = create_group(cloud, "full", quota_tenant.token)
    nova_error(create_rule(cloud, quota_tenant.token, status=0, parent_group_id=group["id"],
                           ip_protocol="tcp", from_port=1, to_port=2), 403, "Quota")


# -- a server's groups -------------------------------------------------------------------


def test_a_servers_groups(cloud, alpha, beta):
    env = boot_env(cloud, token=alpha.token, cidr="10.8.0.0/24", name="sv-net")
    sid = boot(cloud, env)["id"]
    force_state(cloud, sid, vm_state="active", task_state=None, power_state=1)
    web = create_group(cloud, "sv-web", alpha.token)
    rule = create_rule(cloud, alpha.token, parent_group_id=web["id"], ip_protocol="tcp",
                       from_port=80, to_port=80)
    r = nova(cloud, "POST", f"/servers/{sid}/action", token=alpha.token,
             json={"addSecurityGroup": {"name": "sv-web"}})
    assert r.status_code == 202, r.text

    # what the server's host gets for its firewall: the rule, the server's address
    sets = {s.id: s for s in cloud.services.network.hostview.security_groups([web["id"]])}
    assert [(r.direction, r.protocol, r.port_range_min, r.port_range_max,
             r.remote_ip_prefix) for r in sets[web["id"]].rules
            if r.direction == "ingress"] == [("ingress", "tcp", 80, 80, "0.0.0.0/0")]
    port = ok(cloud.request("GET", f"/network/v2.0/ports?device_id={sid}"))["ports"][0]
    assert sets[web["id"]].member_ips == [port["fixed_ips"][0]["ip_address"]]

    listed = ok(nova(cloud, "GET", f"/servers/{sid}/os-security-groups",
                     token=alpha.token))["security_groups"]
    assert [g["name"] for g in listed] == ["default", "sv-web"]
    shown = ok(sg(cloud, "GET", f"/os-security-groups/{web['id']}", alpha.token))
    assert listed[1] == shown["security_group"] and listed[1]["rules"] == [rule]
    # the same at any microversion: only the group routes went at 2.36
    assert ok(nova(cloud, "GET", f"/servers/{sid}/os-security-groups", token=alpha.token,
                   microversion="2.96"))["security_groups"] == listed
    nova_error(nova(cloud, "GET", f"/servers/{sid}/os-security-groups", token=beta.token),
               404)
    nova_error(nova(cloud, "GET", f"/servers/{uuid.uuid4()}/os-security-groups"), 404)

    # the server's port is in the group: it cannot go
    nova_error(sg(cloud, "DELETE", f"/os-security-groups/{web['id']}", alpha.token), 400,
               "in use")
    r = nova(cloud, "POST", f"/servers/{sid}/action", token=alpha.token,
             json={"removeSecurityGroup": {"name": web["id"]}})
    assert r.status_code == 202, r.text
    assert [g["name"] for g in ok(nova(cloud, "GET", f"/servers/{sid}/os-security-groups",
                                       token=alpha.token))["security_groups"]] == ["default"]
    assert sg(cloud, "DELETE", f"/os-security-groups/{web['id']}",
              alpha.token).status_code == 202

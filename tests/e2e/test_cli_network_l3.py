"""Security groups, routers, floating IPs and quotas with the stock ``openstack`` CLI
against a real ``onestack up``.

Every CLI call costs a second or two, so each test walks a whole lifecycle. Tests that
change quotas or need a project's view use a project of their own.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def names(rows, key="Name"):
    return {row[key] for row in rows}


def member_cloud(openstack, extra_clouds, unique, who):
    """A project with a member user, as a cloud for the CLI; returns (cloud, project)."""
    project, user, password = f"{who}-{unique}", f"{who}-user-{unique}", f"{who}-secret"
    openstack("project", "create", project)
    openstack("user", "create", user, "--password", password)
    openstack("role", "add", "--user", user, "--project", project, "member")
    return extra_clouds.add_user(f"{who}-{unique}", user, password, project=project), project


def quota_rows(openstack, *args, cloud_env=None):
    rows = openstack("quota", "show", "--network", *args, cloud_env=cloud_env)
    return {row["Resource"]: row["Limit"] for row in rows}


def test_security_group_lifecycle(openstack, extra_clouds, unique):
    cloud, _ = member_cloud(openstack, extra_clouds, unique, "sg")
    # the project's default group appears on first use, with Neutron's rules
    groups = openstack("security", "group", "list", cloud_env=cloud)
    assert names(groups) == {"default"}
    default_rules = openstack("security", "group", "rule", "list", "default",
                              cloud_env=cloud)
    assert len(default_rules) == 4

    name = f"e2e-sg-{unique}"
    group = openstack("security", "group", "create", name, "--description", "web",
                      cloud_env=cloud)
    assert group["name"] == name and group["description"] == "web"
    ssh = openstack("security", "group", "rule", "create", name, "--protocol", "tcp",
                    "--dst-port", "22", "--remote-ip", "0.0.0.0/0", cloud_env=cloud)
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"],
            ssh["remote_ip_prefix"], ssh["direction"], ssh["ether_type"]) == (
        "tcp", 22, 22, "0.0.0.0/0", "ingress", "IPv4")
    ping = openstack("security", "group", "rule", "create", name, "--protocol", "icmp",
                     "--icmp-type", "8", cloud_env=cloud)
    assert ping["protocol"] == "icmp" and ping["port_range_min"] == 8
    web = openstack("security", "group", "rule", "create", name, "--protocol", "tcp",
                    "--dst-port", "80:443", "--ethertype", "IPv6", "--remote-ip", "::/0",
                    cloud_env=cloud)
    assert (web["port_range_min"], web["port_range_max"]) == (80, 443)

    err = openstack.fails("security", "group", "rule", "create", name, "--protocol", "tcp",
                          "--dst-port", "22", "--remote-ip", "0.0.0.0/0", cloud_env=cloud)
    assert "409" in err.stderr or "already exists" in err.stderr, err
    err = openstack.fails("security", "group", "rule", "create", name, "--protocol", "tcp",
                          "--dst-port", "22", "--remote-ip", "2001:db8::/64",
                          cloud_env=cloud)
    assert "400" in err.stderr or "Conflicting" in err.stderr, err

    rules = openstack("security", "group", "rule", "list", name, cloud_env=cloud)
    assert {r["ID"] for r in rules} >= {ssh["id"], ping["id"], web["id"]}
    assert len(rules) == 5  # two default egress rules and the three above
    tcp = openstack("security", "group", "rule", "list", name, "--protocol", "tcp",
                    cloud_env=cloud)
    assert {r["ID"] for r in tcp} == {ssh["id"], web["id"]}
    shown = openstack("security", "group", "rule", "show", ssh["id"], cloud_env=cloud)
    assert shown["security_group_id"] == group["id"]

    openstack("security", "group", "set", name, "--name", f"{name}-2", cloud_env=cloud)
    assert openstack("security", "group", "show", f"{name}-2",
                     cloud_env=cloud)["id"] == group["id"]
    openstack("security", "group", "rule", "delete", ping["id"], cloud_env=cloud)
    assert len(openstack("security", "group", "rule", "list", group["id"],
                         cloud_env=cloud)) == 4
    # the default group stays
    err = openstack.fails("security", "group", "delete", "default", cloud_env=cloud)
    assert "409" in err.stderr or "default" in err.stderr, err
    openstack("security", "group", "delete", group["id"], cloud_env=cloud)
    assert names(openstack("security", "group", "list", cloud_env=cloud)) == {"default"}


def test_security_group_on_a_port(openstack, unique):
    net = openstack("network", "create", f"e2e-sgport-{unique}")
    group = openstack("security", "group", "create", f"e2e-sgport-{unique}")
    try:
        openstack("subnet", "create", f"e2e-sgport-{unique}", "--network", net["id"],
                  "--subnet-range", "10.91.0.0/24")
        port = openstack("port", "create", f"e2e-sgport-{unique}", "--network", net["id"],
                         "--security-group", group["id"])
        assert port["security_group_ids"] == [group["id"]]
        err = openstack.fails("security", "group", "delete", group["id"])
        assert "in use" in err.stderr or "409" in err.stderr, err
        openstack("port", "delete", port["id"])
    finally:
        openstack("network", "delete", net["id"])
        openstack("security", "group", "delete", group["id"])


def test_router_and_floating_ip_lifecycle(openstack, extra_clouds, unique):
    cloud, _ = member_cloud(openstack, extra_clouds, unique, "l3")
    net = openstack("network", "create", f"e2e-l3-{unique}", cloud_env=cloud)
    sub = openstack("subnet", "create", f"e2e-l3-{unique}", "--network", net["id"],
                    "--subnet-range", "10.92.0.0/24", cloud_env=cloud)
    router = openstack("router", "create", f"e2e-router-{unique}", cloud_env=cloud)
    assert router["status"] == "ACTIVE" and router["admin_state_up"] is True
    rname = router["name"]

    openstack("router", "set", rname, "--external-gateway", "public", cloud_env=cloud)
    shown = openstack("router", "show", rname, cloud_env=cloud)
    gateway = shown["external_gateway_info"]
    assert gateway["network_id"] == openstack("network", "show", "public")["id"]
    assert gateway["enable_snat"] is True
    assert gateway["external_fixed_ips"][0]["ip_address"].startswith("203.0.113.")

    openstack("router", "add", "subnet", rname, sub["id"], cloud_env=cloud)
    shown = openstack("router", "show", rname, cloud_env=cloud)
    assert [i["subnet_id"] for i in shown["interfaces_info"]] == [sub["id"]]
    assert shown["interfaces_info"][0]["ip_address"] == "10.92.0.1"

    err = openstack.fails("router", "delete", rname, cloud_env=cloud)
    assert "409" in err.stderr or "still has ports" in err.stderr, err
    err = openstack.fails("subnet", "delete", sub["id"], cloud_env=cloud)
    assert "409" in err.stderr or "in use" in err.stderr, err

    openstack("router", "add", "route", rname, "--route",
              "destination=192.168.50.0/24,gateway=10.92.0.250", cloud_env=cloud)
    shown = openstack("router", "show", rname, cloud_env=cloud)
    assert shown["routes"] == [{"destination": "192.168.50.0/24", "nexthop": "10.92.0.250"}]
    openstack("router", "remove", "route", rname, "--route",
              "destination=192.168.50.0/24,gateway=10.92.0.250", cloud_env=cloud)
    assert openstack("router", "show", rname, cloud_env=cloud)["routes"] == []

    port = openstack("port", "create", f"e2e-vm-{unique}", "--network", net["id"],
                     cloud_env=cloud)
    fip = openstack("floating", "ip", "create", "public", "--description", "e2e",
                    cloud_env=cloud)
    address = fip["floating_ip_address"]
    assert address.startswith("203.0.113.") and fip["status"] == "DOWN"
    assert fip["port_id"] is None

    openstack("floating", "ip", "set", address, "--port", port["id"], cloud_env=cloud)
    shown = openstack("floating", "ip", "show", fip["id"], cloud_env=cloud)
    assert shown["port_id"] == port["id"] and shown["router_id"] == router["id"]
    assert shown["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert shown["status"] == "ACTIVE"
    listed = openstack("floating", "ip", "list", "--port", port["id"], cloud_env=cloud)
    assert [row["Floating IP Address"] for row in listed] == [address]

    err = openstack.fails("router", "remove", "subnet", rname, sub["id"], cloud_env=cloud)
    assert "409" in err.stderr or "floating IP" in err.stderr, err

    openstack("floating", "ip", "unset", "--port", fip["id"], cloud_env=cloud)
    shown = openstack("floating", "ip", "show", fip["id"], cloud_env=cloud)
    assert shown["port_id"] is None and shown["status"] == "DOWN"
    openstack("floating", "ip", "delete", address, cloud_env=cloud)
    assert openstack("floating", "ip", "list", cloud_env=cloud) == []

    openstack("router", "remove", "subnet", rname, sub["id"], cloud_env=cloud)
    openstack("router", "unset", "--external-gateway", rname, cloud_env=cloud)
    assert openstack("router", "show", rname,
                     cloud_env=cloud)["external_gateway_info"] is None
    openstack("router", "delete", rname, cloud_env=cloud)
    openstack("port", "delete", port["id"], cloud_env=cloud)
    openstack("network", "delete", net["id"], cloud_env=cloud)
    err = openstack.fails("router", "show", router["id"], cloud_env=cloud)
    assert "No Router found" in err.stderr or "404" in err.stderr, err


def test_two_projects_cannot_share_floating_ips(openstack, extra_clouds, unique):
    alpha, _ = member_cloud(openstack, extra_clouds, unique, "fa")
    beta, _ = member_cloud(openstack, extra_clouds, unique, "fb")
    fip = openstack("floating", "ip", "create", "public", cloud_env=alpha)
    try:
        assert openstack("floating", "ip", "list", cloud_env=beta) == []
        err = openstack.fails("floating", "ip", "show", fip["id"], cloud_env=beta)
        assert "404" in err.stderr or "No FloatingIP" in err.stderr or \
            "No Floating" in err.stderr, err
        # the external network itself is visible to both
        assert "public" in names(openstack("network", "list", "--external", cloud_env=beta))
    finally:
        openstack("floating", "ip", "delete", fip["id"], cloud_env=alpha)


def test_quotas(openstack, extra_clouds, unique):
    cloud, project = member_cloud(openstack, extra_clouds, unique, "q")
    limits = quota_rows(openstack, project)
    assert limits["routers"] == 10 and limits["ports"] == 500
    assert limits["networks"] == 100 and limits["floating_ips"] == 50
    # a project reads its own
    assert quota_rows(openstack, cloud_env=cloud)["routers"] == 10

    openstack("quota", "set", "--routers", "2", "--ports", "20", project)
    limits = quota_rows(openstack, project)
    assert limits["routers"] == 2 and limits["ports"] == 20
    for i in range(2):
        openstack("router", "create", f"e2e-q{i}-{unique}", cloud_env=cloud)
    err = openstack.fails("router", "create", f"e2e-q2-{unique}", cloud_env=cloud)
    assert "Quota exceeded" in err.stderr or "409" in err.stderr, err

    usage = openstack("quota", "show", "--network", "--usage", project)
    routers = next(row for row in usage if row["Resource"] == "routers")
    assert routers["In Use"] == 2 and routers["Limit"] == 2

    # --check-limit semantics: not below what is in use (the CLI's default)
    err = openstack.fails("quota", "set", "--routers", "1", project)
    assert "400" in err.stderr or "greater" in err.stderr, err
    # a member cannot change quotas
    err = openstack.fails("quota", "set", "--routers", "50", project, cloud_env=cloud)
    assert "403" in err.stderr or "admin" in err.stderr, err
    for i in range(2):
        openstack("router", "delete", f"e2e-q{i}-{unique}", cloud_env=cloud)
    openstack("quota", "delete", "--network", project)
    assert quota_rows(openstack, project)["routers"] == 10

"""Networks, subnets and ports with the stock ``openstack`` CLI against a real
``onestack up``.

Every CLI call costs a second or two, so each test walks a whole lifecycle.
"""

from __future__ import annotations

import ipaddress

import pytest

pytestmark = pytest.mark.e2e


def names(rows, key="Name"):
    return {row[key] for row in rows}


def member_cloud(openstack, extra_clouds, unique, who):
    """A project with a member user, as a cloud for the CLI."""
    project, user, password = f"{who}-{unique}", f"{who}-user-{unique}", f"{who}-secret"
    openstack("project", "create", project)
    openstack("user", "create", user, "--password", password)
    openstack("role", "add", "--user", user, "--project", project, "member")
    return extra_clouds.add_user(f"{who}-{unique}", user, password, project=project)


def test_network_lifecycle(openstack, unique):
    name = f"e2e-net-{unique}"
    net = openstack("network", "create", name, "--description", "an e2e network",
                    "--tag", "blue")
    assert net["name"] == name and net["status"] == "ACTIVE"
    assert net["mtu"] == 1450 and net["provider:network_type"] == "vxlan"
    assert net["router:external"] is False and net["shared"] is False
    try:
        shown = openstack("network", "show", name)
        assert shown["id"] == net["id"] and shown["description"] == "an e2e network"
        assert shown["tags"] == ["blue"]
        assert name in names(openstack("network", "list"))
        assert names(openstack("network", "list", "--name", name)) == {name}
        assert name in names(openstack("network", "list", "--tags", "blue"))
        openstack("network", "set", name, "--name", f"{name}-2", "--disable", "--mtu", "1400",
                  "--tag", "green", "--no-share")
        shown = openstack("network", "show", f"{name}-2")
        assert shown["admin_state_up"] is False and shown["mtu"] == 1400
        assert sorted(shown["tags"]) == ["blue", "green"]
        assert shown["revision_number"] > net["revision_number"]
        openstack("network", "unset", f"{name}-2", "--tag", "blue")
        assert openstack("network", "show", f"{name}-2")["tags"] == ["green"]
    finally:
        openstack("network", "delete", net["id"])
    err = openstack.fails("network", "show", net["id"])
    assert "No Network found" in err.stderr or "404" in err.stderr, err


def test_provider_and_external_networks(openstack, unique):
    public = openstack("network", "show", "public")
    assert public["router:external"] is True
    assert public["provider:network_type"] == "flat"
    assert "public" in names(openstack("network", "list", "--external"))
    net = openstack("network", "create", f"e2e-vlan-{unique}", "--provider-network-type",
                    "vlan", "--provider-physical-network", "public", "--provider-segment",
                    "321", "--share")
    try:
        assert net["provider:segmentation_id"] == 321 and net["shared"] is True
        err = openstack.fails("network", "create", f"e2e-vlan2-{unique}",
                              "--provider-network-type", "vlan",
                              "--provider-physical-network", "public",
                              "--provider-segment", "321")
        assert "409" in err.stderr or "VlanIdInUse" in err.stderr or "in use" in err.stderr, err
    finally:
        openstack("network", "delete", net["id"])


def test_subnet_lifecycle(openstack, unique):
    net = openstack("network", "create", f"e2e-subnets-{unique}")
    try:
        sub = openstack("subnet", "create", f"e2e-v4-{unique}", "--network", net["id"],
                        "--subnet-range", "10.80.0.0/24",
                        "--allocation-pool", "start=10.80.0.10,end=10.80.0.100",
                        "--dns-nameserver", "192.0.2.53", "--dns-nameserver", "192.0.2.54",
                        "--host-route", "destination=172.16.0.0/16,gateway=10.80.0.254",
                        "--gateway", "10.80.0.1")
        assert sub["cidr"] == "10.80.0.0/24" and sub["gateway_ip"] == "10.80.0.1"
        assert sub["allocation_pools"] == [{"start": "10.80.0.10", "end": "10.80.0.100"}]
        assert sub["dns_nameservers"] == ["192.0.2.53", "192.0.2.54"]
        assert sub["host_routes"] == [{"destination": "172.16.0.0/16",
                                       "nexthop": "10.80.0.254"}]
        assert sub["enable_dhcp"] is True and sub["ip_version"] == 4

        v6 = openstack("subnet", "create", f"e2e-v6-{unique}", "--network", net["id"],
                       "--ip-version", "6", "--subnet-range", "2001:db8:80::/64",
                       "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac")
        assert v6["ipv6_ra_mode"] == "slaac" and v6["ipv6_address_mode"] == "slaac"
        assert v6["gateway_ip"] == "2001:db8:80::1"

        listed = openstack("subnet", "list", "--network", net["id"])
        assert names(listed) == {f"e2e-v4-{unique}", f"e2e-v6-{unique}"}
        assert names(openstack("subnet", "list", "--ip-version", "6",
                               "--network", net["id"])) == {f"e2e-v6-{unique}"}

        openstack("subnet", "set", sub["id"], "--name", f"e2e-v4b-{unique}", "--no-dhcp",
                  "--dns-nameserver", "192.0.2.55")
        shown = openstack("subnet", "show", sub["id"])
        assert shown["name"] == f"e2e-v4b-{unique}" and shown["enable_dhcp"] is False
        assert "192.0.2.55" in shown["dns_nameservers"]

        err = openstack.fails("subnet", "create", f"e2e-bad-{unique}", "--network", net["id"],
                              "--subnet-range", "10.80.0.128/25")
        assert "overlaps" in err.stderr, err
        err = openstack.fails("subnet", "create", f"e2e-bad2-{unique}", "--network",
                              net["id"], "--subnet-range", "10.81.0.0/24",
                              "--allocation-pool", "start=10.81.0.1,end=10.81.0.20")
        assert "conflicts" in err.stderr or "409" in err.stderr, err

        port = openstack("port", "create", f"e2e-user-{unique}", "--network", net["id"])
        err = openstack.fails("subnet", "delete", sub["id"])
        assert "409" in err.stderr or "in use" in err.stderr.lower(), err
        openstack("port", "delete", port["id"])
        openstack("subnet", "delete", sub["id"], v6["id"])
        assert openstack("subnet", "list", "--network", net["id"]) == []
    finally:
        openstack("network", "delete", net["id"])


def test_port_lifecycle_and_filters(openstack, unique):
    net = openstack("network", "create", f"e2e-ports-{unique}")
    try:
        sub = openstack("subnet", "create", f"e2e-ports-{unique}", "--network", net["id"],
                        "--subnet-range", "10.82.0.0/24")
        v6 = openstack("subnet", "create", f"e2e-ports6-{unique}", "--network", net["id"],
                       "--ip-version", "6", "--subnet-range", "2001:db8:82::/64",
                       "--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac")
        fixed = openstack("port", "create", f"e2e-fixed-{unique}", "--network", net["id"],
                          "--fixed-ip", f"subnet={sub['id']},ip-address=10.82.0.50",
                          "--device-owner", "compute:nova", "--device", f"vm-{unique}",
                          "--mac-address", "fa:16:3e:82:00:01",
                          "--allowed-address", "ip-address=10.82.0.200",
                          "--extra-dhcp-option", "name=bootfile-name,value=pxelinux.0")
        ips = {ip["subnet_id"]: ip["ip_address"] for ip in fixed["fixed_ips"]}
        assert ips[sub["id"]] == "10.82.0.50"
        # the SLAAC address is the EUI-64 address of the MAC
        assert ipaddress.ip_address(ips[v6["id"]]) == ipaddress.ip_address(
            "2001:db8:82::f816:3eff:fe82:1")
        assert fixed["mac_address"] == "fa:16:3e:82:00:01"
        assert fixed["allowed_address_pairs"][0]["ip_address"] == "10.82.0.200"
        assert fixed["extra_dhcp_opts"][0]["opt_value"] == "pxelinux.0"
        assert len(fixed["security_group_ids"]) == 1

        auto = openstack("port", "create", f"e2e-auto-{unique}", "--network", net["id"],
                         "--disable-port-security", "--no-security-group")
        assert auto["port_security_enabled"] is False and not auto["security_group_ids"]
        auto_v4 = [ip["ip_address"] for ip in auto["fixed_ips"] if ip["subnet_id"] == sub["id"]]
        assert auto_v4 == ["10.82.0.2"]

        err = openstack.fails("port", "create", f"e2e-dup-{unique}", "--network", net["id"],
                              "--fixed-ip", "ip-address=10.82.0.50")
        assert "already allocated" in err.stderr or "409" in err.stderr, err

        by_ip = openstack("port", "list", "--fixed-ip", "ip-address=10.82.0.50")
        assert [p["ID"] for p in by_ip] == [fixed["id"]]
        by_subnet = openstack("port", "list", "--fixed-ip", f"subnet={sub['id']}")
        assert {p["ID"] for p in by_subnet} == {fixed["id"], auto["id"]}
        assert [p["ID"] for p in openstack("port", "list", "--device-owner",
                                           "compute:nova", "--network", net["id"])] == [
            fixed["id"]]
        assert {p["ID"] for p in openstack("port", "list", "--network", net["id"])} == {
            fixed["id"], auto["id"]}
        assert [p["ID"] for p in openstack("port", "list", "--mac-address",
                                           "fa:16:3e:82:00:01")] == [fixed["id"]]

        openstack("port", "set", auto["id"], "--name", f"e2e-auto2-{unique}",
                  "--fixed-ip", "ip-address=10.82.0.77", "--disable")
        shown = openstack("port", "show", auto["id"])
        assert shown["name"] == f"e2e-auto2-{unique}" and shown["admin_state_up"] is False
        assert "10.82.0.77" in [ip["ip_address"] for ip in shown["fixed_ips"]]
        openstack("port", "unset", auto["id"], "--fixed-ip",
                  f"subnet={sub['id']},ip-address=10.82.0.2")
        shown = openstack("port", "show", auto["id"])
        assert "10.82.0.2" not in [ip["ip_address"] for ip in shown["fixed_ips"]]

        err = openstack.fails("network", "delete", net["id"])
        assert "409" in err.stderr or "in use" in err.stderr.lower(), err
        openstack("port", "delete", fixed["id"], auto["id"])
    finally:
        openstack("network", "delete", net["id"])


def test_two_projects(openstack, extra_clouds, unique):
    alice = member_cloud(openstack, extra_clouds, unique, "alice")
    bob = member_cloud(openstack, extra_clouds, unique, "bob")
    private = openstack("network", "create", f"alice-net-{unique}", cloud_env=alice)
    openstack("subnet", "create", f"alice-sub-{unique}", "--network", private["id"],
              "--subnet-range", "10.83.0.0/24", cloud_env=alice)
    shared = openstack("network", "create", f"e2e-shared-{unique}", "--share")
    openstack("subnet", "create", f"e2e-shared-{unique}", "--network", shared["id"],
              "--subnet-range", "10.84.0.0/24")
    try:
        seen = names(openstack("network", "list", cloud_env=bob))
        assert f"alice-net-{unique}" not in seen
        assert {f"e2e-shared-{unique}", "public"} <= seen
        err = openstack.fails("network", "show", private["id"], cloud_env=bob)
        assert "No Network found" in err.stderr or "404" in err.stderr, err
        err = openstack.fails("port", "create", "sneaky", "--network", private["id"],
                              cloud_env=bob)
        assert "No Network found" in err.stderr or "404" in err.stderr, err
        err = openstack.fails("network", "create", "not-allowed", "--share", cloud_env=bob)
        assert "403" in err.stderr or "disallowed" in err.stderr, err
        port = openstack("port", "create", f"bob-port-{unique}", "--network", shared["id"],
                         cloud_env=bob)
        assert [p["ID"] for p in openstack("port", "list", cloud_env=bob)] == [port["id"]]
        assert port["id"] not in {p["ID"] for p in openstack("port", "list",
                                                             cloud_env=alice)}
        openstack("port", "delete", port["id"], cloud_env=bob)
    finally:
        openstack("network", "delete", shared["id"])
        openstack("network", "delete", private["id"], cloud_env=alice)

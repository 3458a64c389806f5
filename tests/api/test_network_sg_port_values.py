"""Security group rules: port numbers outside 0-65535 are refused with Neutron's
``Invalid value for port N`` (Tempest matches the text)."""

from __future__ import annotations

import pytest

from tests.api.network_helpers import V2, neutron_error, post


@pytest.mark.parametrize(("protocol", "low", "high", "words"), [
    ("tcp", -16, 80, "Invalid value for port -16"),
    ("tcp", 80, 65536, "Invalid value for port 65536"),
    ("tcp", "-16", "65536", "Invalid value for port -16"),
    ("tcp", 80, 79, "port_range_min must be <= port_range_max"),
    ("icmp", -1, 25, "Invalid value for port -1"),
    ("icmp", 1, 256, "Invalid value for ICMP code"),
    ("icmp", 300, 1, "Invalid value for ICMP type"),
])
def test_invalid_ports(cloud, protocol, low, high, words):
    group = post(cloud, "security-groups", "security_group", name="ports")
    r = cloud.request("POST", f"{V2}/security-group-rules", token="admin", json={
        "security_group_rule": {"security_group_id": group["id"], "direction": "ingress",
                                "protocol": protocol, "port_range_min": low,
                                "port_range_max": high}})
    neutron_error(r, 400, None, words)


def test_valid_port_range_is_kept(cloud):
    group = post(cloud, "security-groups", "security_group", name="ok")
    rule = post(cloud, "security-group-rules", "security_group_rule",
                security_group_id=group["id"], direction="ingress", protocol="tcp",
                port_range_min=1, port_range_max=65535)
    assert (rule["port_range_min"], rule["port_range_max"]) == (1, 65535)

"""Address arithmetic of ``services.network.ipam`` (no database)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from onestack.services.network import ipam


def test_eui64_follows_rfc4291():
    # RFC 4291 appendix A: the universal/local bit is inverted, ff:fe goes in the middle
    assert ipam.eui64("2001:db8::/64", "00:11:22:33:44:55") == "2001:db8::211:22ff:fe33:4455"
    assert ipam.eui64("fd00:1:2:3::/64", "fa:16:3e:32:e1:77") == \
        "fd00:1:2:3:f816:3eff:fe32:e177"


@pytest.mark.parametrize("cidr,gateway,pools", [
    ("10.0.0.0/24", "10.0.0.1", [("10.0.0.2", "10.0.0.254")]),
    ("10.0.0.0/24", None, [("10.0.0.1", "10.0.0.254")]),
    ("10.0.0.0/24", "10.0.0.254", [("10.0.0.1", "10.0.0.253")]),
    ("10.0.0.0/24", "10.0.0.9", [("10.0.0.1", "10.0.0.8"), ("10.0.0.10", "10.0.0.254")]),
    ("10.0.0.0/24", "192.0.2.1", [("10.0.0.1", "10.0.0.254")]),
    ("10.0.0.0/30", "10.0.0.1", [("10.0.0.2", "10.0.0.2")]),
    ("10.0.0.0/31", None, []),
    ("10.0.0.0/32", None, []),
    ("2001:db8::/64", "2001:db8::1", [("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")]),
    ("2001:db8::/127", None, [("2001:db8::1", "2001:db8::1")]),
])
def test_default_pools(cidr, gateway, pools):
    assert ipam.default_pools(cidr, gateway) == pools


def _subnet(cidr, *pools, version=4):
    return SimpleNamespace(ip_version=version, cidr=cidr, allocation_pools=[
        SimpleNamespace(first_ip=a, last_ip=b) for a, b in pools])


def test_first_free_walks_the_pools_in_order():
    sub = _subnet("10.0.0.0/24", ("10.0.0.10", "10.0.0.11"), ("10.0.0.2", "10.0.0.3"))
    assert ipam.first_free(sub, []) == "10.0.0.10"
    assert ipam.first_free(sub, ["10.0.0.10"]) == "10.0.0.11"
    assert ipam.first_free(sub, ["10.0.0.10", "10.0.0.11"]) == "10.0.0.2"
    assert ipam.first_free(sub, ["10.0.0.10", "10.0.0.11", "10.0.0.2", "10.0.0.3"]) is None
    v6 = _subnet("2001:db8::/64", ("2001:db8::2", "2001:db8::3"), version=6)
    assert ipam.first_free(v6, ["2001:db8::2"]) == "2001:db8::3"


def test_check_in_subnet():
    sub = _subnet("10.0.0.0/24")
    assert ipam.check_in_subnet(sub, "10.0.0.7") == "10.0.0.7"
    for bad in ("10.0.0.0", "10.0.0.255", "10.0.1.1", "2001:db8::1"):
        with pytest.raises(Exception) as info:
            ipam.check_in_subnet(sub, bad)
        assert info.value.fault == "InvalidIpForSubnet"
    v6 = _subnet("2001:db8::/64", version=6)
    assert ipam.check_in_subnet(v6, "2001:DB8::0:5") == "2001:db8::5"

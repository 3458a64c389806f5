"""The router's advertisements (dnsmasq RA-only) and subnet pool allocation, as pure
functions (no root needed)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from onestack.drivers.network.dhcp.dnsmasq import DnsmasqFiles
from onestack.drivers.network.l3.base import RouterAdvert, RouterPort
from onestack.drivers.network.l3.radvert import build_command
from onestack.services.network.subnetpools import first_free


def leg(advertise: list[RouterAdvert], mtu: int = 1450) -> RouterPort:
    return RouterPort("p1", "n1", "fa:16:3e:00:00:01", ["2001:db8:8000::1/64"], mtu=mtu,
                      advertise=advertise)


def test_ra_only_with_a_router_lifetime() -> None:
    files = DnsmasqFiles(Path("/state/l3/r1"))
    argv = build_command([("qr-a", leg([RouterAdvert("2001:db8:8000::/64")])),
                          ("qr-b", leg([]))], files)
    assert argv is not None
    assert "--interface=qr-a" in argv and "--interface=qr-b" not in argv
    assert "--dhcp-range=set:ra-qr-a-0,2001:db8:8000::,ra-only,64,1800s" in argv
    # A non-zero router lifetime: guests take the router as their default router.
    assert "--ra-param=qr-a,mtu:1450,30,1800" in argv
    assert "--port=0" in argv and "--leasefile-ro" in argv and "--enable-ra" in argv
    assert f"--pid-file={files.pid}" in argv


def test_stateless_sets_other_config_and_dns() -> None:
    files = DnsmasqFiles(Path("/state/l3/r1"))
    argv = build_command([("qr-a", leg([RouterAdvert("2001:db8:8000::/64",
                                                     "dhcpv6-stateless",
                                                     ["2001:db8::53"])]))], files)
    assert argv is not None
    assert "--dhcp-range=set:ra-qr-a-0,2001:db8:8000::,ra-stateless,64,1800s" in argv
    assert "--dhcp-option=tag:ra-qr-a-0,option6:dns-server,[2001:db8::53]" in argv


def test_nothing_to_advertise() -> None:
    assert build_command([("qr-a", leg([]))], DnsmasqFiles(Path("/x"))) is None


def nets(*cidrs: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


def test_first_free_skips_taken_blocks_aligned() -> None:
    pool = nets("10.0.0.0/24")
    assert str(first_free(pool, [], 26)) == "10.0.0.0/26"
    assert str(first_free(pool, nets("10.0.0.0/28"), 26)) == "10.0.0.64/26"
    assert str(first_free(pool, nets("10.0.0.0/26", "10.0.0.128/25"), 26)) == "10.0.0.64/26"
    assert first_free(pool, nets("10.0.0.0/25", "10.0.0.128/25"), 26) is None
    assert first_free(pool, [], 23) is None  # longer than the pool's prefix
    # Several prefixes: the next one when the first is full.
    assert str(first_free(nets("10.0.0.0/26", "10.1.0.0/24"), nets("10.0.0.0/26"), 26)) \
        == "10.1.0.0/26"


def test_first_free_in_a_large_ipv6_pool_is_quick() -> None:
    pool = nets("2001:db8:8000::/33")
    taken = [ipaddress.ip_network(f"2001:db8:8000:{i:x}::/64") for i in range(2000)]
    assert str(first_free(pool, taken, 64)) == "2001:db8:8000:7d0::/64"

"""dnsmasq's command line, hosts and options files, and leases, generated from specs."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from onestack.drivers.network.base import DhcpHost, NetworkSpec, SubnetSpec
from onestack.drivers.network.dhcp.dnsmasq import (
    DnsmasqFiles,
    DnsmasqProcess,
    build_command,
    check_mac,
    dnsmasq_user,
    hosts_file,
    interface_addresses,
    opts_file,
    parse_leases,
    served_subnets,
    stale_leases,
    without_leases,
)

FILES = DnsmasqFiles(Path("/state/dhcp/net1"))
V4 = SubnetSpec(id="s4", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1",
                enable_dhcp=True)


def v6(id_: str, cidr: str, mode: str | None, ra_mode: str | None = None) -> SubnetSpec:
    return SubnetSpec(id=id_, cidr=cidr, ip_version=6, gateway_ip=None, enable_dhcp=True,
                      ipv6_ra_mode=ra_mode, ipv6_address_mode=mode)


def spec(**kw: object) -> NetworkSpec:
    base = NetworkSpec(id="net1", mtu=1450, subnets=[V4], dhcp_mac="fa:16:3e:00:00:02",
                       dhcp_ips=["10.0.0.2"],
                       hosts=[DhcpHost("p1", "FA:16:3E:00:00:05", ["10.0.0.5"], "vm-1")])
    return replace(base, **kw)  # type: ignore[arg-type]


def test_command_line_ipv4() -> None:
    assert build_command(spec(), FILES, "ns-net1") == [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--port=0",
        "--pid-file=/state/dhcp/net1/pid",
        "--dhcp-hostsfile=/state/dhcp/net1/host",
        "--dhcp-optsfile=/state/dhcp/net1/opts",
        "--dhcp-leasefile=/state/dhcp/net1/leases",
        "--log-facility=/state/dhcp/net1/dnsmasq.log",
        "--log-dhcp",
        "--except-interface=lo",
        "--bind-interfaces",
        "--interface=ns-net1",
        "--no-ping",
        "--dhcp-authoritative",
        "--dhcp-range=set:subnet-s4,10.0.0.0,static,255.255.255.0,86400s",
        "--dhcp-lease-max=256",
    ]


def test_command_line_user_and_ipv6_modes() -> None:
    subnets = [V4, v6("a", "fd00:1::/64", "slaac"),
               v6("b", "fd00:2::/64", None, ra_mode="dhcpv6-stateless"),
               v6("c", "fd00:3::/64", "dhcpv6-stateful"),
               v6("d", "fd00:4::/64", None)]
    argv = build_command(spec(subnets=subnets, dhcp_ips=[
        "10.0.0.2", "fd00:1::2", "fd00:2::2", "fd00:3::2", "fd00:4::2"]),
        FILES, "ns-net1", user="root")
    assert argv is not None
    assert "--user=root" in argv and "--group=root" in argv
    ranges = [a for a in argv if a.startswith("--dhcp-range=")]
    assert ranges == [
        "--dhcp-range=set:subnet-a,fd00:1::,ra-only,64,86400s",
        "--dhcp-range=set:subnet-b,fd00:2::,ra-stateless,64,86400s",
        "--dhcp-range=set:subnet-c,fd00:3::,static,64,86400s",
        "--dhcp-range=set:subnet-s4,10.0.0.0,static,255.255.255.0,86400s",
    ]
    assert "--enable-ra" in argv
    assert "--ra-param=ns-net1,mtu:1450,0,0" in argv


def test_nothing_to_serve() -> None:
    assert build_command(spec(dhcp_mac=None), FILES, "x") is None
    assert build_command(spec(subnets=[replace(V4, enable_dhcp=False)]), FILES, "x") is None
    # No address of the DHCP port on the subnet: dnsmasq could not serve it.
    assert build_command(spec(dhcp_ips=["10.9.9.9"]), FILES, "x") is None
    assert served_subnets(spec(dhcp_ips=[])) == []


def test_command_line_ignores_hosts_and_mtu_of_ipv4() -> None:
    """Hosts and options are re-read on SIGHUP, so they must not force a restart."""
    assert build_command(spec(hosts=[], mtu=1300), FILES, "x") == build_command(
        spec(), FILES, "x")


def test_hosts_file() -> None:
    subnets = [V4, v6("a", "fd00:1::/64", "slaac"), v6("c", "fd00:3::/64", "dhcpv6-stateful")]
    hosts = [
        DhcpHost("p2", "fa:16:3e:00:00:07", ["10.0.0.7", "fd00:1::f816:3eff:fe00:7",
                                             "fd00:3::7"], "Web_Server.example.org"),
        DhcpHost("p1", "FA:16:3E:00:00:05", ["10.0.0.5", "192.168.1.1"]),
    ]
    text = hosts_file(spec(subnets=subnets, hosts=hosts,
                           dhcp_ips=["10.0.0.2", "fd00:1::2", "fd00:3::2"]))
    assert text == ("fa:16:3e:00:00:05,10.0.0.5,host-10-0-0-5\n"
                    "fa:16:3e:00:00:07,10.0.0.7,web-server\n"
                    "fa:16:3e:00:00:07,[fd00:3::7],web-server\n")


def test_hosts_file_refuses_bad_macs() -> None:
    with pytest.raises(ValueError, match="MAC"):
        hosts_file(spec(hosts=[DhcpHost("p", "fa:16:3e:00:00:05\nx", ["10.0.0.5"])]))
    assert check_mac("FA:16:3E:0A:0B:0C") == "fa:16:3e:0a:0b:0c"


def test_opts_file() -> None:
    subnet = replace(V4, dns_nameservers=["8.8.8.8", "2001:db8::53", "1.1.1.1"],
                     host_routes=[{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"},
                                  {"destination": "fd00:9::/64", "nexthop": "fd00::1"}])
    assert opts_file(spec(subnets=[subnet])) == (
        "tag:subnet-s4,option:mtu,1450\n"
        "tag:subnet-s4,option:router,10.0.0.1\n"
        "tag:subnet-s4,option:classless-static-route,169.254.169.254/32,10.0.0.2,"
        "192.168.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1\n"
        "tag:subnet-s4,option:dns-server,8.8.8.8,1.1.1.1\n")


def test_opts_file_without_gateway_or_dns() -> None:
    """Empty router and DNS options: dnsmasq must not offer itself instead."""
    text = opts_file(spec(subnets=[replace(V4, gateway_ip=None)]))
    assert "tag:subnet-s4,option:router\n" in text
    assert "tag:subnet-s4,option:dns-server\n" in text
    assert "option:classless-static-route,169.254.169.254/32,10.0.0.2\n" in text


def test_opts_file_default_host_route_replaces_gateway() -> None:
    subnet = replace(V4, host_routes=[{"destination": "0.0.0.0/0", "nexthop": "10.0.0.9"}])
    text = opts_file(spec(subnets=[subnet]))
    assert "169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.9\n" in text


def test_opts_file_ipv6_dns() -> None:
    subnet = replace(v6("b", "fd00:2::/64", "dhcpv6-stateless"),
                     dns_nameservers=["2001:db8::53", "8.8.8.8"])
    text = opts_file(spec(subnets=[subnet], dhcp_ips=["fd00:2::2"]))
    assert text == "tag:subnet-b,option6:dns-server,[2001:db8::53]\n"


def test_interface_addresses() -> None:
    s = spec(subnets=[V4, v6("a", "fd00:1::/64", "slaac")],
             dhcp_ips=["10.0.0.2", "fd00:1::2", "192.0.2.9"])
    assert interface_addresses(s) == ["10.0.0.2/24", "fd00:1::2/64", "192.0.2.9/32",
                                      "169.254.169.254/32"]


LEASES = """\
1700000000 fa:16:3e:00:00:05 10.0.0.5 vm-1 01:fa:16:3e:00:00:05
1700000000 fa:16:3e:00:00:06 10.0.0.6 * *
duid 00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02
1700000000 1234 fd00:3::7 web 00:03:00:01:fa:16:3e:00:00:07
"""


def test_parse_leases() -> None:
    leases = parse_leases(LEASES)
    assert [(lease.ip, lease.mac, lease.client_id) for lease in leases] == [
        ("10.0.0.5", "fa:16:3e:00:00:05", "01:fa:16:3e:00:00:05"),
        ("10.0.0.6", "fa:16:3e:00:00:06", None),
        ("fd00:3::7", None, "00:03:00:01:fa:16:3e:00:00:07"),
    ]
    assert leases[2].iaid == "1234"
    assert leases[2].server_duid == "00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02"


def test_stale_leases_and_pruning() -> None:
    current = spec(hosts=[DhcpHost("p1", "FA:16:3E:00:00:05", ["10.0.0.5"])])
    stale = stale_leases(parse_leases(LEASES), current)
    assert [lease.ip for lease in stale] == ["10.0.0.6", "fd00:3::7"]
    # Same MAC, another address: the old lease is stale too.
    moved = spec(hosts=[DhcpHost("p1", "fa:16:3e:00:00:05", ["10.0.0.50"]),
                        DhcpHost("p2", "fa:16:3e:00:00:07", ["fd00:3:0::7"])])
    assert [lease.ip for lease in stale_leases(parse_leases(LEASES), moved)] == [
        "10.0.0.5", "10.0.0.6"]
    assert without_leases(LEASES, stale) == (
        "1700000000 fa:16:3e:00:00:05 10.0.0.5 vm-1 01:fa:16:3e:00:00:05\n"
        "duid 00:01:00:01:2c:aa:bb:cc:fa:16:3e:00:00:02\n")


def test_dnsmasq_user(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    (closed / "dhcp").mkdir(parents=True)
    closed.chmod(0o700)
    assert dnsmasq_user(closed / "dhcp") == "root"
    assert dnsmasq_user(Path("/")) is None


def test_process_is_found_only_by_its_command_line(tmp_path: Path) -> None:
    files = DnsmasqFiles(tmp_path)
    process = DnsmasqProcess(files)
    assert process.pid() is None
    files.pid.write_text(f"{os.getpid()}\n")  # alive, but not a dnsmasq of this directory
    assert process.pid() is None
    files.pid.write_text("garbage")
    assert process.pid() is None

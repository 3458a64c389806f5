"""Routed IPv6 from the API to a real guest, and metadata through a router.

One ``onestack up`` with the real drivers (QEMU under TCG, Linux bridges, dnsmasq, the
Linux L3 driver and firewall) in a namespace of the test's own, which plays the host and
the outside: in the all-in-one mode the host holds public's gateway addresses,
203.0.113.1 and 2001:db8::1, on its bridge and routes tenant IPv6 prefixes to the
routers' gateway ports.

One guest on a network with an IPv4 subnet and an IPv6 subnet from the default subnet
pool (made with the stock CLI, ``--use-default-subnet-pool``, SLAAC), behind a router
with its gateway on ``public``. It takes a global address by SLAAC and a default route
from the router's advertisements; its user data starts busybox ``httpd`` and prints its
IPv6 routes. The host reaches it on tcp/80 by its IPv6 address while a security group
rule allows it, and no more once the rule is gone.

The guest's second NIC is on a network without DHCP attached to the same router (the
test image configures only its first NIC, and has no config drive), so a namespace on
that network's bridge, with the guest's address there, plays the guest: its request to
169.254.169.254 goes to its default gateway (the router), which redirects it to the
agent's metadata proxy, which answers with that instance's metadata.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from onestack.drivers.network.names import Names
from onestack.services.image.testimage import build_test_image
from onestack.services.network.ipam import eui64
from tests.host.harness import NetnsHost, netns_host, openstack, run, wait_for

pytestmark = [
    pytest.mark.root, pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, bridges, taps)"),
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or
                       shutil.which("dnsmasq") is None or shutil.which("nft") is None,
                       reason="needs QEMU, dnsmasq and nft"),
]

BOOT_TIMEOUT = 240
OUTSIDE6 = "2001:db8::1"
POOL = ipaddress.ip_network("2001:db8:8000::/33")
USER_DATA = """#!/bin/sh
mkdir -p /www && echo "hello6 from $(hostname)" > /www/index.html
httpd -p 80 -h /www
i=0
while [ $i -lt 50 ] && ! ip -6 route show default | grep -q via; do
    sleep 0.2; i=$((i + 1))
done
echo "ONESTACK-V6ROUTES [$(ip -6 route show | tr '\\n' ';')]"
"""


@pytest.fixture(scope="module")
def image_file() -> Path:
    return build_test_image()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, image_file: Path) -> Iterator[NetnsHost]:
    with netns_host(tmp_path_factory.mktemp("host"), ONESTACK_HOST_ACCEL="tcg") as h:
        yield h


@pytest.fixture(scope="module")
def guest(host: NetnsHost, image_file: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict:
    tmp = tmp_path_factory.mktemp("cloud")
    openstack(host, "image", "create", "--disk-format", "qcow2", "--container-format",
              "bare", "--file", str(image_file), "--public", "testimg")
    group = openstack(host, "security", "group", "create", "web6")
    rule = openstack(host, "security", "group", "rule", "create", "--ingress",
                     "--ethertype", "IPv6", "--protocol", "tcp", "--dst-port", "80", "web6")
    openstack(host, "network", "create", "net6")
    v4 = openstack(host, "subnet", "create", "--network", "net6", "--subnet-range",
                   "10.46.0.0/24", "s4")
    v6 = openstack(host, "subnet", "create", "--ip-version", "6",
                   "--use-default-subnet-pool", "--ipv6-ra-mode", "slaac",
                   "--ipv6-address-mode", "slaac", "--network", "net6", "s6")
    openstack(host, "network", "create", "nodhcp")
    quiet = openstack(host, "subnet", "create", "--network", "nodhcp", "--no-dhcp",
                      "--subnet-range", "10.47.0.0/24", "s-nodhcp")
    router = openstack(host, "router", "create", "r6")
    openstack(host, "router", "set", "--external-gateway", "public", "r6",
              json_output=False)
    for subnet in (v4, v6, quiet):
        openstack(host, "router", "add", "subnet", "r6", subnet["id"], json_output=False)
    info = openstack(host, "router", "show", "r6")["external_gateway_info"]
    user_data = tmp / "user-data.sh"
    user_data.write_text(USER_DATA)
    openstack(host, "server", "create", "--image", "testimg", "--flavor", "m1.nano",
              "--network", "net6", "--network", "nodhcp", "--security-group", "web6",
              "--user-data", str(user_data), "--wait", "vm6", timeout=300)
    server = openstack(host, "server", "show", "vm6")
    ports = openstack(host, "port", "list", "--server", server["id"], "--network", "nodhcp")
    return {"router": router["id"], "server": server["id"], "v6": v6, "rule": rule["id"],
            "group": group["id"], "gateway_ips": [f["ip_address"]
                                                 for f in info["external_fixed_ips"]],
            "nodhcp": quiet, "ports": ports}


def console(host: NetnsHost) -> str:
    return openstack(host, "console", "log", "show", "vm6", json_output=False)


def wait_console(host: NetnsHost, pattern: str, timeout: float = BOOT_TIMEOUT) -> str:
    def seen() -> str | None:
        text = console(host)
        return text if re.search(pattern, text) else None
    try:
        return wait_for(seen, timeout, interval=2, what=f"{pattern!r} on vm6")
    except AssertionError:
        print(console(host)[-3000:])
        print(host.log_tail())
        raise


def get6(address: str, timeout: float = 1.0) -> str | None:
    try:
        with socket.create_connection((address, 80), timeout=timeout) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode() if head.startswith(b"HTTP/1.") and b" 200 " in head else None


def test_subnet_from_the_default_pool(guest: dict) -> None:
    v6 = guest["v6"]
    assert ipaddress.ip_network(v6["cidr"]).subnet_of(POOL)  # type: ignore[arg-type]
    assert ipaddress.ip_network(v6["cidr"]).prefixlen == 64
    assert v6["subnetpool_id"] and v6["ipv6_ra_mode"] == "slaac"
    # The router's gateway has an address on each of public's subnets.
    versions = sorted(ipaddress.ip_address(a).version for a in guest["gateway_ips"])
    assert versions == [4, 6]


def test_guest_gets_a_global_address_and_a_default_route(host: NetnsHost,
                                                         guest: dict) -> None:
    text = wait_console(host, r"ONESTACK-V6ROUTES \[")
    found = re.search(r"ipv6 ok (\S+)", text)
    assert found, text[-2000:]
    address = ipaddress.ip_interface(found.group(1))
    assert address.network == ipaddress.ip_network(guest["v6"]["cidr"]), text[-2000:]
    routes = re.search(r"ONESTACK-V6ROUTES \[(.*)\]", text).group(1)  # type: ignore[union-attr]
    # The default route is the router's: via the link-local address of its qr- port
    # (the DHCP namespace advertises the prefix with router lifetime 0: no route).
    (leg,) = [p for p in openstack(host, "port", "list", "--router", "r6", "--network",
                                   "net6")
              if any(f["subnet_id"] == guest["v6"]["id"] for f in p["Fixed IP Addresses"])]
    router_ll = eui64("fe80::/64", leg["MAC Address"])
    assert re.search(rf"default via {re.escape(router_ll)} dev eth0", routes), routes
    assert routes.count("default via") == 1, routes
    guest["address"] = str(address.ip)


def test_outside_reaches_the_guest_by_ipv6_only_while_allowed(host: NetnsHost,
                                                              guest: dict) -> None:
    if "address" not in guest:
        pytest.skip("the guest has no IPv6 address")
    address = guest["address"]
    # The host holds public's IPv6 gateway and routes the prefix to the router.
    route = run("ip", "-6", "route", "get", address).stdout
    gateway6 = next(a for a in guest["gateway_ips"] if ":" in a)
    assert f"via {gateway6}" in route and f"src {OUTSIDE6}" in route, route
    page = wait_for(lambda: get6(address), 60, interval=0.5, what=f"http://[{address}]/")
    assert "hello6 from vm6" in page

    # The rule goes: new connections are refused by the guest's security group.
    openstack(host, "security", "group", "rule", "delete", guest["rule"],
              json_output=False)
    wait_for(lambda: get6(address, timeout=0.5) is None, 10, interval=0.2,
             what=f"http://[{address}]/ refused without the rule")
    assert get6(address, timeout=2.0) is None
    # And comes back: allowed again.
    openstack(host, "security", "group", "rule", "create", "--ingress", "--ethertype",
              "IPv6", "--protocol", "tcp", "--dst-port", "80", "web6")
    assert wait_for(lambda: get6(address), 10, interval=0.2, what="allowed again")


def test_metadata_through_the_router_on_a_network_without_dhcp(host: NetnsHost,
                                                                guest: dict) -> None:
    nodhcp = guest["nodhcp"]
    (port,) = guest["ports"]
    fixed = next(f["ip_address"] for f in port["Fixed IP Addresses"])
    bridge = Names(host.prefix).bridge(nodhcp["network_id"])
    wait_for(lambda: bridge in host.links(), 60, what=f"bridge {bridge}")
    ns, outer, inner = f"{host.prefix}md", f"{host.prefix}omd", f"{host.prefix}imd"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "set", inner, "up")
        run("ip", "-n", ns, "addr", "add", f"{fixed}/24", "dev", inner)
        run("ip", "-n", ns, "route", "add", "default", "via", nodhcp["gateway_ip"])
        run("ip", "link", "set", outer, "master", bridge, "up")

        def fetch() -> dict | None:
            try:
                out = subprocess.run(
                    ["ip", "netns", "exec", ns, "busybox", "wget", "-q", "-O-",
                     "http://169.254.169.254/openstack/latest/meta_data.json"],
                    capture_output=True, text=True, timeout=5)
            except subprocess.TimeoutExpired:
                return None
            return json.loads(out.stdout) if out.returncode == 0 and out.stdout else None

        meta = wait_for(fetch, 30, interval=0.5, what="metadata through the router")
        assert meta["uuid"] == guest["server"] and meta["name"] == "vm6"
    finally:
        run("ip", "netns", "del", ns, check=False)


def test_subnet_pool_cli(host: NetnsHost) -> None:
    """``openstack subnet pool create/list/show/set/delete`` and a subnet from the pool,
    with the stock client."""
    made = openstack(host, "subnet", "pool", "create", "--pool-prefix", "10.90.0.0/16",
                     "--default-prefix-length", "26", "--min-prefix-length", "24",
                     "--max-prefix-length", "28", "cli-pool")
    assert made["prefixes"] == ["10.90.0.0/16"] and made["default_prefixlen"] == 26
    listed = openstack(host, "subnet", "pool", "list")
    assert {p["Name"] for p in listed} >= {"cli-pool", "shared-default-subnetpool-v6"}
    default = openstack(host, "subnet", "pool", "show", "shared-default-subnetpool-v6")
    assert default["is_default"] is True and default["ip_version"] == 6
    openstack(host, "subnet", "pool", "set", "--pool-prefix", "10.91.0.0/24", "cli-pool",
              json_output=False)
    shown = openstack(host, "subnet", "pool", "show", "cli-pool")
    assert shown["prefixes"] == ["10.90.0.0/16", "10.91.0.0/24"]
    openstack(host, "network", "create", "poolnet")
    sub = openstack(host, "subnet", "create", "--network", "poolnet", "--subnet-pool",
                    "cli-pool", "--prefix-length", "27", "pooled")
    assert sub["cidr"] == "10.90.0.0/27"
    openstack(host, "subnet", "delete", "pooled", json_output=False)
    openstack(host, "subnet", "pool", "delete", "cli-pool", json_output=False)
    assert "cli-pool" not in {p["Name"] for p in openstack(host, "subnet", "pool", "list")}

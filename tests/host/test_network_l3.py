"""The Linux L3 driver against the real kernel and nftables: a router between a tenant
network and an external one, SNAT, a floating IP (DNAT, 1:1 SNAT, hairpin), static routes,
and re-association.

The "host" is a namespace of its own (``<prefix>host``); guests and an "outside" (playing
the internet on the external network, with the documentation prefix 203.0.113.0/24) are
namespaces joined to the bridges by veths. Small HTTP servers answer with the client's
address, which tells what NAT did. Everything carries a random prefix and is removed at
the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from onestack.drivers import network
from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkSpec
from onestack.drivers.network.host import HostNetwork
from onestack.drivers.network.l3.base import (
    FloatingIp,
    Route,
    RouterAdvert,
    RouterPort,
    RouterSpec,
)
from onestack.drivers.network.names import Names
from tests.host.test_network_linux import random_mac, serve_peer_address, sh, wait_for

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables not installed"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
]

PORT = 8080
FIP = "203.0.113.20"
GATEWAY_IP = "203.0.113.10"
OUTSIDE_IP = "203.0.113.1"


@dataclass
class Lab:
    prefix: str
    driver: HostNetwork

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def attach(self, name: str, network_id: str, address: str, gateway: str | None) -> str:
        """A namespace ``<prefix><name>`` on the network's bridge with ``address``."""
        ns, outer, inner = (f"{self.prefix}{name}", f"{self.prefix}o{name}",
                            f"{self.prefix}i{name}")
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        sh("ip", "-n", ns, "link", "set", inner, "address", random_mac(), "up")
        sh("ip", "-n", ns, "addr", "add", address, "dev", inner)
        if gateway:
            sh("ip", "-n", ns, "route", "add", "default", "via", gateway)
        sh("ip", "link", "set", outer, "master", self.names.bridge(network_id), "up")
        return ns


@pytest.fixture
def lab() -> Iterator[Lab]:
    prefix = "o" + secrets.token_hex(2)[:3]
    state_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    host_ns = f"{prefix}host"
    sh("ip", "netns", "add", host_ns)
    try:
        with netns.inside(netns.namespace_path(host_ns)):
            sh("ip", "link", "set", "lo", "up")
            lab = Lab(prefix, network.load("linux", state_dir=state_dir, name_prefix=prefix))
            try:
                yield lab
            finally:
                with contextlib.suppress(Exception):
                    lab.driver.cleanup()
    finally:
        for name in netns.namespaces():
            if name.startswith(prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def serving(ns: str) -> Iterator[None]:
    """An HTTP server on port 8080 in ``ns`` answering with the client's address."""

    def listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", PORT))
        sock.listen(16)
        sock.setblocking(False)
        return sock

    sock = netns.call_in_namespace(ns, listen)
    with sock, serve_peer_address(sock):
        yield


def fetch(ns: str, address: str) -> str | None:
    """What the server at ``address`` answers to ``ns`` (the address it saw), or None."""
    # (busybox wget's own -T crashes this build: the subprocess timeout stands in.)
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "busybox", "wget", "-q", "-O-",
                              f"http://{address}:{PORT}/"],
                             capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        return None
    return out.stdout if out.returncode == 0 else None


def routes(ns: str) -> set[tuple[str, str]]:
    return {(r["dst"], r.get("gateway", "")) for r in
            netns.ip_json("route", "show", "proto", "static", namespace=ns)}


def test_router_snat_floating_ip_hairpin_and_routes(lab: Lab) -> None:
    driver = lab.driver
    tenant = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[])
    external = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[])
    driver.ensure_network(tenant)
    driver.ensure_network(external)
    g0 = lab.attach("g0", tenant.id, "10.71.0.5/24", "10.71.0.1")
    g1 = lab.attach("g1", tenant.id, "10.71.0.6/24", "10.71.0.1")
    outside = lab.attach("out", external.id, f"{OUTSIDE_IP}/24", None)
    spec = RouterSpec(
        id=str(uuid.uuid4()),
        interfaces=[RouterPort(str(uuid.uuid4()), tenant.id, random_mac(), ["10.71.0.1/24"])],
        gateway=RouterPort(str(uuid.uuid4()), external.id, random_mac(),
                           [f"{GATEWAY_IP}/24"]),
        external_gateways=[OUTSIDE_IP],
        routes=[Route("192.168.99.0/24", "10.71.0.254")],
        floating_ips=[FloatingIp(FIP, "10.71.0.6")])
    driver.l3.ensure_router(spec)
    driver.l3.ensure_router(spec)  # idempotent
    assert driver.l3.list_routers() == [spec.id]
    ns = lab.names.router_namespace(spec.id)
    assert routes(ns) == {("default", OUTSIDE_IP), ("192.168.99.0/24", "10.71.0.254")}

    with serving(outside):
        assert fetch(g0, OUTSIDE_IP) == GATEWAY_IP  # SNAT to the gateway address
        assert fetch(g1, OUTSIDE_IP) == FIP  # 1:1 SNAT to the floating IP
    with serving(g1):
        assert fetch(outside, FIP) == OUTSIDE_IP  # DNAT, the client's address kept
        assert fetch(g0, FIP) == GATEWAY_IP  # hairpin: through the router and back
        # A restarted driver converges the same router without a change.
        network.load_kind("l3", "linux", name_prefix=lab.prefix).ensure_router(spec)
        assert fetch(outside, FIP) == OUTSIDE_IP
        # Disassociated: the floating address is dead at once.
        driver.l3.ensure_router(replace(spec, floating_ips=[]))
        assert fetch(outside, FIP) is None
        # Associated again.
        driver.l3.ensure_router(spec)
        assert fetch(outside, FIP) == OUTSIDE_IP

    # enable_snat false: tenant addresses leave untranslated (and the outside, with no
    # route back to them, never answers); routes the spec drops are removed.
    driver.l3.ensure_router(replace(spec, floating_ips=[], enable_snat=False, routes=[]))
    with serving(outside):
        assert fetch(g0, OUTSIDE_IP) is None
    assert routes(ns) == {("default", OUTSIDE_IP)}

    # Without its gateway port: the qg- port and the default route go.
    driver.l3.ensure_router(replace(spec, gateway=None, floating_ips=[], routes=[]))
    inside = {link["ifname"] for link in netns.ip_json("link", "show", namespace=ns)}
    assert lab.names.router_gateway(spec.gateway.id) not in inside  # type: ignore[union-attr]
    assert lab.names.router_internal(spec.interfaces[0].id) in inside
    assert routes(ns) == set()

    driver.l3.remove_router(spec.id)
    driver.l3.remove_router(spec.id)  # idempotent
    assert driver.l3.list_routers() == []
    assert ns not in netns.namespaces()
    assert not [name for name in netns.links() if name.startswith(f"{lab.prefix}rt-")]


def test_router_refuses_a_network_without_bridge_and_cleanup_removes_routers(
        lab: Lab) -> None:
    spec = RouterSpec(id=str(uuid.uuid4()), interfaces=[
        RouterPort(str(uuid.uuid4()), str(uuid.uuid4()), random_mac(), ["10.72.0.1/24"])])
    with pytest.raises(network.NetworkDriverError, match="has no bridge"):
        lab.driver.l3.ensure_router(spec)
    tenant = NetworkSpec(id=spec.interfaces[0].network_id, mtu=1400, subnets=[])
    lab.driver.ensure_network(tenant)
    lab.driver.l3.ensure_router(spec)
    ns = lab.names.router_namespace(spec.id)
    inner = netns.ip_json("link", "show", lab.names.router_internal(spec.interfaces[0].id),
                          namespace=ns)[0]
    assert inner["address"] == spec.interfaces[0].mac and inner["mtu"] == 1500
    lab.driver.cleanup()
    assert lab.driver.l3.list_routers() == [] and lab.driver.list_networks() == []


def _global_ipv6(ns: str, ifname: str) -> list[str]:
    return [a["local"] for e in netns.ip_json("-6", "addr", "show", "dev", ifname,
                                              namespace=ns)
            for a in e.get("addr_info", [])
            if a.get("scope") == "global" and not a.get("tentative")]


def test_router_ipv6_advertisements_host_routes_and_metadata_redirect(lab: Lab) -> None:
    """IPv6 routed, not NATed: the router advertises the tenant prefix with a non-zero
    router lifetime (a guest takes a SLAAC address and a default route), the host (this
    namespace, holding 2001:db8::1 on the external bridge) routes the prefix via the
    gateway port and reaches the guest by its own address; a leg with ``metadata``
    redirects 169.254.169.254:80 to the router's metadata socket, whose port is closed
    to anything else. Removal takes the host route and the advertiser with it."""
    driver = lab.driver
    tenant = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[])
    external = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[],
                           host_addresses=[f"{OUTSIDE_IP}/24", "2001:db8::1/64"])
    driver.ensure_network(tenant)
    driver.ensure_network(external)
    guest = lab.attach("g6", tenant.id, "10.73.0.5/24", "10.73.0.1")
    inner = f"{lab.prefix}ig6"
    prefix = "2001:db8:8000:5::/64"
    spec = RouterSpec(
        id=str(uuid.uuid4()),
        interfaces=[RouterPort(str(uuid.uuid4()), tenant.id, random_mac(),
                               ["10.73.0.1/24", "2001:db8:8000:5::1/64"],
                               advertise=[RouterAdvert(prefix)], metadata=True)],
        gateway=RouterPort(str(uuid.uuid4()), external.id, random_mac(),
                           [f"{GATEWAY_IP}/24", "2001:db8::10/64"]),
        external_gateways=[OUTSIDE_IP, "2001:db8::1"], host_ipv6_routes=True)
    driver.l3.ensure_router(spec)
    driver.l3.ensure_router(spec)  # idempotent: the advertiser is kept
    ns = lab.names.router_namespace(spec.id)
    assert ("default", "2001:db8::1") in {
        (r["dst"], r.get("gateway", "")) for r in
        netns.ip_json("-6", "route", "show", "proto", "static", namespace=ns)}

    # The guest: a SLAAC address in the prefix and a default route from the router's RA.
    address = wait_for(lambda: _global_ipv6(guest, inner), 30, "a SLAAC address")[0]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(prefix)
    defaults = wait_for(lambda: [r for r in netns.ip_json("-6", "route", "show", "default",
                                                          namespace=guest)
                                 if r.get("protocol") == "ra"], 30, "an RA default route")
    assert defaults[0]["gateway"].startswith("fe80:") and defaults[0].get("expires", 0) > 0

    # The host's route to the tenant prefix, and the guest reached on its own address.
    host_routes = {(r["dst"], r.get("gateway")) for r in
                   netns.ip_json("-6", "route", "show", "proto", "static")}
    assert (prefix, "2001:db8::10") in host_routes

    def listen6() -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", PORT))
        sock.listen(16)
        sock.setblocking(False)
        return sock

    sock6 = netns.call_in_namespace(guest, listen6)
    with sock6, serve_peer_address(sock6):
        seen = wait_for(lambda: _get6(address), 10, f"http://[{address}]:{PORT}/")
    assert seen == "2001:db8::1"  # routed, not translated

    # Metadata: 169.254.169.254:80 from the guest reaches the router's socket.
    msock = driver.l3.metadata_socket(spec.id)
    assert msock is not None
    with msock, serve_peer_address(msock):
        out = sh("ip", "netns", "exec", guest, "busybox", "wget", "-q", "-O-",
                 "http://169.254.169.254/", timeout=10)
        assert out == "10.73.0.5"
        # The socket's port itself is closed: only redirected requests get there.
        def direct() -> bool:
            try:
                socket.create_connection(("10.73.0.1", 9697), timeout=1).close()
            except OSError:
                return False
            return True
        assert not netns.call_in_namespace(guest, direct)

    driver.l3.remove_router(spec.id)
    assert not [r for r in netns.ip_json("-6", "route", "show", "proto", "static")
                if r.get("gateway") == "2001:db8::10"]
    assert not [p for p in lab.driver.l3.advertiser.dir.glob("*/pid")  # type: ignore[attr-defined]
                if Path(f"/proc/{p.read_text().strip()}").exists()]


def _get6(address: str) -> str | None:
    try:
        with socket.create_connection((address, PORT), timeout=1) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return None
    return data.split(b"\r\n\r\n", 1)[1].decode() if b"\r\n\r\n" in data else None

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
from onestack.drivers.network.l3.base import FloatingIp, Route, RouterPort, RouterSpec
from onestack.drivers.network.names import Names
from tests.host.test_network_linux import random_mac, serve_peer_address, sh

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

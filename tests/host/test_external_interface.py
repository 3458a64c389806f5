"""``[host] external_interface``, the flat provider mapping, against the real kernel: the
Linux L2 driver joins an existing interface to the external network's bridge, and a
network beyond that interface reaches a router's gateway and a floating IP through it.

The test's "host" is a namespace of its own (``lab`` from test_network_l3); its "real
interface" is one end of a veth pair (``<prefix>eth1``) whose other end is in a
namespace playing the physical network (``<prefix>world``, holding 203.0.113.1, the
gateway of the documentation prefix). The host itself holds no address on the external
network. Everything carries the lab's random prefix and is removed at the end.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from onestack.drivers import network
from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkSpec
from onestack.drivers.network.l3.base import FloatingIp, RouterPort, RouterSpec
from tests.host import test_network_l3
from tests.host.test_network_l3 import Lab, fetch, serving
from tests.host.test_network_linux import random_mac, sh

pytestmark = test_network_l3.pytestmark
lab = test_network_l3.lab  # the fixture: a host namespace and the Linux drivers in it

WORLD_IP = "203.0.113.1"
GATEWAY_IP = "203.0.113.10"
FIP = "203.0.113.20"


def world(lab: Lab, uplink: str) -> str:
    """``<prefix>world``: the far end of the veth whose near end, ``uplink``, stays in
    the host namespace as its "real" external interface."""
    ns, far = f"{lab.prefix}world", f"{lab.prefix}wan"
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", far, "netns", ns)
    sh("ip", "-n", ns, "link", "set", far, "address", random_mac(), "up")
    sh("ip", "-n", ns, "addr", "add", f"{WORLD_IP}/24", "dev", far)
    return ns


def ping(ns: str, address: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", address],
                          capture_output=True).returncode == 0


def test_external_interface_carries_the_external_network(lab: Lab) -> None:
    driver = lab.driver
    uplink = f"{lab.prefix}eth1"
    outside = world(lab, uplink)
    external = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[], uplink=uplink)
    tenant = NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[])
    driver.ensure_network(external)
    driver.ensure_network(external)  # idempotent
    driver.ensure_network(tenant)
    bridge = lab.names.bridge(external.id)
    link = netns.links()[uplink]
    assert link.get("master") == bridge and netns.is_up(link)
    # the host holds no address of the external network
    assert not [a for a in netns.ip_json("addr", "show", "dev", bridge)[0]["addr_info"]
                if a["family"] == "inet"]

    guest = lab.attach("g1", tenant.id, "10.73.0.6/24", "10.73.0.1")
    neighbour = lab.attach("g0", tenant.id, "10.73.0.5/24", "10.73.0.1")
    spec = RouterSpec(
        id=str(uuid.uuid4()),
        interfaces=[RouterPort(str(uuid.uuid4()), tenant.id, random_mac(), ["10.73.0.1/24"])],
        gateway=RouterPort(str(uuid.uuid4()), external.id, random_mac(),
                           [f"{GATEWAY_IP}/24"]),
        external_gateways=[WORLD_IP], floating_ips=[FloatingIp(FIP, "10.73.0.6")])
    driver.l3.ensure_router(spec)
    # From beyond the interface: the router's gateway and the floating IP answer.
    assert ping(outside, GATEWAY_IP)
    assert ping(outside, FIP)
    with serving(guest):
        assert fetch(outside, FIP) == WORLD_IP  # DNAT through the real interface
    with serving(outside):
        assert fetch(neighbour, WORLD_IP) == GATEWAY_IP  # SNAT out of it
        assert fetch(guest, WORLD_IP) == FIP

    # Refused, nothing touched: a missing interface, one of ours, one in a bridge of
    # someone else's.
    with pytest.raises(network.NetworkDriverError, match="does not exist"):
        driver.ensure_network(NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[],
                                          uplink=f"{lab.prefix}nope"))
    with pytest.raises(network.NetworkDriverError, match="not a real interface"):
        driver.ensure_network(NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[],
                                          uplink=lab.names.bridge(tenant.id)))
    other, foreign = f"{lab.prefix}br0", f"{lab.prefix}eth2"
    sh("ip", "link", "add", other, "type", "bridge")
    sh("ip", "link", "add", foreign, "type", "veth", "peer", "name", f"{lab.prefix}eth3")
    sh("ip", "link", "set", foreign, "master", other)
    with pytest.raises(network.NetworkDriverError, match=f"already in bridge {other}"):
        driver.ensure_network(NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[],
                                          uplink=foreign))
    assert netns.links()[foreign].get("master") == other
    with pytest.raises(network.NetworkDriverError, match="not an interface name"):
        driver.ensure_network(NetworkSpec(id=str(uuid.uuid4()), mtu=1500, subnets=[],
                                          uplink="eth1; reboot"))

    # Removing the network releases the interface; it is never deleted.
    driver.l3.remove_router(spec.id)
    driver.delete_network(external.id)
    assert bridge not in netns.links()
    assert uplink in netns.links() and not netns.links()[uplink].get("master")
    # Cleanup too.
    driver.ensure_network(external)
    assert netns.links()[uplink].get("master") == bridge
    driver.cleanup()
    links = netns.links()
    assert bridge not in links and uplink in links and not links[uplink].get("master")
    assert foreign in links and links[foreign].get("master") == other  # not ours: kept

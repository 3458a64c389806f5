"""VXLAN peers in a host's desired state: each VXLAN network comes with the tunnel
addresses (``host_ip``) of the other hosts with a port on it (instances, DHCP ports,
routers), ``services/network/hostview.network_peers``."""

from __future__ import annotations

from sqlalchemy import select

from onestack.db.models import ComputeNode, Router
from onestack.hostlink.types import NetworkSpec
from tests.api.compute_helpers import boot
from tests.api.nova_helpers import add_host


def set_host_ip(cloud, host: str, address: str) -> None:
    with cloud.services.db.session() as session:
        node = session.scalar(select(ComputeNode).where(ComputeNode.host == host))
        node.host_ip = address


def network_of(cloud, host: str, network_id: str) -> NetworkSpec:
    state = cloud.services.hosts.desired_state(host)
    return next(n for n in state.networks if n.id == network_id)


def test_peers_are_the_other_hosts_on_the_network(quiet, env):
    add_host(quiet, "host-b")
    add_host(quiet, "host-c")
    set_host_ip(quiet, "host-a", "192.0.2.1")
    set_host_ip(quiet, "host-b", "192.0.2.2")
    set_host_ip(quiet, "host-c", "192.0.2.3")
    boot(quiet, env, availability_zone="nova:host-a")
    boot(quiet, env, availability_zone="nova:host-b")
    a = network_of(quiet, "host-a", env.network)
    assert (a.network_type, a.mtu) == ("vxlan", 1450)
    assert a.segmentation_id is not None and a.segmentation_id >= 1
    assert a.peers == ["192.0.2.2"]
    b = network_of(quiet, "host-b", env.network)
    assert b.peers == ["192.0.2.1"] and b.segmentation_id == a.segmentation_id
    # Unicast entries: the other host's ports (its instance's, its DHCP port, made with
    # its first desired state) by MAC, never this host's own.
    a = network_of(quiet, "host-a", env.network)
    assert {h.mac for h in b.hosts} | {b.dhcp_mac} == set(a.remote_macs)
    assert set(a.remote_macs.values()) == {"192.0.2.2"}
    assert {h.mac for h in a.hosts} | {a.dhcp_mac} == set(b.remote_macs)
    # host-c has nothing on the network: nobody floods to it.
    assert all(n.id != env.network for n in quiet.services.hosts.desired_state(
        "host-c").networks)
    # A third host joins: both others get it; a loopback address is nobody's peer.
    boot(quiet, env, availability_zone="nova:host-c")
    assert network_of(quiet, "host-a", env.network).peers == ["192.0.2.2", "192.0.2.3"]
    set_host_ip(quiet, "host-c", "127.0.0.1")
    assert network_of(quiet, "host-a", env.network).peers == ["192.0.2.2"]


def test_the_router_host_is_a_peer(quiet, env):
    add_host(quiet, "host-b")
    set_host_ip(quiet, "host-a", "192.0.2.1")
    set_host_ip(quiet, "host-b", "192.0.2.2")
    r = quiet.request("POST", "/network/v2.0/routers", json={"router": {"name": "r1"}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]["id"]
    r = quiet.request("PUT", f"/network/v2.0/routers/{router}/add_router_interface",
                      json={"subnet_id": env.subnet})
    assert r.status_code == 200, r.text
    boot(quiet, env, availability_zone="nova:host-a")
    a = quiet.services.hosts.desired_state("host-a")  # binds the router to host-a
    [spec] = a.routers
    assert spec.id == router
    # Bind it to host-b instead: host-a floods to host-b, and host-b (which has only
    # the router there) gets the network with host-a as peer.
    with quiet.services.db.session() as session:
        session.get(Router, router).host = "host-b"
    assert network_of(quiet, "host-a", env.network).peers == ["192.0.2.2"]
    b = quiet.services.hosts.desired_state("host-b")
    assert [r.id for r in b.routers] == [router]
    net = next(n for n in b.networks if n.id == env.network)
    assert net.peers == ["192.0.2.1"] and net.network_type == "vxlan"

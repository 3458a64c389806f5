"""The host service: one host's desired state from each service's slice, and reports
back to the service that owns them (``onestack.services.hosts``)."""

from __future__ import annotations

import json

from onestack.hostlink import HostToServer
from onestack.hostlink.codec import from_wire, to_wire
from onestack.hostlink.types import HostState, ImageDisk
from tests.api.compute_helpers import boot


def test_desired_state_of_a_host(quiet, env):
    hosts = quiet.services.hosts
    assert isinstance(hosts, HostToServer)
    sid = boot(quiet, env)["id"]
    state = hosts.desired_state("host-a")
    assert hosts.desired_state("host-b") == HostState(host="host-b")
    [inst] = state.instances
    assert inst.uuid == sid and inst.task_state == "spawning"
    [disk] = inst.disks
    assert isinstance(disk, ImageDisk) and disk.image.id == env.image
    assert inst.root_disk is disk and inst.image is disk.image
    [nic] = inst.ports
    assert nic.network_id == env.network and nic.ips
    [group_id] = nic.security_group_ids  # the project's default group
    [net] = state.networks
    assert net.id == env.network and net.dhcp_mac and net.dhcp_ips  # made for host-a
    assert [h.port_id for h in net.hosts] == [nic.id]
    [group] = state.security_groups
    assert group.id == group_id and nic.ips[0] in group.member_ips
    assert {r.direction for r in group.rules} == {"ingress", "egress"}
    # What crosses the wire survives JSON as it is.
    assert from_wire(HostState, json.loads(json.dumps(to_wire(state)))) == state
    assert hosts.existing_networks([env.network, "gone"]) == [env.network]


def test_reports_go_to_their_owners(quiet, env):
    hosts = quiet.services.hosts
    sid = boot(quiet, env)["id"]
    [nic] = hosts.desired_state("host-a").instances[0].ports
    hosts.set_port_status([nic.id], "ACTIVE")
    r = quiet.request("GET", f"/network/v2.0/ports/{nic.id}")
    assert r.json()["port"]["status"] == "ACTIVE"
    assert hosts.finish_task(sid, "spawning", vm_state="active", power_state=1)
    assert not hosts.finish_task(sid, "spawning", vm_state="active")  # already done
    hosts.instance_deleted(sid)
    assert hosts.desired_state("host-a").instances == []
    assert quiet.request("GET", f"/network/v2.0/ports/{nic.id}").status_code == 404


def test_routers_of_the_hosts_networks(quiet, env):
    hosts = quiet.services.hosts
    boot(quiet, env)
    public = quiet.request("GET", "/network/v2.0/networks?name=public").json()["networks"][0]
    r = quiet.request("POST", "/network/v2.0/routers", json={"router": {
        "name": "r1", "external_gateway_info": {"network_id": public["id"]}}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]["id"]
    r = quiet.request("PUT", f"/network/v2.0/routers/{router}/add_router_interface",
                      json={"subnet_id": env.subnet})
    assert r.status_code == 200, r.text
    [nic] = hosts.desired_state("host-a").instances[0].ports
    r = quiet.request("POST", "/network/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": nic.id}})
    assert r.status_code == 201, r.text
    floating = r.json()["floatingip"]["floating_ip_address"]
    [spec] = hosts.desired_state("host-a").routers
    assert spec.id == router and spec.enable_snat
    [leg] = spec.interfaces
    assert leg.network_id == env.network and leg.subnet_ids == [env.subnet]
    assert spec.gateway is not None and spec.gateway.network_id == public["id"]
    assert [(f.floating_ip, f.fixed_ip, f.port_id) for f in spec.floating_ips] == [
        (floating, nic.ips[0], nic.id)]
    # The external network comes with the routers (its bridge, no DHCP), marked external.
    state = hosts.desired_state("host-a")
    ext = next(n for n in state.networks if n.id == public["id"])
    assert ext.external and ext.dhcp_mac is None and ext.hosts == []
    assert [s.cidr for s in ext.subnets] == ["203.0.113.0/24", "2001:db8::/64"]
    assert not next(n for n in state.networks if n.id == env.network).external


def test_router_changes_wake_the_hosts(quiet, env):
    woken = []
    quiet.services.network.listeners.append(lambda: woken.append(1))
    public = quiet.request("GET", "/network/v2.0/networks?name=public").json()["networks"][0]
    r = quiet.request("POST", "/network/v2.0/routers", json={"router": {
        "name": "r1", "external_gateway_info": {"network_id": public["id"]}}})
    assert r.status_code == 201, r.text
    assert woken

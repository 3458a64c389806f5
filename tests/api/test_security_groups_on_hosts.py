"""Security groups as hosts get them: what a change wakes, and what the desired state
carries for the host's firewall (``onestack.agent.firewall``)."""

from __future__ import annotations

import json

from onestack.agent.firewall import firewall_of
from onestack.hostlink.codec import from_wire, to_wire
from onestack.hostlink.types import HostState
from tests.api.compute_helpers import boot


def test_rule_and_port_changes_wake_the_hosts(quiet, env):
    sid = boot(quiet, env)["id"]
    [nic] = quiet.services.hosts.desired_state("host-a").instances[0].ports
    [group] = nic.security_group_ids
    woken: list[int] = []
    quiet.services.network.listeners.append(lambda: woken.append(1))

    def woke(method: str, path: str, status: int, **body: object) -> None:
        before = len(woken)
        r = quiet.request(method, path, **body)
        assert r.status_code == status, r.text
        assert len(woken) > before, f"{method} {path} woke no host"

    r = quiet.request("POST", "/network/v2.0/security-group-rules", json={
        "security_group_rule": {"security_group_id": group, "direction": "ingress",
                                "protocol": "tcp", "port_range_min": 80,
                                "port_range_max": 80}})
    assert r.status_code == 201, r.text
    assert woken, "a rule create woke no host"
    woke("DELETE", f"/network/v2.0/security-group-rules/{r.json()['security_group_rule']['id']}",
         204)
    woke("PUT", f"/network/v2.0/ports/{nic.id}", 200, json={"port": {
        "allowed_address_pairs": [{"ip_address": "10.0.0.200"}]}})
    web = quiet.request("POST", "/network/v2.0/security-groups", json={
        "security_group": {"name": "web"}}).json()["security_group"]["id"]
    woke("POST", f"/compute/v2.1/servers/{sid}/action", 202,
         json={"addSecurityGroup": {"name": "web"}})
    woke("POST", f"/compute/v2.1/servers/{sid}/action", 202,
         json={"removeSecurityGroup": {"name": "web"}})
    port = quiet.request("POST", "/network/v2.0/ports", json={"port": {
        "network_id": env.network, "security_groups": [web]}})
    assert port.status_code == 201, port.text
    woke("DELETE", f"/network/v2.0/ports/{port.json()['port']['id']}", 204)


def test_the_desired_state_carries_what_the_firewall_needs(quiet, env):
    boot(quiet, env)
    hosts = quiet.services.hosts
    [nic] = hosts.desired_state("host-a").instances[0].ports
    r = quiet.request("PUT", f"/network/v2.0/ports/{nic.id}", json={"port": {
        "allowed_address_pairs": [{"ip_address": "10.0.0.200",
                                   "mac_address": "fa:16:3e:00:00:99"}]}})
    assert r.status_code == 200, r.text
    state = hosts.desired_state("host-a")
    assert from_wire(HostState, json.loads(json.dumps(to_wire(state)))) == state
    ports, members = firewall_of(state)
    [port] = ports
    assert port.port_id == nic.id and port.port_security_enabled
    assert [(p.ip_address, p.mac_address) for p in port.allowed_address_pairs] == [
        ("10.0.0.200", "fa:16:3e:00:00:99")]
    # The default group's rules, as Neutron makes them, and its members for the
    # remote-group rules.
    assert {(r.direction, r.ethertype, r.remote_group_id is not None)
            for r in port.rules} == {("egress", "IPv4", False), ("egress", "IPv6", False),
                                     ("ingress", "IPv4", True), ("ingress", "IPv6", True)}
    [group] = nic.security_group_ids
    assert members == {group: sorted(nic.ips)}

"""The agent's security groups (``onestack.agent.firewall``) against the fake firewall
driver: desired state -> per-port rule sets, remote groups, leftovers, the cheap path
when nothing changed, errors, and guests kept unplugged until their filters exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from onestack.agent.firewall import FirewallSync, firewall_of
from onestack.drivers.network.firewall.base import AddressPair, SecurityGroupRule
from onestack.drivers.network.firewall.fake import FakeFirewall
from onestack.drivers.network.firewall.noop import NoopFirewall
from onestack.hostlink import types as wire

DEFAULT, WEB = "sg-default", "sg-web"


def instance(uuid: str, *ports: wire.PortInfo, task_state: str | None = None
             ) -> wire.DesiredInstance:
    return wire.DesiredInstance(
        uuid=uuid, name=uuid, hostname=uuid, vm_state="active", task_state=task_state,
        task_args={}, power_state=1, vcpus=1, memory_mb=64, root_gb=1, disks=[],
        ports=list(ports))


def nic(port_id: str, ip: str, groups: list[str], **extra: object) -> wire.PortInfo:
    return wire.PortInfo(id=port_id, network_id="net-1", mac="FA:16:3E:00:00:0" + ip[-1],
                         mtu=1500, ips=[ip], security_group_ids=groups, **extra)  # type: ignore[arg-type]


def default_group(members: list[str]) -> wire.SecurityGroupRuleSet:
    """The default group as Neutron makes it."""
    return wire.SecurityGroupRuleSet(id=DEFAULT, member_ips=members, rules=[
        wire.SecurityGroupRule("egress", "IPv4"), wire.SecurityGroupRule("egress", "IPv6"),
        wire.SecurityGroupRule("ingress", "IPv4", remote_group_id=DEFAULT),
        wire.SecurityGroupRule("ingress", "IPv6", remote_group_id=DEFAULT)])


def state(*instances: wire.DesiredInstance,
          groups: list[wire.SecurityGroupRuleSet] | None = None) -> wire.HostState:
    return wire.HostState(host="h", instances=list(instances), security_groups=groups or [])


def test_ports_rules_and_remote_groups(tmp_path: Path) -> None:
    web = wire.SecurityGroupRuleSet(id=WEB, member_ips=["10.0.0.9"], rules=[
        wire.SecurityGroupRule("ingress", "IPv4", "tcp", 80, 80, "0.0.0.0/0")])
    pair = wire.AllowedAddressPair("10.0.0.100/32", "fa:16:3e:00:00:99")
    s = state(instance("a", nic("p-a", "10.0.0.5", [DEFAULT, WEB],
                                allowed_address_pairs=[pair])),
              instance("b", nic("p-b", "10.0.0.6", [DEFAULT]),
                       nic("p-c", "10.0.0.7", [], port_security_enabled=False)),
              groups=[default_group(["10.0.0.5", "10.0.0.6", "10.0.0.8"]), web])
    ports, members = firewall_of(s)
    assert [p.port_id for p in ports] == ["p-a", "p-b", "p-c"]
    a = ports[0]
    assert a.mac == "fa:16:3e:00:00:05" and a.ips == ["10.0.0.5"]
    assert SecurityGroupRule("ingress", "IPv4", "tcp", 80, 80, "0.0.0.0/0") in a.rules
    assert SecurityGroupRule("ingress", "IPv4", remote_group_id=DEFAULT) in a.rules
    assert len(a.rules) == 5
    assert a.allowed_address_pairs == [AddressPair("10.0.0.100/32", "fa:16:3e:00:00:99")]
    assert not ports[2].port_security_enabled and ports[2].rules == []
    # Only groups a rule names as remote, with members on any host (10.0.0.8).
    assert members == {DEFAULT: ["10.0.0.5", "10.0.0.6", "10.0.0.8"]}

    fake = FakeFirewall(state_dir=tmp_path)
    sync = FirewallSync(fake)
    assert sync.sync(s)
    assert sorted(fake.ports) == ["p-a", "p-b", "p-c"]
    assert fake.group_members == members


def test_unchanged_is_free_and_changes_and_leftovers_apply(tmp_path: Path) -> None:
    fake = FakeFirewall(state_dir=tmp_path)
    sync = FirewallSync(fake)
    a, b = instance("a", nic("p-a", "10.0.0.5", [DEFAULT])), \
        instance("b", nic("p-b", "10.0.0.6", [DEFAULT]))
    sync.sync(state(a, b, groups=[default_group(["10.0.0.5", "10.0.0.6"])]))
    sync.sync(state(a, b, groups=[default_group(["10.0.0.5", "10.0.0.6"])]))
    assert sync.applies == 1  # the same desired state: nothing sent
    # b goes (its port is a leftover) and the group's membership follows.
    sync.sync(state(a, groups=[default_group(["10.0.0.5"])]))
    assert sync.applies == 2
    assert sorted(fake.ports) == ["p-a"] and fake.group_members == {DEFAULT: ["10.0.0.5"]}
    # A rule added to the group reaches the port at the next pass.
    group = default_group(["10.0.0.5"])
    group.rules.append(wire.SecurityGroupRule("ingress", "IPv4", "icmp", 8, 0))
    sync.sync(state(a, groups=[group]))
    assert SecurityGroupRule("ingress", "IPv4", "icmp", 8, 0) in fake.ports["p-a"].rules
    # Due again after resync_seconds even when unchanged (rules flushed behind our back).
    sync.resync_seconds = 0.0
    sync.sync(state(a, groups=[group]))
    assert sync.applies == 4


def test_a_bad_rule_is_left_out_not_every_port(tmp_path: Path) -> None:
    fake = FakeFirewall(state_dir=tmp_path)
    group = default_group(["10.0.0.5"])
    group.rules.append(wire.SecurityGroupRule("ingress", "IPv4", remote_ip_prefix="fd00::/64"))
    a = instance("a", nic("p-a", "10.0.0.5", [DEFAULT]))
    sync = FirewallSync(fake)
    assert sync.sync(state(a, groups=[group]))
    assert len(fake.ports["p-a"].rules) == 4 and sync.covers(a)
    # A port with a malformed MAC cannot be filtered: its guest is not plugged.
    bad = instance("bad", wire.PortInfo(id="p-x", network_id="net-1", mac="zz", mtu=1500,
                                        ips=["10.0.0.7"]))
    assert sync.sync(state(a, bad, groups=[group]))
    assert "p-x" not in fake.ports and not sync.covers(bad) and sync.covers(a)


def test_failure_is_logged_and_new_guests_wait(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeFirewall(state_dir=tmp_path)
    sync = FirewallSync(fake)
    a = instance("a", nic("p-a", "10.0.0.5", [DEFAULT]))
    b = instance("b", nic("p-b", "10.0.0.6", [DEFAULT]))
    groups = [default_group(["10.0.0.5", "10.0.0.6"])]
    assert sync.sync(state(a, groups=groups))
    fake.record.fail_next("apply", "iptables-restore failed")
    assert not sync.sync(state(a, b, groups=groups))  # logged, not raised
    assert "could not apply the firewall" in caplog.text
    assert sync.covers(a) and not sync.covers(b)  # b is not plugged unfiltered
    deleting = instance("b", nic("p-b", "10.0.0.6", [DEFAULT]), task_state="deleting")
    assert sync.covers(deleting)
    assert sync.sync(state(a, b, groups=groups))  # tried again at the next pass
    assert sync.covers(b) and sorted(fake.ports) == ["p-a", "p-b"]


def test_a_host_that_does_not_filter_plugs_everything() -> None:
    sync = FirewallSync(NoopFirewall())
    b = instance("b", nic("p-b", "10.0.0.6", [DEFAULT]))
    assert sync.covers(b)
    assert sync.sync(state(b, groups=[default_group(["10.0.0.6"])]))

"""What a port lost -> which ``conntrack -D`` commands the Linux firewall driver runs
(``onestack.drivers.network.firewall.linux``): removed rules, remote group members,
addresses and allowed address pairs; the port security switch; and how the commands'
failures are judged (no entry to delete is not one)."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import pytest

from onestack.drivers.network.firewall import linux
from onestack.drivers.network.firewall.base import AddressPair, PortRules, SecurityGroupRule
from onestack.drivers.network.firewall.linux import allowances, conntrack_deletions

ALICE, ALICE6 = "10.0.0.11", "2001:db8::11"
CT4 = ["conntrack", "-D", "-f", "ipv4"]


def port(rules: list[SecurityGroupRule], ips: tuple[str, ...] = (ALICE,),
         pairs: tuple[AddressPair, ...] = (), security: bool = True,
         port_id: str = "p1") -> PortRules:
    return PortRules(port_id=port_id, network_id="n1", mac="fa:16:3e:00:00:01",
                     ips=list(ips), rules=rules, allowed_address_pairs=list(pairs),
                     port_security_enabled=security)


def deletions(before: list[PortRules], after: list[PortRules],
              members_before: dict[str, list[str]] | None = None,
              members_after: dict[str, list[str]] | None = None) -> list[list[str]]:
    return conntrack_deletions(allowances(before, members_before or {}),
                               allowances(after, members_after or {}))


SSH = SecurityGroupRule("ingress", "IPv4", "tcp", 22, 22, remote_ip_prefix="0.0.0.0/0")
WEB = SecurityGroupRule("ingress", "IPv4", "tcp", 80, 80, remote_ip_prefix="192.0.2.0/24")
PING = SecurityGroupRule("ingress", "IPv4", "icmp")
EGRESS = SecurityGroupRule("egress", "IPv4")


def test_nothing_removed_nothing_deleted() -> None:
    rules = [SSH, WEB, PING, EGRESS]
    assert deletions([port(rules)], [port(list(reversed(rules)))]) == []
    # A rule added is not a rule removed.
    assert deletions([port([SSH])], [port([SSH, WEB])]) == []
    # Duplicate rules (two groups with the same rule): removing one copy removes nothing.
    assert deletions([port([SSH, SSH])], [port([SSH])]) == []


def test_removed_ingress_rule_any_source() -> None:
    assert deletions([port([SSH, WEB])], [port([WEB])]) == [
        [*CT4, "-p", "tcp", "-d", ALICE, "--dport", "22"]]


def test_removed_ingress_rule_with_a_prefix_uses_the_source_mask() -> None:
    assert deletions([port([SSH, WEB])], [port([SSH])]) == [
        [*CT4, "-p", "tcp", "-d", ALICE, "-s", "192.0.2.0", "--mask-src", "255.255.255.0",
         "--dport", "80"]]


def test_several_removed_rules_with_and_without_filters() -> None:
    everything = SecurityGroupRule("ingress", "IPv4")
    udp = SecurityGroupRule("ingress", "IPv4", "udp", 53, 53)
    assert deletions([port([everything, WEB, udp, PING, SSH])], [port([SSH])]) == [
        [*CT4, "-d", ALICE],
        [*CT4, "-p", "icmp", "-d", ALICE],
        [*CT4, "-p", "tcp", "-d", ALICE, "-s", "192.0.2.0", "--mask-src", "255.255.255.0",
         "--dport", "80"],
        [*CT4, "-p", "udp", "-d", ALICE, "--dport", "53"]]


def test_removed_icmp_and_any_protocol_rules() -> None:
    assert deletions([port([PING, SSH])], [port([SSH])]) == [
        [*CT4, "-p", "icmp", "-d", ALICE]]
    everything = SecurityGroupRule("ingress", "IPv4")
    assert deletions([port([everything, SSH])], [port([SSH])]) == [[*CT4, "-d", ALICE]]


def test_port_ranges_port_by_port_up_to_a_width_then_without_the_port() -> None:
    narrow = SecurityGroupRule("ingress", "IPv4", "udp", 5000, 5002)
    assert deletions([port([narrow, SSH])], [port([SSH])]) == [
        [*CT4, "-p", "udp", "-d", ALICE, "--dport", str(p)] for p in (5000, 5001, 5002)]
    wide = SecurityGroupRule("ingress", "IPv4", "tcp", 80, 7000)
    assert deletions([port([wide, SSH])], [port([SSH])]) == [
        [*CT4, "-p", "tcp", "-d", ALICE]]


def test_removed_egress_rule_filters_on_the_original_source() -> None:
    dns = SecurityGroupRule("egress", "IPv4", "udp", 53, 53, remote_ip_prefix="198.51.100.7/32")
    assert deletions([port([EGRESS, dns])], [port([EGRESS])]) == [
        [*CT4, "-p", "udp", "-s", ALICE, "-d", "198.51.100.7", "--dport", "53"]]
    assert deletions([port([EGRESS, SSH])], [port([SSH])]) == [[*CT4, "-s", ALICE]]


def test_ipv6_rule_on_a_dual_stack_port_touches_only_its_family() -> None:
    ping6 = SecurityGroupRule("ingress", "IPv6", "ipv6-icmp", remote_ip_prefix="2001:db8::/32")
    ips = (ALICE, ALICE6)
    assert deletions([port([SSH, ping6], ips)], [port([SSH], ips)]) == [
        ["conntrack", "-D", "-f", "ipv6", "-p", "icmpv6", "-d", ALICE6,
         "-s", "2001:db8::", "--mask-src", "ffff:ffff::"]]
    # "icmp" in an IPv6 rule means ICMPv6, as the iptables side reads it.
    icmp6 = SecurityGroupRule("ingress", "IPv6", "icmp")
    assert deletions([port([SSH, icmp6], ips)], [port([SSH], ips)]) == [
        ["conntrack", "-D", "-f", "ipv6", "-p", "icmpv6", "-d", ALICE6]]


def test_remote_group_member_lost() -> None:
    group = SecurityGroupRule("ingress", "IPv4", remote_group_id="sg")
    before = {"sg": ["10.0.0.12", "10.0.0.13", "2001:db8::12"]}
    after = {"sg": ["10.0.0.13", "2001:db8::12"]}
    assert deletions([port([group])], [port([group])], before, after) == [
        [*CT4, "-d", ALICE, "-s", "10.0.0.12"]]
    # The group's rule removed: one command per member it admitted.
    assert deletions([port([group, SSH])], [port([SSH])], after, after) == [
        [*CT4, "-d", ALICE, "-s", "10.0.0.13"]]


def test_lost_address_and_allowed_pair_delete_everything_to_and_from_them() -> None:
    pair = AddressPair("10.0.0.128/25")
    before = port([SSH, EGRESS], ips=(ALICE, "10.0.0.21"), pairs=(pair,))
    after = port([SSH, EGRESS], ips=(ALICE,))
    assert deletions([before], [after]) == [
        [*CT4, "-d", "10.0.0.128", "--mask-dst", "255.255.255.128"],
        [*CT4, "-s", "10.0.0.128", "--mask-src", "255.255.255.128"],
        [*CT4, "-d", "10.0.0.21"],
        [*CT4, "-s", "10.0.0.21"]]


def test_removed_port_loses_everything_and_other_ports_are_untouched() -> None:
    bob = port([SSH], ips=("10.0.0.12",), port_id="p2")
    assert deletions([port([SSH]), bob], [bob]) == [[*CT4, "-d", ALICE], [*CT4, "-s", ALICE]]


def test_port_security_off_allows_everything_so_nothing_is_deleted() -> None:
    assert deletions([port([SSH, WEB])], [port([], security=False)]) == []
    assert deletions([port([], security=False)], [port([SSH])]) == []


def test_the_same_command_for_two_ports_is_run_once() -> None:
    # Two ports with the same address (overlapping tenant networks on one host): a
    # deletion by address is shared (docs: no conntrack zones).
    a = port([SSH, WEB], port_id="p1")
    b = port([SSH, WEB], port_id="p2")
    assert deletions([a, b], [port([WEB], port_id="p1"), port([WEB], port_id="p2")]) == [
        [*CT4, "-p", "tcp", "-d", ALICE, "--dport", "22"]]


class Proc:
    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode, self.stderr, self.stdout = returncode, stderr, ""


def test_delete_conntrack_judges_exit_codes(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([
        Proc(0, "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted."),
        Proc(1, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted."),
        Proc(1, "conntrack v1.4.7 (conntrack-tools): Operation not permitted"),
        Proc(2, "conntrack v1.4.7 (conntrack-tools): Bad parameter")])
    ran: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> Proc:
        ran.append(argv)
        return next(answers)

    monkeypatch.setattr(subprocess, "run", fake_run)
    commands = [[*CT4, "-d", f"10.0.0.{i}"] for i in range(4)]
    with caplog.at_level(logging.WARNING, logger=linux.log.name):
        assert linux.delete_conntrack(commands) == 2
    assert ran == commands
    assert "Operation not permitted" in caplog.text and "Bad parameter" in caplog.text
    assert "0 flow entries" not in caplog.text


def test_delete_conntrack_without_the_tool_fails_softly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def missing(argv: list[str], **kwargs: Any) -> Proc:
        calls.append(argv)
        raise FileNotFoundError(2, "No such file or directory", "conntrack")

    monkeypatch.setattr(subprocess, "run", missing)
    assert linux.delete_conntrack([[*CT4, "-d", ALICE], [*CT4, "-s", ALICE]]) == 2
    assert len(calls) == 1  # not tried again for every command

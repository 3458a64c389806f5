"""The Linux firewall driver's iptables-restore input (no root needed)."""

from __future__ import annotations

from onestack.drivers.network.firewall.base import AddressPair, PortRules, SecurityGroupRule
from onestack.drivers.network.firewall.linux import Chains, link_local, ruleset
from onestack.drivers.network.names import Names

NAMES = Names("t1")
PORT = "9e8d7c6b-5a49-4838-a7b6-c5d4e3f2a1b0"
MAC = "fa:16:3e:00:00:05"


def port(**changes: object) -> PortRules:
    value = PortRules(
        port_id=PORT, network_id="net", mac=MAC, ips=["10.0.0.5", "fd00::5"],
        rules=[SecurityGroupRule("ingress", "IPv4", "tcp", 22, 22, "192.0.2.0/24"),
               SecurityGroupRule("ingress", "IPv4", remote_group_id="sg-1"),
               SecurityGroupRule("ingress", "IPv4", "icmp", 8, 0),
               SecurityGroupRule("egress", "IPv4"),
               SecurityGroupRule("egress", "IPv6")],
        allowed_address_pairs=[AddressPair("10.0.0.100/32", "fa:16:3e:00:00:99")])
    for key, val in changes.items():
        setattr(value, key, val)
    return value


def lines(version: int, ports: list[PortRules] | None = None,
          existing: frozenset[str] = frozenset()) -> list[str]:
    return ruleset([port()] if ports is None else ports, {"sg-1": ["10.0.0.6", "fd00::6"]},
                   version, NAMES, set(existing)).splitlines()


def test_layout_and_rules_v4() -> None:
    out = lines(4)
    i, o, s = (Chains(NAMES).port(k, PORT) for k in "ios")
    assert i == "t1i9e8d7c6b-5a" and len(i) <= 28
    assert out[0] == "*filter" and out[-1] == "COMMIT"
    assert ":t1sg-chain - [0:0]" in out
    tap = NAMES.tap(PORT)
    assert f"-A t1sg-chain -m physdev --physdev-out {tap} --physdev-is-bridged -j {i}" in out
    assert out.index(f"-A {i} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN") < \
        out.index(f"-A {i} -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j RETURN")
    assert f"-A {i} -s 10.0.0.6/32 -j RETURN" in out  # the remote group's member
    assert f"-A {i} -p icmp --icmp-type 8/0 -j RETURN" in out
    assert out[out.index(f"-A {i} -j t1sg-fallback") - 1].endswith("--icmp-type 8/0 -j RETURN")
    assert f"-A {o} -p udp -m udp --sport 67 --dport 68 -j DROP" in out  # no DHCP server
    assert f"-A {s} -s 10.0.0.5/32 -m mac --mac-source {MAC} -j RETURN" in out
    assert f"-A {s} -s 10.0.0.100/32 -m mac --mac-source fa:16:3e:00:00:99 -j RETURN" in out
    assert f"-A {s} -j DROP" in out
    assert not any("fd00" in line for line in out)


def test_rules_v6() -> None:
    out = lines(6)
    i, o, s = (Chains(NAMES).port(k, PORT) for k in "ios")
    assert f"-A {i} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN" in out  # RAs in
    assert f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP" in out  # none out
    assert f"-A {s} -s {link_local(MAC)}/128 -m mac --mac-source {MAC} -j RETURN" in out
    assert f"-A {s} -s fd00::5/128 -m mac --mac-source {MAC} -j RETURN" in out
    assert f"-A {i} -s fd00::6/128 -j RETURN" not in out  # the group rule is IPv4
    assert f"-A {o} -j RETURN" in out  # egress IPv6 to anywhere
    assert link_local(MAC) == "fe80::f816:3eff:fe00:5"


def test_port_security_off_and_stale_chains() -> None:
    stale = Chains(NAMES).port("i", "0000000000000000")
    out = lines(4, [port(port_security_enabled=False)], frozenset({stale}))
    assert not any(PORT[:11] in line for line in out)
    assert f":{stale} - [0:0]" in out and f"-X {stale}" in out
    # Only what is bridged on this host's bridges is accepted at the end (not what the
    # host routes).
    assert "-A t1sg-chain -i t1brq+ -m physdev --physdev-is-bridged -j ACCEPT" in out
    assert "-A t1sg-chain -j ACCEPT" not in out


def test_icmp_in_an_ipv6_rule_is_icmpv6_and_spoofed_ndp_is_checked() -> None:
    rules = [SecurityGroupRule("ingress", "IPv6", "icmp", 128, None),
             SecurityGroupRule("ingress", "IPv4", "ipv6-icmp")]
    out = lines(6, [port(rules=rules)])
    i, o, s = (Chains(NAMES).port(k, PORT) for k in "ios")
    assert f"-A {i} -p ipv6-icmp --icmpv6-type 128 -j RETURN" in out
    assert not lines(4, [port(rules=rules)]).count(f"-A {i} -p ipv6-icmp -j RETURN")
    # Neighbour advertisements go through anti-spoofing (only DAD from :: before it).
    jump = out.index(f"-A {o} -j {s}")
    assert out.index(f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN") > jump
    assert all("--icmpv6-type 136" not in line for line in out[:jump]
               if line.startswith(f"-A {o} "))

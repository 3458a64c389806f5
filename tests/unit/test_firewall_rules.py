"""The Linux firewall driver's iptables-restore input (no root needed)."""

from __future__ import annotations

from onestack.drivers.network.firewall.base import AddressPair, PortRules, SecurityGroupRule
from onestack.drivers.network.firewall.linux import (
    Chains,
    chain_contents,
    link_local,
    render,
    ruleset,
)
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
    # The port's chain: state, DHCP, then a goto to its (shared) ingress rules chain.
    goto = next(line for line in out if line.startswith(f"-A {i} -g t1I"))
    ingress = goto.split()[-1]
    assert out.index(f"-A {i} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN") < \
        out.index(goto)
    assert f"-A {ingress} -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j RETURN" in out
    assert f"-A {ingress} -s 10.0.0.6/32 -j RETURN" in out  # the remote group's member
    assert f"-A {ingress} -p icmp --icmp-type 8/0 -j RETURN" in out
    assert out[out.index(f"-A {ingress} -j t1sg-fallback") - 1].endswith(
        "--icmp-type 8/0 -j RETURN")
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
    egress = next(line for line in out if line.startswith(f"-A {o} -g t1E")).split()[-1]
    assert f"-A {egress} -j RETURN" in out  # egress IPv6 to anywhere
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
    ingress = next(line for line in out if line.startswith(f"-A {i} -g ")).split()[-1]
    assert f"-A {ingress} -p ipv6-icmp --icmpv6-type 128 -j RETURN" in out
    assert not any("ipv6-icmp" in line for line in lines(4, [port(rules=rules)]))
    # Neighbour advertisements go through anti-spoofing (only DAD from :: before it).
    jump = out.index(f"-A {o} -j {s}")
    assert out.index(f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN") > jump
    assert all("--icmpv6-type 136" not in line for line in out[:jump]
               if line.startswith(f"-A {o} "))


def test_ports_with_the_same_rules_share_one_chain_and_changes_are_incremental() -> None:
    other = "1e8d7c6b-5a49-4838-a7b6-c5d4e3f2a1b0"
    ports = [port(), port(port_id=other, mac="fa:16:3e:00:00:06", ips=["10.0.0.6"])]
    members = {"sg-1": ["10.0.0.6", "fd00::6"]}
    before = chain_contents(ports, members, 4, NAMES)
    shared = [c for c in before if c.startswith(("t1I", "t1E"))]
    assert len(shared) == 2  # one ingress, one egress chain for both ports
    # A rule added: only the new rules chain and the two ports' gotos are written,
    # the old rules chain is deleted; nothing else.
    added = [replace_rules(p) for p in ports]
    after = chain_contents(added, members, 4, NAMES)
    script = render(after, before, set(before))
    assert script is not None
    written = [line[1:].split()[0] for line in script.splitlines() if line.startswith(":")]
    new_ingress = next(c for c in after if c.startswith("t1I"))
    old_ingress = next(c for c in before if c.startswith("t1I"))
    assert set(written) == {new_ingress, old_ingress, Chains(NAMES).port("i", PORT),
                            Chains(NAMES).port("i", other)}
    assert f"-X {old_ingress}" in script
    assert render(after, after, set(after)) is None  # unchanged: nothing to do


def replace_rules(p: PortRules) -> PortRules:
    copy = PortRules(**{**vars(p), "rules": [
        *p.rules, SecurityGroupRule("ingress", "IPv4", "tcp", 80, 80)]})
    return copy


def test_bridge_table_stops_mac_and_arp_spoofing() -> None:
    from onestack.drivers.network.firewall.linux import bridge_ruleset

    out = bridge_ruleset([port(), port(port_id="0" * 36, port_security_enabled=False)],
                         NAMES).splitlines()
    assert out[:3] == ["table bridge t1sg-l2 {}", "delete table bridge t1sg-l2",
                       "table bridge t1sg-l2 {"]  # replaced in one transaction
    chain = f"p{PORT[:11]}"
    assert f'    iifname "{NAMES.tap(PORT)}" jump {chain}' in out
    assert not any("p00000000000" in line for line in out)  # port security off
    assert f"    ether saddr != {{ {MAC}, fa:16:3e:00:00:99 }} drop" in out
    assert f"    arp saddr ether {MAC} arp saddr ip 10.0.0.5 return" in out
    assert "    arp saddr ether fa:16:3e:00:00:99 arp saddr ip 10.0.0.100 return" in out
    assert not any("fd00" in line for line in out)  # ARP is IPv4 only
    assert out.index("    ether type arp drop") > out.index(
        f"    arp saddr ether {MAC} arp saddr ip 10.0.0.5 return")

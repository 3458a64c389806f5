"""The Linux firewall driver: security groups per port with br_netfilter, iptables-nft
``physdev`` matches and conntrack, as Neutron's Linux bridge agent does, plus a
bridge-family nft table against MAC and ARP spoofing.

nftables' bridge family has no conntrack on this kernel, so stateful filtering of
bridged traffic goes through br_netfilter (bridged IPv4/IPv6 frames walk the IP hooks;
``net.bridge.bridge-nf-call-ip{,6}tables`` is set to 1 in the calling thread's network
namespace) and iptables rules matching the tap the frame leaves or enters by. In the
``filter`` table of the host namespace (names prefixed, ``<p>`` the host's prefix):

    FORWARD ── -j <p>sg-chain
    <p>sg-chain   per filtered port: --physdev-out <tap> -j <p>i<port> (to the guest)
                                     --physdev-in <tap>  -j <p>o<port> (from the guest)
                  then ACCEPT what is bridged on this host's bridges (-i <p>brq+)
    <p>i<port>    established/related RETURN, invalid DROP, DHCP/NDP/RA replies
                  RETURN, then -g <p>I<hash> (the port's ingress rules)
    <p>o<port>    DHCP discover RETURN, -j <p>s<port> (anti-spoofing), DHCP/RA server
                  traffic DROP, established/related RETURN, invalid DROP,
                  then -g <p>E<hash> (its egress rules)
    <p>s<port>    RETURN for each (address, MAC) the port may send from: its fixed IPs,
                  allowed address pairs, its IPv6 link-local address; else DROP
    <p>I/E<hash>  one RETURN per rule, then <p>sg-fallback (DROP); named after their
                  content, so shared by every port with the same rules

A remote group is expanded into its members' addresses. A port with port security off
gets no chains. Each change is one ``iptables-restore --noflush`` (and one
``ip6tables-restore``) writing only the chains that changed and deleting ours no longer
wanted, in one transaction, so no frame meets half a rule set. Then, as Neutron does, the
conntrack entries of what the port no longer allows are deleted (``conntrack -D``, see
``conntrack_deletions``): a removed rule, a remote group's lost member, an address the
port lost; so an established flow that only a removed rule allowed is cut, and one that
other rules still allow is picked up again (its next packet is judged by the new rules).
The ``<p>sg-l2`` bridge table (prerouting, before the bridge learns a
source MAC) drops a filtered port's frames from other MACs and its ARP claiming other
addresses (``bridge_ruleset``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.firewall.base import FirewallDriver, PortRules, SecurityGroupRule
from onestack.drivers.network.firewall.check import ICMP_PROTOCOLS, check_ports
from onestack.drivers.network.names import BRIDGE, Names

log = logging.getLogger(__name__)

#: family -> (restore command, save command, ethertype)
TOOLS = {4: ("iptables-restore", "iptables", "IPv4"),
         6: ("ip6tables-restore", "ip6tables", "IPv6")}
#: ICMPv6 types a port always receives (MLD, router advertisement, neighbour
#: solicitation and advertisement) and may always send from its own addresses (the
#: same less RA, plus router solicitation).
ICMPV6_IN = (130, 131, 132, 134, 135, 136, 143)
ICMPV6_OUT = (130, 131, 132, 133, 135, 136, 143)
#: ICMPv6 types sent from the unspecified address before a port has one (MLD reports,
#: duplicate address detection), to link-local multicast only.
ICMPV6_UNSPECIFIED = (131, 135, 143)
#: How often (seconds) the driver re-reads the kernel's chains rather than trusting what
#: it applied last (someone may have flushed them).
RECHECK_SECONDS = 60.0
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp",
                  "icmpv6": "ipv6-icmp", "132": "sctp"}


def link_local(mac: str) -> str:
    """The port's IPv6 link-local address (modified EUI-64 of its MAC)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


class Chains:
    """Chain names of one host (at most 28 characters: the prefix, a letter, 11 of the
    port id)."""

    def __init__(self, names: Names) -> None:
        self.prefix = names.prefix

    @property
    def top(self) -> str:
        return f"{self.prefix}sg-chain"

    @property
    def fallback(self) -> str:
        return f"{self.prefix}sg-fallback"

    def port(self, kind: str, port_id: str) -> str:
        return f"{self.prefix}{kind}{port_id[:11]}"

    def ours(self, chain: str) -> bool:
        return chain in (self.top, self.fallback) or any(
            chain.startswith(self.prefix + kind) and len(chain) == len(self.prefix) + 12
            for kind in "iosIE")


def _match(rule: SecurityGroupRule, version: int) -> list[str] | None:
    """The protocol and port (or ICMP type) part of a rule; None if it cannot match
    this family (ICMP of the other version)."""
    protocol = (rule.protocol or "").lower()
    protocol = PROTOCOL_NAMES.get(protocol, protocol)
    if not protocol or protocol == "any":
        return []
    if protocol in ICMP_PROTOCOLS or protocol in ("icmp", "ipv6-icmp"):
        # As Neutron: "icmp" in an IPv6 rule means ICMPv6; ICMPv6 in IPv4 matches nothing.
        wanted = "icmp" if version == 4 else "ipv6-icmp"
        if version == 4 and protocol == "ipv6-icmp":
            return None
        args = ["-p", wanted]
        if rule.port_range_min is not None:
            kind = rule.port_range_min if rule.port_range_max is None \
                else f"{rule.port_range_min}/{rule.port_range_max}"
            args += ["--icmp-type" if version == 4 else "--icmpv6-type", str(kind)]
        return args
    args = ["-p", protocol]
    if rule.port_range_min is not None and protocol in ("tcp", "udp", "sctp"):
        high = rule.port_range_max if rule.port_range_max is not None else rule.port_range_min
        ports = str(rule.port_range_min) if high == rule.port_range_min \
            else f"{rule.port_range_min}:{high}"
        args += ["-m", protocol, "--dport", ports]
    return args


def _peers(rule: SecurityGroupRule, version: int,
           group_members: dict[str, list[str]]) -> list[str | None]:
    """The rule's peers in this family: [None] for any, else addresses/prefixes."""
    if rule.remote_group_id:
        return [f"{ip}/{32 if version == 4 else 128}"
                for ip in sorted(group_members.get(rule.remote_group_id, []))
                if ipaddress.ip_address(ip).version == version]
    if rule.remote_ip_prefix:
        return [str(ipaddress.ip_network(rule.remote_ip_prefix, strict=False))]
    return [None]


def _rule_chain(chains: Chains, kind: str, matches: list[str]) -> tuple[str, list[str]]:
    """A rules chain (``I`` ingress, ``E`` egress) named after its content, so every
    port with the same rules shares it: one RETURN per match, then the fallback."""
    body = [*(f"{m} -j RETURN".strip() for m in matches), f"-j {chains.fallback}"]
    digest = hashlib.sha1("\n".join(body).encode()).hexdigest()
    name = chains.port(kind, digest)
    return name, [f"-A {name} {line}" for line in body]


def _matches(rules: tuple[SecurityGroupRule, ...], version: int,
             group_members: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """The ingress and egress matches of ``rules`` in one family, duplicates merged."""
    ethertype = TOOLS[version][2]
    ingress: list[str] = []
    egress: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        if rule.ethertype != ethertype:
            continue
        match = _match(rule, version)
        if match is None:
            continue
        for peer in _peers(rule, version, group_members):
            if rule.direction == "ingress":
                line = f"-s {peer}" if peer else ""
            else:
                line = f"-d {peer}" if peer else ""
            line = " ".join([line, *match]).strip()
            key = f"{rule.direction} {line}"
            if key not in seen:
                seen.add(key)
                (ingress if rule.direction == "ingress" else egress).append(line)
    return ingress, egress


def port_rules(port: PortRules, version: int, group_members: dict[str, list[str]],
               chains: Chains,
               cache: dict[tuple[SecurityGroupRule, ...], Any] | None = None
               ) -> dict[str, list[str]]:
    """One port's chains in one family (its ``i``, ``o``, ``s`` chains and the shared
    rules chains they go to), each with its ``-A`` lines. ``cache``: rules chains by
    rule list, for ports that share their rules (the same groups)."""
    i, o, s = (chains.port(k, port.port_id) for k in "ios")
    key = tuple(port.rules)
    if cache is not None and key in cache:
        (ingress_chain, ingress_lines), (egress_chain, egress_lines) = cache[key]
    else:
        ingress, egress = _matches(key, version, group_members)
        ingress_chain, ingress_lines = _rule_chain(chains, "I", ingress)
        egress_chain, egress_lines = _rule_chain(chains, "E", egress)
        if cache is not None:
            cache[key] = ((ingress_chain, ingress_lines), (egress_chain, egress_lines))

    lines = [f"-A {i} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
             f"-A {i} -m conntrack --ctstate INVALID -j DROP"]
    if version == 4:
        lines.append(f"-A {i} -p udp -m udp --sport 67 --dport 68 -j RETURN")
    else:
        lines += [f"-A {i} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                  for t in ICMPV6_IN]
        lines.append(f"-A {i} -p udp -m udp --sport 547 --dport 546 -j RETURN")
    # goto: the rules chain's RETURN goes back to the top chain (allowed), its end
    # drops.
    lines.append(f"-A {i} -g {ingress_chain}")
    out = []
    if version == 4:
        out.append(f"-A {o} -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp "
                   "--sport 68 --dport 67 -j RETURN")
    else:
        out += [f"-A {o} -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type {t} "
                "-j RETURN" for t in ICMPV6_UNSPECIFIED]
    out.append(f"-A {o} -j {s}")
    if version == 4:
        out += [f"-A {o} -p udp -m udp --sport 68 --dport 67 -j RETURN",
                f"-A {o} -p udp -m udp --sport 67 --dport 68 -j DROP"]
    else:
        out += [f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                for t in ICMPV6_OUT]
        out += [f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
                f"-A {o} -p udp -m udp --sport 546 --dport 547 -j RETURN",
                f"-A {o} -p udp -m udp --sport 547 --dport 546 -j DROP"]
    out += [f"-A {o} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            f"-A {o} -m conntrack --ctstate INVALID -j DROP",
            f"-A {o} -g {egress_chain}"]
    # Anti-spoofing: what the port may send from.
    mac = port.mac.lower()
    sources: list[tuple[str, str]] = []
    for raw in port.ips:
        ip = ipaddress.ip_address(raw)
        if ip.version == version:
            sources.append((f"{ip}/{ip.max_prefixlen}", mac))
    for pair in port.allowed_address_pairs:
        net = ipaddress.ip_network(pair.ip_address, strict=False)
        if net.version == version:
            sources.append((str(net), (pair.mac_address or mac).lower()))
    if version == 6:
        sources.append((f"{link_local(mac)}/128", mac))
        sources.append(("::/128", mac))  # duplicate address detection
    spoof = [f"-A {s} -s {source} -m mac --mac-source {source_mac} -j RETURN"
             for source, source_mac in sources]
    spoof.append(f"-A {s} -j DROP")
    return {i: lines, o: out, s: spoof, ingress_chain: ingress_lines,
            egress_chain: egress_lines}


def chain_contents(ports: list[PortRules], group_members: dict[str, list[str]],
                   version: int, names: Names) -> dict[str, list[str]]:
    """Every chain of ours for these ports in one family, with its ``-A`` lines.

    The top chain ends by accepting what is bridged on this host's bridges (the
    filtered ports' frames have passed their chains by then; the others, such as a
    router's or DHCP's legs, are not filtered): what the host routes itself goes on
    through the rest of FORWARD, as its own firewall says."""
    chains = Chains(names)
    filtered = [p for p in sorted(ports, key=lambda p: p.port_id) if p.port_security_enabled]
    top = []
    for port in filtered:
        tap = names.tap(port.port_id)
        i, o = chains.port("i", port.port_id), chains.port("o", port.port_id)
        top += [f"-A {chains.top} -m physdev --physdev-out {tap} --physdev-is-bridged "
                f"-j {i}",
                f"-A {chains.top} -m physdev --physdev-in {tap} --physdev-is-bridged "
                f"-j {o}"]
    top.append(f"-A {chains.top} -i {names.prefix}{BRIDGE}+ -m physdev "
               "--physdev-is-bridged -j ACCEPT")
    contents = {chains.top: top, chains.fallback: [f"-A {chains.fallback} -j DROP"]}
    cache: dict[tuple[SecurityGroupRule, ...], Any] = {}
    for port in filtered:
        contents.update(port_rules(port, version, group_members, chains, cache))
    return contents


# -- conntrack entries of what a port no longer allows ------------------------------------

#: A TCP/UDP/SCTP port range up to this wide is deleted port by port (``--dport``
#: takes one port); a wider one is deleted without the port filter (over-deleting is
#: safe: see ``conntrack_deletions``).
CONNTRACK_MAX_PORTS = 8
CONNTRACK_PROTOCOLS = {"ipv6-icmp": "icmpv6"}


@dataclass(frozen=True)
class Allowed:
    """What one rule lets through at one of a port's addresses, in conntrack's terms.
    ``address``: the port's address or allowed address pair prefix (the original
    destination for ingress, the original source for egress); ``peer``: the other end's
    prefix (None: any). ``direction`` "" marks an address the port has at all."""

    direction: str
    version: int
    address: str
    protocol: str | None = None
    ports: tuple[int, int] | None = None
    peer: str | None = None


def _conntrack_protocol(rule: SecurityGroupRule, version: int
                        ) -> tuple[str | None, tuple[int, int] | None]:
    """A rule's protocol as ``conntrack -p`` names it (None: any) and its port range
    (None: any port, or not a protocol with ports)."""
    protocol = (rule.protocol or "").lower()
    protocol = PROTOCOL_NAMES.get(protocol, protocol)
    if not protocol or protocol == "any":
        return None, None
    if protocol in ICMP_PROTOCOLS or protocol in ("icmp", "ipv6-icmp"):
        return ("icmp" if version == 4 else "icmpv6"), None
    ports = None
    if rule.port_range_min is not None and protocol in ("tcp", "udp", "sctp"):
        high = rule.port_range_max if rule.port_range_max is not None \
            else rule.port_range_min
        ports = (rule.port_range_min, high)
    return CONNTRACK_PROTOCOLS.get(protocol, protocol), ports


def port_allowances(port: PortRules, group_members: dict[str, list[str]]
                    ) -> frozenset[Allowed] | None:
    """Everything ``port`` lets through, rule by rule and address by address; None for a
    port with port security off (everything is allowed)."""
    if not port.port_security_enabled:
        return None
    addresses: dict[int, list[str]] = {4: [], 6: []}
    for raw in port.ips:
        net = ipaddress.ip_network(raw, strict=False)
        addresses[net.version].append(str(net))
    for pair in port.allowed_address_pairs:
        net = ipaddress.ip_network(pair.ip_address, strict=False)
        addresses[net.version].append(str(net))
    allowed = {Allowed("", version, address)
               for version, nets in addresses.items() for address in nets}
    for rule in port.rules:
        version = 4 if rule.ethertype == "IPv4" else 6
        if rule.ethertype not in ("IPv4", "IPv6") or _match(rule, version) is None:
            continue
        protocol, ports = _conntrack_protocol(rule, version)
        for peer in _peers(rule, version, group_members):
            if peer is not None and ipaddress.ip_network(peer).prefixlen == 0:
                peer = None
            for address in addresses[version]:
                allowed.add(Allowed(rule.direction, version, address, protocol, ports, peer))
    return frozenset(allowed)


def allowances(ports: list[PortRules], group_members: dict[str, list[str]]
               ) -> dict[str, frozenset[Allowed] | None]:
    """``port_allowances`` of every port, by port id."""
    return {p.port_id: port_allowances(p, group_members) for p in ports}


def _address_args(flag: str, mask_flag: str, network: str) -> list[str]:
    net = ipaddress.ip_network(network)
    if net.prefixlen == net.max_prefixlen:
        return [flag, str(net.network_address)]
    return [flag, str(net.network_address), mask_flag, str(net.netmask)]


def _deletion(allowed: Allowed, protocol_filter: bool = True) -> list[list[str]]:
    """The ``conntrack -D`` commands that delete the entries ``allowed`` admitted."""
    here, there = ("-d", "-s") if allowed.direction == "ingress" else ("-s", "-d")
    mask = {"-s": "--mask-src", "-d": "--mask-dst"}
    argv = ["conntrack", "-D", "-f", f"ipv{allowed.version}"]
    if protocol_filter and allowed.protocol:
        argv += ["-p", allowed.protocol]
    argv += _address_args(here, mask[here], allowed.address)
    if protocol_filter and allowed.peer:
        argv += _address_args(there, mask[there], allowed.peer)
    if not protocol_filter or allowed.ports is None:
        return [argv]
    low, high = allowed.ports
    if high - low + 1 > CONNTRACK_MAX_PORTS:
        return [argv]
    return [[*argv, "--dport", str(port)] for port in range(low, high + 1)]


def _order(allowed: Allowed) -> tuple[str, int, str, str, tuple[int, int], str]:
    return (allowed.direction, allowed.version, allowed.address, allowed.protocol or "",
            allowed.ports or (-1, -1), allowed.peer or "")


def conntrack_deletions(previous: dict[str, frozenset[Allowed] | None],
                        current: dict[str, frozenset[Allowed] | None]) -> list[list[str]]:
    """The ``conntrack -D`` commands that remove the host's entries of flows ports no
    longer allow, given what each port allowed before (``previous``) and allows now
    (``current``; a port absent there was removed from this host).

    For an ingress rule: entries whose original destination is the port's address, with
    the rule's protocol, destination port (a range up to ``CONNTRACK_MAX_PORTS`` wide,
    port by port) and source prefix (a mask for a prefix; none for 0.0.0.0/0); for an
    egress rule the original source is the port's address, the peer the destination.
    Nothing for a port whose port security is (or was) off. An address the port lost
    altogether: every entry from or to it, one command per direction. Over-deleting is
    safe: an entry of a flow that the remaining rules still allow is re-created by its
    next packet (conntrack picks TCP up mid-stream; UDP and ICMP start a new entry), which
    the new rules judge. Duplicates merged, in a stable order."""
    commands: dict[tuple[str, ...], None] = {}
    for port_id, before in sorted(previous.items()):
        after = current.get(port_id, frozenset())
        if before is None or after is None:
            continue
        kept = {(a.version, a.address) for a in after if not a.direction}
        for allowed in sorted(before - after, key=_order):
            if (allowed.version, allowed.address) in kept:
                for argv in _deletion(allowed):
                    commands[tuple(argv)] = None
            elif not allowed.direction:
                for direction in ("ingress", "egress"):
                    gone = Allowed(direction, allowed.version, allowed.address)
                    commands[tuple(_deletion(gone, protocol_filter=False)[0])] = None
    return [list(c) for c in commands]


def delete_conntrack(commands: list[list[str]], timeout: float = 10.0) -> int:
    """Run the ``conntrack -D`` commands in the calling thread's namespace; how many
    failed (logged, never raised: the rules are in already, a leftover entry only keeps
    a flow open a while longer). No entry to delete (exit 1, "0 flow entries have been
    deleted") is not a failure."""
    failed = 0
    for argv in commands:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s failed: %s (established flows removed rules allowed may "
                        "live on)", " ".join(argv), exc)
            failed += 1
            if isinstance(exc, FileNotFoundError):
                return failed + len(commands) - commands.index(argv) - 1
            continue
        output = (proc.stderr + proc.stdout).strip()
        if proc.returncode == 0 or (proc.returncode == 1 and
                                    " 0 flow entries have been deleted" in output):
            continue
        log.warning("%s failed (exit %d): %s", " ".join(argv), proc.returncode, output)
        failed += 1
    return failed


def render(contents: dict[str, list[str]], previous: dict[str, list[str]] | None,
           existing: set[str]) -> str | None:
    """The ``iptables-restore --noflush`` input that turns ``previous`` (what the
    kernel has; None: unknown, so every chain is written) into ``contents``: each chain
    that changed declared (so flushed) and refilled, ``existing`` chains of ours no
    longer wanted emptied and deleted; None when nothing changed. Rules chains are
    written before the chains that go to them."""
    changed = [c for c in contents if previous is None or previous.get(c) != contents[c]]
    stale = sorted(existing - set(contents))
    if not changed and not stale:
        return None
    lines = ["*filter", *(f":{chain} - [0:0]" for chain in [*changed, *stale])]
    for chain in changed:
        lines += contents[chain]
    lines += [f"-X {chain}" for chain in stale]
    return "\n".join([*lines, "COMMIT", ""])


def wanted_chains(ports: list[PortRules], group_members: dict[str, list[str]],
                  names: Names) -> set[str]:
    """Our chains for these ports in both families."""
    return {c for v in (4, 6) for c in chain_contents(ports, group_members, v, names)}


def ruleset(ports: list[PortRules], group_members: dict[str, list[str]], version: int,
            names: Names, existing: set[str]) -> str:
    """The whole ``iptables-restore --noflush`` input for one family: every chain of
    ours declared and refilled, ``existing`` chains of ours no longer wanted deleted."""
    script = render(chain_contents(ports, group_members, version, names), None, existing)
    assert script is not None
    return script


def bridge_ruleset(ports: list[PortRules], names: Names) -> str:
    """The ``nft -f`` input of the bridge-family table that stops MAC and ARP spoofing
    before the bridge learns from a frame (prerouting): a filtered port's frames must
    come from its MAC (or an allowed address pair's), and its ARP must claim one of its
    (MAC, IPv4 address) pairs, or be a probe from 0.0.0.0. iptables does not see ARP,
    nor frames of other ethertypes, and a frame dropped in FORWARD has already taught
    the bridge where its source MAC lives. Replaces the whole table in one
    transaction."""
    table = f"{names.prefix}sg-l2"
    filtered = [p for p in sorted(ports, key=lambda p: p.port_id) if p.port_security_enabled]
    lines = [f"table bridge {table} {{}}", f"delete table bridge {table}",
             f"table bridge {table} {{",
             "  chain pre {",
             "    type filter hook prerouting priority -200; policy accept;"]
    lines += [f'    iifname "{names.tap(p.port_id)}" jump p{p.port_id[:11]}' for p in filtered]
    lines.append("  }")
    for port in filtered:
        mac = port.mac.lower()
        pairs: list[tuple[str, str]] = []
        for raw in port.ips:
            ip = ipaddress.ip_address(raw)
            if ip.version == 4:
                pairs.append((str(ip), mac))
        for pair in port.allowed_address_pairs:
            net = ipaddress.ip_network(pair.ip_address, strict=False)
            if net.version == 4:
                pairs.append((str(net) if net.prefixlen < 32 else str(net.network_address),
                              (pair.mac_address or mac).lower()))
        macs = sorted({mac, *(m for _, m in pairs)})
        lines += [f"  chain p{port.port_id[:11]} {{",
                  f"    ether saddr != {{ {', '.join(macs)} }} drop",
                  *(f"    arp saddr ether {m} arp saddr ip {a} return"
                    for a, m in dict.fromkeys(pairs)),
                  f"    arp saddr ip 0.0.0.0 arp saddr ether {{ {', '.join(macs)} }} return",
                  "    ether type arp drop",
                  "  }"]
    lines += ["}", ""]
    return "\n".join(lines)


def load_br_netfilter() -> bool:
    """br_netfilter loaded (``modprobe`` it if its sysctls are missing); False if it
    cannot be (then nothing bridged can be filtered)."""
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        return True
    try:
        netns.run(["modprobe", "br_netfilter"])
    except NetworkDriverError as exc:
        log.error("br_netfilter could not be loaded (%s): security groups cannot filter "
                  "bridged traffic on this host", exc)
        return False
    loaded = Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists()
    if loaded:
        log.info("loaded br_netfilter (security groups filter bridged traffic)")
    return loaded


class LinuxFirewall(FirewallDriver):
    name = "linux"
    capabilities = {"security_groups": True, "stateful_firewall": True,
                    "remote_group": True, "ipv6_filtering": True, "anti_spoofing": True,
                    "allowed_address_pairs": True, "port_security": True}

    def __init__(self, state_dir: Path | None = None, name_prefix: str = "",
                 **_ignored: object) -> None:
        self.names = Names(name_prefix)
        self.chains = Chains(self.names)
        self._lock = threading.RLock()
        #: family -> our chains and their lines as last applied (trusted until the next
        #: recheck).
        self._contents: dict[int, dict[str, list[str]]] = {}
        #: The bridge table (MAC and ARP anti-spoofing) as last applied.
        self._bridge = ""
        #: family -> when the kernel's chains and the FORWARD hook were last read.
        self._checked: dict[int, float] = {}
        #: What each port allowed as last applied (``port_allowances``), to delete the
        #: conntrack entries of what it no longer allows.
        self._allowed: dict[str, frozenset[Allowed] | None] = {}
        load_br_netfilter()

    def _existing(self, version: int) -> set[str]:
        out = netns.run([TOOLS[version][1], "-w", "-t", "filter", "-S"])
        return {line.split()[1] for line in out.splitlines()
                if line.startswith("-N ") and self.chains.ours(line.split()[1])}

    def _hook(self, version: int) -> set[str]:
        """FORWARD jumps to our top chain (made empty first if it is new); our chains
        as the kernel has them."""
        tool, top = TOOLS[version][1], self.chains.top
        existing = self._existing(version)
        if top not in existing:
            netns.run([tool, "-w", "-t", "filter", "-N", top])
            existing.add(top)
        rules = netns.run([tool, "-w", "-t", "filter", "-S", "FORWARD"])
        if f"-A FORWARD -j {top}" not in rules.splitlines():
            netns.run([tool, "-w", "-t", "filter", "-I", "FORWARD", "-j", top])
        return existing

    def apply(self, ports: list[PortRules], group_members: dict[str, list[str]]) -> None:
        try:
            check_ports(ports, group_members)
        except ValueError as exc:
            raise NetworkDriverError(f"firewall: {exc}") from exc
        with self._lock:
            for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
                if not netns.set_sysctl(f"net/bridge/{key}", "1"):
                    raise NetworkDriverError(
                        "br_netfilter is not loaded (no net.bridge sysctls) and could not "
                        "be loaded: bridged traffic cannot be filtered, so no port is "
                        "(run modprobe br_netfilter as root, or pick firewall_driver = "
                        "noop knowingly)")
            now = time.monotonic()
            bridge = bridge_ruleset(ports, self.names)
            if bridge != self._bridge or now - self._checked.get(0, 0.0) > RECHECK_SECONDS:
                self._bridge = ""
                netns.run(["nft", "-f", "-"], input=bridge)
                self._bridge = bridge
                self._checked[0] = now
            for version in (4, 6):
                contents = chain_contents(ports, group_members, version, self.names)
                now = time.monotonic()
                previous = self._contents.get(version)
                if previous is None or now - self._checked.get(version, 0.0) > RECHECK_SECONDS:
                    # Read the kernel and write every chain (repairs what was changed
                    # behind our back).
                    existing = self._hook(version)
                    self._checked[version] = now
                    previous = None
                else:
                    existing = set(previous)
                script = render(contents, previous, existing)
                if script is None:
                    continue
                try:
                    netns.run([TOOLS[version][0], "-w", "--noflush"], input=script)
                except NetworkDriverError:
                    self._contents.pop(version, None)  # read the kernel's next time
                    raise
                self._contents[version] = contents
            # The new rules are in: cut what they no longer allow (a re-created entry
            # is judged by them).
            try:
                allowed = allowances(ports, group_members)
                commands = conntrack_deletions(self._allowed, allowed)
            except Exception:  # never fatal: the rules are in
                log.exception("conntrack: could not work out what ports lost; "
                              "established flows removed rules allowed may live on")
                self._allowed = {}
                return
            self._allowed = allowed
            if commands:
                failed = delete_conntrack(commands)
                log.info("conntrack: %d deletion(s) for rules, members or addresses "
                         "ports lost (%d failed)", len(commands), failed)

    def list_ports(self) -> list[str]:
        prefix = self.names.prefix + "i"
        return sorted(chain[len(prefix):] for chain in self._existing(4)
                      if chain.startswith(prefix) and chain != self.chains.top)

    def cleanup(self) -> None:
        with self._lock:
            for version in (4, 6):
                tool = TOOLS[version][1]
                existing = self._existing(version)
                if not existing:
                    continue
                rules = netns.run([tool, "-w", "-t", "filter", "-S", "FORWARD"])
                if f"-A FORWARD -j {self.chains.top}" in rules.splitlines():
                    netns.run([tool, "-w", "-t", "filter", "-D", "FORWARD", "-j",
                               self.chains.top])
                script = "\n".join(["*filter", *(f":{c} - [0:0]" for c in sorted(existing)),
                                    *(f"-X {c}" for c in sorted(existing)), "COMMIT", ""])
                netns.run([TOOLS[version][0], "-w", "--noflush"], input=script)
            table = f"{self.names.prefix}sg-l2"
            tables = netns.run(["nft", "list", "tables", "bridge"])
            if f"table bridge {table}" in tables.splitlines():
                netns.run(["nft", "delete", "table", "bridge", table])
            self._bridge = ""
            self._contents.clear()
            self._checked.clear()
            self._allowed.clear()

"""The Linux firewall driver: security groups per port with br_netfilter, iptables-nft
``physdev`` matches and conntrack, as Neutron's Linux bridge agent does.

nftables' bridge family has no conntrack on this kernel, so stateful filtering of
bridged traffic goes through br_netfilter (bridged IPv4/IPv6 frames walk the IP hooks;
``net.bridge.bridge-nf-call-ip{,6}tables`` is set to 1 in the calling thread's network
namespace) and iptables rules matching the tap the frame leaves or enters by. In the
``filter`` table of the host namespace (names prefixed, ``<p>`` the host's prefix):

    FORWARD ── -j <p>sg-chain
    <p>sg-chain   per filtered port: --physdev-out <tap> -j <p>i<port> (to the guest)
                                     --physdev-in <tap>  -j <p>o<port> (from the guest)
                  then ACCEPT (a frame between two local guests passes both chains)
    <p>i<port>    established/related RETURN, invalid DROP, DHCP/NDP/RA replies
                  RETURN, one RETURN per ingress rule, then <p>sg-fallback (DROP)
    <p>o<port>    DHCP client requests RETURN, -j <p>s<port> (anti-spoofing), DHCP/RA
                  server traffic DROP, established/related RETURN, invalid DROP, one
                  RETURN per egress rule, then <p>sg-fallback
    <p>s<port>    RETURN for each (address, MAC) the port may send from: its fixed IPs,
                  allowed address pairs, its IPv6 link-local address; else DROP

A remote group is expanded into its members' addresses. A port with port security off
gets no chains. Everything is written by one ``iptables-restore --noflush`` (and one
``ip6tables-restore``) per change: each of our chains is flushed and refilled, and the
chains of ports that left are emptied and deleted, in one transaction, so no frame
meets half a rule set; established flows keep their conntrack entries (a rule removed
stops new connections; an established one it allowed lives on, as in Neutron).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from pathlib import Path

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
            for kind in "ios")


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


def port_rules(port: PortRules, version: int, group_members: dict[str, list[str]],
               chains: Chains) -> list[str]:
    """The ``-A`` lines of one port's three chains in one family."""
    i, o, s = (chains.port(k, port.port_id) for k in "ios")
    ethertype = TOOLS[version][2]
    lines = [f"-A {i} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
             f"-A {i} -m conntrack --ctstate INVALID -j DROP"]
    if version == 4:
        lines.append(f"-A {i} -p udp -m udp --sport 67 --dport 68 -j RETURN")
    else:
        lines += [f"-A {i} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                  for t in ICMPV6_IN]
        lines.append(f"-A {i} -p udp -m udp --sport 547 --dport 546 -j RETURN")
    egress: list[str] = []
    seen: set[str] = set()
    for rule in port.rules:
        if rule.ethertype != ethertype:
            continue
        match = _match(rule, version)
        if match is None:
            continue
        for peer in _peers(rule, version, group_members):
            if rule.direction == "ingress":
                line = f"-A {i}" + (f" -s {peer}" if peer else "")
            else:
                line = f"-A {o}" + (f" -d {peer}" if peer else "")
            line += "".join(f" {word}" for word in match) + " -j RETURN"
            if line not in seen:
                seen.add(line)
                (lines if rule.direction == "ingress" else egress).append(line)
    lines.append(f"-A {i} -j {chains.fallback}")
    if version == 4:
        lines.append(f"-A {o} -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp "
                     "--sport 68 --dport 67 -j RETURN")
    else:
        lines += [f"-A {o} -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type {t} "
                  "-j RETURN" for t in ICMPV6_UNSPECIFIED]
    lines.append(f"-A {o} -j {s}")
    if version == 4:
        lines += [f"-A {o} -p udp -m udp --sport 68 --dport 67 -j RETURN",
                  f"-A {o} -p udp -m udp --sport 67 --dport 68 -j DROP"]
    else:
        lines += [f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
                  for t in ICMPV6_OUT]
        lines += [f"-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
                  f"-A {o} -p udp -m udp --sport 546 --dport 547 -j RETURN",
                  f"-A {o} -p udp -m udp --sport 547 --dport 546 -j DROP"]
    lines += [f"-A {o} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
              f"-A {o} -m conntrack --ctstate INVALID -j DROP", *egress,
              f"-A {o} -j {chains.fallback}"]
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
    lines += [f"-A {s} -s {source} -m mac --mac-source {source_mac} -j RETURN"
              for source, source_mac in sources]
    lines.append(f"-A {s} -j DROP")
    return lines


def wanted_chains(ports: list[PortRules], chains: Chains) -> list[str]:
    """Our chains for these ports (the same in both families)."""
    return [chains.top, chains.fallback,
            *(chains.port(k, p.port_id) for p in sorted(ports, key=lambda p: p.port_id)
              if p.port_security_enabled for k in "ios")]


def ruleset(ports: list[PortRules], group_members: dict[str, list[str]], version: int,
            names: Names, existing: set[str]) -> str:
    """The ``iptables-restore --noflush`` input for one family: our chains declared
    (so flushed) and refilled; ``existing`` chains of ours no longer wanted emptied and
    deleted.

    The top chain ends by accepting what is bridged on this host's bridges (the
    filtered ports' frames have passed their chains by then; the others, such as a
    router's or DHCP's legs, are not filtered): what the host routes itself goes on
    through the rest of FORWARD, as its own firewall says."""
    chains = Chains(names)
    filtered = [p for p in sorted(ports, key=lambda p: p.port_id) if p.port_security_enabled]
    wanted = wanted_chains(ports, chains)
    body = []
    for port in filtered:
        tap = names.tap(port.port_id)
        i, o = chains.port("i", port.port_id), chains.port("o", port.port_id)
        body += [f"-A {chains.top} -m physdev --physdev-out {tap} --physdev-is-bridged "
                 f"-j {i}",
                 f"-A {chains.top} -m physdev --physdev-in {tap} --physdev-is-bridged "
                 f"-j {o}"]
    body.append(f"-A {chains.top} -i {names.prefix}{BRIDGE}+ -m physdev "
                "--physdev-is-bridged -j ACCEPT")
    body.append(f"-A {chains.fallback} -j DROP")
    for port in filtered:
        body += port_rules(port, version, group_members, chains)
    stale = sorted(existing - set(wanted))
    lines = ["*filter", *(f":{chain} - [0:0]" for chain in [*wanted, *stale]), *body,
             *(f"-X {chain}" for chain in stale), "COMMIT", ""]
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
        #: family -> the input last applied by this process.
        self._applied: dict[int, str] = {}
        #: family -> our chains as last applied (trusted until the next recheck).
        self._known: dict[int, set[str]] = {}
        #: family -> when the kernel's chains and the FORWARD hook were last read.
        self._checked: dict[int, float] = {}
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
            wanted = set(wanted_chains(ports, self.chains))
            for version in (4, 6):
                now = time.monotonic()
                recheck = version not in self._known or \
                    now - self._checked.get(version, 0.0) > RECHECK_SECONDS
                if recheck:
                    existing = self._hook(version)
                    self._checked[version] = now
                else:
                    existing = self._known[version]
                script = ruleset(ports, group_members, version, self.names, existing)
                if not recheck and self._applied.get(version) == script:
                    continue
                try:
                    netns.run([TOOLS[version][0], "-w", "--noflush"], input=script)
                except NetworkDriverError:
                    self._known.pop(version, None)  # read the kernel's next time
                    self._applied.pop(version, None)
                    raise
                self._applied[version] = script
                self._known[version] = wanted

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
            self._applied.clear()
            self._known.clear()
            self._checked.clear()

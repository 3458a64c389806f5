"""What every firewall backend refuses in its input before touching anything."""

from __future__ import annotations

import ipaddress

from onestack.drivers.network.firewall.base import PortRules, SecurityGroupRule
from onestack.drivers.network.names import check_id, check_mac

DIRECTIONS = ("ingress", "egress")
ETHERTYPES = {"IPv4": 4, "IPv6": 6}
#: Protocols whose rules may carry a port range; ICMP ones carry type and code there.
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "132", "33", "136")
ICMP_PROTOCOLS = ("icmp", "ipv6-icmp", "icmpv6", "1", "58")


def check_rule(rule: SecurityGroupRule) -> None:
    if rule.direction not in DIRECTIONS:
        raise ValueError(f"rule direction {rule.direction!r}: ingress or egress")
    version = ETHERTYPES.get(rule.ethertype)
    if version is None:
        raise ValueError(f"rule ethertype {rule.ethertype!r}: IPv4 or IPv6")
    if rule.remote_ip_prefix and rule.remote_group_id:
        raise ValueError("a rule has a remote prefix or a remote group, not both")
    if rule.remote_ip_prefix and \
            ipaddress.ip_network(rule.remote_ip_prefix, strict=False).version != version:
        raise ValueError(f"remote prefix {rule.remote_ip_prefix} is not {rule.ethertype}")
    protocol = (rule.protocol or "").lower()
    low, high = rule.port_range_min, rule.port_range_max
    if protocol in PORT_PROTOCOLS:
        if low is not None and not 1 <= low <= (high if high is not None else low) <= 65535:
            raise ValueError(f"port range {low}-{high}")
    elif protocol in ICMP_PROTOCOLS:
        for value in (low, high):
            if value is not None and not 0 <= value <= 255:
                raise ValueError(f"ICMP type/code {value}")
    elif low is not None or high is not None:
        raise ValueError(f"protocol {rule.protocol!r} has no ports")


def check_ports(ports: list[PortRules], group_members: dict[str, list[str]]) -> None:
    """Raise ValueError naming the first thing wrong."""
    checked: set[SecurityGroupRule] = set()  # ports share their groups' rules
    for port in ports:
        check_id("port", port.port_id)
        check_id("network", port.network_id)
        check_mac(port.mac)
        for raw in port.ips:
            ipaddress.ip_address(raw)
        for pair in port.allowed_address_pairs:
            ipaddress.ip_network(pair.ip_address, strict=False)
            if pair.mac_address:
                check_mac(pair.mac_address)
        for rule in port.rules:
            if rule not in checked:
                check_rule(rule)
                checked.add(rule)
    for group, members in group_members.items():
        check_id("security group", group)
        for raw in members:
            ipaddress.ip_address(raw)

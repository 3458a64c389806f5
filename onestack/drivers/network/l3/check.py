"""What every L3 backend refuses in a ``RouterSpec`` before touching anything."""

from __future__ import annotations

import ipaddress

from onestack.drivers.network.l3.base import RouterSpec
from onestack.drivers.network.names import check_id, check_mac


def check_router(spec: RouterSpec) -> None:
    """Raise ValueError naming the first thing wrong: ids, MACs, addresses, routes, a
    floating IP without a gateway port, or a floating address of another IP version."""
    check_id("router", spec.id)
    ports = [*spec.interfaces, *([spec.gateway] if spec.gateway else [])]
    seen = set()
    for port in ports:
        check_id("port", port.id)
        check_id("network", port.network_id)
        check_mac(port.mac)
        if port.id in seen:
            raise ValueError(f"port {port.id} is named twice")
        seen.add(port.id)
        for address in port.addresses:
            if "/" not in address:
                raise ValueError(f"port {port.id}: address {address!r} has no prefix length")
            ipaddress.ip_interface(address)
        for advert in port.advertise:
            prefix = ipaddress.ip_network(advert.prefix)
            if prefix.version != 6 or advert.mode not in ("slaac", "dhcpv6-stateless"):
                raise ValueError(f"port {port.id}: cannot advertise {advert.prefix} "
                                 f"({advert.mode})")
            if not any(ipaddress.ip_interface(a).network == prefix for a in port.addresses):
                raise ValueError(f"port {port.id}: advertises {advert.prefix} but has no "
                                 "address in it")
            for server in advert.dns_nameservers:
                ipaddress.IPv6Address(server)
    for raw in spec.external_gateways:
        ipaddress.ip_address(raw)
    for route in spec.routes:
        destination = ipaddress.ip_network(route.destination)
        if ipaddress.ip_address(route.nexthop).version != destination.version:
            raise ValueError(f"route to {route.destination} via {route.nexthop}: "
                             "the next hop is of another IP version")
    fixed = set()
    for fip in spec.floating_ips:
        floating = ipaddress.ip_address(fip.floating_ip)
        if floating.version != 4 or ipaddress.ip_address(fip.fixed_ip).version != 4:
            raise ValueError(f"floating IP {fip.floating_ip}: IPv4 only (IPv6 is routed)")
        if spec.gateway is None:
            raise ValueError(f"floating IP {fip.floating_ip} needs a gateway port")
        if fip.fixed_ip in fixed:
            raise ValueError(f"fixed address {fip.fixed_ip} has two floating IPs")
        fixed.add(fip.fixed_ip)

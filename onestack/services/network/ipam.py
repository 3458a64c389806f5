"""IP address management: which address a port gets on a subnet.

Used by ports (``ports.py``) and, through ``allocate_ip`` / ``release_ip``, by routers
and floating IPs. Rules:

- Automatic addresses come from the subnet's allocation pools, lowest free first (the
  allocated addresses are read with one indexed query: the cost grows with the ports on
  the subnet, about a millisecond per 5,000).
- An explicitly requested address must lie in the subnet (not its IPv4 network or
  broadcast address) but may lie outside the pools; a taken one is a 409
  ``IpAddressAlreadyAllocated``; an exhausted subnet a 409 ``IpAddressGenerationFailure``.
- On IPv6 subnets in ``slaac`` or ``dhcpv6-stateless`` address mode the address is the
  modified EUI-64 address of the port's MAC (what the guest will configure itself).
- ``(subnet_id, ip_address)`` is unique in the database: two transactions that chose the
  same address cannot both commit; the loser's IntegrityError makes the caller's
  transaction start over (``base.retrying``). On SQLite the port row is written before
  addresses are chosen, so the transaction already holds the write lock and the choice
  cannot race at all.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict
from onestack.db.models import AllocationPool, IPAllocation, Port, Subnet

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: IPv6 address modes in which hosts configure their own address from the prefix.
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")


def is_auto_address(subnet: Subnet) -> bool:
    """IPv6 SLAAC or DHCPv6-stateless: addresses are derived from MACs, not allocated."""
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in AUTO_ADDRESS_MODES


def eui64(cidr: str, mac: str) -> str:
    """The modified EUI-64 address (RFC 4291 appendix A) of ``mac`` in a /64 prefix."""
    octets = [int(b, 16) for b in mac.split(":")]
    octets[0] ^= 0x02  # the universal/local bit is inverted
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    network = ipaddress.IPv6Network(cidr)
    return str(network[int.from_bytes(bytes(iid), "big")])


def address(version: int, value: int) -> str:
    """The text form of address number ``value`` of IP ``version``."""
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return str(ipaddress.IPv6Address(value))


def number(text: str) -> int:
    """The number of a canonical address (IPv4 the fast way: lists are long)."""
    if ":" not in text:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    return int(ipaddress.IPv6Address(text))


def default_pools(cidr: str, gateway_ip: str | None) -> list[tuple[str, str]]:
    """Every usable address of the subnet except the gateway, as (first, last) ranges.

    IPv4 loses its network and broadcast addresses, IPv6 its subnet-router anycast
    address (the first); /31, /32, /127 and /128 have no pool."""
    net = ipaddress.ip_network(cidr)
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    if first > last:
        return []
    ranges = [(first, last)]
    if gateway_ip:
        gw = int(ipaddress.ip_address(gateway_ip))
        if first <= gw <= last:
            ranges = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    return [(address(net.version, a), address(net.version, b)) for a, b in ranges]


def canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


def invalid_for_subnet(address: str) -> BadRequest:
    return BadRequest(f"IP address {address} is not a valid IP for the specified subnet.",
                      fault="InvalidIpForSubnet")


def check_in_subnet(subnet: Subnet, address: str) -> str:
    """``address`` in canonical form, if a port on ``subnet`` may have it; else a 400."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BadRequest(f"Invalid input for ip_address. Reason: '{address}' is not a "
                         "valid IP address.", fault="InvalidInput") from None
    net = ipaddress.ip_network(subnet.cidr)
    if ip.version != net.version or ip not in net:
        raise invalid_for_subnet(address)
    if net.version == 4 and net.prefixlen < 31 and ip in (net.network_address,
                                                          net.broadcast_address):
        raise invalid_for_subnet(address)
    return str(ip)


def _pools(subnet: Subnet) -> list[tuple[int, int]]:
    return [(int(ipaddress.ip_address(p.first_ip)), int(ipaddress.ip_address(p.last_ip)))
            for p in subnet.allocation_pools]


def taken_addresses(session: Session, subnet_id: str) -> set[str]:
    return set(session.scalars(select(IPAllocation.ip_address)
                               .where(IPAllocation.subnet_id == subnet_id)))


def is_taken(session: Session, subnet_id: str, address: str) -> bool:
    return session.scalar(select(IPAllocation.id).where(
        IPAllocation.subnet_id == subnet_id, IPAllocation.ip_address == address)) is not None


def first_free(subnet: Subnet, taken: Iterable[str]) -> str | None:
    """The lowest pool address not in ``taken``, or None when the pools are full."""
    version = subnet.ip_version
    used = {number(a) for a in taken}
    for first, last in _pools(subnet):
        candidate = first
        while candidate <= last and candidate in used:
            candidate += 1
        if candidate <= last:
            return address(version, candidate)
    return None


def exhausted(subnet: Subnet) -> Conflict:
    return Conflict(f"No more IP addresses available on network {subnet.network_id}.",
                    fault="IpAddressGenerationFailure")


def already_allocated(subnet_id: str, address: str) -> Conflict:
    return Conflict(f"IP address {address} already allocated in subnet {subnet_id}",
                    fault="IpAddressAlreadyAllocated")


def choose_ip(session: Session, subnet: Subnet, ip_address: str | None = None,
              mac_address: str | None = None) -> str:
    """The address to give on ``subnet``: ``ip_address`` if free (checked), the EUI-64
    address of ``mac_address`` on auto-address subnets, else the lowest free pool
    address. Nothing is recorded; ``allocate_ip`` records."""
    if ip_address is not None:
        chosen = check_in_subnet(subnet, ip_address)
    elif is_auto_address(subnet) and mac_address:
        chosen = eui64(subnet.cidr, mac_address)
    else:
        free = first_free(subnet, taken_addresses(session, subnet.id))
        if free is None:
            raise exhausted(subnet)
        return free
    if is_taken(session, subnet.id, chosen):
        raise already_allocated(subnet.id, chosen)
    return chosen


def allocate_ip(session: Session, subnet: Subnet, ip_address: str | None = None,
                port: Port | None = None) -> str:
    """Choose an address on ``subnet`` (``ip_address`` if given and free; on
    auto-address subnets the EUI-64 address of ``port``'s MAC) and, when ``port`` is
    given, record it as that port's fixed IP in this transaction (flushed).

    Without ``port`` nothing is reserved: the caller must record the address in the
    same transaction (an ``IPAllocation`` row), or another request may take it.
    Raises 409 ``IpAddressAlreadyAllocated`` / ``IpAddressGenerationFailure`` and 400
    ``InvalidIpForSubnet``. The unique constraint turns a lost race into an
    IntegrityError at flush, which ``base.retrying`` answers by running again."""
    chosen = choose_ip(session, subnet, ip_address, port.mac_address if port else None)
    if port is not None:
        record(session, subnet, port, chosen)
    return chosen


def record(session: Session, subnet: Subnet, port: Port, address: str) -> None:
    """Make ``address`` (chosen and checked) a fixed IP of ``port``, flushed."""
    port.fixed_ips.append(IPAllocation(subnet_id=subnet.id, network_id=subnet.network_id,
                                       ip_address=address))
    session.flush()


def release_ip(session: Session, subnet_id: str, ip_address: str) -> None:
    """Forget the allocation of ``ip_address`` on ``subnet_id`` (no error if absent)."""
    session.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet_id,
                                               IPAllocation.ip_address == canonical(ip_address)))


def pool_rows(pools: list[tuple[str, str]]) -> list[AllocationPool]:
    return [AllocationPool(first_ip=a, last_ip=b, position=i) for i, (a, b) in enumerate(pools)]

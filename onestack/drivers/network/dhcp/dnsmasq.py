"""dnsmasq for one network: its command line, host and options files, and its leases.

Everything here but ``DnsmasqProcess`` is a pure function of a ``NetworkSpec``, so the
unit tests check the generated configuration without root.

What each subnet gets (only subnets with DHCP enabled and an address of the DHCP port):

    IPv4                    --dhcp-range=set:subnet-<id>,<net>,static,<mask>,<lease>s
                            (static: only MACs in the hosts file get an address)
    IPv6 slaac              --dhcp-range=set:subnet-<id>,<prefix>,ra-only,<len>,<lease>s
                            (router advertisements with the A flag, no DHCPv6)
    IPv6 dhcpv6-stateless   ... ,ra-stateless, ...   (A and O flags, DHCPv6 for options)
    IPv6 dhcpv6-stateful    ... ,static, ...          (M and O flags, addresses by DHCPv6
                            from the hosts file)

The IPv6 mode is the subnet's ``ipv6_ra_mode``, else its ``ipv6_address_mode``; an IPv6
subnet with neither is not served. Router advertisements carry router lifetime 0: the
DHCP namespace is not a router, so guests get prefixes (and the MTU) from it but no
default route.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from onestack.common.processes import cmdline, end_process
from onestack.drivers.network.base import DhcpHost, NetworkSpec, SubnetSpec
from onestack.drivers.network.names import check_mac

#: Lease time handed out (seconds), Neutron's default.
LEASE_SECONDS = 86400
#: The metadata service's address, routed to the DHCP port (DHCP option 121).
METADATA_IP = "169.254.169.254"
#: At most this many leases are counted per subnet for ``--dhcp-lease-max``.
MAX_LEASES_PER_SUBNET = 65536

#: A live process's argument list ([] if it is gone or a zombie).
process_cmdline = cmdline

_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ServedSubnet:
    """A subnet dnsmasq serves, with the DHCP port's address on it."""

    subnet: SubnetSpec
    network: IPNetwork
    dhcp_ip: IPAddress
    #: "dhcp4", "slaac", "dhcpv6-stateless" or "dhcpv6-stateful".
    mode: str

    @property
    def tag(self) -> str:
        return f"subnet-{self.subnet.id}"


def served_subnets(spec: NetworkSpec) -> list[ServedSubnet]:
    """The subnets dnsmasq serves, in a stable order (by subnet id)."""
    if not spec.dhcp_mac:
        return []
    dhcp_ips = [ipaddress.ip_address(ip) for ip in spec.dhcp_ips]
    served = []
    for subnet in sorted(spec.subnets, key=lambda s: s.id):
        if not subnet.enable_dhcp:
            continue
        network = ipaddress.ip_network(subnet.cidr)
        if subnet.ip_version == 4:
            mode = "dhcp4"
        else:
            mode = subnet.ipv6_ra_mode or subnet.ipv6_address_mode or ""
            if mode not in ("slaac", "dhcpv6-stateless", "dhcpv6-stateful"):
                continue
        dhcp_ip = next((ip for ip in dhcp_ips if ip in network), None)
        if dhcp_ip is None:
            continue
        served.append(ServedSubnet(subnet, network, dhcp_ip, mode))
    return served


def interface_addresses(spec: NetworkSpec) -> list[str]:
    """What the namespace end of the DHCP veth carries: each DHCP address with its
    subnet's prefix length, and the metadata address."""
    networks = [ipaddress.ip_network(s.cidr) for s in spec.subnets]
    result = []
    for raw in spec.dhcp_ips:
        ip = ipaddress.ip_address(raw)
        network = next((n for n in networks if ip in n), None)
        result.append(f"{ip}/{network.prefixlen if network else ip.max_prefixlen}")
    result.append(f"{METADATA_IP}/32")
    return result


@dataclass(frozen=True)
class DnsmasqFiles:
    """The files of one network's dnsmasq, all in its own directory."""

    dir: Path

    @property
    def pid(self) -> Path:
        return self.dir / "pid"

    @property
    def hosts(self) -> Path:
        return self.dir / "host"

    @property
    def opts(self) -> Path:
        return self.dir / "opts"

    @property
    def leases(self) -> Path:
        return self.dir / "leases"

    @property
    def log(self) -> Path:
        return self.dir / "dnsmasq.log"


def build_command(spec: NetworkSpec, files: DnsmasqFiles, interface: str,
                  user: str | None = None) -> list[str] | None:
    """dnsmasq's argument list for this network, or None when it has nothing to serve.

    The list depends on the subnets and the MTU only (hosts and options are in files that
    a SIGHUP re-reads), so comparing it with a running dnsmasq's command line tells
    whether that process can be kept. ``user``: the user dnsmasq drops privileges to
    (None: its default, ``nobody``).
    """
    served = served_subnets(spec)
    if not served:
        return None
    argv = [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        # DNS off: guests get the subnets' dns_nameservers.
        "--port=0",
        f"--pid-file={files.pid}",
        f"--dhcp-hostsfile={files.hosts}",
        f"--dhcp-optsfile={files.opts}",
        f"--dhcp-leasefile={files.leases}",
        f"--log-facility={files.log}",
        "--log-dhcp",
        "--except-interface=lo",
        "--bind-interfaces",
        f"--interface={interface}",
        "--no-ping",
        "--dhcp-authoritative",
    ]
    if user:
        argv += [f"--user={user}", f"--group={user}"]
    lease_max = 0
    v6 = False
    for s in served:
        net, plen = s.network.network_address, s.network.prefixlen
        if s.mode == "dhcp4":
            argv.append(f"--dhcp-range=set:{s.tag},{net},static,{s.network.netmask},"
                        f"{LEASE_SECONDS}s")
            lease_max += min(s.network.num_addresses, MAX_LEASES_PER_SUBNET)
            continue
        v6 = True
        mode = {"slaac": "ra-only", "dhcpv6-stateless": "ra-stateless",
                "dhcpv6-stateful": "static"}[s.mode]
        argv.append(f"--dhcp-range=set:{s.tag},{net},{mode},{plen},{LEASE_SECONDS}s")
        if s.mode == "dhcpv6-stateful":
            lease_max += min(s.network.num_addresses, MAX_LEASES_PER_SUBNET)
    if v6:
        argv += ["--enable-ra", f"--ra-param={interface},mtu:{spec.mtu},0,0"]
    if lease_max:
        argv.append(f"--dhcp-lease-max={lease_max}")
    return argv


def dnsmasq_user(directory: Path) -> str | None:
    """The ``user`` for ``build_command``. dnsmasq drops to ``nobody`` and re-reads its
    files as that user on SIGHUP; if ``directory`` (or a parent) is closed to others, as
    a 0700 home or temporary directory is, it has to stay root."""
    for path in (directory, *directory.parents):
        if not path.stat().st_mode & stat.S_IXOTH:
            return "root"
    return None


def _hostname(host: DhcpHost, ip: IPAddress) -> str:
    name = _HOSTNAME_BAD.sub("-", host.hostname.lower().split(".")[0]).strip("-")[:63]
    return name.strip("-") or "host-" + str(ip).replace(".", "-").replace(":", "-")


def hosts_file(spec: NetworkSpec) -> str:
    """The ``--dhcp-hostsfile``: one ``mac,ip,hostname`` line per address dnsmasq hands
    out (IPv4, and DHCPv6-stateful addresses as ``[ip]``)."""
    served = [s for s in served_subnets(spec) if s.mode in ("dhcp4", "dhcpv6-stateful")]
    lines = []
    for host in sorted(spec.hosts, key=lambda h: (h.mac.lower(), h.port_id)):
        mac = check_mac(host.mac)
        for raw in host.ips:
            ip = ipaddress.ip_address(raw)
            if not any(ip in s.network for s in served):
                continue
            address = str(ip) if ip.version == 4 else f"[{ip}]"
            lines.append(f"{mac},{address},{_hostname(host, ip)}\n")
    return "".join(lines)


def _routes(s: ServedSubnet) -> list[str]:
    """Option 121's ``destination,nexthop`` pairs: the metadata address via the DHCP
    port, the subnet's host routes, and the default route via the gateway."""
    routes = [f"{METADATA_IP}/32,{s.dhcp_ip}"]
    default = None
    for route in s.subnet.host_routes:
        destination = ipaddress.ip_network(route["destination"])
        nexthop = ipaddress.ip_address(route["nexthop"])
        if destination.version != 4 or nexthop.version != 4:
            continue
        if destination.prefixlen == 0:
            default = f"0.0.0.0/0,{nexthop}"
            continue
        if str(destination) == f"{METADATA_IP}/32":
            continue
        routes.append(f"{destination},{nexthop}")
    if default is None and s.subnet.gateway_ip:
        default = f"0.0.0.0/0,{s.subnet.gateway_ip}"
    if default:
        routes.append(default)
    return routes


def opts_file(spec: NetworkSpec) -> str:
    """The ``--dhcp-optsfile``: per subnet tag the MTU, router, classless routes and DNS
    servers. An option without a value stops dnsmasq sending its own default (itself as
    router or DNS server)."""
    lines = []
    for s in served_subnets(spec):
        tag = f"tag:{s.tag}"
        subnet = s.subnet
        if s.mode == "dhcp4":
            lines.append(f"{tag},option:mtu,{spec.mtu}")
            lines.append(f"{tag},option:router"
                         + (f",{subnet.gateway_ip}" if subnet.gateway_ip else ""))
            lines.append(f"{tag},option:classless-static-route," + ",".join(_routes(s)))
            servers = [d for d in subnet.dns_nameservers
                       if ipaddress.ip_address(d).version == 4]
            lines.append(f"{tag},option:dns-server" + "".join(f",{d}" for d in servers))
        else:
            servers = [d for d in subnet.dns_nameservers
                       if ipaddress.ip_address(d).version == 6]
            lines.append(f"{tag},option6:dns-server" + "".join(f",[{d}]" for d in servers))
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Lease:
    """One line of dnsmasq's leases file."""

    ip: str
    #: The client's MAC (IPv4 leases); IPv6 leases have the IAID here instead.
    mac: str | None
    client_id: str | None
    iaid: str | None = None
    #: For IPv6 leases: the server DUID (the ``duid`` line), needed to release them.
    server_duid: str | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version


def parse_leases(text: str) -> list[Lease]:
    """``<expiry> <mac> <ip> <hostname> <client-id>`` lines, after ``duid <duid>`` the
    IPv6 ones (``<expiry> <iaid> <ip6> <hostname> <client-duid>``)."""
    leases = []
    server_duid = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "duid":
            server_duid = fields[1]
            continue
        if len(fields) < 5:
            continue
        client_id = None if fields[4] == "*" else fields[4]
        try:
            version = ipaddress.ip_address(fields[2]).version
        except ValueError:
            continue
        if version == 4:
            leases.append(Lease(ip=fields[2], mac=fields[1].lower(), client_id=client_id))
        else:
            leases.append(Lease(ip=fields[2], mac=None, client_id=client_id, iaid=fields[1],
                                server_duid=server_duid))
    return leases


def stale_leases(leases: Iterable[Lease], spec: NetworkSpec) -> list[Lease]:
    """Leases no host of the spec holds any more: an IPv4 lease whose MAC and address
    are not a host's, an IPv6 lease whose address is nobody's."""
    v4 = set()
    v6 = set()
    for host in spec.hosts:
        for raw in host.ips:
            ip = ipaddress.ip_address(raw)
            if ip.version == 4:
                v4.add((host.mac.lower(), str(ip)))
            else:
                v6.add(str(ip))

    def stale(lease: Lease) -> bool:
        if lease.version == 4:
            return (lease.mac, lease.ip) not in v4
        return str(ipaddress.ip_address(lease.ip)) not in v6

    return [lease for lease in leases if stale(lease)]


def without_leases(text: str, drop: Iterable[Lease]) -> str:
    """The leases file with the lines of ``drop`` removed (for a stopped dnsmasq)."""
    gone = {lease.ip for lease in drop}
    kept = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] != "duid" and fields[2] in gone:
            continue
        kept.append(line + "\n")
    return "".join(kept)


class DnsmasqProcess:
    """One network's running dnsmasq, found through its pidfile.

    A PID counts as ours only if the process is alive (not a zombie) and its command
    line names this network's directory, so a recycled PID is never signalled.
    """

    def __init__(self, files: DnsmasqFiles) -> None:
        self.files = files

    def pid(self) -> int | None:
        try:
            pid = int(self.files.pid.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._ours(process_cmdline(pid)) else None

    def _ours(self, argv: list[str]) -> bool:
        return bool(argv) and argv[0].rsplit("/", 1)[-1] == "dnsmasq" \
            and any(str(self.files.dir) in arg for arg in argv)

    def reload(self, pid: int) -> None:
        os.kill(pid, signal.SIGHUP)

    def stop(self, pid: int, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds (each
        only while the PID still runs the dnsmasq ``pid()`` found)."""
        argv = process_cmdline(pid)
        if self._ours(argv):
            end_process(pid, argv, timeout)


def dnsmasq_pidfile(argv: list[str]) -> Path | None:
    """The ``--pid-file`` of a dnsmasq command line (None for any other program)."""
    if not argv or argv[0].rsplit("/", 1)[-1] != "dnsmasq":
        return None
    for arg in argv[1:]:
        if arg.startswith("--pid-file="):
            return Path(arg.split("=", 1)[1])
    return None

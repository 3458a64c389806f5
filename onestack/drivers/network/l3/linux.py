"""The Linux L3 driver: a namespace per router, veths into the networks' bridges,
routes, and NAT with nftables.

Per router (names in ``names.py``):

    <p>brq<tenant net> ── <p>rt-<port> veth ─┐
                                              │  namespace <p>qrouter-<router>:
                               <p>qr-<port> ──┘  forwarding on (IPv4 and IPv6),
                                                 the ports' addresses,
    <p>brq<external net> ─ <p>rt-<port> veth ─┐  default route via the external
                                              │  gateway, static routes,
                               <p>qg-<port> ──┘  nftables table ``ip onestack``
                                                 (+ each floating IP as /32 on qg-)

NAT, in the router's namespace only, as one nftables table replaced in a single
transaction (``nft -f``: the old table is deleted and the new one made atomically, and
conntrack keeps existing flows' translations, so nothing established is dropped):

- prerouting: each floating IP is DNATed to its fixed address;
- postrouting: traffic between the router's own subnets that was not DNATed is left
  alone; a fixed address with a floating IP is SNATed to it (wherever it goes, so a
  guest reaching a neighbour's floating IP is seen by it as its own floating IP);
  DNATed traffic that did not come in from outside is SNATed to the gateway address
  (hairpin for guests without a floating IP, as Neutron does); with ``enable_snat``,
  what leaves by the gateway port is SNATed to the gateway address.

- prerouting, on ``qr-`` legs with ``metadata``: 169.254.169.254:80 is redirected to
  the namespace's metadata socket (``METADATA_PORT``); an input filter keeps that port
  closed to anything that was not redirected.

IPv6 is forwarded, never translated. The legs' IPv6 prefixes are advertised by a dnsmasq
in RA-only mode (``radvert.py``). With ``host_ipv6_routes`` the calling namespace (the
host, which holds the external network's IPv6 gateway address on its bridge) gets a route
to each tenant IPv6 prefix via the gateway port's IPv6 address (``proto static``; the
ones via that address it no longer wants are removed, with the router too). The routes
this driver adds are ``proto static``, so the ones it no longer wants are found and
removed; connected routes come with the addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from pathlib import Path

from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.l3.base import METADATA_PORT, L3Driver, RouterPort, RouterSpec
from onestack.drivers.network.l3.check import check_router
from onestack.drivers.network.l3.radvert import RouterAdvertiser
from onestack.drivers.network.names import (
    ROUTER_BRIDGE_END,
    ROUTER_GATEWAY,
    ROUTER_INTERNAL,
    Names,
    check_mac,
)

log = logging.getLogger(__name__)

#: The nftables table each router namespace holds.
NAT_TABLE = "onestack"
#: Where guests' metadata requests go (Nova's address).
METADATA_IP = "169.254.169.254"

Link = netns.Link


def _network(text: str, version: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A route's destination as ``ip -j route`` prints it ("default", "10.1.0.0/16", or
    an address for a host route)."""
    if text == "default":
        return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    return ipaddress.ip_network(text, strict=False)


def nat_ruleset(spec: RouterSpec, gateway_ifname: str | None,
                metadata_ifnames: list[str] | None = None) -> str:
    """The ``nft -f`` script that replaces the router's NAT table with the spec's
    (``metadata_ifnames``: the legs whose metadata requests are redirected)."""
    prerouting, postrouting = [], []
    for ifname in sorted(metadata_ifnames or []):
        prerouting.append(f'iifname "{ifname}" ip daddr {METADATA_IP} tcp dport 80 '
                          f"redirect to :{METADATA_PORT}")
    gateway_ip = None
    if spec.gateway is not None:
        gateway_ip = next((str(ipaddress.ip_interface(a).ip) for a in spec.gateway.addresses
                           if ipaddress.ip_interface(a).version == 4), None)
    for fip in sorted(spec.floating_ips, key=lambda f: f.floating_ip):
        prerouting.append(f"ip daddr {fip.floating_ip} dnat to {fip.fixed_ip}")
    if gateway_ifname:
        qg = f'"{gateway_ifname}"'
        postrouting.append(f"iifname != {qg} oifname != {qg} ct status ! dnat accept")
        for fip in sorted(spec.floating_ips, key=lambda f: f.floating_ip):
            postrouting.append(f"ip saddr {fip.fixed_ip} snat to {fip.floating_ip}")
        if gateway_ip:
            postrouting.append(f"iifname != {qg} ct status dnat snat to {gateway_ip}")
            if spec.enable_snat:
                postrouting.append(f"oifname {qg} snat to {gateway_ip}")

    def chain(name: str, hook: str, priority: str, rules: list[str]) -> str:
        body = "".join(f"\t\t{rule}\n" for rule in rules)
        return (f"\tchain {name} {{\n\t\ttype nat hook {hook} priority {priority}; "
                f"policy accept;\n{body}\t}}\n")

    guard = ""
    if metadata_ifnames:  # the socket's port: only through the redirect
        guard = (f"\tchain input {{\n\t\ttype filter hook input priority filter; "
                 f"policy accept;\n\t\ttcp dport {METADATA_PORT} ct status ! dnat drop\n"
                 "\t}\n")
    return (f"table ip {NAT_TABLE}\n"
            f"delete table ip {NAT_TABLE}\n"
            f"table ip {NAT_TABLE} {{\n"
            + chain("prerouting", "prerouting", "dstnat", prerouting)
            + chain("postrouting", "postrouting", "srcnat", postrouting)
            + guard
            + "}\n")


class LinuxL3(L3Driver):
    name = "linux"
    capabilities = {"routers": True, "static_routes": True, "snat": True,
                    "floating_ips": True, "ipv6_routing": True}

    def __init__(self, state_dir: Path | None = None, name_prefix: str = "",
                 **_ignored: object) -> None:
        self.names = Names(name_prefix)
        self._lock = threading.RLock()
        self.advertiser = RouterAdvertiser(
            (state_dir or Path("/var/lib/onestack")) / "l3")
        #: Router id -> the NAT script last applied by this process (a restarted one
        #: applies it once more, which changes nothing that flows through).
        self._applied: dict[str, str] = {}

    # -- routers --------------------------------------------------------------------

    def ensure_router(self, spec: RouterSpec) -> None:
        try:
            check_router(spec)
        except ValueError as exc:
            raise NetworkDriverError(f"router {spec.id}: {exc}") from exc
        ns = self.names.router_namespace(spec.id)
        with self._lock:
            if ns not in netns.namespaces():
                netns.ip("netns", "add", ns)
                netns.ip("link", "set", "lo", "up", namespace=ns)
                log.info("created namespace %s", ns)
            netns.call_in_namespace(ns, self._forwarding)
            links = netns.links()
            inside = {link["ifname"]: link
                      for link in netns.ip_json("-d", "link", "show", namespace=ns)}
            wanted: dict[str, list[str]] = {}
            for port in spec.interfaces:
                inner = self.names.router_internal(port.id)
                self._ensure_port(ns, port, inner, links, inside)
                wanted[inner] = port.addresses
            gateway_ifname = None
            if spec.gateway is not None:
                gateway_ifname = self.names.router_gateway(spec.gateway.id)
                self._ensure_port(ns, spec.gateway, gateway_ifname, links, inside)
                wanted[gateway_ifname] = [*spec.gateway.addresses,
                                          *(f"{f.floating_ip}/32" for f in spec.floating_ips)]
            for name in list(inside):
                if name not in wanted and self._port_link(name):
                    netns.ip("link", "del", name, namespace=ns)
                    log.info("removed port %s of router %s", name, spec.id)
            for name, addresses in wanted.items():
                netns.ensure_addresses(ns, name, addresses)
            self._ensure_routes(ns, spec, gateway_ifname)
            metadata = [self.names.router_internal(p.id) for p in spec.interfaces
                        if p.metadata]
            script = nat_ruleset(spec, gateway_ifname, metadata)
            if self._applied.get(spec.id) != script:
                netns.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)
                self._applied[spec.id] = script
            self.advertiser.ensure(spec.id, ns, [(self.names.router_internal(p.id), p)
                                                 for p in spec.interfaces])
            self._ensure_host_routes(spec)

    @staticmethod
    def _forwarding() -> None:
        netns.set_sysctl("net/ipv4/ip_forward", "1")
        netns.set_sysctl("net/ipv6/conf/all/forwarding", "1")

    def _port_link(self, name: str) -> bool:
        return any(self.names.link_id(kind, name) for kind in (ROUTER_INTERNAL, ROUTER_GATEWAY))

    def _ensure_port(self, ns: str, port: RouterPort, inner: str, links: dict[str, Link],
                     inside: dict[str, Link]) -> None:
        """The port's veth: the bridge end on its network's bridge, the other end in the
        router's namespace with the port's MAC and MTU (addresses: the caller)."""
        bridge = self.names.bridge(port.network_id)
        outer = self.names.router_bridge_end(port.id)
        if bridge not in links:
            raise NetworkDriverError(f"network {port.network_id} has no bridge ({bridge}) "
                                     "on this host")
        mtu, mac = str(port.mtu), check_mac(port.mac)
        if outer in links:
            netns.check_ours(links[outer], "veth", port.id)
        if outer not in links or inner not in inside:
            if outer in links:
                netns.ip("link", "del", outer)
            if inner in inside:
                netns.ip("link", "del", inner, namespace=ns)
            netns.ip("link", "add", outer, "mtu", mtu, "type", "veth",
                     "peer", "name", inner, "mtu", mtu, "netns", ns)
            netns.set_sysctl(f"net/ipv6/conf/{outer}/disable_ipv6", "1")

            def inside_sysctls() -> None:
                # No RAs taken from the network; the link-local address usable at once
                # (router advertisements are sent from it).
                netns.set_sysctl(f"net/ipv6/conf/{inner}/accept_ra", "0")
                netns.set_sysctl(f"net/ipv6/conf/{inner}/accept_dad", "0")
            netns.call_in_namespace(ns, inside_sysctls)
            links[outer] = {"ifname": outer}
            inside[inner] = {"ifname": inner}
            log.info("created port %s (%s) in %s", inner, outer, ns)
        link = links[outer]
        if link.get("master") != bridge or link.get("mtu") != port.mtu \
                or not netns.is_up(link) or link.get("ifalias") != port.id:
            netns.ip("link", "set", outer, "mtu", mtu, "master", bridge, "alias", port.id,
                     "up")
        link = inside[inner]
        if link.get("address") != mac or link.get("mtu") != port.mtu \
                or not netns.is_up(link):
            netns.ip("link", "set", inner, "address", mac, "mtu", mtu, "alias", port.id,
                     "up", namespace=ns)

    @staticmethod
    def _ensure_routes(ns: str, spec: RouterSpec, gateway_ifname: str | None) -> None:
        wanted = {}
        for raw in spec.external_gateways if gateway_ifname else []:
            nexthop = ipaddress.ip_address(raw)
            default = ipaddress.ip_network("0.0.0.0/0" if nexthop.version == 4 else "::/0")
            wanted[(default, nexthop)] = ["dev", gateway_ifname or ""]
        for route in spec.routes:
            wanted[(ipaddress.ip_network(route.destination),
                    ipaddress.ip_address(route.nexthop))] = []
        for version in (4, 6):
            for entry in netns.ip_json(f"-{version}", "route", "show", "proto", "static",
                                       namespace=ns):
                if "gateway" not in entry:
                    continue
                key = (_network(entry["dst"], version), ipaddress.ip_address(entry["gateway"]))
                if key in wanted:
                    wanted.pop(key)
                    continue
                netns.ip(f"-{version}", "route", "del", entry["dst"], "via", entry["gateway"],
                         namespace=ns)
        for (destination, nexthop), extra in wanted.items():
            netns.ip(f"-{destination.version}", "route", "replace", str(destination), "via",
                     str(nexthop), *extra, "proto", "static", namespace=ns)

    # -- IPv6 on the host ---------------------------------------------------------------

    def _gateway_ipv6(self, ns: str) -> set[str]:
        """The global IPv6 addresses of the router's ``qg-`` link(s)."""
        found = set()
        for entry in netns.ip_json("-6", "addr", "show", namespace=ns):
            if not self.names.link_id(ROUTER_GATEWAY, entry.get("ifname", "")):
                continue
            for addr in entry.get("addr_info", []):
                if addr.get("scope") == "global":
                    found.add(str(ipaddress.ip_address(addr["local"])))
        return found

    def _ensure_host_routes(self, spec: RouterSpec) -> None:
        """With ``host_ipv6_routes``: in the calling namespace, each tenant IPv6 prefix
        of the router via the gateway port's IPv6 address, on the external network's
        bridge; stale routes via that address go."""
        nexthop = None
        if spec.gateway is not None:
            nexthop = next((str(ipaddress.ip_interface(a).ip) for a in spec.gateway.addresses
                            if ipaddress.ip_interface(a).version == 6), None)
        wanted: set[str] = set()
        if spec.host_ipv6_routes and nexthop and spec.gateway is not None:
            for port in spec.interfaces:
                for address in port.addresses:
                    net = ipaddress.ip_interface(address).network
                    if net.version == 6 and not net.is_link_local:
                        wanted.add(str(net))
        self._replace_host_routes({nexthop} if nexthop else set(), wanted,
                                  self.names.bridge(spec.gateway.network_id)
                                  if spec.gateway is not None else "")

    @staticmethod
    def _replace_host_routes(nexthops: set[str], wanted: set[str], bridge: str) -> None:
        present = set()
        for entry in netns.ip_json("-6", "route", "show", "proto", "static"):
            gateway = entry.get("gateway")
            if not gateway or str(ipaddress.ip_address(gateway)) not in nexthops:
                continue
            dst = str(ipaddress.ip_network(entry["dst"], strict=False)) \
                if entry["dst"] != "default" else "::/0"
            if dst in wanted:
                present.add(dst)
                continue
            netns.ip("-6", "route", "del", entry["dst"], "via", gateway)
            log.info("host route to %s via %s removed", dst, gateway)
        for dst in sorted(wanted - present):
            (nexthop,) = nexthops
            try:
                netns.ip("-6", "route", "replace", dst, "via", nexthop, "dev", bridge,
                         "proto", "static")
            except NetworkDriverError as exc:
                # The router itself works; only the host's shortcut to it is missing
                # (e.g. IPv6 off on this host). Tried again at the next change.
                log.warning("host route to %s via %s not added: %s", dst, nexthop, exc)
                continue
            log.info("host route to %s via %s (%s)", dst, nexthop, bridge)

    # -- metadata -------------------------------------------------------------------------

    def metadata_socket(self, router_id: str) -> socket.socket | None:
        netns.checked_id("router", router_id)
        ns = self.names.router_namespace(router_id)

        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", METADATA_PORT))
                sock.listen(128)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock

        try:
            return netns.call_in_namespace(ns, listen)
        except OSError as exc:
            raise NetworkDriverError(
                f"cannot listen on port {METADATA_PORT} in namespace {ns}: {exc}") from exc

    # -- removal --------------------------------------------------------------------------

    def remove_router(self, router_id: str) -> None:
        netns.checked_id("router", router_id)
        with self._lock:
            ns = self.names.router_namespace(router_id)
            self.advertiser.stop(router_id)
            if ns in netns.namespaces():
                nexthops = self._gateway_ipv6(ns)
                if nexthops:
                    self._replace_host_routes(nexthops, set(), "")
                self._delete_namespace(ns)
            self._applied.pop(router_id, None)

    def _delete_namespace(self, ns: str) -> None:
        """Delete the namespace (its veth ends go with it, and their bridge ends with
        them) once no process is in it; this driver starts none, so any is a stranger's
        and keeps it (deleting the name would leave the namespace running, unreachable)."""
        pids = netns.namespace_pids(ns)
        if pids:
            raise NetworkDriverError(
                f"namespace {ns} holds processes that are not this host's (PIDs "
                f"{', '.join(map(str, pids))}); it is left in place (end them and it goes "
                "at the next removal)")
        # The ports first: a deleted namespace's links go later, in the kernel's own time,
        # and their bridge ends with them; deleted here, both are gone on return.
        for link in netns.ip_json("link", "show", namespace=ns):
            if self._port_link(link["ifname"]):
                netns.ip("link", "del", link["ifname"], namespace=ns)
        netns.ip("netns", "del", ns)
        log.info("deleted namespace %s", ns)

    def list_routers(self) -> list[str]:
        return sorted(router_id for ns in netns.namespaces()
                      if (router_id := self.names.namespace_router(ns)))

    def cleanup(self) -> None:
        errors = []
        with self._lock:
            self.advertiser.stop_all()
            for router_id in self.list_routers():
                try:
                    self.remove_router(router_id)
                except NetworkDriverError as exc:
                    errors.append(str(exc))
            for name, link in netns.links().items():
                if self.names.link_id(ROUTER_BRIDGE_END, name) \
                        and netns.link_kind(link) == "veth":
                    try:
                        netns.ip("link", "del", name)
                    except NetworkDriverError as exc:
                        if name in netns.links():
                            errors.append(str(exc))
        if errors:
            raise NetworkDriverError("cleanup incomplete: " + "; ".join(errors))



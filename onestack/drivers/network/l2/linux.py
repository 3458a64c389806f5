"""The Linux L2 driver: a bridge per network, a persistent tap per port.

Made in the calling thread's network namespace (the host's; in tests, a namespace
standing for one host). Per network (names in ``names.py``):

    <p>brq<net>  bridge, the network's MTU, no address, IPv6 off (but for the host's
                 own addresses on the external network in the all-in-one mode)
      ├── <p>tap<port>  persistent tap per port (QEMU opens it by name)
      ├── ports of the DHCP and L3 drivers (veths), joined by the bridge's name
      ├── <p>vx-<net>  a ``vxlan`` network's VXLAN device (its VNI, UDP 4789, ``local``
      │               the driver's tunnel address, no learning), flooding by head-end
      │               replication to the network's peers: one all-zero FDB entry each;
      │               there only while the network has peers (other hosts with it)
      └── the external network only, with ``[host] external_interface``: that existing
          interface (the flat provider mapping), enslaved, released (``nomaster``) when
          the bridge goes, never created or deleted

A link is ours when its kind is right and its alias (the full id) is the one we expect:
shortened ids can collide, and another id's link is never touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import threading
from functools import cache
from pathlib import Path

from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkDriverError, NetworkSpec, PortSpec
from onestack.drivers.network.l2.base import L2Driver
from onestack.drivers.network.names import (
    BRIDGE,
    DHCP_BRIDGE_END,
    ROUTER_BRIDGE_END,
    TAP,
    VXLAN,
    Names,
    check_mac,
)

log = logging.getLogger(__name__)

Link = netns.Link


def tap_mac(mac: str) -> str:
    """The tap's own MAC: the guest's with the first octet ``fe`` (as libvirt does), so
    the host side never answers for the guest's address."""
    return "fe" + check_mac(mac)[2:]


#: VXLAN's IANA port (the kernel's default is Linux's old 8472).
VXLAN_PORT = 4789
#: The all-zero MAC: an FDB entry for it floods (broadcast, unknown unicast, multicast)
#: to its ``dst``; several of them make head-end replication.
FLOOD_MAC = "00:00:00:00:00:00"


@cache
def kernel_has_vxlan() -> bool:
    """Whether this kernel can make VXLAN devices: the module is loaded (or built in),
    or there is one to load. Probed once per process."""
    if Path("/sys/module/vxlan").exists():
        return True
    modules = Path("/lib/modules") / os.uname().release
    for listing in ("modules.builtin", "modules.dep"):
        with contextlib.suppress(OSError):
            if "/vxlan.ko" in (modules / listing).read_text():
                return True
    return False


def tunnel_address(value: str) -> str:
    """The tunnel address a host's VXLAN devices use, checked; "" (none) for "" or a
    loopback or unspecified address (that no other host could reach)."""
    if not value:
        return ""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError as exc:
        raise NetworkDriverError(f"tunnel address {value!r} is not an IP address "
                                 "([host] tunnel_ip)") from exc
    return "" if ip.is_loopback or ip.is_unspecified else str(ip)


def flood_peers(peers: list[str], local: str) -> list[str]:
    """The addresses a VXLAN device floods to: ``peers`` without ``local``, without
    duplicates or invalid addresses, of ``local``'s family only, sorted."""
    family = ipaddress.ip_address(local).version
    wanted = set()
    for raw in peers:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            log.warning("VXLAN peer %r is not an IP address: ignored", raw)
            continue
        if ip.version == family and str(ip) != local and not ip.is_unspecified \
                and not ip.is_loopback:
            wanted.add(str(ip))
    return sorted(wanted, key=ipaddress.ip_address)


def fdb_changes(present: set[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """The flood entries to add and to remove to go from ``present`` (their ``dst``) to
    ``wanted``."""
    return ([p for p in wanted if p not in present],
            sorted(present - set(wanted), key=ipaddress.ip_address))


def unicast_changes(present: dict[str, set[str]], wanted: dict[str, str]
                    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The per-MAC entries to set (MAC -> dst, ``bridge fdb replace``) and to delete
    first ((MAC, dst) pairs) to go from ``present`` (MAC -> its entries' dsts) to
    ``wanted``."""
    put = {mac: dst for mac, dst in sorted(wanted.items()) if present.get(mac) != {dst}}
    drop = sorted((mac, dst) for mac, dsts in present.items() for dst in dsts
                  if wanted.get(mac) != dst)
    return put, drop


def remote_unicast(remote_macs: dict[str, str], peers: list[str]) -> dict[str, str]:
    """The per-MAC entries a device keeps: valid MACs (lower case) whose host is one of
    its ``peers``."""
    wanted = {}
    for mac, dst in remote_macs.items():
        try:
            mac = check_mac(mac)
        except ValueError:
            continue
        if dst in peers and mac != FLOOD_MAC:
            wanted[mac] = dst
    return wanted


def vxlan_fdb(device: str) -> dict[str, set[str]]:
    """A VXLAN device's own FDB entries (``bridge -j fdb``; not the bridge's): MAC ->
    the tunnel addresses it goes to."""
    out = netns.run(["bridge", "-j", "fdb", "show", "dev", device]).strip()
    entries: dict[str, set[str]] = {}
    for e in json.loads(out) if out else []:
        if e.get("dst") and "master" not in e:
            entries.setdefault(e["mac"], set()).add(e["dst"])
    return entries


def flood_entries(device: str) -> list[str]:
    """The ``dst`` of the all-zero FDB entries of a VXLAN device."""
    return sorted(vxlan_fdb(device).get(FLOOD_MAC, set()), key=ipaddress.ip_address)


class LinuxL2(L2Driver):
    name = "linux"
    capabilities = {"vxlan_networks": kernel_has_vxlan(), "vlan_networks": False,
                    "flat_networks": False}

    def __init__(self, state_dir: Path | None = None, name_prefix: str = "",
                 tunnel_ip: str = "", **_ignored: object) -> None:
        self.names = Names(name_prefix)
        #: This host's VXLAN source address ("": no VXLAN devices are made).
        self.tunnel_ip = tunnel_address(tunnel_ip)
        self._lock = threading.RLock()

    # -- networks -------------------------------------------------------------------

    def ensure_network(self, spec: NetworkSpec) -> None:
        netns.checked_id("network", spec.id)
        with self._lock:
            self._ensure_bridge(spec, netns.links())

    def delete_network(self, network_id: str) -> None:
        netns.checked_id("network", network_id)
        with self._lock:
            links = netns.links()
            bridge = self.names.bridge(network_id)
            self._delete_vxlan(network_id, links)
            if bridge in links and netns.ours(links[bridge], "bridge", network_id):
                self._release_uplinks(bridge, links)
                netns.ip("link", "del", bridge)
                log.info("deleted bridge %s", bridge)
            if self.masquerade_table(network_id) in self._masquerade_tables():
                netns.run(["nft", "delete", "table", "ip", self.masquerade_table(network_id)])

    def _ensure_bridge(self, spec: NetworkSpec, links: dict[str, Link]) -> None:
        bridge = self.names.bridge(spec.id)
        link = links.get(bridge)
        if link is None:
            netns.ip("link", "add", bridge, "mtu", str(spec.mtu), "type", "bridge",
                     "forward_delay", "0", "mcast_snooping", "0")
            # No address in the host namespace, not even a link-local one: the bridge
            # must not take guests' router advertisements.
            netns.set_sysctl(f"net/ipv6/conf/{bridge}/disable_ipv6", "1")
            netns.ip("link", "set", bridge, "alias", spec.id, "up")
            log.info("created bridge %s (mtu %d)", bridge, spec.mtu)
        else:
            netns.check_ours(link, "bridge", spec.id)
            if link.get("mtu") != spec.mtu or not netns.is_up(link):
                netns.ip("link", "set", bridge, "mtu", str(spec.mtu), "up")
        # The host's own addresses on it (the external network's gateway in the
        # all-in-one mode); none on every other bridge. IPv6 is on only for a bridge that
        # holds IPv6 addresses (never taking router advertisements from the network).
        ipv6 = any(ipaddress.ip_interface(a).version == 6 for a in spec.host_addresses)
        if ipv6:
            netns.set_sysctl(f"net/ipv6/conf/{bridge}/accept_ra", "0")
        netns.set_sysctl(f"net/ipv6/conf/{bridge}/disable_ipv6", "0" if ipv6 else "1")
        netns.ensure_addresses(None, bridge, spec.host_addresses)
        self._ensure_masquerade(spec, bridge)
        if spec.uplink:
            self._ensure_uplink(spec.uplink, bridge, links)
        self._ensure_vxlan(spec, bridge, links)
        # A changed network MTU reaches the taps too (guests learn it at DHCP renewal).
        tap_head = self.names.prefix + TAP
        for name, other in links.items():
            if other.get("master") == bridge and name.startswith(tap_head) \
                    and other.get("mtu") != spec.mtu:
                netns.ip("link", "set", name, "mtu", str(spec.mtu))

    # -- VXLAN between hosts --------------------------------------------------------------

    def _ensure_vxlan(self, spec: NetworkSpec, bridge: str, links: dict[str, Link]) -> None:
        """The network's VXLAN device on its bridge, flooding to exactly its peers; none
        for a network that is not VXLAN, when this host has no tunnel address, or while
        no other host has the network (a single host opens no UDP port)."""
        peers = flood_peers(spec.peers, self.tunnel_ip) if self.tunnel_ip else []
        if spec.network_type != "vxlan" or not spec.segmentation_id or not peers:
            self._delete_vxlan(spec.id, links)
            return
        name = self.names.vxlan(spec.id)
        link = links.get(name)
        if link is not None:
            netns.check_ours(link, "vxlan", spec.id)
            data = link.get("linkinfo", {}).get("info_data", {})
            if (data.get("id"), data.get("local"), data.get("port"), data.get("learning")) \
                    != (spec.segmentation_id, self.tunnel_ip, VXLAN_PORT, False):
                # VNI, source address and port are fixed at creation.
                netns.ip("link", "del", name)
                log.info("VXLAN device %s replaced (VNI or tunnel address changed)", name)
                link = None
        if link is None:
            netns.ip("link", "add", name, "mtu", str(spec.mtu), "type", "vxlan",
                     "id", str(spec.segmentation_id), "local", self.tunnel_ip,
                     "dstport", str(VXLAN_PORT), "nolearning")
            netns.set_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")
            netns.ip("link", "set", name, "alias", spec.id)
            link = {}
            log.info("created VXLAN device %s (VNI %d, local %s)", name,
                     spec.segmentation_id, self.tunnel_ip)
        if link.get("mtu") != spec.mtu or link.get("master") != bridge \
                or not netns.is_up(link):
            netns.ip("link", "set", "dev", name, "mtu", str(spec.mtu), "master", bridge,
                     "up")
        self._sync_fdb(name, peers, remote_unicast(spec.remote_macs, peers))

    def _sync_fdb(self, name: str, peers: list[str], unicast: dict[str, str]) -> None:
        """Make the device's all-zero FDB entries exactly one per peer, and its per-MAC
        entries exactly ``unicast``."""
        present = vxlan_fdb(name)
        add, remove = fdb_changes(present.pop(FLOOD_MAC, set()), peers)
        for peer in add:
            netns.run(["bridge", "fdb", "append", FLOOD_MAC, "dev", name, "dst", peer])
        for peer in remove:
            netns.run(["bridge", "fdb", "del", FLOOD_MAC, "dev", name, "dst", peer])
        if add or remove:
            log.info("VXLAN device %s floods to %s", name, ", ".join(peers) or "no peer")
        put, drop = unicast_changes(present, unicast)
        for mac, dst in drop:
            netns.run(["bridge", "fdb", "del", mac, "dev", name, "dst", dst])
        for mac, dst in put.items():
            netns.run(["bridge", "fdb", "replace", mac, "dev", name, "dst", dst])

    def vxlan_unicast(self, network_id: str) -> dict[str, set[str]]:
        """The network's VXLAN device's per-MAC entries (MAC -> dsts; {}: no device)."""
        name = self.names.vxlan(network_id)
        with self._lock:
            if name not in netns.links():
                return {}
            entries = vxlan_fdb(name)
        entries.pop(FLOOD_MAC, None)
        return entries

    def vxlan_peers(self, network_id: str) -> list[str]:
        """The tunnel addresses the network's VXLAN device floods to ([]: no device)."""
        name = self.names.vxlan(network_id)
        with self._lock:
            if name not in netns.links():
                return []
            return sorted(flood_entries(name), key=ipaddress.ip_address)

    def _delete_vxlan(self, network_id: str, links: dict[str, Link]) -> None:
        name = self.names.vxlan(network_id)
        link = links.get(name)
        if link is not None and netns.ours(link, "vxlan", network_id):
            netns.ip("link", "del", name)
            log.info("deleted VXLAN device %s", name)

    # -- the external network's real interface (flat provider mapping) ----------------

    def _ensure_uplink(self, name: str, bridge: str, links: dict[str, Link]) -> None:
        """Enslave the existing interface ``name`` to ``bridge`` and set it up. Refused
        (nothing touched): a name that is not a plain interface name, an interface that
        does not exist, one of our own links, a bridge, or one already in a bridge
        that is not ours."""
        if not UPLINK_NAME.fullmatch(name):
            raise NetworkDriverError(f"external interface {name!r} is not an interface name")
        link = links.get(name)
        if link is None:
            raise NetworkDriverError(f"external interface {name} does not exist on this "
                                     "host ([host] external_interface)")
        if self._is_ours(name, link) or netns.link_kind(link) == "bridge":
            raise NetworkDriverError(f"external interface {name} is a bridge or one of "
                                     "OneStack's own links, not a real interface")
        master = link.get("master")
        if master and master != bridge and not self._is_ours(master, links.get(master, {})):
            raise NetworkDriverError(f"external interface {name} is already in bridge "
                                     f"{master}; take it out first")
        if master != bridge or not netns.is_up(link):
            netns.ip("link", "set", "dev", name, "master", bridge, "up")
            log.info("external interface %s joined %s", name, bridge)

    def _is_ours(self, name: str, link: Link) -> bool:
        """A link the network drivers make in this namespace (by name and kind)."""
        kinds = {BRIDGE: ("bridge",), TAP: ("tun",), DHCP_BRIDGE_END: ("veth",),
                 ROUTER_BRIDGE_END: ("veth",), VXLAN: ("vxlan",)}
        return any(self.names.link_id(kind, name) and netns.link_kind(link) in lks
                   for kind, lks in kinds.items())

    def _release_uplinks(self, bridge: str, links: dict[str, Link]) -> None:
        """Take every interface that is not ours out of ``bridge`` (``nomaster``) before
        the bridge goes: a real interface is released, never deleted."""
        for name, link in links.items():
            if link.get("master") == bridge and not self._is_ours(name, link):
                try:
                    netns.ip("link", "set", "dev", name, "nomaster")
                except NetworkDriverError:
                    if name in netns.links():
                        raise
                    continue  # gone since the listing (its namespace deleted, say)
                log.info("external interface %s released from %s", name, bridge)

    def masquerade_table(self, network_id: str) -> str:
        """The host namespace's nftables table (``ip`` family) that masquerades what
        leaves the network's host subnets by another interface."""
        return f"{self.names.prefix}masq-{network_id}"

    def _masquerade_tables(self) -> set[str]:
        if shutil.which("nft") is None:
            return set()
        try:
            out = netns.run(["nft", "-j", "list", "tables", "ip"]).strip()
        except NetworkDriverError as exc:  # no nftables here: nothing of ours either
            log.debug("no nftables tables listed: %s", exc)
            return set()
        head = f"{self.names.prefix}masq-"
        return {item["table"]["name"] for item in (json.loads(out)["nftables"] if out else [])
                if "table" in item and item["table"]["name"].startswith(head)}

    def _ensure_masquerade(self, spec: NetworkSpec, bridge: str) -> None:
        table = self.masquerade_table(spec.id)
        if spec.masquerade and spec.host_addresses:
            script = masquerade_ruleset(table, bridge, spec.host_addresses)
            netns.set_sysctl("net/ipv4/ip_forward", "1")
            netns.run(["nft", "-f", "-"], input=script)
        elif table in self._masquerade_tables():
            netns.run(["nft", "delete", "table", "ip", table])

    # -- ports ----------------------------------------------------------------------

    def bridge_name(self, network_id: str) -> str:
        return self.names.bridge(network_id)

    def tap_name(self, port_id: str) -> str:
        return self.names.tap(port_id)

    def plug_port(self, port: PortSpec) -> str:
        netns.checked_id("port", port.id)
        netns.checked_id("network", port.network_id)
        try:
            mac = tap_mac(port.mac)
        except ValueError as exc:
            raise NetworkDriverError(f"port {port.id}: {exc}") from exc
        tap = self.names.tap(port.id)
        bridge = self.names.bridge(port.network_id)
        with self._lock:
            links = netns.links()
            if bridge not in links:
                raise NetworkDriverError(f"network {port.network_id} has no bridge "
                                         f"({bridge}) on this host")
            link = links.get(tap)
            if link is None:
                # Persistent, single queue (QEMU opens it without queues=), vnet_hdr
                # offered (QEMU's vnet_hdr=on|off both work: the opener sets the flag).
                netns.ip("tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr")
                netns.set_sysctl(f"net/ipv6/conf/{tap}/disable_ipv6", "1")
                link = {}
            else:
                netns.check_ours(link, "tun", port.id)
            if (link.get("address") != mac or link.get("mtu") != port.mtu
                    or link.get("master") != bridge or not netns.is_up(link)
                    or link.get("ifalias") != port.id):
                netns.ip("link", "set", "dev", tap, "address", mac, "mtu", str(port.mtu),
                         "master", bridge, "alias", port.id, "up")
                log.info("plugged %s into %s", tap, bridge)
        return tap

    def unplug_port(self, port_id: str) -> None:
        netns.checked_id("port", port_id)
        tap = self.names.tap(port_id)
        with self._lock:
            link = netns.links().get(tap)
            if link is not None and netns.ours(link, "tun", port_id):
                netns.ip("link", "del", tap)
                log.info("unplugged %s", tap)

    # -- listings, cleanup --------------------------------------------------------

    def _listed(self, kind: str, link_kind: str) -> set[str]:
        ids = set()
        for name, link in netns.links().items():
            short = self.names.link_id(kind, name)
            if short and netns.link_kind(link) == link_kind:
                ids.add(link.get("ifalias") or short)
        return ids

    def list_networks(self) -> list[str]:
        return sorted(self._listed(BRIDGE, "bridge"))

    def list_ports(self) -> list[str]:
        return sorted(self._listed(TAP, "tun"))

    def cleanup(self) -> None:
        errors = []
        with self._lock:
            kinds = {BRIDGE: "bridge", TAP: "tun", VXLAN: "vxlan"}
            links = netns.links()
            for name, link in links.items():
                if not any(self.names.link_id(kind, name) and netns.link_kind(link) == lk
                           for kind, lk in kinds.items()):
                    continue
                try:
                    if netns.link_kind(link) == "bridge":
                        self._release_uplinks(name, links)
                    netns.ip("link", "del", name)
                except NetworkDriverError as exc:
                    errors.append(str(exc))
            try:
                for table in self._masquerade_tables():
                    netns.run(["nft", "delete", "table", "ip", table])
            except NetworkDriverError as exc:
                errors.append(str(exc))
        if errors:
            raise NetworkDriverError("cleanup incomplete: " + "; ".join(errors))


#: What ``ip link`` accepts as an interface name (at most 15 characters, no slash,
#: colon or white space).
UPLINK_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,15}")


def masquerade_ruleset(table: str, bridge: str, host_addresses: list[str]) -> str:
    """The ``nft -f`` script that replaces ``table`` (atomically) with one masquerading
    IPv4 from the subnets of ``host_addresses`` that leaves by any link but ``bridge``."""
    cidrs = sorted({str(ipaddress.ip_interface(a).network) for a in host_addresses
                    if ipaddress.ip_interface(a).version == 4})
    rules = "".join(f'\t\tip saddr {cidr} oifname != "{bridge}" masquerade\n'
                    for cidr in cidrs)
    return (f"table ip {table}\n"
            f"delete table ip {table}\n"
            f"table ip {table} {{\n"
            f"\tchain postrouting {{\n"
            f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f"{rules}\t}}\n}}\n")

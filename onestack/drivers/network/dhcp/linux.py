"""The Linux DHCP driver: a ``qdhcp-`` namespace per network with dnsmasq and the
metadata address.

Per network (names in ``names.py``), on the bridge the L2 driver made:

    <p>brq<net>
      └── <p>dh-<net>  veth ─── <p>ns-<net> in namespace <p>qdhcp-<net>:
                                the DHCP port's MAC and addresses, 169.254.169.254/32,
                                dnsmasq (``dnsmasq.py``), the metadata socket

dnsmasq is daemonized with its files under ``<state_dir>/dhcp/<net>/`` (0700, files 0600:
the state directory is private, and dnsmasq reads them as root there; see
``dnsmasq.dnsmasq_user``). A later ``ensure_dhcp`` (from this or a restarted process)
finds it through its pidfile and keeps it: changed host or option files are re-read on
SIGHUP; it is restarted only when its command line must change (subnets, MTU). Leases of
hosts that left the spec are released (``dhcp_release`` from dnsmasq-utils, else by
editing the leases file while dnsmasq is restarted).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import threading
import time
from pathlib import Path

from onestack.common.processes import end_process
from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkDriverError, NetworkSpec
from onestack.drivers.network.dhcp.base import DhcpDriver
from onestack.drivers.network.dhcp.dnsmasq import (
    METADATA_IP,
    DnsmasqFiles,
    DnsmasqProcess,
    Lease,
    build_command,
    dnsmasq_pidfile,
    dnsmasq_user,
    hosts_file,
    interface_addresses,
    opts_file,
    parse_leases,
    process_cmdline,
    stale_leases,
    without_leases,
)
from onestack.drivers.network.names import (
    DHCP_BRIDGE_END,
    DHCP_NAMESPACE_END,
    Names,
    check_mac,
)

log = logging.getLogger(__name__)

#: How long a freshly started dnsmasq may take to write its pidfile.
START_TIMEOUT = 5.0

Link = netns.Link
#: Modes of the DHCP directories and files: private, as the whole state directory is
#: (``common/statedir.py``); dnsmasq reads them as root (``dnsmasq.dnsmasq_user``).
DIR_MODE = 0o700
FILE_MODE = 0o600


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.chmod(FILE_MODE)  # an older, wider file keeps its mode through O_TRUNC
    os.replace(tmp, path)
    return True


class LinuxDhcp(DhcpDriver):
    name = "linux"
    capabilities = {"dhcpv4": True, "slaac": True, "dhcpv6_stateless": True,
                    "dhcpv6_stateful": True, "metadata_service": True}

    def __init__(self, state_dir: Path, name_prefix: str = "", **_ignored: object) -> None:
        self.state_dir = Path(state_dir)
        self.names = Names(name_prefix)
        self.dhcp_dir = self.state_dir / "dhcp"
        self._lock = threading.RLock()

    # -- networks -------------------------------------------------------------------

    def ensure_dhcp(self, spec: NetworkSpec) -> None:
        self.check(spec)
        hosts, opts = hosts_file(spec), opts_file(spec)
        with self._lock:
            links = netns.links()
            if spec.dhcp_mac:
                remade = self._ensure_dhcp_namespace(spec, links)
                self._ensure_dnsmasq(spec, hosts, opts, restart=remade)
            else:
                self._remove_dhcp(spec.id, links)

    def remove_dhcp(self, network_id: str) -> None:
        netns.checked_id("network", network_id)
        with self._lock:
            self._remove_dhcp(network_id, netns.links())

    def _ensure_dhcp_namespace(self, spec: NetworkSpec, links: dict[str, Link]) -> bool:
        """Namespace, veth pair and addresses; True if the pair had to be (re)made (a
        dnsmasq bound to the old one must be restarted)."""
        ns = self.names.dhcp_namespace(spec.id)
        bridge = self.names.bridge(spec.id)
        outer = self.names.dhcp_bridge_end(spec.id)
        inner = self.names.dhcp_namespace_end(spec.id)
        mtu = str(spec.mtu)
        if ns not in netns.namespaces():
            netns.ip("netns", "add", ns)
            netns.ip("link", "set", "lo", "up", namespace=ns)
            log.info("created namespace %s", ns)
        inside = {link["ifname"]: link for link in netns.ip_json("link", "show", namespace=ns)}
        if outer in links:
            netns.check_ours(links[outer], "veth", spec.id)
        remade = outer not in links or inner not in inside
        if remade:
            # Make the pair afresh (a half-made one is a leftover of a crash).
            if outer in links:
                netns.ip("link", "del", outer)
            if inner in inside:
                netns.ip("link", "del", inner, namespace=ns)
            netns.ip("link", "add", outer, "mtu", mtu, "type", "veth",
                     "peer", "name", inner, "mtu", mtu, "netns", ns)
            netns.set_sysctl(f"net/ipv6/conf/{outer}/disable_ipv6", "1")
            netns.call_in_namespace(ns, lambda: self._namespace_sysctls(inner))
            netns.ip("link", "set", inner, "address", check_mac(spec.dhcp_mac or ""),
                     namespace=ns)
            links[outer] = {"ifname": outer}
            inside = {link["ifname"]: link
                      for link in netns.ip_json("link", "show", namespace=ns)}
        link = links[outer]
        if link.get("master") != bridge or link.get("mtu") != spec.mtu or not netns.is_up(link):
            netns.ip("link", "set", outer, "mtu", mtu, "master", bridge, "alias", spec.id,
                     "up")
        link = inside[inner]
        mac = check_mac(spec.dhcp_mac or "")
        if link.get("address") != mac:
            netns.ip("link", "set", inner, "down", namespace=ns)
            netns.ip("link", "set", inner, "address", mac, namespace=ns)
            link["flags"] = []
        if link.get("mtu") != spec.mtu or not netns.is_up(link):
            netns.ip("link", "set", inner, "mtu", mtu, "up", namespace=ns)
        netns.ensure_addresses(ns, inner, interface_addresses(spec))
        return remade

    @staticmethod
    def _namespace_sysctls(ifname: str) -> None:
        """Inside the DHCP namespace: take no router advertisements from guests, and
        make addresses usable at once (dnsmasq binds to them, and sends RAs from the
        link-local one)."""
        for key, value in (("accept_ra", "0"), ("autoconf", "0"), ("accept_dad", "0")):
            netns.set_sysctl(f"net/ipv6/conf/{ifname}/{key}", value)

    def _ensure_dnsmasq(self, spec: NetworkSpec, hosts: str, opts: str,
                        restart: bool = False) -> None:
        ns = self.names.dhcp_namespace(spec.id)
        inner = self.names.dhcp_namespace_end(spec.id)
        files = DnsmasqFiles(self.dhcp_dir / spec.id)
        for directory in (self.dhcp_dir, files.dir):
            directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            directory.chmod(DIR_MODE)
        changed = _write_if_changed(files.hosts, hosts)
        changed = _write_if_changed(files.opts, opts) or changed
        argv = build_command(spec, files, inner, user=dnsmasq_user(self.dhcp_dir))
        process = DnsmasqProcess(files)
        pid = process.pid()
        try:
            stale = stale_leases(parse_leases(files.leases.read_text()), spec)
        except FileNotFoundError:
            stale = []

        if pid and argv and not restart and process_cmdline(pid) == argv:
            if changed:
                process.reload(pid)
                log.info("dnsmasq %d of network %s reloaded", pid, spec.id)
            if not stale or self._release(ns, inner, stale):
                return
            # No dhcp_release: restart with the leases edited out (below).
        if pid:
            process.stop(pid)
            log.info("dnsmasq %d of network %s stopped", pid, spec.id)
        if stale:
            files.leases.write_text(without_leases(files.leases.read_text(), stale))
        if argv is None:
            return
        netns.run(["ip", "netns", "exec", ns, *argv])
        deadline = time.monotonic() + START_TIMEOUT
        while (new := process.pid()) is None or new == pid:
            if time.monotonic() > deadline:
                raise NetworkDriverError(
                    f"dnsmasq for network {spec.id} did not start (see {files.log})")
            time.sleep(0.02)
        log.info("dnsmasq %d of network %s started", new, spec.id)

    def _release(self, ns: str, ifname: str, leases: list[Lease]) -> bool:
        """Tell dnsmasq the leases are released, as their clients would (False: the
        tools are not installed)."""
        if not shutil.which("dhcp_release") or not shutil.which("dhcp_release6"):
            return False
        for lease in leases:
            if lease.version == 4:
                argv = ["dhcp_release", ifname, lease.ip, lease.mac or ""]
                argv += [lease.client_id] if lease.client_id else []
            else:
                if not (lease.client_id and lease.server_duid and lease.iaid):
                    continue
                argv = ["dhcp_release6", "--iface", ifname, "--ip", lease.ip,
                        "--client-id", lease.client_id, "--server-id", lease.server_duid,
                        "--iaid", lease.iaid]
            netns.run(["ip", "netns", "exec", ns, *argv])
            log.info("released lease %s (%s) in %s", lease.ip, lease.mac or lease.iaid, ns)
        return True

    def _remove_dhcp(self, network_id: str, links: dict[str, Link]) -> None:
        files = DnsmasqFiles(self.dhcp_dir / network_id)
        process = DnsmasqProcess(files)
        pid = process.pid()
        if pid:
            process.stop(pid)
            log.info("dnsmasq %d of network %s stopped", pid, network_id)
        outer = self.names.dhcp_bridge_end(network_id)
        if outer in links and netns.ours(links[outer], "veth", network_id):
            netns.ip("link", "del", outer)
        ns = self.names.dhcp_namespace(network_id)
        if ns in netns.namespaces():
            self._delete_namespace(ns, network_id)
        shutil.rmtree(files.dir, ignore_errors=True)

    def _delete_namespace(self, ns: str, network_id: str) -> None:
        """Delete a DHCP namespace once no process is left in it: deleting the name of a
        namespace that still holds processes leaves them running, out of reach, for good.

        Processes in it that are this host's are ended first: a dnsmasq whose command
        line names this state directory's pidfile for the network, or an abandoned one
        (a OneStack dnsmasq for the network whose pidfile's directory is gone: its state
        directory was removed, and nothing would ever adopt it). Anything else is left
        alone, and so is the namespace; the error names who is in it."""
        ours = DnsmasqFiles(self.dhcp_dir / network_id).pid
        strangers = []
        for pid in netns.namespace_pids(ns):
            argv = process_cmdline(pid)
            if not argv:
                continue  # gone meanwhile, or a zombie
            pidfile = dnsmasq_pidfile(argv)
            if pidfile is not None and pidfile.resolve() == ours.resolve():
                why = "ours"
            elif pidfile is not None and pidfile.parent.name == network_id \
                    and pidfile.parent.parent.name == "dhcp" and not pidfile.parent.exists():
                why = "abandoned (its state directory is gone)"
            else:
                strangers.append(f"PID {pid} ({shlex.join(argv)[:120]})")
                continue
            if end_process(pid, argv):
                log.info("ended dnsmasq %d in namespace %s: %s", pid, ns, why)
            else:
                strangers.append(f"PID {pid} (does not die)")
        if strangers:
            raise NetworkDriverError(
                f"namespace {ns} still holds processes that are not this host's: "
                f"{'; '.join(strangers)}; it is left in place (end them and it goes at "
                "the next removal)")
        netns.ip("netns", "del", ns)
        log.info("deleted namespace %s", ns)

    # -- listings, metadata, cleanup ----------------------------------------------

    def list_networks(self) -> list[str]:
        return sorted(network_id for ns in netns.namespaces()
                      if (network_id := self.names.namespace_network(ns)))

    def metadata_socket(self, network_id: str) -> socket.socket | None:
        netns.checked_id("network", network_id)
        ns = self.names.dhcp_namespace(network_id)

        def listen() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((METADATA_IP, 80))
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
                f"cannot listen on {METADATA_IP}:80 in namespace {ns}: {exc}") from exc

    def cleanup(self) -> None:
        errors = []
        with self._lock:
            if self.dhcp_dir.is_dir():
                for directory in sorted(self.dhcp_dir.iterdir()):
                    process = DnsmasqProcess(DnsmasqFiles(directory))
                    pid = process.pid()
                    if pid:
                        process.stop(pid)
            kinds = {DHCP_BRIDGE_END: "veth", DHCP_NAMESPACE_END: "veth"}
            for name, link in netns.links().items():
                if not any(self.names.link_id(kind, name) and netns.link_kind(link) == lk
                           for kind, lk in kinds.items()):
                    continue
                try:
                    netns.ip("link", "del", name)
                except NetworkDriverError as exc:
                    # A veth goes with its peer: only a link still there is a failure.
                    if name in netns.links():
                        errors.append(str(exc))
            for ns in sorted(netns.namespaces()):
                network_id = self.names.namespace_network(ns)
                if network_id:
                    try:
                        self._delete_namespace(ns, network_id)
                    except NetworkDriverError as exc:
                        errors.append(str(exc))
            shutil.rmtree(self.dhcp_dir, ignore_errors=True)
        if errors:
            raise NetworkDriverError("cleanup incomplete: " + "; ".join(errors))

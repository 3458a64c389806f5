"""The Linux L2 and DHCP drivers (as the host's network, ``network.load("linux")``)
against the real kernel, dnsmasq and busybox's DHCP client.

The "host" is a namespace of its own (``<prefix>host``): each test switches its thread
into it, so the driver's bridges and taps, and every command it runs, land there. Guests
are namespaces joined to a network's bridge by a veth pair with the guest's MAC, running
``busybox udhcpc``/``wget``. Everything carries a random 4-character prefix and is
removed at the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from onestack.drivers import network
from onestack.drivers.network import netns
from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)
from onestack.drivers.network.dhcp.dnsmasq import DnsmasqFiles, process_cmdline
from onestack.drivers.network.host import HostNetwork
from onestack.drivers.network.names import Names

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed"),
    pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] && env > "$LEASE_FILE"
exit 0
"""


def eui64(mac: str, cidr: str) -> str:
    """The modified EUI-64 address of a MAC in a /64 (what SLAAC gives the guest)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = bytes(octets[:3] + [0xFF, 0xFE] + octets[3:])
    network = ipaddress.IPv6Network(cidr)
    return str(network.network_address + int.from_bytes(iid, "big"))


def random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def sh(*argv: str, check: bool = True, timeout: float = 30, **kw: Any) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class Guest:
    ns: str
    ifname: str
    mac: str
    lease_dir: Path

    def run(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True,
                              text=True, **kw)

    def dhcp(self, tries: int = 3) -> dict[str, str] | None:
        """One DHCP exchange with busybox udhcpc; the lease's variables, None if none."""
        script = self.lease_dir / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        lease_file = self.lease_dir / f"lease-{self.ns}"
        lease_file.unlink(missing_ok=True)
        self.run("busybox", "udhcpc", "-i", self.ifname, "-f", "-q", "-n", "-t", str(tries),
                 "-T", "1", "-A", "1", "-O", "mtu", "-O", "staticroutes", "-s", str(script),
                 env={**os.environ, "LEASE_FILE": str(lease_file)}, timeout=30)
        if not lease_file.exists():
            return None
        return dict(line.split("=", 1) for line in lease_file.read_text().splitlines()
                    if "=" in line)

    def addresses(self, family: str = "inet6") -> list[str]:
        out = netns.ip_json("addr", "show", "dev", self.ifname, namespace=self.ns)
        return [a["local"] for e in out for a in e.get("addr_info", [])
                if a["family"] == family and a.get("scope") == "global"]


@dataclass
class Host:
    prefix: str
    ns: str
    state_dir: Path
    driver: HostNetwork
    guests: list[Guest] = field(default_factory=list)

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    def add_guest(self, bridge: str, mac: str) -> Guest:
        n = len(self.guests)
        ns, outer, inner = f"{self.prefix}g{n}", f"{self.prefix}gv{n}", f"{self.prefix}gi{n}"
        sh("ip", "netns", "add", ns)
        guest = Guest(ns, inner, mac, self.state_dir)
        self.guests.append(guest)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        sh("ip", "-n", ns, "link", "set", inner, "address", mac, "up")
        sh("ip", "link", "set", outer, "master", bridge, "up")
        return guest

    def remove_guests(self) -> None:
        for guest in self.guests:
            subprocess.run(["ip", "netns", "del", guest.ns], capture_output=True)
        self.guests.clear()


def linux_network(state_dir: Path, prefix: str) -> HostNetwork:
    return network.load("linux", state_dir=state_dir, name_prefix=prefix)


def kill_leftovers(state_dir: Path) -> None:
    """Processes started by these tests (dnsmasq with our state dir in its arguments) that
    are still there, by PID."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and any(str(state_dir) in a
                                        for a in process_cmdline(int(entry.name))):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def host_env() -> Iterator[Host]:
    prefix = "o" + secrets.token_hex(2)[:3]
    # World-traversable (the DHCP directory below it is private all the same).
    state_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    state_dir.chmod(0o755)
    ns = f"{prefix}host"
    sh("ip", "netns", "add", ns)
    host = Host(prefix, ns, state_dir, linux_network(state_dir, prefix))
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield host
    finally:
        host.remove_guests()
        with netns.inside(netns.namespace_path(ns)), contextlib.suppress(Exception):
            host.driver.cleanup()
        kill_leftovers(state_dir)
        for name in netns.namespaces():
            if name.startswith(prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def host(host_env: Host) -> Iterator[Host]:
    """The host, with the test's thread inside its namespace."""
    with netns.inside(netns.namespace_path(host_env.ns)):
        try:
            yield host_env
        finally:
            host_env.remove_guests()


def network_spec(octet: int, *, hosts: list[DhcpHost] | None = None, v6: bool = False,
                 mtu: int = 1400) -> NetworkSpec:
    cidr = f"10.{octet}.0.0/24"
    dhcp_mac = random_mac()
    subnets = [SubnetSpec(id=str(uuid.uuid4()), cidr=cidr, ip_version=4,
                          gateway_ip=f"10.{octet}.0.1", enable_dhcp=True,
                          dns_nameservers=[f"10.{octet}.0.53"],
                          host_routes=[{"destination": "192.168.77.0/24",
                                        "nexthop": f"10.{octet}.0.254"}])]
    dhcp_ips = [f"10.{octet}.0.2"]
    if v6:
        prefix6 = f"fd00:{octet}::/64"
        subnets.append(SubnetSpec(id=str(uuid.uuid4()), cidr=prefix6, ip_version=6,
                                  gateway_ip=f"fd00:{octet}::1", enable_dhcp=True,
                                  ipv6_ra_mode="slaac", ipv6_address_mode="slaac"))
        dhcp_ips.append(eui64(dhcp_mac, prefix6))
    return NetworkSpec(id=str(uuid.uuid4()), mtu=mtu, subnets=subnets, dhcp_mac=dhcp_mac,
                       dhcp_ips=dhcp_ips, hosts=hosts or [])


def guest_host(spec_octet: int, last: int, v6: bool = False) -> DhcpHost:
    mac = random_mac()
    ips = [f"10.{spec_octet}.0.{last}"]
    if v6:
        ips.append(eui64(mac, f"fd00:{spec_octet}::/64"))
    return DhcpHost(port_id=str(uuid.uuid4()), mac=mac, ips=ips, hostname=f"vm{last}")


@contextlib.contextmanager
def serve_peer_address(sock: Any) -> Iterator[None]:
    """A tiny HTTP server on the metadata socket answering with the client's address."""
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = writer.get_extra_info("peername")[0].encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, sock=sock))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


@dataclass
class RouterAdvertisement:
    managed: bool
    other: bool
    router_lifetime: int
    mtu: int | None
    #: prefix -> autonomous (A) flag
    prefixes: dict[str, bool]


def solicit_ra(ns: str, ifname: str, timeout: float = 8) -> RouterAdvertisement:
    """Send router solicitations from inside ``ns`` and parse the first advertisement."""

    def listen() -> bytes:
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            s.settimeout(1)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                # Fails while the link-local address is tentative; the answer to the
                # kernel's own solicitation will do then.
                with contextlib.suppress(OSError):
                    s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]),
                             ("ff02::2", 0, 0, socket.if_nametoindex(ifname)))
                with contextlib.suppress(TimeoutError):
                    while True:
                        data = s.recv(2048)
                        if data[0] == 134:
                            return data
        raise AssertionError("no router advertisement")

    data = netns.call_in_namespace(ns, listen)
    flags, lifetime = data[5], struct.unpack("!H", data[6:8])[0]
    mtu, prefixes, offset = None, {}, 16
    while offset + 2 <= len(data) and data[offset + 1]:
        kind, size = data[offset], data[offset + 1] * 8
        option = data[offset:offset + size]
        if kind == 3:
            prefix = ipaddress.IPv6Address(option[16:32])
            prefixes[f"{prefix}/{option[2]}"] = bool(option[3] & 0x40)
        elif kind == 5:
            mtu = struct.unpack("!I", option[4:8])[0]
        offset += size
    return RouterAdvertisement(bool(flags & 0x80), bool(flags & 0x40), lifetime, mtu,
                               prefixes)


def dnsmasq_pid(host: Host, network_id: str) -> int:
    return int((host.state_dir / "dhcp" / network_id / "pid").read_text())


def test_guest_gets_lease_routes_mtu_slaac_and_metadata(host: Host) -> None:
    vm = guest_host(61, 5, v6=True)
    spec = network_spec(61, hosts=[vm], v6=True)
    host.driver.ensure_network(spec)
    names = host.names
    bridge = names.bridge(spec.id)

    links = netns.links()
    assert links[bridge]["mtu"] == 1400
    assert netns.ip_json("addr", "show", "dev", bridge)[0].get("addr_info", []) == []
    assert links[names.dhcp_bridge_end(spec.id)]["master"] == bridge
    ns = names.dhcp_namespace(spec.id)
    inner = netns.ip_json("addr", "show", "dev", names.dhcp_namespace_end(spec.id),
                          namespace=ns)[0]
    assert inner["address"] == spec.dhcp_mac and inner["mtu"] == 1400
    assert {f"{a['local']}/{a['prefixlen']}" for a in inner["addr_info"]
            if a["scope"] != "link"} == {"10.61.0.2/24", "169.254.169.254/32",
                                         f"{spec.dhcp_ips[1]}/64"}
    assert host.driver.list_networks() == [spec.id]
    # The DHCP files are private, as the whole state directory is: dnsmasq runs as root
    # and reads them (the lease below; re-reading on SIGHUP: the re-adoption test).
    directory = host.state_dir / "dhcp" / spec.id
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
    for name in ("host", "opts"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert "--user=root" in process_cmdline(dnsmasq_pid(host, spec.id))

    guest = host.add_guest(bridge, vm.mac)
    lease = guest.dhcp()
    assert lease is not None, "no DHCP lease"
    assert lease["ip"] == "10.61.0.5"
    assert lease["subnet"] == "255.255.255.0"
    assert lease["mtu"] == "1400"
    assert lease["router"] == "10.61.0.1"
    assert lease["dns"].split() == ["10.61.0.53"]
    assert lease["staticroutes"].split() == [
        "169.254.169.254/32", "10.61.0.2", "192.168.77.0/24", "10.61.0.254",
        "0.0.0.0/0", "10.61.0.1"]

    # IPv6: the RA gives the guest its EUI-64 address (what the API shows), the MTU, and
    # no default route (the DHCP namespace is not a router).
    slaac = wait_for(lambda: guest.addresses("inet6"), 10, "a SLAAC address")
    assert slaac == [vm.ips[1]]
    mtu6 = netns.call_in_namespace(
        guest.ns, lambda: Path(f"/proc/sys/net/ipv6/conf/{guest.ifname}/mtu").read_text())
    assert mtu6.strip() == "1400"
    assert netns.ip_json("-6", "route", "show", "default", namespace=guest.ns) == []

    # Metadata: the guest reaches 169.254.169.254 through the DHCP port; the server sees
    # the guest's fixed IP.
    netns.ip("addr", "add", "10.61.0.5/24", "dev", guest.ifname, namespace=guest.ns)
    netns.ip("route", "add", "169.254.169.254/32", "via", "10.61.0.2", namespace=guest.ns)
    sock = host.driver.metadata_socket(spec.id)
    assert sock is not None
    with sock, serve_peer_address(sock):
        out = guest.run("busybox", "wget", "-q", "-O-", "http://169.254.169.254/",
                        timeout=20)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "10.61.0.5"

    # A MAC that is not in the hosts file gets nothing.
    stranger = host.add_guest(bridge, random_mac())
    assert stranger.dhcp(tries=2) is None

    host.remove_guests()
    host.driver.delete_network(spec.id)


def test_router_advertisement_per_ipv6_mode(host: Host) -> None:
    spec = network_spec(67)
    modes = {"fd00:67:1::/64": "slaac", "fd00:67:2::/64": "dhcpv6-stateless",
             "fd00:67:3::/64": "dhcpv6-stateful"}
    for cidr, mode in modes.items():
        spec.subnets.append(SubnetSpec(id=str(uuid.uuid4()), cidr=cidr, ip_version=6,
                                       gateway_ip=None, enable_dhcp=True,
                                       ipv6_ra_mode=mode, ipv6_address_mode=mode))
        spec.dhcp_ips.append(eui64(spec.dhcp_mac or "", cidr) if mode != "dhcpv6-stateful"
                             else cidr.replace("::/64", "::2"))
    host.driver.ensure_network(spec)
    guest = host.add_guest(host.names.bridge(spec.id), random_mac())
    ra = solicit_ra(guest.ns, guest.ifname)
    # One RA for the interface: M and O because one subnet is stateful; A per prefix.
    assert ra.prefixes == {"fd00:67:1::/64": True, "fd00:67:2::/64": True,
                           "fd00:67:3::/64": False}
    assert ra.managed and ra.other
    assert ra.router_lifetime == 0 and ra.mtu == 1400
    host.remove_guests()
    host.driver.delete_network(spec.id)


def test_readoption_reload_and_lease_release(host: Host) -> None:
    vm = guest_host(62, 7)
    spec = network_spec(62, hosts=[vm])
    host.driver.ensure_network(spec)
    pid = dnsmasq_pid(host, spec.id)
    guest = host.add_guest(host.names.bridge(spec.id), vm.mac)
    assert (guest.dhcp() or {}).get("ip") == "10.62.0.7"
    leases = DnsmasqFiles(host.state_dir / "dhcp" / spec.id).leases
    wait_for(lambda: vm.mac in leases.read_text(), 5, "the lease in the leases file")

    # A new driver over the same state (a restarted agent) keeps dnsmasq running.
    again = linux_network(host.state_dir, host.prefix)
    again.ensure_network(spec)
    assert dnsmasq_pid(host, spec.id) == pid

    # A new host: files rewritten and re-read (SIGHUP), same process.
    other = guest_host(62, 8)
    again.ensure_network(replace(spec, hosts=[vm, other]))
    assert dnsmasq_pid(host, spec.id) == pid
    hosts = (host.state_dir / "dhcp" / spec.id / "host").read_text()
    assert f"{other.mac},10.62.0.8,vm8" in hosts
    newcomer = host.add_guest(host.names.bridge(spec.id), other.mac)
    assert (newcomer.dhcp() or {}).get("ip") == "10.62.0.8"
    # dnsmasq keeps root to re-read its private (0700) directory.
    assert Path(f"/proc/{pid}").stat().st_uid == 0

    # The guest's host leaves the spec: out of the hosts file, and its lease released.
    again.ensure_network(replace(spec, hosts=[other]))
    assert vm.mac not in (host.state_dir / "dhcp" / spec.id / "host").read_text()
    wait_for(lambda: vm.mac not in leases.read_text(), 5, "the lease to be released")
    assert dnsmasq_pid(host, spec.id) == pid
    assert guest.dhcp(tries=2) is None

    # A new MTU is an option (reload); a new subnet changes the command line (restart).
    again.ensure_network(replace(spec, hosts=[other], mtu=1300))
    assert dnsmasq_pid(host, spec.id) == pid
    assert netns.links()[host.names.bridge(spec.id)]["mtu"] == 1300
    assert "option:mtu,1300" in (host.state_dir / "dhcp" / spec.id / "opts").read_text()
    subnet = replace(spec.subnets[0], id=str(uuid.uuid4()), cidr="10.62.1.0/24",
                     gateway_ip=None)
    again.ensure_network(replace(spec, hosts=[other], mtu=1300,
                                 subnets=[*spec.subnets, subnet],
                                 dhcp_ips=[*spec.dhcp_ips, "10.62.1.2"]))
    new_pid = dnsmasq_pid(host, spec.id)
    assert new_pid != pid

    # dnsmasq died: the next ensure_network edits stale leases out and starts it again.
    assert other.mac in leases.read_text()
    os.kill(new_pid, signal.SIGTERM)
    wait_for(lambda: not process_cmdline(new_pid), 5, "dnsmasq to exit")
    again.ensure_network(replace(spec, hosts=[], mtu=1300))
    assert other.mac not in leases.read_text()
    assert dnsmasq_pid(host, spec.id) != new_pid
    host.remove_guests()
    again.delete_network(spec.id)


def test_delete_network_leaves_nothing(host: Host) -> None:
    vm = guest_host(63, 9)
    spec = network_spec(63, hosts=[vm])
    driver = host.driver
    driver.ensure_network(spec)
    driver.ensure_network(spec)  # idempotent
    pid = dnsmasq_pid(host, spec.id)
    config_dir = host.state_dir / "dhcp" / spec.id
    port = PortSpec(id=str(uuid.uuid4()), network_id=spec.id, mac=vm.mac, mtu=spec.mtu)
    driver.plug_port(port)
    driver.unplug_port(port.id)
    driver.unplug_port(port.id)  # idempotent

    driver.delete_network(spec.id)
    driver.delete_network(spec.id)  # idempotent
    names = host.names
    assert not process_cmdline(pid)
    assert not config_dir.exists()
    assert names.dhcp_namespace(spec.id) not in netns.namespaces()
    links = netns.links()
    for name in (names.bridge(spec.id), names.dhcp_bridge_end(spec.id), names.tap(port.id)):
        assert name not in links
    assert driver.list_networks() == [] and driver.list_ports() == []


def test_dhcp_removed_when_spec_drops_it(host: Host) -> None:
    spec = network_spec(64)
    host.driver.ensure_network(spec)
    pid = dnsmasq_pid(host, spec.id)
    host.driver.ensure_network(replace(spec, dhcp_mac=None, dhcp_ips=[]))
    assert not process_cmdline(pid)
    assert host.names.dhcp_namespace(spec.id) not in netns.namespaces()
    assert host.driver.list_networks() == [spec.id]  # the bridge stays
    host.driver.delete_network(spec.id)


def test_broken_network_is_repaired(host: Host) -> None:
    """Someone deleted the DHCP veth: the next ensure_network makes it again and restarts
    dnsmasq (bound to the old interface), which serves again."""
    vm = guest_host(68, 5)
    spec = network_spec(68, hosts=[vm])
    host.driver.ensure_network(spec)
    pid = dnsmasq_pid(host, spec.id)
    netns.ip("link", "del", host.names.dhcp_bridge_end(spec.id))
    host.driver.ensure_network(spec)
    assert dnsmasq_pid(host, spec.id) != pid
    guest = host.add_guest(host.names.bridge(spec.id), vm.mac)
    assert (guest.dhcp() or {}).get("ip") == "10.68.0.5"
    host.remove_guests()
    host.driver.delete_network(spec.id)


def test_tap_on_bridge_opened_by_qemu(host: Host) -> None:
    driver = host.driver
    spec = NetworkSpec(id=str(uuid.uuid4()), mtu=1450, subnets=[])
    port = PortSpec(id=str(uuid.uuid4()), network_id=spec.id, mac=random_mac(), mtu=1450)
    with pytest.raises(NetworkDriverError, match="no bridge"):
        driver.plug_port(port)
    driver.ensure_network(spec)
    tap = driver.plug_port(port)
    assert tap == driver.tap_name(port.id) and len(tap) <= 15
    assert driver.plug_port(port) == tap  # idempotent
    link = netns.links()[tap]
    assert link["master"] == host.names.bridge(spec.id)
    assert link["mtu"] == 1450 and "UP" in link["flags"]
    assert link["address"] == "fe" + port.mac[2:]
    info = link["linkinfo"]["info_data"]
    assert info["type"] == "tap" and info["persist"] and not info["multi_queue"]
    assert driver.list_ports() == [port.id]
    assert driver.list_networks() == [spec.id]

    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        proc = subprocess.Popen(
            [qemu, "-nodefaults", "-display", "none", "-S", "-machine", "pc", "-accel", "tcg",
             "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no,vnet_hdr=on",
             "-device", f"virtio-net-pci,netdev=n0,mac={port.mac}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # The tap gets a carrier once QEMU holds it open.
            wait_for(lambda: proc.poll() is not None
                     or "LOWER_UP" in netns.links()[tap]["flags"], 15, "QEMU to open the tap")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        finally:
            proc.kill()
            proc.wait()

    driver.unplug_port(port.id)
    assert tap not in netns.links() and driver.list_ports() == []
    driver.delete_network(spec.id)


def test_cleanup_removes_everything(host: Host) -> None:
    driver = host.driver
    specs = [network_spec(65), network_spec(66)]
    for spec in specs:
        driver.ensure_network(spec)
    pids = [dnsmasq_pid(host, spec.id) for spec in specs]
    driver.plug_port(PortSpec(id=str(uuid.uuid4()), network_id=specs[0].id,
                              mac=random_mac(), mtu=1400))
    assert sorted(driver.list_networks()) == sorted(s.id for s in specs)
    driver.cleanup()
    assert driver.list_networks() == [] and driver.list_ports() == []
    assert not any(process_cmdline(pid) for pid in pids)
    assert not (host.state_dir / "dhcp").exists()
    assert [link for link in netns.links() if link.startswith(host.prefix)] == []


def test_namespace_deletion_ends_abandoned_dnsmasq(host: Host) -> None:
    """A cloud with the same prefix whose state directory was removed left dnsmasq
    running in its namespace: deleting the namespace ends it too (nothing else ever
    would), checked by its command line."""
    spec = network_spec(67)
    other_state = Path(tempfile.mkdtemp(prefix=f"{host.prefix}-gone-", dir="/tmp"))
    try:
        other_state.chmod(0o755)
        linux_network(other_state, host.prefix).ensure_network(spec)
        pid = int((other_state / "dhcp" / spec.id / "pid").read_text())
    finally:
        shutil.rmtree(other_state, ignore_errors=True)
    assert process_cmdline(pid)  # outlived its state directory
    assert host.driver.list_networks() == [spec.id]
    host.driver.delete_network(spec.id)
    assert not process_cmdline(pid)
    assert host.names.dhcp_namespace(spec.id) not in netns.namespaces()
    assert host.driver.list_networks() == []


def test_namespace_with_a_stranger_is_kept(host: Host) -> None:
    """A process in a DHCP namespace that is not this host's dnsmasq is never killed; the
    namespace stays (deleting it would leave that process out of reach) until it ends."""
    spec = network_spec(69)
    host.driver.ensure_network(spec)
    ns = host.names.dhcp_namespace(spec.id)
    stranger = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"],
                                stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: stranger.pid in netns.namespace_pids(ns)
                 or any(process_cmdline(p)[:1] == ["sleep"] for p in netns.namespace_pids(ns)),
                 5, "the stranger to enter the namespace")
        dnsmasq = dnsmasq_pid(host, spec.id)
        with pytest.raises(NetworkDriverError, match="not this host's"):
            host.driver.delete_network(spec.id)
        assert stranger.poll() is None  # untouched
        assert ns in netns.namespaces()
        assert not process_cmdline(dnsmasq)  # ours went
    finally:
        stranger.kill()
        stranger.wait()
    host.driver.delete_network(spec.id)
    assert ns not in netns.namespaces()
    assert host.driver.list_networks() == []

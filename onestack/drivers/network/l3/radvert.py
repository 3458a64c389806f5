"""Router advertisements from a router's namespace: dnsmasq in RA-only mode.

One dnsmasq per router that has IPv6 prefixes to advertise, bound to those ``qr-``
legs, with no DNS (``--port=0``), no leases and no DHCPv4. Per leg:

    --dhcp-range=set:<tag>,<prefix>,ra-only,64        (slaac: the A flag)
    --dhcp-range=set:<tag>,<prefix>,ra-stateless,64   (dhcpv6-stateless: A and O flags,
                                                       and answers to information requests)
    --ra-param=<qr->,mtu:<mtu>,<interval>,<lifetime>  (router lifetime non-zero: guests
                                                       take the router as default router)

Why dnsmasq and not radvd (what Neutron runs): it is already a dependency (the DHCP
driver's), its process handling is the DHCP driver's (``DnsmasqProcess``: a pidfile, a
command line naming the router's directory), and it answers router solicitations at
once, which a guest booting under TCG needs. The DHCP namespace's dnsmasq keeps sending
its own advertisements of the same prefix with router lifetime 0: guests see the same
prefix twice (one address) and only the router as a default router.

Like the DHCP driver's dnsmasq, a process whose command line is still the wanted one is
kept (a restarted agent adopts it); any change of the legs restarts it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path

from onestack.drivers.network import netns
from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.dhcp.dnsmasq import (
    DnsmasqFiles,
    DnsmasqProcess,
    dnsmasq_user,
    process_cmdline,
)
from onestack.drivers.network.l3.base import RouterPort

log = logging.getLogger(__name__)

#: Seconds between unsolicited advertisements, and the router lifetime they carry.
RA_INTERVAL = 30
ROUTER_LIFETIME = 1800
START_TIMEOUT = 5.0


def build_command(legs: list[tuple[str, RouterPort]], files: DnsmasqFiles,
                  user: str | None = None) -> list[str] | None:
    """dnsmasq's argument list for the legs (interface name, port) that advertise
    prefixes, or None when none does."""
    argv = [
        "dnsmasq", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--port=0",
        f"--pid-file={files.pid}", f"--log-facility={files.log}", "--leasefile-ro",
        "--except-interface=lo", "--bind-interfaces", "--enable-ra",
    ]
    if user:
        argv += [f"--user={user}", f"--group={user}"]
    any_prefix = False
    for ifname, port in sorted(legs, key=lambda leg: leg[0]):
        if not port.advertise:
            continue
        argv.append(f"--interface={ifname}")
        for index, advert in enumerate(sorted(port.advertise, key=lambda a: a.prefix)):
            net = ipaddress.IPv6Network(advert.prefix)
            tag = f"ra-{ifname}-{index}"
            mode = "ra-stateless" if advert.mode == "dhcpv6-stateless" else "ra-only"
            argv.append(f"--dhcp-range=set:{tag},{net.network_address},{mode},"
                        f"{net.prefixlen},{ROUTER_LIFETIME}s")
            if advert.mode == "dhcpv6-stateless":
                argv.append(f"--dhcp-option=tag:{tag},option6:dns-server"
                            + "".join(f",[{d}]" for d in advert.dns_nameservers))
            any_prefix = True
        argv.append(f"--ra-param={ifname},mtu:{port.mtu},{RA_INTERVAL},{ROUTER_LIFETIME}")
    return argv if any_prefix else None


class RouterAdvertiser:
    """The dnsmasq of each router, its files under ``<state_dir>/l3/<router>/``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def files(self, router_id: str) -> DnsmasqFiles:
        return DnsmasqFiles(self.dir / router_id)

    def ensure(self, router_id: str, ns: str, legs: list[tuple[str, RouterPort]]) -> None:
        """Make the router's dnsmasq advertise exactly ``legs``' prefixes (none: stopped)."""
        files = self.files(router_id)
        wanted = any(port.advertise for _, port in legs)
        process = DnsmasqProcess(files)
        pid = process.pid()
        if not wanted:
            if pid:
                process.stop(pid)
                log.info("router advertisements of router %s stopped (dnsmasq %d)",
                         router_id, pid)
            return
        for directory in (self.dir, files.dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = build_command(legs, files, user=dnsmasq_user(self.dir))
        if pid and process_cmdline(pid) == argv:
            return
        if pid:
            process.stop(pid)
        assert argv is not None
        netns.run(["ip", "netns", "exec", ns, *argv])
        deadline = time.monotonic() + START_TIMEOUT
        while (new := process.pid()) is None or new == pid:
            if time.monotonic() > deadline:
                raise NetworkDriverError(f"dnsmasq (router advertisements) of router "
                                         f"{router_id} did not start (see {files.log})")
            time.sleep(0.02)
        log.info("router %s advertises on %s (dnsmasq %d)", router_id,
                 ", ".join(name for name, port in legs if port.advertise), new)

    def stop(self, router_id: str) -> None:
        process = DnsmasqProcess(self.files(router_id))
        pid = process.pid()
        if pid:
            process.stop(pid)

    def stop_all(self) -> None:
        if not self.dir.is_dir():
            return
        for directory in sorted(self.dir.iterdir()):
            process = DnsmasqProcess(DnsmasqFiles(directory))
            pid = process.pid()
            if pid:
                process.stop(pid)

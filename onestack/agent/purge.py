"""Throwing a host's objects away: every guest, disk, DHCP namespace, link and process
a state directory owns (``onestack down --purge``).

Guests and DHCP outlive the server on purpose (a restart adopts them), so stopping a
cloud leaves them; removing its state directory afterwards would orphan them for good.
This is the way to end them. It uses the drivers' own removal code, built as the agent
builds them, with the name prefix and drivers the objects were made with:

1. each guest: the hypervisor's ``destroy`` (QEMU found by its pidfile, signalled only
   after its command line names the guest);
2. each disk: the storage driver's ``delete_disk``, then the ``disks/`` tree (bases);
3. the network: the driver's ``cleanup``, which deletes every ``qrouter-`` namespace
   (routers, with their NAT) and ends the state directory's dnsmasq and deletes every
   bridge, tap, veth and ``qdhcp-`` namespace with the prefix (a
   namespace only once the processes in it that are ours are ended; a stranger's
   process keeps its namespace, and is reported);
4. any process still named by a pidfile under the state directory whose command line
   names that pidfile's directory (a safety net: normally none is left).

The database, images, keys and logs stay: deleting the directory forgets the cloud.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from onestack.agent.host import build_hypervisor, build_network, build_storage
from onestack.common.config import Config
from onestack.common.processes import cmdline, end_process, read_pidfile
from onestack.drivers.hypervisor.base import HypervisorDriver
from onestack.drivers.network.base import NetworkDriver
from onestack.drivers.storage.base import StorageDriver

log = logging.getLogger(__name__)

#: Pidfiles OneStack's daemons write under the state directory: QEMU's, dnsmasq's.
PIDFILE_NAMES = ("qemu.pid", "pid")


@dataclass
class HostObjects:
    """What a state directory owns on this host."""

    guests: list[str] = field(default_factory=list)
    disks: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    routers: list[str] = field(default_factory=list)
    #: Live processes named by pidfiles under the state directory.
    processes: dict[Path, int] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.guests or self.disks or self.networks or self.ports
                    or self.routers or self.processes)


def pidfile_processes(state_dir: Path) -> dict[Path, int]:
    """Live processes named by pidfiles under ``state_dir`` whose command line names the
    pidfile's directory (so a PID reused by someone else is never taken for ours)."""
    found: dict[Path, int] = {}
    if not state_dir.is_dir():
        return found
    for name in PIDFILE_NAMES:
        for pidfile in sorted(state_dir.rglob(name)):
            pid = read_pidfile(pidfile)
            if pid is not None and _names(cmdline(pid), pidfile.parent):
                found[pidfile] = pid
    return found


def _names(argv: list[str], directory: Path) -> bool:
    """Whether a command line names ``directory`` (as given, or resolved: QEMU's
    paths are)."""
    forms = {str(directory), str(directory.resolve())}
    return any(form in arg for arg in argv for form in forms)


class HostPurge:
    """The objects of one state directory's host, to list or remove; ``config`` must
    carry the name prefix and drivers they were made with."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.disks_dir = self.state_dir / "disks"
        self.instances_dir = self.state_dir / "instances"
        self._built: tuple[HypervisorDriver, NetworkDriver] | None = None

    def _drivers(self) -> tuple[HypervisorDriver, NetworkDriver]:
        if self._built is None:
            self._built = build_hypervisor(self.config), build_network(self.config)
        return self._built

    def _storage(self) -> StorageDriver:
        """Built only when asked for (the local driver makes its directories)."""
        return build_storage(self.config)

    def inventory(self) -> HostObjects:
        """What is there now (nothing is changed; no directory is made)."""
        objects = HostObjects(processes=pidfile_processes(self.state_dir))
        if self.state_dir.is_dir():
            _, net = self._drivers()
            objects.guests = self._guests()
            if self.disks_dir.is_dir():
                objects.disks = self._storage().list_disks()
            objects.networks = net.list_networks()
            objects.ports = net.list_ports()
            objects.routers = net.l3.list_routers()
        return objects

    def _guests(self) -> list[str]:
        hv, _ = self._drivers()
        uuids = set(hv.list_guests())
        if self.instances_dir.is_dir():  # also a guest dir without its spec (a crash)
            uuids |= {d.name for d in self.instances_dir.iterdir()
                      if d.is_dir() and not d.name.startswith(".")}
        return sorted(uuids)

    def purge(self, report: Callable[[str], None] = log.info) -> list[str]:
        """Remove everything; returns the errors (empty when all went)."""
        errors: list[str] = []

        def attempt(what: str, fn: Callable[[], object]) -> None:
            try:
                fn()
                report(f"removed {what}")
            except Exception as exc:
                errors.append(f"{what}: {exc}")
                log.warning("could not remove %s: %s", what, exc)

        if not self.state_dir.is_dir():
            return errors
        hv, net = self._drivers()
        for uuid in self._guests():
            attempt(f"guest {uuid}", functools.partial(hv.destroy, uuid))
        if self.disks_dir.is_dir():
            st = self._storage()
            for uuid in st.list_disks():
                attempt(f"disk {uuid}", functools.partial(st.delete_disk, uuid))
            attempt(f"{self.disks_dir} (image bases)",
                    lambda: shutil.rmtree(self.disks_dir))
        attempt(f"networks and ports with prefix {self.config.host.name_prefix!r}",
                net.cleanup)
        for pidfile, pid in pidfile_processes(self.state_dir).items():
            attempt(f"process {pid} ({pidfile})",
                    functools.partial(_end, pidfile, pid))
        return errors


def _end(pidfile: Path, pid: int) -> None:
    argv = cmdline(pid)
    if _names(argv, pidfile.parent) and not end_process(pid, argv):
        raise RuntimeError(f"PID {pid} does not die")

"""The per-host reconciler: desired state -> drivers -> observed state.

Level-triggered: at start, whenever the server notifies it (``wake``) and every
``poll_interval`` seconds, the agent reads what should be on its host and converges:

- networks: every network with a port of an instance here gets its bridge, DHCP and
  metadata listener; networks no instance here uses any more are removed;
- routers: every router of those networks is made exactly its desired state by the L3
  driver (its namespace, ports, routes, SNAT and floating IPs; the networks it needs
  besides, such as the external one, get their bridges); routers no longer desired
  are removed;
- instances: a pending task (``task_state``) is carried out (docs/design/
  compute-states.md); a steady instance is kept so (a guest that should run after a
  host restart is started again; one that powered itself off is reported ``stopped``);
- leftovers: guests and disks of instances that are not (or no longer) on this host
  are removed.

The agent talks to the server only through ``hostlink.HostToServer`` (``control``), and
is itself the server's ``hostlink.ServerToHost`` handle on this host (console, serial
endpoint, uptime, capabilities, wake-up). Wire types are translated into the drivers'
own here.

Work on one instance runs in a worker thread, one operation per instance at a time,
so a slow shutdown never holds up another server's boot. Every step is idempotent: a
restarted agent (or server) re-adopts running guests and simply runs unfinished
tasks again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from onestack.agent.firewall import FirewallSync
from onestack.agent.nics import NicAttacher
from onestack.agent.volumes import VolumeAttacher, volume_disk
from onestack.common.revert import Reverter
from onestack.common.uptime import local_uptime
from onestack.drivers.hypervisor.base import (
    GuestDisk,
    GuestNic,
    GuestSpec,
    HostInfo,
    HypervisorDriver,
    HypervisorError,
    PowerState,
)
from onestack.drivers.network.base import (
    DhcpHost,
    NetworkDriver,
    NetworkDriverError,
    NetworkSpec,
    PortSpec,
    SubnetSpec,
)
from onestack.drivers.network.l3 import base as l3
from onestack.drivers.storage.base import Disk, ImageSource, StorageDriver, StorageError
from onestack.hostlink import capabilities as caps
from onestack.hostlink import states
from onestack.hostlink import types as wire
from onestack.hostlink.interfaces import HostToServer
from onestack.hostlink.states import task_event
from onestack.hostlink.types import (
    DesiredInstance,
    HostReport,
    ImageDisk,
    SerialEndpoint,
    VolumeDisk,
)

log = logging.getLogger(__name__)

#: Errors whose message is meant for the user as it is.
DRIVER_ERRORS = (HypervisorError, StorageError, NetworkDriverError)

#: What a steady vm_state means for the guest.
RUNNING_STATES = {states.ACTIVE}
#: A rescued instance's rescue disk is the storage driver's disk ``<uuid>`` + this.
RESCUE_DISK_SUFFIX = "-rescue"


def rescue_disk_name(uuid: str) -> str:
    """The storage driver's name of ``uuid``'s rescue disk (its own directory, or RBD
    image, holding its own reference to the image's base)."""
    return uuid + RESCUE_DISK_SUFFIX


class Agent:
    def __init__(self, host: str, control: HostToServer, hypervisor: HypervisorDriver,
                 storage: StorageDriver, network: NetworkDriver, *,
                 poll_interval: float = 5.0, shutdown_timeout: float = 60.0,
                 metadata_proxy: Any = None, workers: int = 4,
                 report_extra: Callable[[], dict[str, Any]] | None = None,
                 network_idle_seconds: float = 60.0,
                 external_gateway_on_host: bool = True,
                 external_masquerade: bool = False,
                 external_interface: str = "") -> None:
        self.host = host
        self.control = control
        self.hypervisor = hypervisor
        self.storage = storage
        self.network = network
        self.poll_interval = poll_interval
        self.shutdown_timeout = shutdown_timeout
        self.metadata_proxy = metadata_proxy
        self.report_extra = report_extra or (lambda: {})
        self.network_idle_seconds = network_idle_seconds
        #: A real interface on the external network's bridge replaces the host as its
        #: gateway (no address, no masquerade, no IPv6 routes on the host).
        self.external_interface = external_interface
        self.external_gateway_on_host = external_gateway_on_host and not external_interface
        self.external_masquerade = external_masquerade and not external_interface
        #: Router id -> the spec last applied (so unchanged routers cost nothing).
        self._routers: dict[str, l3.RouterSpec] = {}
        #: The routers of the last pass's desired state (None: no pass yet).
        self._wanted_routers: set[str] | None = None
        #: Network id -> when the last instance here stopped using it.
        self._unused_since: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agent-work")
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Network id -> the spec last applied (so unchanged networks cost nothing).
        self._networks: dict[str, NetworkSpec] = {}
        self._served: set[str] = set()
        #: Routers whose metadata socket the proxy serves.
        self._served_routers: set[str] = set()
        #: Instances that should run and were found off at start: started once.
        self._recover: set[str] | None = None
        self._passes = 0
        self._host_info: HostInfo | None = None
        #: Volume attachments (onestack.agent.volumes), and the last desired state's by
        #: instance.
        self.volumes = VolumeAttacher(hypervisor, control)
        self._attachments: dict[str, list[wire.VolumeAttachment]] = {}
        #: Interfaces attached to running guests (``onestack.agent.nics``).
        self.nics = NicAttacher(hypervisor, control, self._plug_port, network.unplug_port)
        #: Security groups: the firewall of this host's ports (``agent.firewall``).
        self._firewall = FirewallSync(network.firewall)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in a background thread (first pass at once)."""
        self._thread = threading.Thread(target=self._loop, name=f"agent-{self.host}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop; guests and the DHCP of networks in use keep running (they are
        re-adopted at the next start). Removals already due are finished first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._finish_removals()
        if self.metadata_proxy is not None:
            self.metadata_proxy.close()

    def wake(self, host: str | None = None) -> None:
        """The server's notification: desired state changed (for ``host``)."""
        if host is None or host == self.host:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception:
                log.exception("agent pass failed; trying again in %s s", self.poll_interval)
            self._wake.wait(self.poll_interval)

    # -- one pass -----------------------------------------------------------------------

    def register(self) -> None:
        if self._host_info is None:
            self._host_info = self.hypervisor.host_info()
        info = self._host_info
        used, total = self.storage.usage()
        extra = self.report_extra()
        report = HostReport(
            host=self.host, hypervisor_hostname=extra.pop("hypervisor_hostname", self.host),
            hypervisor_type=info.hypervisor_type, hypervisor_version=info.hypervisor_version,
            accel=info.accel, vcpus=extra.pop("vcpus", 0) or info.vcpus,
            memory_mb=extra.pop("memory_mb", 0) or info.memory_mib,
            local_gb=extra.pop("local_gb", 0) or total >> 30, local_gb_used=used >> 30,
            cpu_info=info.cpu_info, capabilities=self.capabilities(), **extra)
        self.control.register(report)

    def run_once(self, wait: bool = False) -> None:
        """One reconciliation pass; ``wait`` also waits for the work it started."""
        self.register()
        state = self.control.desired_state(self.host)
        desired = state.instances
        attachments: dict[str, list[wire.VolumeAttachment]] = {}
        for attachment in state.attachments:
            attachments.setdefault(attachment.instance_uuid, []).append(attachment)
        self._attachments = attachments
        if self._recover is None:
            self._recover = {d.uuid for d in desired if d.task_state is None and (
                d.vm_state in RUNNING_STATES or d.vm_state == states.RESCUED)}
        routers = self._router_specs(state)
        # Every desired router stays, even one that cannot be translated now.
        self._remove_routers({r.id for r in state.routers})
        self._sync_networks([_network_spec(n, self.external_gateway_on_host,
                                           self.external_masquerade,
                                           self.external_interface)
                             for n in state.networks])
        self._sync_routers(routers)
        self._report_routers(state, routers)
        self._firewall.sync(state)  # before any guest is plugged (onestack.agent.firewall)
        futures = []
        for d in desired:
            if not self._firewall.covers(d):
                continue  # its filters are not in place: not plugged unfiltered
            with self._lock:
                if d.uuid in self._in_flight:
                    continue
                self._in_flight.add(d.uuid)
            futures.append(self._pool.submit(self._run, d))
        self._remove_leftovers({d.uuid for d in desired},
                               {p.id for d in desired for p in d.ports})
        self._passes += 1
        if wait:
            for f in futures:
                f.result()

    def _run(self, d: DesiredInstance) -> None:
        again = False
        try:
            again = self.converge(d)
            if not again:
                self.volumes.converge(d, self._attachments.get(d.uuid, []))
                self.nics.converge(d)
        except Exception:
            log.exception("instance %s: converging failed", d.uuid)
        finally:
            with self._lock:
                self._in_flight.discard(d.uuid)
        if again:
            self._wake.set()

    # -- networks -------------------------------------------------------------------------

    def _sync_networks(self, specs: list[NetworkSpec]) -> None:
        wanted = {s.id: s for s in specs}
        for spec in specs:
            if self._networks.get(spec.id) != spec:
                try:
                    self.network.ensure_network(spec)
                except Exception:
                    log.exception("network %s: could not set it up on this host", spec.id)
                    continue
                self._networks[spec.id] = spec
                if spec.dhcp_mac is None and spec.id in self._served:
                    # No DHCP port here any more (only a router's view of the network):
                    # the DHCP namespace went, and the listener in it. Served again when
                    # a DHCP port comes back (a new namespace, a new listener).
                    if self.metadata_proxy is not None:
                        self.metadata_proxy.stop(spec.id)
                    self._served.discard(spec.id)
            if self.metadata_proxy is not None and spec.id not in self._served \
                    and spec.dhcp_mac is not None:  # the listener is in the DHCP namespace
                try:
                    sock = self.network.metadata_socket(spec.id)
                    if sock is not None:
                        self.metadata_proxy.serve(spec.id, sock)
                    self._served.add(spec.id)
                except Exception:
                    log.exception("network %s: no metadata listener", spec.id)
        known = set(self._networks)
        if self._passes == 0:
            known |= set(self.network.list_networks())
        now = time.monotonic()
        for network_id in wanted:
            self._unused_since.pop(network_id, None)
        unused = sorted(known - set(wanted))
        deleted = self._deleted_networks(unused)
        for network_id in unused:
            with self._lock:
                busy = bool(self._in_flight)
            if busy and network_id in self._networks:
                continue  # an instance being deleted may still have a tap on it
            # Kept a while once unused (unless deleted from the cloud): the next server
            # on it boots without waiting for a bridge, a namespace and dnsmasq. Its DHCP
            # hosts (and their leases) go now.
            since = self._unused_since.setdefault(network_id, now)
            if network_id in self._networks and network_id not in deleted \
                    and now - since < self.network_idle_seconds:
                applied = self._networks[network_id]
                if applied.hosts:
                    idle = dataclasses.replace(applied, hosts=[])
                    try:
                        self.network.ensure_network(idle)
                        self._networks[network_id] = idle
                    except Exception:
                        log.exception("network %s: could not drop its DHCP hosts", network_id)
                continue
            self._remove_network(network_id, "deleted" if network_id in deleted
                                 else "no instance uses it")

    # -- routers ------------------------------------------------------------------------

    def _runs_routers(self) -> bool:
        return bool(self.network.l3.capabilities.get("routers"))

    def _router_specs(self, state: wire.HostState) -> dict[str, l3.RouterSpec]:
        """The L3 driver's spec of each desired router (a router that cannot be
        translated is logged and left out: kept as it is if it exists, not removed)."""
        if not self._runs_routers():
            if state.routers and self._passes == 0:
                log.warning("this host's L3 driver (%s) runs no routers; %d router(s) "
                            "ignored", self.network.l3.name, len(state.routers))
            return {}
        networks = {n.id: n for n in state.networks}
        specs: dict[str, l3.RouterSpec] = {}
        for router in state.routers:
            try:
                specs[router.id] = _router_spec(router, networks,
                                                host_ipv6_routes=self.external_gateway_on_host)
            except ValueError as exc:
                log.warning("router %s: cannot be set up on this host: %s", router.id, exc)
        return specs

    def _remove_routers(self, wanted: set[str]) -> None:
        """Remove the routers here that are not desired (before their networks go)."""
        if not self._runs_routers():
            return
        try:
            present = set(self.network.l3.list_routers()) | set(self._routers)
        except Exception:
            log.exception("could not list this host's routers")
            return
        for router_id in sorted(present - wanted):
            self._remove_router(router_id, "not desired here")
        self._wanted_routers = wanted

    def _remove_router(self, router_id: str, why: str) -> None:
        try:
            self.network.l3.remove_router(router_id)
        except NetworkDriverError as exc:
            log.warning("router %s: could not remove it from this host: %s", router_id, exc)
            return
        except Exception:
            log.exception("router %s: could not remove it from this host", router_id)
            return
        self._routers.pop(router_id, None)
        if self.metadata_proxy is not None and router_id in self._served_routers:
            self.metadata_proxy.stop(_router_listener(router_id))
        self._served_routers.discard(router_id)
        log.info("router %s: removed from this host (%s)", router_id, why)

    def _sync_routers(self, specs: dict[str, l3.RouterSpec]) -> None:
        """Make each router its spec (the first pass applies every one once: a restarted
        agent re-adopts them; the NAT table is replaced atomically, so conntrack keeps
        established flows)."""
        for router_id, spec in sorted(specs.items()):
            if self._routers.get(router_id) == spec:
                continue
            try:
                self.network.l3.ensure_router(spec)
            except Exception:
                log.exception("router %s: could not set it up on this host", router_id)
                continue
            self._routers[router_id] = spec
            log.info("router %s: set up (%d interface(s), gateway %s, %d floating IP(s))",
                     router_id, len(spec.interfaces),
                     spec.gateway.addresses if spec.gateway else "none",
                     len(spec.floating_ips))
        for router_id, spec in sorted(specs.items()):
            if self._routers.get(router_id) == spec:
                self._serve_router_metadata(router_id, spec)

    def _serve_router_metadata(self, router_id: str, spec: l3.RouterSpec) -> None:
        """A router with legs on networks without DHCP answers their guests' metadata
        requests: the proxy serves the socket in its namespace, and tells the network
        by the guest's address (a router's subnets never overlap)."""
        if self.metadata_proxy is None or router_id in self._served_routers \
                or not any(p.metadata for p in spec.interfaces):
            return
        try:
            sock = self.network.l3.metadata_socket(router_id)
            if sock is not None:
                self.metadata_proxy.serve(
                    _router_listener(router_id), sock,
                    resolve=lambda ip: self._router_network_of(router_id, ip))
            self._served_routers.add(router_id)
        except Exception:
            log.exception("router %s: no metadata listener", router_id)

    def _router_network_of(self, router_id: str, address: str) -> str | None:
        """The network of the router's leg whose subnet holds ``address`` (None: none,
        or the leg's network has its own metadata path)."""
        spec = self._routers.get(router_id)
        if spec is None:
            return None
        ip = ipaddress.ip_address(address)
        for port in spec.interfaces:
            if port.metadata and any(ip in ipaddress.ip_interface(a).network
                                     for a in port.addresses):
                return port.network_id
        return None

    def _report_routers(self, state: wire.HostState, specs: dict[str, l3.RouterSpec]
                        ) -> None:
        """Tell the server which desired routers are in place as desired (with their
        floating IPs) and which could not be set up: router and floating IP status."""
        if not self._runs_routers() or not state.routers:
            return
        applied = {rid: {f.floating_ip: f.fixed_ip for f in spec.floating_ips}
                   for rid, spec in specs.items() if self._routers.get(rid) == spec}
        failed = sorted(r.id for r in state.routers if r.id not in applied)
        try:
            self.control.report_routers(self.host, applied, failed)
        except Exception:
            log.exception("could not report this host's routers")

    def _deleted_networks(self, network_ids: list[str]) -> set[str]:
        """Those of ``network_ids`` the cloud no longer has (none if it cannot tell)."""
        if not network_ids:
            return set()
        try:
            return set(network_ids) - set(self.control.existing_networks(network_ids))
        except Exception:
            log.exception("could not ask which networks still exist")
            return set()

    def _remove_network(self, network_id: str, why: str) -> bool:
        """Stop its metadata listener, then the driver removes the bridge, the namespace
        and what runs in it (dnsmasq)."""
        try:
            if self.metadata_proxy is not None:
                self.metadata_proxy.stop(network_id)
            self._served.discard(network_id)
            self.network.delete_network(network_id)
        except NetworkDriverError as exc:  # e.g. a stranger's process in its namespace
            log.warning("network %s: could not remove it from this host: %s", network_id,
                        exc)
            return False
        except Exception:
            log.exception("network %s: could not remove it from this host", network_id)
            return False
        self._networks.pop(network_id, None)
        self._unused_since.pop(network_id, None)
        log.info("network %s: removed from this host (%s)", network_id, why)
        return True

    def _finish_removals(self) -> None:
        """At a clean stop, remove what is already due, so nothing waits for a next
        start that may never come: networks deleted from the cloud, and networks unused
        for longer than ``network_idle_seconds``. Networks in use, or unused for less
        time, stay with their DHCP (as guests do): a restart finds them ready. Routers
        not in the last desired state go too; desired ones stay (their guests' flows
        keep running)."""
        if self._wanted_routers is not None and self._runs_routers():
            try:
                present = set(self.network.l3.list_routers())
            except Exception:
                log.exception("could not list this host's routers")
                present = set()
            for router_id in sorted(present - self._wanted_routers):
                self._remove_router(router_id, "not desired here")
        try:
            known = set(self._networks) | set(self.network.list_networks())
        except Exception:
            log.exception("could not list this host's networks")
            return
        now = time.monotonic()
        expired = {n for n, since in self._unused_since.items()
                   if now - since >= self.network_idle_seconds}
        for network_id in sorted(self._deleted_networks(sorted(known))):
            self._remove_network(network_id, "deleted")
        for network_id in sorted(expired & set(self._networks)):
            self._remove_network(network_id, "no instance uses it")

    def _remove_leftovers(self, desired: set[str], ports: set[str]) -> None:
        with self._lock:
            busy = set(self._in_flight)
        if not busy:
            for port_id in self.network.list_ports():
                if not any(p.startswith(port_id) for p in ports):
                    log.info("port %s: no instance here uses it; removing its tap", port_id)
                    try:
                        self.network.unplug_port(port_id)
                    except Exception:
                        log.exception("port %s: could not remove its tap", port_id)
        guests = set(self.hypervisor.list_guests())
        disks = set(self.storage.list_disks())
        # A rescue disk belongs to its instance (unrescue or delete removes it).
        disks = {name for name in disks
                 if not (name.endswith(RESCUE_DISK_SUFFIX)
                         and name.removesuffix(RESCUE_DISK_SUFFIX) in desired | busy)}
        for uuid in sorted((guests | disks) - desired - busy):
            log.info("instance %s: not on this host any more; removing its guest and disk",
                     uuid)
            try:
                self.hypervisor.destroy(uuid)
                self.storage.delete_disk(uuid)
            except Exception:
                log.exception("instance %s: could not remove leftovers", uuid)

    # -- instances --------------------------------------------------------------------

    def converge(self, d: DesiredInstance) -> bool:
        """Carry out ``d``'s task, or keep it steady. True if another pass is needed."""
        task = d.task_state
        if task is None:
            self._keep_steady(d)
            return False
        handler = getattr(self, "_task_" + task.replace("-", "_"), None)
        if handler is None:
            log.warning("instance %s: no host work for task %s", d.uuid, task)
            return False
        self.control.start_event(d.uuid, task_event(task))
        started = time.monotonic()
        try:
            handler(d)
            log.info("instance %s: %s done in %.2f s", d.uuid, task,
                     time.monotonic() - started)
        except Exception as exc:
            message = str(exc) if isinstance(exc, DRIVER_ERRORS) else \
                f"{type(exc).__name__}: {exc}"
            if task == states.SPAWNING:
                message = f"Build of the server failed on host {self.host}: {message}"
            log.warning("instance %s: %s failed: %s", d.uuid, task, message,
                        exc_info=not isinstance(exc, DRIVER_ERRORS))
            if task == states.DELETING:
                raise  # retried at the next pass; a server can always be deleted
            self.control.fail_task(d.uuid, task, message)
        return True

    def _finish(self, d: DesiredInstance, **changes: Any) -> None:
        self.control.finish_task(d.uuid, d.task_state, **changes)

    def _keep_steady(self, d: DesiredInstance) -> None:
        state = self.hypervisor.power_state(d.uuid)
        recovering = self._recover is not None and d.uuid in self._recover
        if recovering and self._recover is not None:
            self._recover.discard(d.uuid)
        if d.vm_state in RUNNING_STATES and state != PowerState.RUNNING:
            if state in (PowerState.NOSTATE, PowerState.SHUTDOWN, PowerState.CRASHED) \
                    and recovering:
                log.info("instance %s: should run and does not (host restart?); starting it",
                         d.uuid)
                try:
                    self._plug(d)
                    self.hypervisor.spawn(self._spec(d))
                    state = PowerState.RUNNING
                except DRIVER_ERRORS as exc:
                    log.warning("instance %s: could not start it again: %s", d.uuid, exc)
            elif state in (PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.NOSTATE):
                self.control.report_power(d.uuid, int(state), vm_state=states.STOPPED)
                return
        elif d.vm_state == states.RESCUED and recovering and state in (
                PowerState.NOSTATE, PowerState.SHUTDOWN, PowerState.CRASHED):
            rescue = self.storage.disk(rescue_disk_name(d.uuid))
            if rescue is not None:
                log.info("instance %s: rescued and not running (host restart?); booting its "
                         "rescue disk again", d.uuid)
                try:
                    self._plug(d)
                    self.hypervisor.rescue(self._spec(d), _rescue_guest_disk(rescue))
                    state = PowerState.RUNNING
                except DRIVER_ERRORS as exc:
                    log.warning("instance %s: could not start it again: %s", d.uuid, exc)
        elif d.vm_state == states.STOPPED and state in (PowerState.RUNNING, PowerState.PAUSED):
            log.info("instance %s: is stopped but its guest runs; powering it off", d.uuid)
            self.hypervisor.power_off(d.uuid, 0)
            state = PowerState.SHUTDOWN
        if int(state) != d.power_state:
            self.control.report_power(d.uuid, int(state))

    # -- building blocks ----------------------------------------------------------------

    def _image_source(self, d: DesiredInstance) -> ImageSource:
        root = d.root_disk
        if root is None:
            raise StorageError("The server has no image to boot from (booting from a volume "
                               "is not supported yet).")
        if not isinstance(root, ImageDisk):
            raise StorageError(f"This host cannot boot from a {root.kind} disk (its storage "
                               f"driver {self.storage.name} has no {root.kind} disks).")
        image = root.image
        return ImageSource(id=image.id, disk_format=image.disk_format, size=image.size,
                           hash_algo=image.hash_algo, hash_value=image.hash_value,
                           open=lambda: self.control.open_image(image.id))

    def _plug(self, d: DesiredInstance) -> list[str]:
        return [self._plug_port(port) for port in d.ports]

    def _plug_port(self, port: wire.PortInfo) -> str:
        """The port's tap, made and put on its network's bridge; its name."""
        if port.network_id not in self._networks:
            raise NetworkDriverError(
                f"Network {port.network_id} of port {port.id} is not set up on host "
                f"{self.host} (see the server log).")
        return self.network.plug_port(PortSpec(
            id=port.id, network_id=port.network_id, mac=port.mac, mtu=port.mtu))

    def _config_drive(self, d: DesiredInstance) -> Path | None:
        """The instance's config drive (ISO 9660, label ``config-2``), made once next to
        its disk; None if it did not ask for one or this storage keeps no files."""
        if not d.config_drive:
            return None
        disk = self.storage.disk(d.uuid)
        if disk is None or not disk.path.parent.is_dir():
            return None
        iso = disk.path.parent / "disk.config"
        if iso.exists():
            return iso
        files = self.control.config_drive_files(d.uuid)
        with tempfile.TemporaryDirectory(prefix="onestack-cd-") as tmp:
            for name, body in files.items():
                path = Path(tmp, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            partial = iso.with_suffix(".partial")
            proc = subprocess.run(
                ["genisoimage", "-quiet", "-o", str(partial), "-V", "config-2", "-J", "-r",
                 "-l", "-input-charset", "utf-8", tmp], capture_output=True, text=True)
            if proc.returncode != 0:
                raise StorageError(f"Could not make the config drive: {proc.stderr.strip()}")
            partial.chmod(0o600)
            partial.rename(iso)
        return iso

    def _spec(self, d: DesiredInstance, flavor: dict[str, Any] | None = None) -> GuestSpec:
        disks: list[GuestDisk] = []
        if not isinstance(d.root_disk, VolumeDisk):  # booted from a volume: no local disk
            disk = self.storage.disk(d.uuid)
            if disk is None:
                raise StorageError(f"The server's disk is missing on host {self.host}.")
            disks.append(GuestDisk(kind="rbd" if disk.kind == "rbd" else "file",
                                   source=str(disk.path), format=disk.format, boot_index=0))
        disks += [volume_disk(v) for v in d.disks if isinstance(v, VolumeDisk)]
        return GuestSpec(
            uuid=d.uuid, name=d.hostname or d.name,
            vcpus=int(flavor["vcpus"]) if flavor else d.vcpus,
            memory_mib=int(flavor["ram"]) if flavor else d.memory_mb,
            disks=disks,
            nics=[GuestNic(port_id=p.id, mac=p.mac, tap=self.network.tap_name(p.id), mtu=p.mtu)
                  for p in d.ports],
            config_drive=self._config_drive(d))

    def _build(self, d: DesiredInstance) -> None:
        """Disk, taps, guest; what this call took is released if it fails."""
        with Reverter() as revert:
            if not isinstance(d.root_disk, VolumeDisk):  # a volume is there already
                had_disk = self.storage.disk(d.uuid) is not None
                self.storage.create_disk(d.uuid, self._image_source(d), d.root_gb)
                if not had_disk:
                    revert.add(self.storage.delete_disk, d.uuid)
            revert.add(self._unplug, d)
            self._plug(d)
            revert.add(self.hypervisor.destroy, d.uuid)
            self.hypervisor.spawn(self._spec(d))
            revert.success()
        self.control.set_port_status([p.id for p in d.ports], "ACTIVE")

    def _unplug(self, d: DesiredInstance) -> None:
        for port in d.ports:
            self.network.unplug_port(port.id)

    # -- tasks (named after task_state) ----------------------------------------------------

    def _task_spawning(self, d: DesiredInstance) -> None:
        self._build(d)
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING), progress=100)

    def _task_deleting(self, d: DesiredInstance) -> None:
        self.hypervisor.destroy(d.uuid)
        self._unplug(d)
        self.storage.delete_disk(d.uuid)
        self.storage.delete_disk(rescue_disk_name(d.uuid))
        self.control.set_port_status([p.id for p in d.ports], "DOWN")
        self.control.instance_deleted(d.uuid)
        self.volumes.forget(d.uuid)
        self.nics.forget(d.uuid)

    def _task_powering_off(self, d: DesiredInstance) -> None:
        self.hypervisor.power_off(d.uuid, self.shutdown_timeout)
        self._finish(d, vm_state=states.STOPPED, power_state=int(PowerState.SHUTDOWN))

    def _task_powering_on(self, d: DesiredInstance) -> None:
        self._plug(d)
        self.hypervisor.spawn(self._spec(d))
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _reboot(self, d: DesiredInstance, hard: bool) -> None:
        self._plug(d)
        self.hypervisor.reboot(self._spec(d), hard=hard, timeout=self.shutdown_timeout)
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_rebooting(self, d: DesiredInstance) -> None:
        self._reboot(d, hard=d.task_args.get("reboot_type", "SOFT").upper() == "HARD")

    def _task_rebooting_hard(self, d: DesiredInstance) -> None:
        self._reboot(d, hard=True)

    def _task_pausing(self, d: DesiredInstance) -> None:
        self.hypervisor.pause(d.uuid)
        self._finish(d, vm_state=states.PAUSED, power_state=int(PowerState.PAUSED))

    def _task_unpausing(self, d: DesiredInstance) -> None:
        self.hypervisor.unpause(d.uuid)
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_suspending(self, d: DesiredInstance) -> None:
        self.hypervisor.suspend(d.uuid)
        self._finish(d, vm_state=states.SUSPENDED, power_state=int(PowerState.SUSPENDED))

    def _task_resuming(self, d: DesiredInstance) -> None:
        self._plug(d)
        self.hypervisor.resume(self._spec(d))
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_rebuilding(self, d: DesiredInstance) -> None:
        previous = d.task_args.get("previous_vm_state", states.ACTIVE)
        self.hypervisor.destroy(d.uuid)
        self.storage.delete_disk(d.uuid)
        self._build(d)
        if previous == states.STOPPED:
            self.hypervisor.power_off(d.uuid, 0)
            self._finish(d, vm_state=states.STOPPED, power_state=int(PowerState.SHUTDOWN))
        else:
            self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_resize_prep(self, d: DesiredInstance) -> None:
        new = d.new_flavor
        if not new:
            raise HypervisorError("The resize has no target flavor.")
        previous = d.task_args.get("previous_vm_state", states.ACTIVE)
        self.hypervisor.power_off(d.uuid, self.shutdown_timeout)
        if int(new.get("disk", 0)) > d.root_gb and not isinstance(d.root_disk, VolumeDisk):
            self.storage.resize_disk(d.uuid, int(new["disk"]))  # a boot volume stays
        changes: dict[str, Any] = {
            "vm_state": states.RESIZED, "flavor": new, "vcpus": int(new["vcpus"]),
            "memory_mb": int(new["ram"]), "root_gb": int(new.get("disk", 0)),
            "ephemeral_gb": int(new.get("ephemeral", 0)),
            "power_state": int(PowerState.SHUTDOWN)}
        if previous != states.STOPPED:
            self._plug(d)
            self.hypervisor.spawn(self._spec(d, flavor=new))
            changes["power_state"] = int(PowerState.RUNNING)
        self._finish(d, **changes)

    def _task_resize_reverting(self, d: DesiredInstance) -> None:
        old = d.old_flavor
        if not old:
            raise HypervisorError("The resize has no flavor to revert to.")
        previous = d.task_args.get("previous_vm_state", states.ACTIVE)
        self.hypervisor.power_off(d.uuid, self.shutdown_timeout)
        changes: dict[str, Any] = {
            "vm_state": states.STOPPED if previous == states.STOPPED else states.ACTIVE,
            "flavor": old,
            "vcpus": int(old["vcpus"]), "memory_mb": int(old["ram"]),
            "root_gb": int(old.get("disk", 0)), "ephemeral_gb": int(old.get("ephemeral", 0)),
            "old_flavor": None, "new_flavor": None,
            "power_state": int(PowerState.SHUTDOWN)}
        if previous != states.STOPPED:
            self._plug(d)
            self.hypervisor.spawn(self._spec(d, flavor=old))
            changes["power_state"] = int(PowerState.RUNNING)
        self._finish(d, **changes)

    def _task_rescuing(self, d: DesiredInstance) -> None:
        """Stop the guest, make a fresh copy-on-write disk of the rescue image (the
        storage driver's disk ``<uuid>-rescue``), boot from it with the server's own
        disk second (services/compute/rescue.py). On failure the rescue disk goes and a
        guest that ran is started from its own disk again."""
        image = d.task_args.get("rescue_image") or {}
        if not image.get("id"):
            raise StorageError("The rescue has no image to boot from.")
        name = rescue_disk_name(d.uuid)
        spec = self._spec(d)
        was_running = self.hypervisor.power_state(d.uuid) in (PowerState.RUNNING,
                                                               PowerState.PAUSED)
        source = ImageSource(id=image["id"], disk_format=image.get("disk_format", "raw"),
                             size=int(image.get("size") or 0),
                             hash_algo=image.get("hash_algo", "sha512"),
                             hash_value=image.get("hash_value", ""),
                             open=lambda: self.control.open_image(image["id"]))
        with Reverter() as revert:
            self.hypervisor.power_off(d.uuid, 0)
            if was_running:
                revert.add(self.hypervisor.spawn, spec)
            self.storage.delete_disk(name)  # fresh: nothing of an earlier rescue
            revert.add(self.storage.delete_disk, name)
            disk = self.storage.create_disk(name, source, 0)
            self._plug(d)
            self.hypervisor.rescue(spec, _rescue_guest_disk(disk))
            revert.success()
        self._finish(d, vm_state=states.RESCUED, power_state=int(PowerState.RUNNING))

    def _task_unrescuing(self, d: DesiredInstance) -> None:
        """Boot the server from its own disk again and delete the rescue disk."""
        self._plug(d)
        self.hypervisor.unrescue(self._spec(d))
        self.storage.delete_disk(rescue_disk_name(d.uuid))
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_shelving(self, d: DesiredInstance) -> None:
        """Shelve (services/compute/shelve.py): stop the guest (cleanly if it runs),
        copy its disk (``shelving_image_pending_upload``) and upload it to the shelve
        image (``shelving_image_uploading``); the server is then ``shelved``, or with
        ``offload`` at once offloaded (``_offload``). A server booted from a volume
        has no image to make. A failure ends the task at the step it reached."""
        image_id = d.task_args.get("image_id")
        task = states.SHELVING
        try:
            running = self.hypervisor.power_state(d.uuid) == PowerState.RUNNING
            self.hypervisor.power_off(d.uuid, self.shutdown_timeout if running else 0)
            if image_id:
                task = self._advance(d, task, states.SHELVING_IMAGE_PENDING_UPLOAD)
                with tempfile.TemporaryDirectory(prefix="onestack-shelve-") as tmp:
                    dest = Path(tmp) / "shelved.qcow2"
                    self.storage.snapshot(d.uuid, dest)
                    task = self._advance(d, task, states.SHELVING_IMAGE_UPLOADING)
                    self.control.upload_snapshot(image_id, dest)
            if not d.task_args.get("offload"):
                self.control.finish_task(d.uuid, task, event=task_event(states.SHELVING),
                                         vm_state=states.SHELVED,
                                         power_state=int(PowerState.SHUTDOWN))
                return
            task = self._advance(d, task, states.SHELVING_OFFLOADING,
                                 vm_state=states.SHELVED,
                                 power_state=int(PowerState.SHUTDOWN))
            self._offload(d, task, task_event(states.SHELVING))
        except Exception as exc:
            if task != states.SHELVING:
                message = str(exc) if isinstance(exc, DRIVER_ERRORS) else \
                    f"{type(exc).__name__}: {exc}"
                self.control.fail_task(d.uuid, task, message,
                                       event=task_event(states.SHELVING))
            raise

    def _task_shelving_offloading(self, d: DesiredInstance) -> None:
        self._offload(d, states.SHELVING_OFFLOADING, task_event(states.SHELVING_OFFLOADING))

    def _advance(self, d: DesiredInstance, task: str, next_task: str, **changes: Any
                 ) -> str:
        """Move ``d``'s task on to its next step (the server keeps its arguments)."""
        if not self.control.finish_task(d.uuid, task, task_state=next_task, **changes):
            raise HypervisorError(f"The task {task} of the server was replaced.")
        return next_task

    def _offload(self, d: DesiredInstance, task: str, event: str) -> None:
        """Release everything the shelved server holds here (guest, disk, taps); the
        server then takes it off the host (``shelved_offloaded``: no host, its ports
        unbound; a host never names another host, or none, for an instance)."""
        self.hypervisor.destroy(d.uuid)
        self._unplug(d)
        self.storage.delete_disk(d.uuid)
        self.control.set_port_status([p.id for p in d.ports], "DOWN")
        self.volumes.forget(d.uuid)
        self.nics.forget(d.uuid)
        self.control.finish_task(d.uuid, task, event=event,
                                 vm_state=states.SHELVED_OFFLOADED,
                                 power_state=int(PowerState.SHUTDOWN))

    def _task_unshelving(self, d: DesiredInstance) -> None:
        """A shelved server starts again from its disk here; an offloaded one (placed
        here by the scheduler) gets a disk made from its shelve image and boots."""
        if d.vm_state == states.SHELVED and self.storage.disk(d.uuid) is not None \
                or isinstance(d.root_disk, VolumeDisk):
            self._plug(d)
            self.hypervisor.spawn(self._spec(d))
            self.control.set_port_status([p.id for p in d.ports], "ACTIVE")
        else:
            self._build(d)
        self._finish(d, vm_state=states.ACTIVE, power_state=int(PowerState.RUNNING))

    def _task_image_snapshot(self, d: DesiredInstance) -> None:
        image_id = d.task_args.get("image_id")
        if not image_id:
            raise StorageError("The snapshot has no image to write to.")
        running = self.hypervisor.power_state(d.uuid) == PowerState.RUNNING
        with tempfile.TemporaryDirectory(prefix="onestack-snap-") as tmp:
            dest = Path(tmp) / "snapshot.qcow2"
            if running:
                self.hypervisor.pause(d.uuid)  # a consistent disk while it is copied
            try:
                self.storage.snapshot(d.uuid, dest)
            finally:
                if running:
                    self.hypervisor.unpause(d.uuid)
            self.control.upload_snapshot(image_id, dest)
        self._finish(d)

    # -- hostlink.ServerToHost: what the server calls on this host ------------------------

    def console_log(self, uuid: str, lines: int | None = None) -> str:
        return self.hypervisor.console_log(uuid, lines)

    def serial_endpoint(self, uuid: str) -> SerialEndpoint:
        return SerialEndpoint(kind="unix", address=str(self.hypervisor.serial_socket(uuid)))

    def serial_socket(self, uuid: str) -> Path:
        return self.hypervisor.serial_socket(uuid)

    def diagnostics(self, uuid: str) -> dict[str, Any]:
        """The guest's diagnostics, measured by the hypervisor driver."""
        if self.hypervisor.power_state(uuid) == PowerState.NOSTATE:
            raise FileNotFoundError(f"No guest {uuid} on this host")
        try:
            return self.hypervisor.diagnostics(uuid).to_wire()
        except HypervisorError as exc:
            raise RuntimeError(str(exc)) from exc

    def uptime(self) -> str:
        return local_uptime()

    def capabilities(self) -> dict[str, bool]:
        """What this host can do: its drivers' declarations, merged."""
        return caps.merge(getattr(self.hypervisor, "capabilities", {}),
                          getattr(self.storage, "capabilities", {}),
                          getattr(self.network, "capabilities", {}))

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no instance work is running (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight:
                    return
            time.sleep(0.01)


def _rescue_guest_disk(disk: Disk) -> GuestDisk:
    """The hypervisor's view of a rescue disk the storage driver made."""
    return GuestDisk(kind="rbd" if disk.kind == "rbd" else "file", source=str(disk.path),
                     format=disk.format, boot_index=0)


def _network_spec(spec: wire.NetworkSpec, external_gateway_on_host: bool = False,
                  external_masquerade: bool = False, external_interface: str = ""
                  ) -> NetworkSpec:
    """The network driver's spec for a wire network. An external network's bridge holds
    its subnets' gateway addresses (IPv4 and IPv6) when ``external_gateway_on_host`` (the
    all-in-one mode: the host is the external network's gateway), and with
    ``external_masquerade`` what comes from them leaves by the host's default route; or,
    with ``external_interface``, that real interface joins the bridge instead."""
    host_addresses = []
    if spec.external and external_gateway_on_host and not external_interface:
        host_addresses = [f"{s.gateway_ip}/{ipaddress.ip_network(s.cidr).prefixlen}"
                          for s in spec.subnets if s.gateway_ip]
    return NetworkSpec(
        id=spec.id, mtu=spec.mtu, host_addresses=host_addresses,
        masquerade=external_masquerade and bool(host_addresses),
        uplink=external_interface if spec.external else "",
        network_type=spec.network_type, segmentation_id=spec.segmentation_id,
        peers=list(spec.peers), remote_macs=dict(spec.remote_macs),
        subnets=[SubnetSpec(**dataclasses.asdict(s)) for s in spec.subnets],
        dhcp_mac=spec.dhcp_mac, dhcp_ips=list(spec.dhcp_ips),
        hosts=[DhcpHost(port_id=h.port_id, mac=h.mac, ips=list(h.ips), hostname=h.hostname)
               for h in spec.hosts])


def _router_listener(router_id: str) -> str:
    """The metadata proxy's name for a router's listening socket."""
    return f"router-{router_id}"


def _router_spec(router: wire.RouterSpec, networks: dict[str, wire.NetworkSpec],
                 host_ipv6_routes: bool = False) -> l3.RouterSpec:
    """The L3 driver's spec for a wire router: each port's addresses with the prefix
    length of the subnet they are on, the external subnets' gateways as default routes,
    the static routes and floating IPs. On each tenant leg, the IPv6 prefixes it
    advertises (subnets in ``slaac`` or ``dhcpv6-stateless`` mode) and whether it answers
    metadata requests (its network has no IPv4 DHCP, so no DHCP namespace does).
    ``host_ipv6_routes``: the host holds the external gateway and routes the tenant
    IPv6 prefixes to the router. ValueError if a port's network or subnet is not in
    ``networks`` (the desired state's networks)."""
    def port(leg: wire.RouterPort, internal: bool = False) -> l3.RouterPort:
        network = networks.get(leg.network_id)
        if network is None:
            raise ValueError(f"port {leg.port_id}: network {leg.network_id} is not known "
                             "here")
        subnets = [s for s in network.subnets
                   if not leg.subnet_ids or s.id in leg.subnet_ids]
        addresses = []
        for raw in leg.ips:
            ip = ipaddress.ip_address(raw)
            cidr = next((ipaddress.ip_network(s.cidr) for s in subnets
                         if ip in ipaddress.ip_network(s.cidr)), None)
            if cidr is None:
                raise ValueError(f"port {leg.port_id}: {raw} is on no subnet of network "
                                 f"{leg.network_id}")
            addresses.append(f"{ip}/{cidr.prefixlen}")
        advertise: list[l3.RouterAdvert] = []
        metadata = False
        if internal:
            ips = [ipaddress.ip_address(raw) for raw in leg.ips]
            for s in subnets:
                mode = s.ipv6_ra_mode or s.ipv6_address_mode
                if s.ip_version == 6 and mode in ("slaac", "dhcpv6-stateless") and any(
                        ip in ipaddress.ip_network(s.cidr) for ip in ips):
                    advertise.append(l3.RouterAdvert(
                        prefix=s.cidr, mode=mode,
                        dns_nameservers=[d for d in s.dns_nameservers if ":" in d]))
            metadata = not any(s.ip_version == 4 and s.enable_dhcp
                               for s in network.subnets)
        return l3.RouterPort(id=leg.port_id, network_id=leg.network_id, mac=leg.mac,
                             addresses=addresses, mtu=network.mtu, advertise=advertise,
                             metadata=metadata)

    gateway = port(router.gateway) if router.gateway is not None else None
    external_gateways: list[str] = []
    if router.gateway is not None:
        seen = set()
        for s in networks[router.gateway.network_id].subnets:
            if s.gateway_ip and s.ip_version not in seen and (
                    not router.gateway.subnet_ids or s.id in router.gateway.subnet_ids):
                seen.add(s.ip_version)
                external_gateways.append(s.gateway_ip)
    return l3.RouterSpec(
        id=router.id, interfaces=[port(p, internal=True) for p in router.interfaces],
        gateway=gateway, host_ipv6_routes=host_ipv6_routes,
        external_gateways=external_gateways,
        routes=[l3.Route(destination=r["destination"], nexthop=r["nexthop"])
                for r in router.routes],
        enable_snat=router.enable_snat,
        floating_ips=[l3.FloatingIp(floating_ip=f.floating_ip, fixed_ip=f.fixed_ip,
                                    id=f.port_id)
                      for f in router.floating_ips if f.fixed_ip] if gateway else [])

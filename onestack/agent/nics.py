"""Interfaces attached to running guests: the desired state's ports made true in the
guests, level-triggered (``os-interface`` attach and detach).

For each steady instance (no task running) the agent's worker calls
``NicAttacher.converge`` after the instance itself converged:

- a running (or paused) guest gets every desired port it lacks: its tap is made and
  put on the network's bridge by the network driver (the agent's own plug path, as for
  a boot; the port's security group filters are in place before the instance is
  worked on at all), then the NIC is hot-plugged (``HypervisorDriver.attach_nic``) and
  the port reported ``ACTIVE``;
- a NIC whose port is no longer desired is unplugged from the guest (not from a paused
  one: it cannot answer the unplug; it follows when it runs again), its tap removed and
  the port reported ``DOWN``, which finishes the detach on the server (the port is
  unbound, or deleted if compute made it);
- a guest that does not run has nothing to plug: its ports are on its command line
  when it next starts (``Agent._spec``); the server completes those attaches and
  detaches itself.

Each port plugged is reported once per agent run (``HostToServer.set_port_status``),
so an agent restarted with attaches pending completes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from onestack.drivers.hypervisor.base import (
    GuestNic,
    HypervisorDriver,
    HypervisorError,
    PowerState,
)
from onestack.drivers.network.base import NetworkDriverError
from onestack.hostlink.interfaces import HostToServer
from onestack.hostlink.types import DesiredInstance, PortInfo

log = logging.getLogger(__name__)


class NicAttacher:
    def __init__(self, hypervisor: HypervisorDriver, control: HostToServer,
                 plug: Callable[[PortInfo], str], unplug: Callable[[str], None]) -> None:
        self.hypervisor = hypervisor
        self.control = control
        #: The agent's plug path for one port (tap on the network's bridge; the tap's
        #: name) and its unplug (the tap removed).
        self.plug = plug
        self.unplug = unplug
        self._lock = threading.Lock()
        #: Instance uuid -> the ports reported ACTIVE (plugged) by this agent run.
        self._reported: dict[str, set[str]] = {}

    def converge(self, d: DesiredInstance) -> None:
        """Make ``d``'s running guest have exactly ``d.ports`` as NICs (see the module
        docstring). Called from the instance's worker; a task in progress owns the
        guest, so nothing is done then."""
        if d.task_state is not None:
            return
        state = self.hypervisor.power_state(d.uuid)
        if state not in (PowerState.RUNNING, PowerState.PAUSED):
            # a port it had that is no longer desired is in no guest: detached
            self._report_gone(d, set())
            return
        try:
            plugged = set(self.hypervisor.attached_nics(d.uuid))
        except HypervisorError as exc:
            log.warning("instance %s: cannot list its NICs: %s", d.uuid, exc)
            return
        wanted = {p.id: p for p in d.ports}
        active: list[str] = []
        for port_id, port in wanted.items():
            if port_id not in plugged:
                started = time.monotonic()
                try:
                    tap = self.plug(port)
                    self.hypervisor.attach_nic(d.uuid, GuestNic(
                        port_id=port.id, mac=port.mac, tap=tap, mtu=port.mtu))
                except (HypervisorError, NetworkDriverError) as exc:
                    log.warning("instance %s: attaching port %s failed: %s", d.uuid,
                                port_id, exc)
                    continue
                log.info("instance %s: port %s attached in %.2f s", d.uuid, port_id,
                         time.monotonic() - started)
            active.append(port_id)
        for port_id in sorted(plugged - set(wanted)):
            if state == PowerState.PAUSED:
                log.info("instance %s: port %s waits for the guest to run to be detached",
                         d.uuid, port_id)
                continue
            started = time.monotonic()
            try:
                self.hypervisor.detach_nic(d.uuid, port_id)
                self.unplug(port_id)
            except (HypervisorError, NetworkDriverError) as exc:
                log.warning("instance %s: detaching port %s failed: %s", d.uuid, port_id,
                            exc)
                continue
            log.info("instance %s: port %s detached in %.2f s", d.uuid, port_id,
                     time.monotonic() - started)
            self._report([port_id], "DOWN")
            with self._lock:
                self._reported.get(d.uuid, set()).discard(port_id)
        with self._lock:
            new = sorted(set(active) - self._reported.get(d.uuid, set()))
        if new and self._report(new, "ACTIVE"):
            with self._lock:
                self._reported.setdefault(d.uuid, set()).update(new)
        self._report_gone(d, plugged)

    def _report_gone(self, d: DesiredInstance, plugged: set[str]) -> None:
        """Ports reported plugged that are neither desired nor in the guest any more
        (the guest stopped before its NIC was unplugged, and started without it)."""
        with self._lock:
            gone = sorted(self._reported.get(d.uuid, set()) - {p.id for p in d.ports}
                          - plugged)
        if gone and self._report(gone, "DOWN"):
            with self._lock:
                self._reported.get(d.uuid, set()).difference_update(gone)

    def forget(self, uuid: str) -> None:
        """The instance left this host."""
        with self._lock:
            self._reported.pop(uuid, None)

    def _report(self, port_ids: list[str], status: str) -> bool:
        try:
            self.control.set_port_status(port_ids, status)
        except Exception:
            log.exception("could not report ports %s %s", port_ids, status)
            return False
        return True

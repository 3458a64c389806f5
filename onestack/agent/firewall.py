"""The agent's security groups: the host's desired state -> the firewall driver.

Every pass (``FirewallSync.sync``) turns the ``HostState`` into the firewall of every
port of this host's instances (``PortRules``: its MAC and addresses, its allowed
address pairs, the rules of all its groups, port security on or off) and the members
of every group a rule names as its remote group, and hands that whole set to the
firewall driver, which replaces what it had in one transaction and drops the filtering
of ports it was not given (the leftovers of instances gone). Level-triggered and cheap
when nothing changed: the set is compared with the one last applied and re-sent only
when it differs, or every ``resync_seconds`` (the driver then re-reads the kernel, so
rules flushed behind its back come back).

The reconciler calls ``sync`` before it starts any instance work, so a new guest's
filters exist before its tap does (the Linux driver matches taps by name: rules for a
tap still to come are valid), and ``covers`` tells it whether a guest's ports are
filtered yet: a guest whose filters could not be applied is not plugged this pass
(it would carry traffic unfiltered) and is tried again at the next one. Errors are
logged, never raised: the rest of the pass goes on.

A rule the driver would refuse (it cannot come from the API, which validates the same
things) is left out with a warning, rather than making every port of the host lose
its filters: leaving a rule out only ever allows less.
"""

from __future__ import annotations

import logging
import time

from onestack.drivers.network.firewall.base import (
    AddressPair,
    FirewallDriver,
    PortRules,
    SecurityGroupRule,
)
from onestack.drivers.network.firewall.check import check_ports, check_rule
from onestack.hostlink import states
from onestack.hostlink import types as wire

log = logging.getLogger(__name__)


def _rule(rule: wire.SecurityGroupRule) -> SecurityGroupRule:
    return SecurityGroupRule(
        direction=rule.direction, ethertype=rule.ethertype, protocol=rule.protocol,
        port_range_min=rule.port_range_min, port_range_max=rule.port_range_max,
        remote_ip_prefix=rule.remote_ip_prefix, remote_group_id=rule.remote_group_id)


def firewall_of(state: wire.HostState) -> tuple[list[PortRules], dict[str, list[str]]]:
    """The firewall of ``state``'s ports (sorted by port id, each port once) and the
    members of the remote groups their rules name. A port whose own data the driver
    would refuse (a malformed MAC or address) is left out with a warning: ``covers``
    then keeps its guest unplugged."""
    groups: dict[str, list[SecurityGroupRule]] = {}
    for group in state.security_groups:
        rules = []
        for raw in group.rules:
            rule = _rule(raw)
            try:
                check_rule(rule)
            except ValueError as exc:
                log.warning("security group %s: a rule is left out: %s", group.id, exc)
                continue
            rules.append(rule)
        groups[group.id] = rules
    members = {g.id: sorted(set(g.member_ips)) for g in state.security_groups}
    ports: dict[str, PortRules] = {}
    for instance in state.instances:
        for nic in instance.ports:
            if nic.id in ports:
                continue
            port_rules: list[SecurityGroupRule] = []
            for group_id in nic.security_group_ids:
                port_rules += groups.get(group_id, [])
            port = PortRules(
                port_id=nic.id, network_id=nic.network_id, mac=nic.mac.lower(),
                ips=list(nic.ips), rules=port_rules,
                security_group_ids=list(nic.security_group_ids),
                allowed_address_pairs=[AddressPair(p.ip_address, p.mac_address)
                                       for p in nic.allowed_address_pairs],
                port_security_enabled=nic.port_security_enabled)
            try:
                check_ports([PortRules(port.port_id, port.network_id, port.mac, port.ips,
                                       allowed_address_pairs=port.allowed_address_pairs)],
                            {})
            except ValueError as exc:
                log.warning("port %s: cannot be filtered (%s); its guest is not plugged",
                            nic.id, exc)
                continue
            ports[nic.id] = port
    remote = sorted({r.remote_group_id for p in ports.values() if p.port_security_enabled
                     for r in p.rules if r.remote_group_id})
    group_members: dict[str, list[str]] = {}
    for group_id in remote:
        try:
            check_ports([], {group_id: members.get(group_id, [])})
        except ValueError as exc:
            log.warning("security group %s: its members cannot be matched (%s)",
                        group_id, exc)
            group_members[group_id] = []
            continue
        group_members[group_id] = members.get(group_id, [])
    return [ports[k] for k in sorted(ports)], group_members


class FirewallSync:
    """Keeps ``firewall`` (the host's firewall driver) equal to the desired state."""

    def __init__(self, firewall: FirewallDriver, resync_seconds: float = 60.0) -> None:
        self.firewall = firewall
        self.resync_seconds = resync_seconds
        #: What was applied last (None: nothing yet, or the last apply failed).
        self._applied: tuple[list[PortRules], dict[str, list[str]]] | None = None
        self._applied_at = 0.0
        #: Port ids whose firewall is in place (as the last successful apply had them).
        self._covered: set[str] = set()
        self.applies = 0

    @property
    def filters(self) -> bool:
        """Whether this host filters at all (the noop driver does not)."""
        return bool(self.firewall.capabilities.get("security_groups"))

    def sync(self, state: wire.HostState) -> bool:
        """Apply ``state``'s firewall if it changed (or is due again); True when the
        host's firewall is as desired after the call."""
        try:
            wanted = firewall_of(state)
        except Exception:
            log.exception("could not work out this host's security groups")
            return False
        now = time.monotonic()
        if wanted == self._applied and now - self._applied_at < self.resync_seconds:
            return True
        ports, members = wanted
        started = time.monotonic()
        try:
            self.firewall.apply(ports, members)
        except Exception:
            log.exception("security groups: could not apply the firewall of %d port(s); "
                          "trying again next pass", len(ports))
            self._applied = None
            # Ports that were filtered keep their previous rules; new ones are not
            # covered, so their guests wait.
            self._covered &= {p.port_id for p in ports}
            return False
        changed = wanted != self._applied
        self._applied, self._applied_at = wanted, now
        self._covered = {p.port_id for p in ports}
        self.applies += 1
        if changed:
            log.info("security groups: applied the firewall of %d port(s) (%d filtered, "
                     "%d rule(s)) in %.3f s", len(ports),
                     sum(p.port_security_enabled for p in ports),
                     sum(len(p.rules) for p in ports if p.port_security_enabled),
                     time.monotonic() - started)
        return True

    def covers(self, instance: wire.DesiredInstance) -> bool:
        """Whether every port of ``instance`` has its firewall in place (so the guest may
        be plugged). Always true on a host that does not filter, and for an instance
        being deleted (it plugs nothing)."""
        if not self.filters or instance.task_state == states.DELETING:
            return True
        return all(p.id in self._covered for p in instance.ports)

"""Which host runs an instance: filters, then weighers, over the hosts' reported
capacity (``ComputeNode``) and their agents' services (``ComputeService``).

Filters (a host failing one is out, and the reason is kept for the fault):

- the host's ``nova-compute`` service exists, is enabled and up (not forced down, seen
  within ``hosts.SERVICE_DOWN_TIME`` seconds: Nova's ComputeFilter);
- the availability zone asked for (AvailabilityZoneFilter), a forced host or node;
- free vCPUs, RAM and disk: capacity times the node's allocation ratio minus what the
  non-deleted instances placed on the host use (an instance being resized counts its
  larger flavor) - Nova's placement claims;
- server groups: ``affinity`` keeps the hosts of the group's members, ``anti-affinity``
  drops hosts that already run ``max_server_per_host`` (default 1) of them;
- scheduler hints ``same_host`` / ``different_host`` (instance uuids).

Weighers: soft (anti-)affinity first, then the most free RAM (Nova's default spreads
instances), then the host name so the choice is deterministic.

The scheduler runs inside the creating transaction, after the instance rows were
flushed: instances placed earlier in the same request count as used, and on SQLite the
transaction already holds the write lock, so two requests cannot both take the last
slot of a host.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.db.models import (
    ComputeNode,
    ComputeService,
    Instance,
    ServerGroup,
    ServerGroupMember,
)
from onestack.db.models.base import utcnow
from onestack.hostlink import capabilities as caps
from onestack.services.compute.hosts import COMPUTE, Hosts

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: Flavor extra specs that require a host capability: ``capabilities:<name>``.
CAPABILITY_SPEC = "capabilities:"

#: The binary of a host's agent in os-services.
COMPUTE_BINARY = COMPUTE


class NoValidHost(Exception):
    """No host passed the filters; ``reason`` says why for each host."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"No valid host was found. {reason}".strip())


@dataclass
class Demand:
    """What one instance needs from a host."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    #: Admins only: ``zone:host[:node]`` or (2.74) ``host`` / ``hypervisor_hostname``.
    force_host: str | None = None
    force_node: str | None = None
    #: The server group the instance joins (``os:scheduler_hints`` ``group``).
    group_id: str | None = None
    same_host: list[str] = field(default_factory=list)
    different_host: list[str] = field(default_factory=list)
    #: The instance being placed (left out of group member and usage counts).
    instance_uuid: str | None = None
    #: Capabilities the host must declare (``hostlink.capabilities`` names); the
    #: instance's flavor adds its ``capabilities:<name>`` extra specs.
    capabilities: list[str] = field(default_factory=list)


@dataclass
class Placement:
    host: str
    node: str
    availability_zone: str


@dataclass
class HostState:
    node: ComputeNode
    service: ComputeService | None
    vcpus_used: int = 0
    memory_used: int = 0
    disk_used: int = 0

    @property
    def name(self) -> str:
        return self.node.host


def service_is_up(service: ComputeService | None, now: dt.datetime | None = None) -> bool:
    """os-services' notion of up (``Hosts.is_up``: not forced down, seen within
    ``SERVICE_DOWN_TIME``); no service is down."""
    return service is not None and Hosts.is_up(service, now)


def host_status(service: ComputeService | None) -> str:
    """Nova's ``host_status`` of a server on this service's host: UP, DOWN,
    MAINTENANCE (disabled), UNKNOWN (not heard of lately) or "" (no service)."""
    if service is None:
        return ""
    if service.forced_down:
        return "DOWN"
    if service.disabled:
        return "MAINTENANCE"
    return "UP" if service_is_up(service) else "UNKNOWN"


def required_capabilities(flavor: dict[str, Any] | None) -> list[str]:
    """The capabilities a flavor asks of its host: extra specs ``capabilities:<name>``
    set to ``True`` or ``<is> True`` (Nova's ComputeCapabilitiesFilter syntax)."""
    specs = (flavor or {}).get("extra_specs") or {}
    wanted = []
    for key, value in specs.items():
        if key.startswith(CAPABILITY_SPEC) and \
                str(value).replace("<is>", "").strip().lower() in ("true", "1", "yes"):
            wanted.append(key[len(CAPABILITY_SPEC):])
    return sorted(wanted)


def flavor_disk_gb(flavor: dict[str, Any]) -> int:
    """Root plus ephemeral disk plus swap (MiB, rounded up to GiB) of a flavor."""
    swap_mb = int(flavor.get("swap") or 0)
    return int(flavor.get("disk") or 0) + int(flavor.get("ephemeral") or 0) + \
        -(-swap_mb // 1024)


class Scheduler:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute

    # -- what hosts have ------------------------------------------------------------

    def host_states(self, session: Session, exclude: str | None = None
                    ) -> list[HostState]:
        """Every registered node with its service and what its instances use."""
        services = {s.host: s for s in session.scalars(
            select(ComputeService).where(ComputeService.binary == COMPUTE_BINARY))}
        states = {n.host: HostState(n, services.get(n.host))
                  for n in session.scalars(select(ComputeNode).order_by(ComputeNode.host))}
        if not states:
            return []
        live = (~Instance.deleted) & Instance.host.is_not(None)
        if exclude:
            live &= Instance.uuid != exclude
        usage = session.execute(
            select(Instance.host, func.sum(Instance.vcpus), func.sum(Instance.memory_mb),
                   func.sum(Instance.root_gb + Instance.ephemeral_gb))
            .where(live).group_by(Instance.host))
        for host, vcpus, ram, disk in usage:
            if host in states:
                states[host].vcpus_used += int(vcpus or 0)
                states[host].memory_used += int(ram or 0)
                states[host].disk_used += int(disk or 0)
        # a resize holds the larger of both flavors until it is confirmed or reverted
        resizing = session.execute(
            select(Instance.host, Instance.vcpus, Instance.memory_mb, Instance.root_gb,
                   Instance.ephemeral_gb, Instance.new_flavor)
            .where(live, Instance.new_flavor.is_not(None)))
        for host, vcpus, ram, root, ephemeral, new in resizing:
            if host in states and isinstance(new, dict):
                state = states[host]
                state.vcpus_used += max(0, int(new.get("vcpus") or 0) - vcpus)
                state.memory_used += max(0, int(new.get("ram") or 0) - ram)
                state.disk_used += max(0, int(new.get("disk") or 0)
                                       + int(new.get("ephemeral") or 0) - root - ephemeral)
        return list(states.values())

    # -- choosing -------------------------------------------------------------------

    def select(self, session: Session, demand: Demand) -> Placement:
        """The best host for ``demand``; ``NoValidHost`` if none fits."""
        states = self.host_states(session, exclude=demand.instance_uuid)
        if not states:
            raise NoValidHost("There are no compute hosts.")
        group = session.get(ServerGroup, demand.group_id) if demand.group_id else None
        members = self._member_hosts(session, group, demand.instance_uuid)
        same = self._hosts_of(session, demand.same_host)
        different = self._hosts_of(session, demand.different_host)
        if demand.instance_uuid and not demand.capabilities:
            inst = session.get(Instance, demand.instance_uuid)
            if inst is not None:
                demand.capabilities = required_capabilities(inst.flavor)
        now = utcnow()
        fitting: list[HostState] = []
        reasons: list[str] = []
        for state in states:
            why = self._filter(state, demand, group, members, same, different, now)
            if why is None:
                fitting.append(state)
            else:
                reasons.append(f"{state.name}: {why}")
        if not fitting:
            raise NoValidHost("; ".join(reasons) + ".")
        best = min(fitting, key=lambda s: self._weigh(s, group, members))
        az = best.service.availability_zone if best.service else \
            self.compute.config.compute.default_availability_zone
        return Placement(best.name, best.node.hypervisor_hostname, az)

    def fits(self, session: Session, host: str, demand: Demand) -> str | None:
        """None if ``host`` can take ``demand`` (besides what the instance being placed
        already uses), else why not."""
        for state in self.host_states(session, exclude=demand.instance_uuid):
            if state.name == host:
                return self._filter(state, demand, None, {}, None, set(), utcnow())
        return "the host is not registered"

    @staticmethod
    def _hosts_of(session: Session, uuids: list[str]) -> set[str] | None:
        if not uuids:
            return None
        return {h for h in session.scalars(select(Instance.host).where(
            Instance.uuid.in_(uuids), ~Instance.deleted)) if h}

    @staticmethod
    def _member_hosts(session: Session, group: ServerGroup | None,
                      exclude: str | None) -> dict[str, int]:
        """host -> how many of the group's live members run there."""
        if group is None:
            return {}
        rows = session.execute(
            select(Instance.host, func.count()).join(
                ServerGroupMember, ServerGroupMember.instance_uuid == Instance.uuid)
            .where(ServerGroupMember.group_id == group.id, ~Instance.deleted,
                   Instance.host.is_not(None), Instance.uuid != (exclude or ""))
            .group_by(Instance.host))
        return {host: int(count) for host, count in rows if host}

    @staticmethod
    def _filter(state: HostState, demand: Demand, group: ServerGroup | None,
                members: dict[str, int], same: set[str] | None, different: set[str] | None,
                now: dt.datetime) -> str | None:
        node, service = state.node, state.service
        if demand.force_host and state.name != demand.force_host:
            return "not the requested host"
        if demand.force_node and node.hypervisor_hostname != demand.force_node:
            return "not the requested node"
        if service is None:
            return "no nova-compute service is registered"
        if service.disabled:
            reason = f" ({service.disabled_reason})" if service.disabled_reason else ""
            return f"the compute service is disabled{reason}"
        if not service_is_up(service, now):
            return "the compute service is down"
        if demand.availability_zone and service.availability_zone != demand.availability_zone:
            return f"in availability zone {service.availability_zone}, not " \
                   f"{demand.availability_zone}"
        if same is not None and state.name not in same:
            return "does not run the instances of the same_host hint"
        if different and state.name in different:
            return "runs an instance of the different_host hint"
        if group is not None:
            count = members.get(state.name, 0)
            if group.policy == "affinity" and members and not count:
                return f"does not run the members of affinity group {group.id}"
            if group.policy == "anti-affinity":
                limit = int((group.rules or {}).get("max_server_per_host") or 1)
                if count >= limit:
                    return f"already runs {count} member(s) of anti-affinity group " \
                           f"{group.id}"
        lacking = caps.missing(node.capabilities, demand.capabilities)
        if lacking:
            return f"lacks the capabilities {', '.join(lacking)}"
        free_cpu = int(node.vcpus * node.cpu_allocation_ratio) - state.vcpus_used
        if demand.vcpus > free_cpu:
            return f"not enough vCPUs (requested {demand.vcpus}, free {max(free_cpu, 0)})"
        free_ram = int(node.memory_mb * node.ram_allocation_ratio) - state.memory_used
        if demand.memory_mb > free_ram:
            return f"not enough RAM (requested {demand.memory_mb} MiB, free " \
                   f"{max(free_ram, 0)} MiB)"
        free_disk = int(node.local_gb * node.disk_allocation_ratio) - state.disk_used
        if demand.disk_gb > free_disk:
            return f"not enough disk (requested {demand.disk_gb} GiB, free " \
                   f"{max(free_disk, 0)} GiB)"
        return None

    @staticmethod
    def _weigh(state: HostState, group: ServerGroup | None, members: dict[str, int]
               ) -> tuple[int, int, str]:
        """A sort key: the best host sorts first."""
        affinity = 0
        if group is not None and group.policy == "soft-affinity":
            affinity = members.get(state.name, 0)
        elif group is not None and group.policy == "soft-anti-affinity":
            affinity = -members.get(state.name, 0)
        free_ram = int(state.node.memory_mb * state.node.ram_allocation_ratio) - \
            state.memory_used
        return -affinity, -free_ram, state.name

"""Hosts as Nova shows them: os-services, os-hypervisors, os-availability-zone.

Rows come from two writers: each host's agent registers its ``nova-compute`` service
and its compute node (``HostAPI.register``, which also heartbeats ``last_seen_at``);
the server registers its own ``nova-scheduler`` and ``nova-conductor`` on its host
(``register_control_services``, refreshed while it serves). This module reads them and
changes only what administrators may: ``disabled`` (+ reason) and ``forced_down``.

A service is up when it was seen within ``SERVICE_DOWN_TIME`` seconds (Nova's
``service_down_time``) and is not forced down. Hypervisor usage (vCPUs, RAM, disk,
running VMs) is counted from the non-deleted instances placed on the host.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound, OneStackError
from onestack.common.uptime import local_uptime
from onestack.db.models import ComputeNode, ComputeService, Instance, utcnow
from onestack.hostlink import capabilities as caps
from onestack.hostlink.interfaces import HostUnreachable
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

#: Seconds without a heartbeat after which a service is "down" (Nova's default).
SERVICE_DOWN_TIME = 60
COMPUTE = "nova-compute"
CONTROL_BINARIES = ("nova-scheduler", "nova-conductor")
#: Nova's ``internal_service_availability_zone``: where non-compute services live.
INTERNAL_ZONE = "internal"
#: How stale the server's own service rows may get before a read refreshes them.
_HEARTBEAT = 20


class NotImplementedByHost(OneStackError):
    """Nova's 501: the host cannot answer (e.g. uptime of a host not in this process)."""

    status = 501
    title = "Not Implemented"
    fault = "notImplemented"


@dataclass
class ServiceView:
    service: ComputeService
    up: bool
    zone: str
    updated_at: dt.datetime | None


@dataclass
class HypervisorView:
    node: ComputeNode
    service: ComputeService
    up: bool
    vcpus_used: int = 0
    memory_mb_used: int = 0
    local_gb_used: int = 0
    running_vms: int = 0
    current_workload: int = 0
    servers: list[tuple[str, str]] = field(default_factory=list)  # (name, uuid)
    uptime: str | None = None

    @property
    def free_ram_mb(self) -> int:
        return self.node.memory_mb - self.memory_mb_used

    @property
    def free_disk_gb(self) -> int:
        return self.node.local_gb - self.local_gb_used


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_int(value: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", value.strip()) is not None


class Hosts:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db
        #: The host this server registered its control services on.
        self.control_host: str | None = None

    # -- registration ---------------------------------------------------------------

    def host_name(self) -> str:
        """This machine's name in os-services (``[host] name``, else its hostname)."""
        return self.compute.config.host.name or socket.gethostname()

    def bootstrap(self) -> None:
        """At start: the server's own services appear on its host."""
        self.register_control_services(self.host_name())

    def register_control_services(self, host_name: str) -> None:
        """Upsert ``nova-scheduler`` and ``nova-conductor`` on ``host_name`` and mark
        them seen now; this process keeps them up while it serves."""
        self.control_host = host_name
        now = utcnow()
        with self.db.session() as session:
            for binary in CONTROL_BINARIES:
                row = session.scalar(select(ComputeService).where(
                    ComputeService.host == host_name, ComputeService.binary == binary))
                if row is None:
                    row = ComputeService(uuid=str(uuid.uuid4()), host=host_name,
                                         binary=binary, availability_zone=INTERNAL_ZONE,
                                         disabled=False, forced_down=False, created_at=now)
                    session.add(row)
                row.last_seen_at = now
                row.updated_at = now

    def _heartbeat(self) -> None:
        """Refresh this server's own service rows when they grow stale."""
        if self.control_host is None:
            return
        stale = utcnow() - dt.timedelta(seconds=_HEARTBEAT)
        with self.db.session() as session:
            rows = session.scalars(select(ComputeService).where(
                ComputeService.host == self.control_host,
                ComputeService.binary.in_(CONTROL_BINARIES))).all()
            if len(rows) == len(CONTROL_BINARIES) and all(
                    r.last_seen_at is not None and r.last_seen_at > stale for r in rows):
                return
        self.register_control_services(self.control_host)

    # -- state ----------------------------------------------------------------------

    @staticmethod
    def is_up(service: ComputeService, now: dt.datetime | None = None) -> bool:
        if service.forced_down or service.last_seen_at is None:
            return False
        now = now or utcnow()
        return (now - service.last_seen_at).total_seconds() <= SERVICE_DOWN_TIME

    def zone_of(self, service: ComputeService) -> str:
        if service.binary != COMPUTE:
            return INTERNAL_ZONE
        return service.availability_zone or self.compute.config.compute.default_availability_zone

    def _view(self, service: ComputeService, now: dt.datetime) -> ServiceView:
        return ServiceView(service, self.is_up(service, now), self.zone_of(service),
                           service.last_seen_at or service.updated_at)

    # -- os-services ----------------------------------------------------------------

    def list_services(self, ctx: ValidatedToken, host: str | None = None,
                      binary: str | None = None) -> list[ServiceView]:
        policy.require_admin(ctx, "os_compute_api:os-services:list")
        self._heartbeat()
        stmt = select(ComputeService).order_by(ComputeService.id)
        if host:
            stmt = stmt.where(ComputeService.host == host)
        if binary:
            stmt = stmt.where(ComputeService.binary == binary)
        now = utcnow()
        with self.db.session() as session:
            return [self._view(s, now) for s in session.scalars(stmt)]

    @staticmethod
    def _service_by_id(session: Session, service_id: str, by_uuid: bool) -> ComputeService:
        if by_uuid:
            if not _is_uuid(service_id):
                raise BadRequest(f"Invalid uuid {service_id}")
            row = session.scalar(select(ComputeService).where(
                ComputeService.uuid == service_id))
        else:
            if not _is_int(service_id):
                raise BadRequest(f"Invalid input for field/attribute id. Value: "
                                 f"{service_id}. id must be an integer")
            row = session.get(ComputeService, int(service_id)) \
                if abs(int(service_id)) < 2**63 else None
        if row is None:
            raise NotFound(f"Service {service_id} could not be found.")
        return row

    def update_service(self, ctx: ValidatedToken, service_uuid: str, *,
                       status: str | None = None, disabled_reason: str | None = None,
                       forced_down: bool | None = None) -> ServiceView:
        """PUT /os-services/{uuid} (2.53+): enable/disable and force down a compute
        service."""
        if not _is_uuid(service_uuid):
            raise BadRequest(f"Invalid uuid {service_uuid}")
        policy.require_admin(ctx, "os_compute_api:os-services:update")
        with self.db.session() as session:
            service = self._service_by_id(session, service_uuid, by_uuid=True)
            if service.binary != COMPUTE:
                raise BadRequest(f"Updating a {service.binary} service is not supported. "
                                 "Only nova-compute services can be updated.")
            changed = False
            if status == "enabled":
                if disabled_reason:
                    raise BadRequest("Specifying 'disabled_reason' with status 'enabled' "
                                     "is invalid.")
                changed |= service.disabled or service.disabled_reason is not None
                service.disabled, service.disabled_reason = False, None
            elif status == "disabled":
                changed |= not service.disabled or service.disabled_reason != disabled_reason
                service.disabled, service.disabled_reason = True, disabled_reason
            if forced_down is not None:
                changed |= service.forced_down != forced_down
                service.forced_down = forced_down
            if status is None and forced_down is None:
                raise BadRequest("No updates were requested. Fields 'status' or "
                                 "'forced_down' should be specified.")
            if changed:
                service.updated_at = utcnow()
            session.flush()
            return self._view(service, utcnow())

    def update_by_host(self, ctx: ValidatedToken, host: str, binary: str,
                       changes: dict[str, Any]) -> None:
        """The pre-2.53 actions (enable, disable, disable-log-reason, force-down), which
        name the service by host and binary."""
        policy.require_admin(ctx, "os_compute_api:os-services:update")
        if binary != COMPUTE:
            raise BadRequest(f"Updating a {binary} service is not supported. Only "
                             "nova-compute services can be updated.")
        with self.db.session() as session:
            service = session.scalar(select(ComputeService).where(
                ComputeService.host == host, ComputeService.binary == binary))
            if service is None:
                raise NotFound(f"Compute host {host} with binary {binary} could not be "
                               "found.")
            for name, value in changes.items():
                setattr(service, name, value)
            service.updated_at = utcnow()

    def delete_service(self, ctx: ValidatedToken, service_id: str, by_uuid: bool) -> None:
        """Delete a service; a compute service only while no server is on its host
        (its compute node goes with it, and its host leaves its aggregates)."""
        if by_uuid and not _is_uuid(service_id):
            raise BadRequest(f"Invalid uuid {service_id}")
        policy.require_admin(ctx, "os_compute_api:os-services:delete")
        with self.db.session() as session:
            service = self._service_by_id(session, service_id, by_uuid)
            if service.binary == COMPUTE:
                hosting = session.scalar(select(func.count()).select_from(Instance).where(
                    Instance.host == service.host, Instance.deleted.is_(False)))
                if hosting:
                    raise Conflict("Unable to delete compute service that is hosting "
                                   "instances. Migrate or delete the instances first.")
                node = session.scalar(select(ComputeNode).where(
                    ComputeNode.host == service.host))
                if node is not None:
                    session.delete(node)
                # as Nova: the host leaves its aggregates
                self.compute.aggregates.forget_host(session, service.host)
            session.delete(service)

    # -- os-hypervisors -------------------------------------------------------------

    def _hypervisor_views(self, session: Session, nodes: list[ComputeNode],
                          with_servers: bool = False) -> list[HypervisorView]:
        """Views of nodes that have a compute service (others are skipped, as Nova
        skips nodes whose service was deleted)."""
        hosts = [n.host for n in nodes]
        if not hosts:
            return []
        services = {s.host: s for s in session.scalars(select(ComputeService).where(
            ComputeService.binary == COMPUTE, ComputeService.host.in_(hosts)))}
        usage = {row.host: row for row in session.execute(
            select(Instance.host, func.count().label("vms"),
                   func.coalesce(func.sum(Instance.vcpus), 0).label("vcpus"),
                   func.coalesce(func.sum(Instance.memory_mb), 0).label("ram"),
                   func.coalesce(func.sum(Instance.root_gb + Instance.ephemeral_gb), 0)
                   .label("disk"),
                   func.count(Instance.task_state).label("busy"))
            .where(Instance.host.in_(hosts), Instance.deleted.is_(False))
            .group_by(Instance.host))}
        servers: dict[str, list[tuple[str, str]]] = {}
        if with_servers:
            for host, name, ident in session.execute(
                    select(Instance.host, Instance.display_name, Instance.uuid)
                    .where(Instance.host.in_(hosts), Instance.deleted.is_(False))
                    .order_by(Instance.created_at)):
                servers.setdefault(host or "", []).append((name, ident))
        now = utcnow()
        views = []
        for node in nodes:
            service = services.get(node.host)
            if service is None:
                continue
            view = HypervisorView(node, service, self.is_up(service, now),
                                  servers=servers.get(node.host, []))
            row = usage.get(node.host)
            if row is not None:
                view.vcpus_used, view.memory_mb_used = int(row.vcpus), int(row.ram)
                view.local_gb_used, view.running_vms = int(row.disk), int(row.vms)
                view.current_workload = int(row.busy)
            views.append(view)
        return views

    # -- os-hosts (2.1-2.42) ------------------------------------------------------------

    def list_hosts(self, ctx: ValidatedToken, zone: str | None = None
                   ) -> list[dict[str, str]]:
        """Nova's os-hosts index: one entry per enabled service (``service`` is its
        topic, the binary without ``nova-``), optionally of one zone."""
        policy.require_admin(ctx, "os_compute_api:os-hosts:list")
        self._heartbeat()
        with self.db.session() as session:
            services = session.scalars(select(ComputeService).where(
                ComputeService.disabled.is_(False)).order_by(ComputeService.id)).all()
            hosts = [{"host_name": s.host, "service": s.binary.removeprefix("nova-"),
                      "zone": self.zone_of(s)} for s in services]
        return [h for h in hosts if zone is None or h["zone"] == zone]

    def host_resources(self, ctx: ValidatedToken, host: str) -> list[dict[str, Any]]:
        """Nova's os-hosts show: ``(total)``, ``(used_now)``, ``(used_max)``, then the
        use of each project with servers on the host."""
        policy.require_admin(ctx, "os_compute_api:os-hosts:show")
        with self.db.session() as session:
            node = session.scalar(select(ComputeNode).where(ComputeNode.host == host)
                                  .order_by(ComputeNode.id).limit(1))
            views = self._hypervisor_views(session, [node]) if node is not None else []
            if not views:
                raise NotFound(f"Compute host {host} could not be found.")
            view = views[0]
            projects = session.execute(
                select(Instance.project_id,
                       func.coalesce(func.sum(Instance.vcpus), 0),
                       func.coalesce(func.sum(Instance.memory_mb), 0),
                       func.coalesce(func.sum(Instance.root_gb + Instance.ephemeral_gb), 0))
                .where(Instance.host == host, Instance.deleted.is_(False))
                .group_by(Instance.project_id).order_by(Instance.project_id)).all()

        def resource(project: str, cpu: int, memory_mb: int, disk_gb: int) -> dict[str, Any]:
            return {"resource": {"host": host, "project": project, "cpu": int(cpu),
                                 "memory_mb": int(memory_mb), "disk_gb": int(disk_gb)}}

        answer = [resource("(total)", view.node.vcpus, view.node.memory_mb, view.node.local_gb),
                  resource("(used_now)", view.vcpus_used, view.memory_mb_used,
                           view.local_gb_used),
                  resource("(used_max)", sum(int(p[1]) for p in projects),
                           sum(int(p[2]) for p in projects), sum(int(p[3]) for p in projects))]
        answer += [resource(*row) for row in projects]
        return answer

    def list_hypervisors(self, ctx: ValidatedToken, *, detail: bool = False,
                         pattern: str | None = None, limit: int | None = None,
                         marker: str | None = None, marker_is_uuid: bool = False,
                         with_servers: bool = False) -> list[HypervisorView]:
        policy.require_admin(ctx, "os_compute_api:os-hypervisors:"
                             + ("list-detail" if detail else "list"))
        with self.db.session() as session:
            stmt = select(ComputeNode).order_by(ComputeNode.id)
            if pattern is not None:
                escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(ComputeNode.hypervisor_hostname.like(
                    f"%{escaped}%", escape="\\"))
            if marker is not None:
                marker_node = self._node(session, marker, marker_is_uuid, missing=None)
                if marker_node is None:
                    raise BadRequest(f"marker [{marker}] not found")
                stmt = stmt.where(ComputeNode.id > marker_node.id)
            if limit:
                stmt = stmt.limit(limit)
            nodes = list(session.scalars(stmt))
            if pattern is not None and not nodes:
                raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
            return self._hypervisor_views(session, nodes, with_servers)

    @staticmethod
    def _node(session: Session, ident: str, by_uuid: bool, missing: Any = ...
              ) -> ComputeNode | None:
        node = None
        if by_uuid:
            node = session.scalar(select(ComputeNode).where(ComputeNode.uuid == ident))
        elif _is_int(ident) and abs(int(ident)) < 2**63:
            node = session.get(ComputeNode, int(ident))
        if node is None and missing is ...:
            raise NotFound(f"Hypervisor with ID '{ident}' could not be found.")
        return node

    def get_hypervisor(self, ctx: ValidatedToken, ident: str, by_uuid: bool,
                       with_servers: bool = False, rule: str = "show") -> HypervisorView:
        """One hypervisor; 2.53+ ids are uuids (400 otherwise), older ones integers
        (404 otherwise)."""
        policy.require_admin(ctx, f"os_compute_api:os-hypervisors:{rule}")
        if by_uuid and not _is_uuid(ident):
            raise BadRequest(f"Invalid uuid {ident}")
        with self.db.session() as session:
            node = self._node(session, ident, by_uuid)
            assert node is not None
            views = self._hypervisor_views(session, [node], with_servers)
        if not views:
            raise NotFound(f"Hypervisor with ID '{ident}' could not be found.")
        return views[0]

    def uptime(self, ctx: ValidatedToken, ident: str, by_uuid: bool) -> HypervisorView:
        """The hypervisor with its host's ``uptime`` (pre-2.88 route); 501 for a host
        whose agent is not in this process."""
        view = self.get_hypervisor(ctx, ident, by_uuid, rule="uptime")
        view.uptime = self.host_uptime(view.node.host)
        if view.uptime is None:
            raise NotImplementedByHost("Virt driver does not implement host uptime "
                                       "function.")
        return view

    def capabilities(self, session: Session, host: str) -> dict[str, bool] | None:
        """What ``host``'s drivers can do, as its agent last reported (None: the host
        reported nothing, as an agent older than capabilities)."""
        node = session.scalar(select(ComputeNode).where(ComputeNode.host == host))
        if node is None or not node.capabilities:
            return None
        return {k: bool(v) for k, v in node.capabilities.items()}

    def require_capability(self, session: Session, host: str | None, name: str,
                           feature: str) -> None:
        """Refuse ``feature`` (Nova's 501) when ``host`` declared it cannot do ``name``;
        a host that declared nothing is not refused."""
        if not host:
            return
        have = self.capabilities(session, host)
        if have is not None and caps.missing(have, [name]):
            raise NotImplementedByHost(
                f"The requested functionality is not supported: {feature} (the drivers "
                f"of host {host} cannot: {name}).")

    def host_uptime(self, host: str) -> str | None:
        """``uptime`` of a host this process can reach (``compute.host_links``), or of
        this machine when it is the host asked about; None otherwise."""
        link = self.compute.host_links.get(host)
        if link is not None:
            try:
                return str(link.uptime())
            except HostUnreachable:
                return None
        if host == self.host_name():
            return local_uptime()
        return None

    def statistics(self, ctx: ValidatedToken) -> dict[str, int]:
        """Sums over every hypervisor (pre-2.88)."""
        policy.require_admin(ctx, "os_compute_api:os-hypervisors:statistics")
        with self.db.session() as session:
            views = self._hypervisor_views(
                session, list(session.scalars(select(ComputeNode).order_by(ComputeNode.id))))
        stats = {"count": len(views)}
        for name in ("vcpus", "memory_mb", "local_gb"):
            stats[name] = sum(getattr(v.node, name) for v in views)
        for name in ("vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb",
                     "free_disk_gb", "current_workload", "running_vms"):
            stats[name] = sum(getattr(v, name) for v in views)
        stats["disk_available_least"] = stats["free_disk_gb"]
        return stats

    # -- os-availability-zone -------------------------------------------------------

    def availability_zones(self, ctx: ValidatedToken, detail: bool = False
                           ) -> list[dict[str, Any]]:
        """Nova's ``availabilityZoneInfo``: zones with an enabled service are available,
        zones whose services are all disabled are not; the internal zone (the server's
        own services) only in the admin's detail, which also lists hosts."""
        if detail:
            policy.require_admin(ctx, "os_compute_api:os-availability-zone:detail")
            self._heartbeat()
        now = utcnow()
        with self.db.session() as session:
            views = [self._view(s, now) for s in session.scalars(
                select(ComputeService).order_by(ComputeService.host, ComputeService.binary))]
        available = sorted({v.zone for v in views if not v.service.disabled})
        unavailable = sorted({v.zone for v in views if v.service.disabled} - set(available))
        result: list[dict[str, Any]] = []
        for zone in available:
            if zone == INTERNAL_ZONE and not detail:
                continue
            hosts: dict[str, Any] | None = None
            if detail:
                hosts = {}
                for v in views:
                    if v.zone == zone and not v.service.disabled:
                        hosts.setdefault(v.service.host, {})[v.service.binary] = {
                            "available": v.up, "active": True, "updated_at": v.updated_at}
            result.append({"zoneName": zone, "zoneState": {"available": True},
                           "hosts": hosts})
        for zone in unavailable:
            if zone == INTERNAL_ZONE and not detail:
                continue
            result.append({"zoneName": zone, "zoneState": {"available": False},
                           "hosts": None})
        return result

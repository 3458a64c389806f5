"""The volume services and hosts as Cinder shows them, and the placement check.

This cloud runs one ``cinder-scheduler`` (host ``onestack``) and one ``cinder-volume``
per backend it has loaded (host ``onestack@<backend>``, pool ``onestack@<backend>#
<backend>``). An administrator can disable a ``cinder-volume`` (``os-services/disable``)
or freeze its host (``os-services/freeze``): either way its backend takes no new
volumes until it is enabled or thawed again.

Placement (Cinder's capabilities filter, for the one backend a volume type leads to):
a type's extra specs that name a capability the backend reports (``storage_protocol``,
``vendor_name``, ``volume_backend_name``, ``driver_version``, ``multiattach``,
``thin_provisioning_support``, ``thick_provisioning_support``, or any
``capabilities:<name>``) must match it - plain values by equality, ``<is> True``,
``<in> x``, ``<or> a <or> b`` and the numeric ``==``/``>=``/``<=`` forms as in Cinder.
Other keys are not capabilities and are not compared. A volume that cannot be placed
goes to ``error`` with the user message Cinder gives ("no valid backend"); so does a
volume whose type has an encryption spec, since no backend here encrypts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, NotFound
from onestack.db.models import Snapshot, Volume, VolumeType, utcnow
from onestack.db.models.volume_admin import VolumeServiceState, VolumeTypeEncryption

if TYPE_CHECKING:
    from onestack.services.volume.service import Volumes

HOST = "onestack"
SCHEDULER = "cinder-scheduler"
VOLUME = "cinder-volume"
VENDOR = "OneStack"
DRIVER_VERSION = "1.0"
#: Cinder's event id for "schedule allocate volume: no backend available"
EVENT_NO_BACKEND = "VOLUME_VOLUME_001_003"
NO_BACKEND_MESSAGE = "schedule allocate volume:Could not find any available weighted backend."
NO_ENCRYPTION_MESSAGE = ("schedule allocate volume:No backend here can make encrypted "
                         "volumes (the volume type has an encryption spec).")
#: the capabilities a backend reports (pools, capabilities, placement)
REPORTED = ("volume_backend_name", "storage_protocol", "vendor_name", "driver_version",
            "multiattach", "thin_provisioning_support", "thick_provisioning_support")


def backend_host(backend: str) -> str:
    return f"{HOST}@{backend}"


def capabilities(volumes: Volumes, backend: str) -> dict[str, Any]:
    driver = volumes.backend_for(backend)
    thin = bool(driver.capabilities.get("thin_provisioning"))
    return {"volume_backend_name": backend, "storage_protocol": driver.storage_protocol,
            "vendor_name": VENDOR, "driver_version": DRIVER_VERSION,
            "multiattach": bool(driver.capabilities.get("multiattach")),
            "thin_provisioning_support": thin, "thick_provisioning_support": not thin}


def op_matches(cap: Any, wanted: str) -> bool:
    """One extra spec against one reported capability (Cinder's extra-specs ops)."""
    words = wanted.split()
    text = str(cap)
    if not words:
        return text == wanted
    op = words[0]
    if op == "<is>":
        return len(words) == 2 and str(cap).lower() == words[1].lower()
    if op == "<in>":
        return len(words) == 2 and words[1] in text
    if op == "<or>":
        return text in words[1::2]
    if op in ("s==", "s!="):
        if len(words) != 2:
            return False
        return (text == words[1]) == (op == "s==")
    if op in ("=", "==", ">=", "<=", "!=") and len(words) == 2:
        try:
            have, want = float(cap), float(words[1])
        except (TypeError, ValueError):
            return False
        return {"=": have >= want, "==": have == want, ">=": have >= want,
                "<=": have <= want, "!=": have != want}[op]
    if isinstance(cap, bool):
        return wanted.strip().lower() in (("true", "1") if cap else ("false", "0"))
    return text == wanted


def mismatches(reported: dict[str, Any], extra_specs: dict[str, Any]) -> list[str]:
    """The extra specs the reported capabilities do not satisfy."""
    out = []
    for key, wanted in extra_specs.items():
        name = key
        if ":" in key:
            scope, _, name = key.partition(":")
            if scope != "capabilities":
                continue
            if name not in reported:
                out.append(key)
                continue
        elif key not in REPORTED:
            continue
        if not op_matches(reported[name], str(wanted)):
            out.append(key)
    return out


class VolumeHosts:
    """Services, hosts, capabilities and placement for one ``Volumes`` service."""

    def __init__(self, volumes: Volumes) -> None:
        self.volumes = volumes

    def backends(self) -> list[str]:
        return sorted(self.volumes._backends)

    # -- services ---------------------------------------------------------------------

    def _known(self) -> list[tuple[str, str]]:
        return [(HOST, SCHEDULER)] + [(backend_host(b), VOLUME) for b in self.backends()]

    def _states(self, session: Session) -> dict[tuple[str, str], VolumeServiceState]:
        return {(row.host, row.binary): row for row in session.scalars(
            select(VolumeServiceState))}

    def services(self, host: str | None = None, binary: str | None = None
                 ) -> list[dict[str, Any]]:
        zone = self.volumes.config.volume.default_availability_zone
        now = utcnow()
        with self.volumes.db.session() as session:
            states = self._states(session)
        rows = []
        for svc_host, svc_binary in self._known():
            if binary and svc_binary != binary:
                continue
            if host and svc_host != host and svc_host.split("@")[0] != host:
                continue
            state = states.get((svc_host, svc_binary))
            row: dict[str, Any] = {
                "binary": svc_binary, "host": svc_host, "zone": zone,
                "status": "disabled" if state is not None and state.disabled else "enabled",
                "state": "up", "updated_at": (state.updated_at if state else now),
                "disabled_reason": state.disabled_reason if state else None}
            if svc_binary == VOLUME:
                row.update({"replication_status": "disabled", "active_backend_id": None,
                            "frozen": bool(state is not None and state.frozen)})
            rows.append(row)
        return rows

    def _check(self, host: Any, binary: Any) -> tuple[str, str]:
        if not isinstance(host, str) or not host:
            raise BadRequest("Invalid input received: 'host' must be given.")
        if not isinstance(binary, str) or not binary:
            raise BadRequest("Invalid input received: 'binary' must be given.")
        if (host, binary) not in self._known():
            if host not in {h for h, _ in self._known()}:
                raise NotFound(f"Host {host} could not be found.")
            raise NotFound(f"Service {binary} could not be found.")
        return host, binary

    def set_enabled(self, host: Any, binary: Any, enabled: bool,
                    reason: str | None = None) -> dict[str, Any]:
        host, binary = self._check(host, binary)
        with self.volumes.db.session() as session:
            row = session.get(VolumeServiceState, (host, binary))
            if row is None:
                row = VolumeServiceState(host=host, binary=binary, disabled=False,
                                         frozen=False)
                session.add(row)
            row.disabled = not enabled
            row.disabled_reason = None if enabled else reason
            row.updated_at = utcnow()
        return {"disabled": not enabled, "status": "enabled" if enabled else "disabled",
                "host": host, "service": binary, "binary": binary,
                "disabled_reason": None if enabled else reason}

    def set_frozen(self, host: Any, frozen: bool) -> None:
        """Freeze or thaw a ``cinder-volume`` host (``onestack@<backend>``); 400 for a
        host that runs none, as Cinder answers."""
        if not isinstance(host, str) or (host, VOLUME) not in self._known():
            raise BadRequest(f"Invalid input received: No service found with host {host}.")
        with self.volumes.db.session() as session:
            row = session.get(VolumeServiceState, (host, VOLUME))
            if row is None:
                row = VolumeServiceState(host=host, binary=VOLUME, disabled=False)
                session.add(row)
            row.frozen = frozen
            row.updated_at = utcnow()

    # -- hosts ------------------------------------------------------------------------

    def hosts(self) -> list[dict[str, Any]]:
        return [{"service-status": "available" if s["state"] == "up" else "unavailable",
                 "service": s["binary"], "zone": s["zone"],
                 "service-state": s["status"], "host_name": s["host"],
                 "last-update": s["updated_at"]} for s in self.services()]

    def host_usage(self, host: str) -> list[dict[str, Any]]:
        """What a ``cinder-volume`` host holds: the total, then per project (Cinder's
        ``os-hosts/{host}``); 404 for any other host, or a disabled one."""
        enabled = [s for s in self.services(binary=VOLUME)
                   if s["host"] == host and s["status"] == "enabled"]
        if not enabled:
            raise NotFound(f"Host {host} could not be found.")
        backend = host.split("@", 1)[1]
        with self.volumes.db.session() as session:
            vols = dict(((p, (c, s)) for p, c, s in session.execute(
                select(Volume.project_id, func.count(), func.coalesce(func.sum(Volume.size), 0))
                .where(Volume.backend == backend).group_by(Volume.project_id))))
            snaps = dict(((p, (c, s)) for p, c, s in session.execute(
                select(Snapshot.project_id, func.count(),
                       func.coalesce(func.sum(Snapshot.size), 0))
                .join(Volume, Volume.id == Snapshot.volume_id)
                .where(Volume.backend == backend).group_by(Snapshot.project_id))))

        def row(project: str, v: tuple[int, int], s: tuple[int, int]) -> dict[str, Any]:
            return {"resource": {"host": host, "project": project,
                                 "volume_count": str(v[0]), "total_volume_gb": str(v[1]),
                                 "snapshot_count": str(s[0]),
                                 "total_snapshot_gb": str(s[1])}}

        total = row("(total)", (sum(c for c, _ in vols.values()),
                                sum(g for _, g in vols.values())),
                    (sum(c for c, _ in snaps.values()), sum(g for _, g in snaps.values())))
        return [total] + [row(p, vols.get(p, (0, 0)), snaps.get(p, (0, 0)))
                          for p in sorted(set(vols) | set(snaps))]

    # -- capabilities and placement ---------------------------------------------------

    def backend_of_host(self, host: str) -> str:
        """``onestack@local`` or ``onestack@local#local`` -> ``local``; 404 else."""
        name, _, pool = host.partition("#")
        for backend in self.backends():
            if name == backend_host(backend) and pool in ("", backend):
                return backend
        raise NotFound(f"Host {host} could not be found.")

    def show_capabilities(self, host: str) -> dict[str, Any]:
        backend = self.backend_of_host(host)
        reported = capabilities(self.volumes, backend)
        return {"namespace": f"OS::Storage::Capabilities::{backend_host(backend)}",
                "vendor_name": reported["vendor_name"],
                "volume_backend_name": backend, "pool_name": backend,
                "driver_version": reported["driver_version"],
                "storage_protocol": reported["storage_protocol"],
                "display_name": None, "description": None, "visibility": None,
                "replication_targets": [],
                "properties": {
                    "thin_provisioning": {
                        "title": "Thin Provisioning", "type": "boolean",
                        "description": "Volumes take space only as data is written."},
                    "multiattach": {
                        "title": "Multi-attach", "type": "boolean",
                        "description": "A volume can be attached to several servers."}}}

    def refusal(self, session: Session, backend: str, vt: VolumeType | None) -> str | None:
        """Why a new volume of type ``vt`` cannot go to ``backend`` (None: it can)."""
        state = session.get(VolumeServiceState, (backend_host(backend), VOLUME))
        if state is not None and (state.disabled or state.frozen):
            return NO_BACKEND_MESSAGE
        if vt is not None and session.get(VolumeTypeEncryption, vt.id) is not None:
            return NO_ENCRYPTION_MESSAGE
        specs = dict(vt.extra_specs or {}) if vt is not None else {}
        if mismatches(capabilities(self.volumes, backend), specs):
            return NO_BACKEND_MESSAGE
        return None


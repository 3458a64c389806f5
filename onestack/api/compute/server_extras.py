"""Nova routes the stock clients call for features OneStack has only in part, or not at
all, answered the way Nova answers a cloud without them (instead of a bare 404):

- ``/servers/{id}/diagnostics``: what the server's host measures of the running guest
  (``onestack/hostlink/diagnostics.py``), in Nova's 2.48 shape or, before, the flat
  libvirt-style dict; 501 when the host's drivers cannot (Nova's answer).
- ``/servers/{id}/os-server-password``: always empty (no guest agent posts one); the
  ``DELETE`` that clears it is a 204.
- ``/servers/{id}/migrations``: the live migrations in progress of a server, always
  none (this cloud does not live-migrate; resizes are recorded in ``/os-migrations``,
  ``api/compute/migrations.py``).

Host aggregates are real: ``api/compute/aggregates.py``; so are interfaces
(``os-interface``): ``api/compute/interfaces.py``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.api.compute.common import compute, server_id
from onestack.api.compute.microversion import version
from onestack.api.compute.policy import admin, member, reader
from onestack.common.errors import NotFound
from onestack.hostlink.diagnostics import GuestDiagnostics
from onestack.services.compute.server_views import ServerView


def _server(request: Request) -> ServerView:
    """The server (Nova's 404 when the caller cannot see it)."""
    return compute(request).servers.get(caller(request), server_id(request))


# -- diagnostics, password -----------------------------------------------------------------


#: Nova's 2.48 ``driver`` is an enumeration of its own virt drivers (libvirt, xenapi,
#: vmwareapi, ironic, hyperv) that clients validate. OneStack's drivers run QEMU
#: themselves; libvirt's is the Nova driver with that guest model, so it is named here,
#: and ``hypervisor`` says what really runs the guest (qemu, kvm, or fake).
DIAGNOSTICS_DRIVER = "libvirt"


def diagnostics_v248(found: GuestDiagnostics, config_drive: bool) -> dict[str, Any]:
    return {
        "state": found.state, "driver": DIAGNOSTICS_DRIVER,
        "hypervisor": found.hypervisor, "hypervisor_os": found.hypervisor_os,
        "uptime": found.uptime, "config_drive": config_drive,
        "num_cpus": len(found.cpus), "num_nics": len(found.nics),
        "num_disks": len(found.disks),
        "memory_details": {"maximum": found.memory_max_mib, "used": found.memory_used_mib},
        "cpu_details": [{"id": c.id, "time": c.time, "utilisation": c.utilisation}
                        for c in found.cpus],
        "nic_details": [{k: v for k, v in asdict(n).items() if k != "name"}
                        for n in found.nics],
        "disk_details": [{k: v for k, v in asdict(d).items() if k != "name"}
                         for d in found.disks],
    }


def diagnostics_legacy(found: GuestDiagnostics) -> dict[str, Any]:
    """Before 2.48: libvirt's flat dict (``cpu0_time`` in ns; ``<disk>_read``,
    ``_read_req``, ``_write``, ``_write_req``, ``_errors``; ``<tap>_rx``, ``_rx_packets``,
    ``_rx_errors``, ``_rx_drop`` and the same for tx; ``memory`` and ``memory-rss`` in
    KiB). Figures the host could not read are left out."""
    out: dict[str, Any] = {}
    for cpu in found.cpus:
        out[f"cpu{cpu.id}_time"] = cpu.time
    for disk in found.disks:
        out.update({f"{disk.name}_read": disk.read_bytes,
                    f"{disk.name}_read_req": disk.read_requests,
                    f"{disk.name}_write": disk.write_bytes,
                    f"{disk.name}_write_req": disk.write_requests,
                    f"{disk.name}_errors": disk.errors_count})
    for nic in found.nics:
        for side in ("rx", "tx"):
            out.update({f"{nic.name}_{side}": getattr(nic, f"{side}_octets"),
                        f"{nic.name}_{side}_packets": getattr(nic, f"{side}_packets"),
                        f"{nic.name}_{side}_errors": getattr(nic, f"{side}_errors"),
                        f"{nic.name}_{side}_drop": getattr(nic, f"{side}_drop")})
    if found.memory_max_mib is not None:
        out["memory"] = found.memory_max_mib * 1024
    if found.memory_used_mib is not None:
        out["memory-rss"] = found.memory_used_mib * 1024
    return {k: v for k, v in out.items() if v is not None}


async def diagnostics(request: Request) -> Response:
    found, config_drive = compute(request).actions.diagnostics(caller(request),
                                                               server_id(request))
    if version(request) >= (2, 48):
        return json_response(diagnostics_v248(found, config_drive))
    return json_response(diagnostics_legacy(found))


async def show_password(request: Request) -> Response:
    _server(request)
    return json_response({"password": ""})


async def clear_password(request: Request) -> Response:
    _server(request)
    return Response(status_code=204)


# -- migrations -----------------------------------------------------------------------------


async def list_server_migrations(request: Request) -> Response:
    _server(request)
    return json_response({"migrations": []})


async def show_server_migration(request: Request) -> Response:
    _server(request)
    migration = request.path_params["migration_id"]
    raise NotFound(f"Migration {migration} not found for instance {server_id(request)}.")


_SERVER = "/v2.1/servers/{server_id}"

routes = [
    Route(f"{_SERVER}/diagnostics", admin(diagnostics), methods=["GET"]),
    Route(f"{_SERVER}/os-server-password", reader(show_password), methods=["GET"]),
    Route(f"{_SERVER}/os-server-password", member(clear_password), methods=["DELETE"]),
    Route(f"{_SERVER}/migrations", admin(list_server_migrations), methods=["GET"]),
    Route(f"{_SERVER}/migrations/{{migration_id}}", admin(show_server_migration),
          methods=["GET", "DELETE"]),
]

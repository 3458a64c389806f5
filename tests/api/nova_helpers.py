"""Helpers for the Compute (Nova) API tests of flavors, key pairs, server groups,
quotas, hosts and usage (tests/api/test_compute_*.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from onestack.db.models import ComputeNode, ComputeService, Instance, utcnow
from tests.api.network_helpers import Tenant, tenant

__all__ = ["V21", "Tenant", "tenant", "nova", "nova_error", "ok", "add_host", "add_instance"]

V21 = "/compute/v2.1"


def nova(cloud, method: str, path: str, token: str | None = "admin",
         microversion: str | None = None, **kw: Any):
    """A request under /compute/v2.1 at a microversion (None: no header, i.e. 2.1)."""
    headers = dict(kw.pop("headers", {}) or {})
    if microversion:
        headers["OpenStack-API-Version"] = f"compute {microversion}"
    return cloud.request(method, f"{V21}{path}", token=token, headers=headers, **kw)


def ok(r, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def nova_error(r, status: int, *words: str) -> str:
    """A Nova fault body ``{"<fault>": {"code", "message"}}`` with this status (and
    words in its message); returns the message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert len(body) == 1, body
    fault = next(iter(body.values()))
    assert fault["code"] == status, body
    for word in words:
        assert word in fault["message"], fault["message"]
    return fault["message"]


def add_host(cloud, host: str, *, vcpus: int = 8, memory_mb: int = 16384, local_gb: int = 100,
             seen: dt.datetime | None = None, zone: str = "nova",
             hypervisor_hostname: str | None = None) -> tuple[ComputeService, ComputeNode]:
    """A nova-compute service and its compute node, as a host's agent registers them."""
    with cloud.services.db.session() as session:
        service = ComputeService(uuid=str(uuid.uuid4()), host=host, binary="nova-compute",
                                 availability_zone=zone,
                                 last_seen_at=seen if seen is not None else utcnow())
        node = ComputeNode(uuid=str(uuid.uuid4()), host=host,
                           hypervisor_hostname=hypervisor_hostname or f"{host}.example.org",
                           hypervisor_type="QEMU", hypervisor_version=8002000,
                           host_ip="192.0.2.10", vcpus=vcpus, memory_mb=memory_mb,
                           local_gb=local_gb, cpu_info={"arch": "x86_64", "model": "qemu64"})
        session.add_all([service, node])
    return service, node


def add_instance(cloud, project_id: str, user_id: str = "someone", **attrs: Any) -> Instance:
    """An instance row (what the servers service would write), defaults: running on no
    host, 1 vCPU, 512 MiB, 1 GiB, launched an hour ago."""
    now = utcnow()
    values: dict[str, Any] = {
        "uuid": str(uuid.uuid4()), "project_id": project_id, "user_id": user_id,
        "display_name": "vm", "vcpus": 1, "memory_mb": 512, "root_gb": 1, "ephemeral_gb": 0,
        "vm_state": "active", "power_state": 1, "flavor": {"name": "m1.tiny"},
        "created_at": now - dt.timedelta(hours=1), "launched_at": now - dt.timedelta(hours=1),
    }
    values.update(attrs)
    with cloud.services.db.session() as session:
        instance = Instance(**values)
        session.add(instance)
    return instance

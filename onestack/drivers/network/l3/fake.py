"""An in-memory L3 driver: the routers the Linux one would make, kept in
``<state_dir>/network-l3-fake.json``. It refuses what the Linux one refuses (bad ids,
MACs and addresses, a floating IP without a gateway). Tests look at ``routers`` and make
a call fail with ``record.fail_next``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.fake import FakeRecord
from onestack.drivers.network.l3.base import (
    FloatingIp,
    L3Driver,
    Route,
    RouterAdvert,
    RouterPort,
    RouterSpec,
)
from onestack.drivers.network.l3.check import check_router

STATE_FILE = "network-l3-fake.json"


def _port(data: dict[str, Any]) -> RouterPort:
    data = dict(data)
    data["advertise"] = [RouterAdvert(**a) for a in data.get("advertise", [])]
    return RouterPort(**data)


def router_from_dict(data: dict[str, Any]) -> RouterSpec:
    data = dict(data)
    data["interfaces"] = [_port(p) for p in data.get("interfaces", [])]
    data["gateway"] = _port(data["gateway"]) if data.get("gateway") else None
    data["routes"] = [Route(**r) for r in data.get("routes", [])]
    data["floating_ips"] = [FloatingIp(**f) for f in data.get("floating_ips", [])]
    return RouterSpec(**data)


class FakeL3(L3Driver):
    name = "fake"
    capabilities = {"routers": True, "static_routes": True, "snat": True,
                    "floating_ips": True, "ipv6_routing": True}

    def __init__(self, state_dir: Path | None = None, **_ignored: object) -> None:
        self.record = FakeRecord(L3Driver, state_dir, STATE_FILE)
        #: Router id -> the last spec ensured.
        self.routers: dict[str, RouterSpec] = {}
        data = self.record.load()
        if data is not None:
            self.routers = {k: router_from_dict(v) for k, v in data["routers"].items()}

    def _save(self) -> None:
        self.record.save({"routers": {k: asdict(v) for k, v in self.routers.items()}})

    def ensure_router(self, spec: RouterSpec) -> None:
        with self.record.lock:
            self.record.enter("ensure_router", spec.id)
            try:
                check_router(spec)
            except ValueError as exc:
                raise NetworkDriverError(f"router {spec.id}: {exc}") from exc
            self.routers[spec.id] = spec
            self._save()

    def remove_router(self, router_id: str) -> None:
        with self.record.lock:
            self.record.enter("remove_router", router_id)
            if self.routers.pop(router_id, None) is not None:
                self._save()

    def list_routers(self) -> list[str]:
        with self.record.lock:
            return sorted(self.routers)

    def cleanup(self) -> None:
        with self.record.lock:
            self.record.enter("cleanup", "")
            self.routers.clear()
            self.record.forget()

"""The L3 driver that routes nothing: for a host that runs no routers (a compute host
whose routers live elsewhere). It declares no capability and refuses every router, so
nothing is ever told it was routed."""

from __future__ import annotations

from onestack.drivers.network.base import NetworkDriverError
from onestack.drivers.network.l3.base import L3Driver, RouterSpec


class NoopL3(L3Driver):
    name = "noop"
    capabilities = {"routers": False, "static_routes": False, "snat": False,
                    "floating_ips": False, "ipv6_routing": False}

    def __init__(self, **_ignored: object) -> None:
        pass

    def ensure_router(self, spec: RouterSpec) -> None:
        raise NetworkDriverError(f"router {spec.id}: this host runs no routers "
                                 "(its L3 driver is noop)")

    def remove_router(self, router_id: str) -> None:
        pass

    def list_routers(self) -> list[str]:
        return []

    def cleanup(self) -> None:
        pass

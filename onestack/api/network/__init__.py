"""Networking v2.0 (Neutron) routes, mounted at /network.

Each resource module has its ``routes``; the generic tag routes
(``/v2.0/{collection}/{id}/tags``) come last so that specific routes win.
"""

from starlette.routing import Mount, Route

from onestack.api.network import (
    agents,
    auto_allocate,
    floating_ips,
    networks,
    ports,
    quotas,
    routers,
    security_groups,
    subnetpools,
    subnets,
    tags,
    versions,
)

routes = [
    Route("/network", versions.list_versions, methods=["GET"]),
    Mount("/network", routes=[
        *versions.routes,
        *networks.routes,
        *subnets.routes,
        *subnetpools.routes,
        *ports.routes,
        *security_groups.routes,
        *routers.routes,
        *agents.routes,
        *floating_ips.routes,
        *quotas.routes,
        *auto_allocate.routes,
        *tags.routes,
    ]),
]

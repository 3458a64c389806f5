"""Compute v2.1 (Nova) routes, mounted at /compute.

Every request under /compute goes through ``MicroversionMiddleware`` (negotiation, the
echo headers, Nova's fault body). Each resource module has its ``routes``.
"""

from starlette.middleware import Middleware
from starlette.routing import Mount

from onestack.api.compute import (
    aggregates,
    availability_zones,
    compute_services,
    consoles,
    extensions,
    flavors,
    hypervisors,
    images,
    instance_actions,
    interfaces,
    ips,
    keypairs,
    migrations,
    network_proxies,
    quotas,
    security_groups,
    server_actions,
    server_events,
    server_extras,
    server_groups,
    server_metadata,
    servers,
    usage,
    usage_audit,
    versions,
    volume_attachments,
    volumes_proxy,
)
from onestack.api.compute.microversion import MicroversionMiddleware

routes = [
    Mount("/compute", middleware=[Middleware(MicroversionMiddleware)], routes=[
        *versions.routes,
        *extensions.routes,
        *servers.routes,
        *server_actions.routes,
        *server_events.routes,
        *server_metadata.routes,
        *server_extras.routes,
        *migrations.routes,
        *interfaces.routes,
        *volume_attachments.routes,
        *volumes_proxy.routes,
        *instance_actions.routes,
        *consoles.routes,
        *ips.routes,
        *flavors.routes,
        *images.routes,
        *keypairs.routes,
        *server_groups.routes,
        *security_groups.routes,
        *quotas.routes,
        *availability_zones.routes,
        *aggregates.routes,
        *hypervisors.routes,
        *compute_services.routes,
        *usage.routes,
        *usage_audit.routes,
        *network_proxies.routes,
    ]),
]

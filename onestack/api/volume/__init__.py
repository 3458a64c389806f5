"""Block Storage v3 (Cinder) routes, mounted at /volume.

Every request under /volume goes through ``MicroversionMiddleware`` (negotiation, the
echo header, Cinder's fault body, URLs without a project id). Each module has its
``routes``; the service behind them is ``Services.volume``.
"""

from starlette.middleware import Middleware
from starlette.routing import Mount

from onestack.api.volume import (
    attachments,
    backups,
    groups,
    info,
    quotas,
    snapshots,
    transfers,
    types,
    versions,
    volumes,
)
from onestack.api.volume.microversion import MicroversionMiddleware

routes = [
    Mount("/volume", middleware=[Middleware(MicroversionMiddleware)], routes=[
        *versions.routes,
        *volumes.routes,
        *snapshots.routes,
        *types.routes,
        *quotas.routes,
        *attachments.routes,
        *transfers.routes,
        *info.routes,
        *groups.routes,
        *backups.routes,
    ]),
]

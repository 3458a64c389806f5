"""Image v2 (Glance) routes, mounted at /image."""

from starlette.routing import Mount

from onestack.api.image import (
    data,
    images,
    info,
    members,
    metadefs,
    schemas,
    tasks,
    versions,
)

routes = [
    *versions.root_routes,
    Mount("/image", routes=[*versions.routes, *images.routes, *data.routes,
                            *members.routes, *schemas.routes, *info.routes,
                            *tasks.routes, *metadefs.routes]),
]

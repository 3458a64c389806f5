"""Image v2 (Glance) routes, mounted at /image."""

from starlette.routing import Mount

routes = [Mount("/image", routes=[])]

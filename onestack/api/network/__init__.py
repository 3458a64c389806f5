"""Networking v2.0 (Neutron) routes, mounted at /network."""

from starlette.routing import Mount

routes = [Mount("/network", routes=[])]

"""The service catalog: regions, services and their endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.db.models import Endpoint, Region, Service
from onestack.services.identity.base import SubService, new_id

INTERFACES = ("public", "internal", "admin")


def substitute(url: str, project_id: str | None) -> str | None:
    """Fill ``$(project_id)s`` / ``$(tenant_id)s`` in an endpoint URL.

    Returns None when the URL needs a project and there is none (the endpoint is then
    left out of the catalog, as Keystone does).
    """
    if "$(" not in url:
        return url
    if project_id is None:
        return None
    return url.replace("$(project_id)s", project_id).replace("$(tenant_id)s", project_id)


class Catalog(SubService):
    def build(self, session: Session, project_id: str | None) -> list[dict[str, Any]]:
        """The ``catalog`` of a token body for a token scoped to ``project_id``."""
        services = list(session.scalars(
            select(Service).where(Service.enabled.is_(True)).order_by(Service.type)))
        endpoints: dict[str, list[Endpoint]] = {}
        for ep in session.scalars(select(Endpoint).where(Endpoint.enabled.is_(True))):
            endpoints.setdefault(ep.service_id, []).append(ep)
        catalog = []
        for service in services:
            eps = []
            for ep in endpoints.get(service.id, []):
                url = substitute(ep.url, project_id)
                if url is None:
                    continue
                eps.append({"id": ep.id, "interface": ep.interface, "region_id": ep.region_id,
                            "region": ep.region_id, "url": url})
            catalog.append({"id": service.id, "type": service.type, "name": service.name,
                            "endpoints": eps})
        return catalog

    def ensure_region(self, region_id: str, description: str = "") -> None:
        with self.db.session() as session:
            if session.get(Region, region_id) is None:
                session.add(Region(id=region_id, description=description))
                self.changed(session)

    def ensure_service(self, *, type: str, name: str, url: str, region_id: str,
                       description: str = "") -> Service:
        """Create or update a service and its three endpoints (bootstrap's way)."""
        with self.db.session() as session:
            service = session.scalar(select(Service).where(Service.type == type,
                                                           Service.name == name))
            if service is None:
                service = Service(id=new_id(), type=type, name=name, description=description,
                                  enabled=True, extra={})
                session.add(service)
                session.flush()
            existing = {ep.interface: ep for ep in session.scalars(
                select(Endpoint).where(Endpoint.service_id == service.id,
                                       Endpoint.region_id == region_id))}
            for interface in INTERFACES:
                ep = existing.get(interface)
                if ep is None:
                    session.add(Endpoint(id=new_id(), service_id=service.id,
                                         interface=interface, region_id=region_id, url=url,
                                         enabled=True, extra={}))
                elif ep.url != url:
                    ep.url = url
            self.changed(session)
            return service

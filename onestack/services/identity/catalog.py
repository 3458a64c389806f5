"""The service catalog: regions, services and their endpoints.

Behaviour follows Keystone: deleting a region deletes its child regions too, and is
refused (403) while it or any descendant still has endpoints; deleting a service deletes
its endpoints; an endpoint's ``region_id`` and ``service_id`` must exist (400), except
that the deprecated ``region`` attribute creates a missing region on the fly.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, InvalidField, NotFound
from onestack.db.models import Endpoint, Region, Service
from onestack.services.identity.base import SubService, apply_filters, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

INTERFACES = ("public", "internal", "admin")

#: ``$(name)s`` placeholders an endpoint URL may hold, as Keystone fills them.
_PLACEHOLDER = re.compile(r"\$\((\w+)\)s")
_PROJECT_KEYS = ("project_id", "tenant_id")
URL_KEYS = (*_PROJECT_KEYS, "user_id")


def substitute(url: str, project_id: str | None, user_id: str | None = None) -> str | None:
    """Fill ``$(project_id)s`` / ``$(tenant_id)s`` / ``$(user_id)s`` in an endpoint URL.

    Returns None when the URL needs a value that is not there (no project for a
    domain-scoped token) or holds an unknown placeholder: the endpoint is then left out
    of the catalog, as Keystone does.
    """
    if "$(" not in url:
        return url
    values = {"user_id": user_id}
    for key in _PROJECT_KEYS:
        values[key] = project_id
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return match.group(0)
        return value

    out = _PLACEHOLDER.sub(fill, url)
    if missing or "$(" in out:
        return None
    return out


def check_url(url: str, field: str) -> None:
    """Refuse URLs with placeholders Keystone could never fill (400 naming ``field``)."""
    rest = url
    while "$(" in rest:
        start = rest.index("$(")
        match = _PLACEHOLDER.match(rest, start)
        if match is None or match.group(1) not in URL_KEYS:
            raise InvalidField(field, f"{url!r} is not a valid endpoint URL: substitutions "
                                      f"may only be $(project_id)s, $(tenant_id)s or "
                                      f"$(user_id)s")
        rest = rest[match.end():]


class Catalog(SubService):
    def build(self, session: Session, project_id: str | None,
              user_id: str | None = None) -> list[dict[str, Any]]:
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
                url = substitute(ep.url, project_id, user_id)
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
                session.add(Region(id=region_id, description=description, extra={}))
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

    # -- regions --------------------------------------------------------------------

    def _check_parent(self, session: Session, region_id: str, parent_id: str | None) -> None:
        """The parent must exist (404) and must not make a cycle (400)."""
        if parent_id is None:
            return
        if session.get(Region, parent_id) is None:
            raise NotFound(f"Could not find region: {parent_id}.")
        seen: set[str] = set()
        current: str | None = parent_id
        while current is not None and current not in seen:
            if current == region_id:
                raise BadRequest(f"The specified parent region {parent_id} would create a "
                                 f"circular region hierarchy.")
            seen.add(current)
            parent = session.get(Region, current)
            current = parent.parent_region_id if parent else None

    def authorize_create_region(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create_region``, made before the request body is read."""
        authorize(ctx, "identity:create_region")

    def create_region(self, ctx: ValidatedToken | None = None, *, id: str | None = None,
                      description: str = "",
                      parent_region_id: str | None = None,
                      extra: dict[str, Any] | None = None) -> Region:
        self.authorize_create_region(ctx)
        region_id = id or new_id()
        with self.db.session() as session:
            if session.get(Region, region_id) is not None:
                raise Conflict(f"Conflict occurred attempting to store region - Duplicate "
                               f"ID, {region_id}.")
            self._check_parent(session, region_id, parent_region_id)
            region = Region(id=region_id, description=description,
                            parent_region_id=parent_region_id, extra=extra or {})
            session.add(region)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(f"Conflict occurred attempting to store region - Duplicate "
                               f"ID, {region_id}.") from None
            self.changed(session)
            return region

    def get_region(self, ctx: ValidatedToken | None, region_id: str) -> Region:
        authorize(ctx, "identity:get_region")
        with self.db.session() as session:
            return get_or_404(session, Region, region_id, "region")

    def list_regions(self, ctx: ValidatedToken | None, **filters: Any) -> list[Region]:
        authorize(ctx, "identity:list_regions")
        with self.db.session() as session:
            stmt = apply_filters(select(Region), Region, filters).order_by(Region.id)
            return list(session.scalars(stmt))

    def authorize_update_region(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``update_region``, made before the request body is read."""
        authorize(ctx, "identity:update_region")

    def update_region(self, ctx: ValidatedToken | None, region_id: str,
                      changes: dict[str, Any]) -> Region:
        self.authorize_update_region(ctx)
        with self.db.session() as session:
            region = get_or_404(session, Region, region_id, "region")
            if "parent_region_id" in changes:
                self._check_parent(session, region_id, changes["parent_region_id"])
                region.parent_region_id = changes["parent_region_id"]
            if "description" in changes:
                region.description = changes["description"] or ""
            extra = {k: v for k, v in changes.items()
                     if k not in ("id", "description", "parent_region_id")}
            if extra:
                region.extra = {**region.extra, **extra}
            self.changed(session)
            return region

    def delete_region(self, ctx: ValidatedToken | None, region_id: str) -> None:
        """Delete a region and its descendants; refused while any has endpoints."""
        authorize(ctx, "identity:delete_region")
        with self.db.session() as session:
            get_or_404(session, Region, region_id, "region")
            children: dict[str, list[str]] = {}
            for rid, parent in session.execute(select(Region.id, Region.parent_region_id)):
                if parent is not None:
                    children.setdefault(parent, []).append(rid)
            doomed: list[str] = []
            todo = [region_id]
            while todo:
                current = todo.pop()
                if current in doomed:
                    continue
                doomed.append(current)
                todo.extend(children.get(current, []))
            if session.scalar(select(Endpoint.id).where(Endpoint.region_id.in_(doomed))
                              .limit(1)):
                raise Forbidden(f"Unable to delete region {region_id} because it or its "
                                f"child regions have associated endpoints.")
            # leaves first, so that no row ever points at a deleted parent
            for rid in reversed(doomed):
                session.execute(delete(Region).where(Region.id == rid))
            self.changed(session)

    # -- services -------------------------------------------------------------------

    def authorize_create_service(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create_service``, made before the request body is read."""
        authorize(ctx, "identity:create_service")

    def create_service(self, ctx: ValidatedToken | None = None, *, type: str, name: str = "",
                       description: str = "",
                       enabled: bool = True, extra: dict[str, Any] | None = None) -> Service:
        self.authorize_create_service(ctx)
        with self.db.session() as session:
            service = Service(id=new_id(), type=type, name=name, description=description,
                              enabled=enabled, extra=extra or {})
            session.add(service)
            session.flush()
            self.changed(session)
            return service

    def get_service(self, ctx: ValidatedToken | None, service_id: str) -> Service:
        authorize(ctx, "identity:get_service")
        with self.db.session() as session:
            return get_or_404(session, Service, service_id, "service")

    def list_services(self, ctx: ValidatedToken | None, **filters: Any) -> list[Service]:
        authorize(ctx, "identity:list_services")
        with self.db.session() as session:
            stmt = apply_filters(select(Service), Service, filters).order_by(
                Service.type, Service.name, Service.id)
            return list(session.scalars(stmt))

    def authorize_update_service(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``update_service``, made before the request body is read."""
        authorize(ctx, "identity:update_service")

    def update_service(self, ctx: ValidatedToken | None, service_id: str,
                       changes: dict[str, Any]) -> Service:
        self.authorize_update_service(ctx)
        with self.db.session() as session:
            service = get_or_404(session, Service, service_id, "service")
            for key in ("type", "name", "description", "enabled"):
                if key in changes:
                    setattr(service, key, changes[key])
            extra = {k: v for k, v in changes.items()
                     if k not in ("id", "type", "name", "description", "enabled")}
            if extra:
                service.extra = {**service.extra, **extra}
            self.changed(session)
            return service

    def delete_service(self, ctx: ValidatedToken | None, service_id: str) -> None:
        """Delete a service and every endpoint of it."""
        authorize(ctx, "identity:delete_service")
        with self.db.session() as session:
            service = get_or_404(session, Service, service_id, "service")
            session.execute(delete(Endpoint).where(Endpoint.service_id == service_id))
            session.delete(service)
            self.changed(session)

    # -- endpoints ------------------------------------------------------------------

    def _check_endpoint_refs(self, session: Session, service_id: str | None,
                             region_id: str | None) -> None:
        if service_id is not None and session.get(Service, service_id) is None:
            raise InvalidField("endpoint/service_id",
                               f"could not find service {service_id} in the service table")
        if region_id is not None and session.get(Region, region_id) is None:
            raise InvalidField("endpoint/region_id",
                               f"could not find region {region_id} in the region table")

    def authorize_create_endpoint(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create_endpoint``, made before the request body is read."""
        authorize(ctx, "identity:create_endpoint")

    def create_endpoint(self, ctx: ValidatedToken | None = None, *, service_id: str,
                        interface: str, url: str,
                        region_id: str | None = None, legacy_region: str | None = None,
                        enabled: bool = True, extra: dict[str, Any] | None = None) -> Endpoint:
        """Create an endpoint. ``legacy_region`` is the deprecated ``region`` attribute:
        used when ``region_id`` is absent, and the region is created if missing."""
        self.authorize_create_endpoint(ctx)
        check_url(url, "endpoint/url")
        with self.db.session() as session:
            if region_id is None and legacy_region is not None:
                region_id = legacy_region
                if session.get(Region, region_id) is None:
                    session.add(Region(id=region_id, description="", extra={}))
                    session.flush()
            self._check_endpoint_refs(session, service_id, region_id)
            endpoint = Endpoint(id=new_id(), service_id=service_id, interface=interface,
                                url=url, region_id=region_id, enabled=enabled,
                                extra=extra or {})
            session.add(endpoint)
            session.flush()
            self.changed(session)
            return endpoint

    def get_endpoint(self, ctx: ValidatedToken | None, endpoint_id: str) -> Endpoint:
        authorize(ctx, "identity:get_endpoint")
        with self.db.session() as session:
            return get_or_404(session, Endpoint, endpoint_id, "endpoint")

    def list_endpoints(self, ctx: ValidatedToken | None, **filters: Any) -> list[Endpoint]:
        authorize(ctx, "identity:list_endpoints")
        with self.db.session() as session:
            stmt = apply_filters(select(Endpoint), Endpoint, filters).order_by(
                Endpoint.service_id, Endpoint.region_id, Endpoint.interface, Endpoint.id)
            return list(session.scalars(stmt))

    def authorize_update_endpoint(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``update_endpoint``, made before the request body is read."""
        authorize(ctx, "identity:update_endpoint")

    def update_endpoint(self, ctx: ValidatedToken | None, endpoint_id: str,
                        changes: dict[str, Any]) -> Endpoint:
        self.authorize_update_endpoint(ctx)
        changes = dict(changes)
        if "url" in changes:
            check_url(changes["url"], "endpoint/url")
        with self.db.session() as session:
            endpoint = get_or_404(session, Endpoint, endpoint_id, "endpoint")
            legacy = changes.pop("region", None)
            if "region_id" not in changes and legacy is not None:
                changes["region_id"] = legacy
                if session.get(Region, legacy) is None:
                    session.add(Region(id=legacy, description="", extra={}))
                    session.flush()
            self._check_endpoint_refs(session, changes.get("service_id"),
                                      changes.get("region_id"))
            for key in ("service_id", "interface", "url", "region_id", "enabled"):
                if key in changes:
                    setattr(endpoint, key, changes[key])
            extra = {k: v for k, v in changes.items()
                     if k not in ("id", "service_id", "interface", "url", "region_id",
                                  "enabled")}
            if extra:
                endpoint.extra = {**endpoint.extra, **extra}
            self.changed(session)
            return endpoint

    def delete_endpoint(self, ctx: ValidatedToken | None, endpoint_id: str) -> None:
        authorize(ctx, "identity:delete_endpoint")
        with self.db.session() as session:
            endpoint = get_or_404(session, Endpoint, endpoint_id, "endpoint")
            session.delete(endpoint)
            self.changed(session)

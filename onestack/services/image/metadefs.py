"""Metadata definitions (Glance's metadefs): a catalog of the properties resources may
carry (an image's ``hw_*`` keys, a flavor's extra specs, ...), grouped in namespaces
that hold properties, objects (named groups of properties), tags and the resource
types they apply to.

It is a catalog and nothing else, in Glance as here: it describes keys for user
interfaces and tools; nothing in the cloud enforces it. As in Glance's default policy,
administrators write it; any project reads the public namespaces and its own private
ones (an administrator reads all).
"""

from __future__ import annotations

import builtins
import copy
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, Forbidden, InvalidField, NotFound
from onestack.db import Database
from onestack.db.models import utcnow
from onestack.db.models.metadefs import MetadefNamespace
from onestack.services.identity.context import ValidatedToken

#: The resource types Glance seeds, those OneStack's services have (associations may
#: name others, which then join the list).
RESOURCE_TYPES = ("OS::Cinder::Snapshot", "OS::Cinder::Volume", "OS::Glance::Image",
                  "OS::Nova::Aggregate", "OS::Nova::Flavor", "OS::Nova::Server")
PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string")
VISIBILITIES = ("public", "private")
NAME_MAX = 80


def stamp(moment: dt.datetime | None = None) -> str:
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(path, "must be a non-empty string")
    if len(value) > NAME_MAX:
        raise InvalidField(path, f"is longer than {NAME_MAX} characters")
    if "\x00" in value or "/" in value:
        raise InvalidField(path, "must not contain '/' or NUL characters")
    return value


def _opt_str(body: dict[str, Any], key: str, path: str, maximum: int = 65535) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > maximum:
        raise InvalidField(f"{path}/{key}", f"must be a string of at most {maximum} "
                                            "characters")
    return value


def check_property(body: Any, path: str, named: bool = True) -> tuple[str | None, dict]:
    """A property definition (a small JSON schema): its name and the rest."""
    if not isinstance(body, dict):
        raise InvalidField(path, "must be an object")
    prop = dict(body)
    name = _name(prop.pop("name", None), f"{path}/name") if named else None
    if not isinstance(prop.get("title"), str) or not prop["title"]:
        raise InvalidField(f"{path}/title", "is a required string")
    if prop.get("type") not in PROPERTY_TYPES:
        raise InvalidField(f"{path}/type", f"must be one of {', '.join(PROPERTY_TYPES)}")
    enum = prop.get("enum")
    if enum is not None and (not isinstance(enum, list) or len(set(map(repr, enum)))
                             != len(enum)):
        raise InvalidField(f"{path}/enum", "must be a list of distinct values")
    return name, prop


def _properties(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField(path, "must be an object of property definitions")
    out: dict[str, Any] = {}
    for name, prop in value.items():
        _name(name, f"{path}/{name}")
        out[name] = check_property(prop, f"{path}/{name}", named=False)[1]
    return out


def _object(body: Any, path: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise InvalidField(path, "must be an object")
    unknown = set(body) - {"name", "description", "required", "properties", "schema",
                           "self", "created_at", "updated_at"}
    if unknown:
        raise InvalidField(f"{path}/{sorted(unknown)[0]}", "is not an attribute of an object")
    name = _name(body.get("name"), f"{path}/name")
    required = body.get("required") or []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InvalidField(f"{path}/required", "must be a list of property names")
    return name, {"description": _opt_str(body, "description", path),
                  "required": required,
                  "properties": _properties(body.get("properties"), f"{path}/properties")}


def _association(body: Any, path: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise InvalidField(path, "must be an object")
    name = _name(body.get("name"), f"{path}/name")
    return name, {"prefix": _opt_str(body, "prefix", path, 80),
                  "properties_target": _opt_str(body, "properties_target", path, 80)}


class Metadefs:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- namespaces -------------------------------------------------------------------

    @staticmethod
    def _visible(ctx: ValidatedToken, ns: MetadefNamespace) -> bool:
        return ctx.is_admin or ns.visibility == "public" or ns.owner == ctx.project_id

    def _get(self, session: Session, ctx: ValidatedToken, namespace: str,
             write: bool = False) -> MetadefNamespace:
        ns = session.get(MetadefNamespace, namespace)
        if ns is None or not self._visible(ctx, ns):
            raise NotFound(f"Metadata definition namespace={namespace} was not found.")
        if write and not ctx.is_admin:
            raise Forbidden("You are not authorized to change metadata definitions.")
        return ns

    def _fields(self, ctx: ValidatedToken, body: dict[str, Any]) -> dict[str, Any]:
        visibility = body.get("visibility", "private")
        if visibility not in VISIBILITIES:
            raise InvalidField("visibility", "must be public or private")
        protected = body.get("protected", False)
        if not isinstance(protected, bool):
            raise InvalidField("protected", "must be a boolean")
        owner = body.get("owner") or ctx.project_id or ctx.user_id
        if not isinstance(owner, str) or len(owner) > 255:
            raise InvalidField("owner", "must be a string")
        return {"namespace": _name(body.get("namespace"), "namespace"),
                "display_name": _opt_str(body, "display_name", "", NAME_MAX),
                "description": _opt_str(body, "description", "", 500),
                "visibility": visibility, "protected": protected, "owner": owner}

    def create_namespace(self, ctx: ValidatedToken, body: dict[str, Any]
                         ) -> MetadefNamespace:
        fields = self._fields(ctx, body)
        now = utcnow()
        when = {"created_at": stamp(now), "updated_at": stamp(now)}
        associations = {}
        for i, assoc in enumerate(body.get("resource_type_associations") or []):
            name, value = _association(assoc, f"resource_type_associations/{i}")
            associations[name] = {**value, **when}
        objects = {}
        for i, obj in enumerate(body.get("objects") or []):
            name, value = _object(obj, f"objects/{i}")
            objects[name] = {**value, **when}
        tags = {}
        for i, tag in enumerate(body.get("tags") or []):
            tags[_name(tag.get("name") if isinstance(tag, dict) else None,
                       f"tags/{i}/name")] = dict(when)
        ns = MetadefNamespace(**fields, properties=_properties(body.get("properties"),
                                                                "properties"),
                              objects=objects, tags=tags, resource_types=associations,
                              created_at=now, updated_at=now)
        with self.db.session() as session:
            if session.get(MetadefNamespace, fields["namespace"]) is not None:
                raise Conflict(f"A metadata definition namespace with name="
                               f"{fields['namespace']} already exists.")
            session.add(ns)
            session.flush()
            session.expunge(ns)
        return ns

    def list_namespaces(self, ctx: ValidatedToken, visibility: str | None = None,
                        resource_types: builtins.list[str] | None = None
                        ) -> builtins.list[MetadefNamespace]:
        if visibility is not None and visibility not in VISIBILITIES:
            raise BadRequest(f"Invalid visibility value: {visibility}")
        with self.db.session() as session:
            rows = list(session.scalars(select(MetadefNamespace)
                                        .order_by(MetadefNamespace.namespace)))
        out = [ns for ns in rows if self._visible(ctx, ns)
               and (visibility is None or ns.visibility == visibility)]
        if resource_types:
            out = [ns for ns in out if set(resource_types) & set(ns.resource_types)]
        return out

    def get_namespace(self, ctx: ValidatedToken, namespace: str) -> MetadefNamespace:
        with self.db.session() as session:
            ns = self._get(session, ctx, namespace)
            session.expunge(ns)
            return ns

    def update_namespace(self, ctx: ValidatedToken, namespace: str,
                         body: dict[str, Any]) -> MetadefNamespace:
        with self.db.session() as session:
            ns = self._get(session, ctx, namespace, write=True)
            fields = self._fields(ctx, {"owner": ns.owner, **body})
            if fields["namespace"] != namespace:
                if session.get(MetadefNamespace, fields["namespace"]) is not None:
                    raise Conflict(f"A metadata definition namespace with name="
                                   f"{fields['namespace']} already exists.")
                moved = MetadefNamespace(
                    **fields, properties=ns.properties, objects=ns.objects, tags=ns.tags,
                    resource_types=ns.resource_types, created_at=ns.created_at,
                    updated_at=utcnow())
                session.delete(ns)
                session.flush()
                session.add(moved)
                ns = moved
            else:
                for key, value in fields.items():
                    setattr(ns, key, value)
                ns.updated_at = utcnow()
            session.flush()
            session.expunge(ns)
            return ns

    def delete_namespace(self, ctx: ValidatedToken, namespace: str) -> None:
        with self.db.session() as session:
            ns = self._get(session, ctx, namespace, write=True)
            if ns.protected:
                raise Forbidden(f"Namespace {namespace} is protected and cannot be "
                                "deleted.")
            session.delete(ns)

    # -- the parts of a namespace ---------------------------------------------------------

    def _part(self, ctx: ValidatedToken, namespace: str, kind: str, name: str | None
              ) -> tuple[MetadefNamespace, dict[str, Any]]:
        with self.db.session() as session:
            ns = self._get(session, ctx, namespace)
            session.expunge(ns)
        part = copy.deepcopy(getattr(ns, kind))
        if name is not None and name not in part:
            what = {"objects": "object", "properties": "property", "tags": "tag",
                    "resource_types": "resource type association"}[kind]
            raise NotFound(f"Metadata definition {what} {name} was not found in "
                           f"namespace {namespace}.")
        return ns, part

    def _write_part(self, ctx: ValidatedToken, namespace: str, kind: str,
                    change: Any) -> Any:
        """Apply ``change(part)`` (which edits the dict and returns a result) to one
        part of a namespace, as an administrator."""
        with self.db.session() as session:
            ns = self._get(session, ctx, namespace, write=True)
            part = copy.deepcopy(getattr(ns, kind))
            result = change(part)
            setattr(ns, kind, part)
            ns.updated_at = utcnow()
            return result

    def list_part(self, ctx: ValidatedToken, namespace: str, kind: str) -> dict[str, Any]:
        return self._part(ctx, namespace, kind, None)[1]

    def get_part(self, ctx: ValidatedToken, namespace: str, kind: str, name: str
                 ) -> dict[str, Any]:
        return self._part(ctx, namespace, kind, name)[1][name]

    def delete_part(self, ctx: ValidatedToken, namespace: str, kind: str,
                    name: str | None) -> None:
        self._part(ctx, namespace, kind, name)  # 404s first

        def change(part: dict[str, Any]) -> None:
            if name is None:
                part.clear()
            else:
                part.pop(name, None)
        self._write_part(ctx, namespace, kind, change)

    def put_object(self, ctx: ValidatedToken, namespace: str, body: Any,
                   old_name: str | None = None) -> tuple[str, dict[str, Any]]:
        return self._put(ctx, namespace, "objects", _object(body, "object"), old_name)

    def put_property(self, ctx: ValidatedToken, namespace: str, body: Any,
                     old_name: str | None = None) -> tuple[str, dict[str, Any]]:
        name, prop = check_property(body, "property")
        assert name is not None
        return self._put(ctx, namespace, "properties", (name, prop), old_name, stamp_it=False)

    def put_association(self, ctx: ValidatedToken, namespace: str, body: Any
                        ) -> tuple[str, dict[str, Any]]:
        return self._put(ctx, namespace, "resource_types",
                         _association(body, "resource_type_association"), None)

    def put_tag(self, ctx: ValidatedToken, namespace: str, name: Any,
                old_name: str | None = None) -> tuple[str, dict[str, Any]]:
        return self._put(ctx, namespace, "tags", (_name(name, "name"), {}), old_name)

    def _put(self, ctx: ValidatedToken, namespace: str, kind: str,
             item: tuple[str, dict[str, Any]], old_name: str | None,
             stamp_it: bool = True) -> tuple[str, dict[str, Any]]:
        """Create (``old_name`` None) or replace (and perhaps rename) one entry."""
        name, value = item
        if old_name is not None:
            self._part(ctx, namespace, kind, old_name)  # 404 if absent

        def change(part: dict[str, Any]) -> dict[str, Any]:
            now = stamp()
            if old_name is None:
                if name in part:
                    raise Conflict(f"A metadata definition with name={name} already "
                                   f"exists in namespace={namespace}.")
                created = now
            else:
                if name != old_name and name in part:
                    raise Conflict(f"A metadata definition with name={name} already "
                                   f"exists in namespace={namespace}.")
                created = part.pop(old_name, {}).get("created_at", now)
            entry = dict(value)
            if stamp_it:
                entry.update(created_at=created, updated_at=now)
            part[name] = entry
            return entry
        return name, self._write_part(ctx, namespace, kind, change)

    def replace_tags(self, ctx: ValidatedToken, namespace: str, names: builtins.list[str],
                     append: bool) -> builtins.list[str]:
        checked = [_name(n, f"tags/{i}/name") for i, n in enumerate(names)]
        if len(set(checked)) != len(checked):
            raise Conflict("Duplicate tags in the request.")

        def change(part: dict[str, Any]) -> builtins.list[str]:
            if not append:
                part.clear()
            for n in checked:
                if n in part:
                    raise Conflict(f"A metadata tag with name={n} already exists in "
                                   f"namespace={namespace}.")
                part[n] = {"created_at": stamp(), "updated_at": stamp()}
            return checked
        result: builtins.list[str] = self._write_part(ctx, namespace, "tags", change)
        return result

    # -- resource types -----------------------------------------------------------------

    def resource_types(self, ctx: ValidatedToken) -> builtins.list[dict[str, Any]]:
        """The known resource types and every one an association names."""
        seen: dict[str, dict[str, Any]] = {name: {} for name in RESOURCE_TYPES}
        for ns in self.list_namespaces(ctx):
            for name, assoc in ns.resource_types.items():
                seen.setdefault(name, assoc)
        epoch = stamp(dt.datetime(2026, 1, 1))
        return [{"name": name, "created_at": value.get("created_at", epoch),
                 "updated_at": value.get("updated_at", epoch)}
                for name, value in sorted(seen.items())]

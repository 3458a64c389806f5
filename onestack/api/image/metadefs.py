"""/v2/metadefs/...: metadata definitions (namespaces, their objects, properties, tags
and resource type associations), and their schemas under /v2/schemas/metadefs/."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response, no_content, read_json
from onestack.api.image.common import images, isotime
from onestack.api.image.policy import admin, reader
from onestack.common.errors import InvalidField
from onestack.db.models.metadefs import MetadefNamespace
from onestack.services.image.metadefs import PROPERTY_TYPES, VISIBILITIES

NS = "/v2/metadefs/namespaces"


def _ns_href(name: str) -> str:
    return f"{NS}/{name}"


def _assoc(name: str, value: dict[str, Any]) -> dict[str, Any]:
    out = {"name": name, **value}
    return {k: v for k, v in out.items() if v is not None}


def _object(namespace: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    out = {"name": name, **value, "schema": "/v2/schemas/metadefs/object",
           "self": f"{_ns_href(namespace)}/objects/{name}"}
    return {k: v for k, v in out.items() if v is not None}


def _tag(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **value}


def render_namespace(ns: MetadefNamespace, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "namespace": ns.namespace, "display_name": ns.display_name,
        "description": ns.description, "visibility": ns.visibility,
        "protected": ns.protected, "owner": ns.owner,
        "created_at": isotime(ns.created_at), "updated_at": isotime(ns.updated_at),
        "schema": "/v2/schemas/metadefs/namespace", "self": _ns_href(ns.namespace)}
    body = {k: v for k, v in body.items() if v is not None}
    if ns.resource_types:
        body["resource_type_associations"] = [_assoc(n, v)
                                              for n, v in sorted(ns.resource_types.items())]
    if full:
        if ns.properties:
            body["properties"] = ns.properties
        if ns.objects:
            body["objects"] = [_object(ns.namespace, n, v)
                               for n, v in sorted(ns.objects.items())]
        if ns.tags:
            body["tags"] = [{"name": n} for n in sorted(ns.tags)]
    return body


# -- namespaces ---------------------------------------------------------------------------


async def create_namespace(request: Request) -> Response:
    ns = images(request).metadefs.create_namespace(caller(request), await read_json(request))
    return json_response(render_namespace(ns), status=201)


async def list_namespaces(request: Request) -> Response:
    q = request.query_params
    kinds = [t for t in (q.get("resource_types") or "").split(",") if t]
    found = images(request).metadefs.list_namespaces(
        caller(request), visibility=q.get("visibility"), resource_types=kinds or None)
    return json_response({"namespaces": [render_namespace(ns, full=False) for ns in found],
                          "first": NS, "schema": "/v2/schemas/metadefs/namespaces"})


async def show_namespace(request: Request) -> Response:
    ns = images(request).metadefs.get_namespace(caller(request),
                                                request.path_params["namespace"])
    return json_response(render_namespace(ns))


async def update_namespace(request: Request) -> Response:
    ns = images(request).metadefs.update_namespace(
        caller(request), request.path_params["namespace"], await read_json(request))
    return json_response(render_namespace(ns))


async def delete_namespace(request: Request) -> Response:
    images(request).metadefs.delete_namespace(caller(request),
                                              request.path_params["namespace"])
    return no_content()


# -- objects, properties, tags, resource type associations -----------------------------------


def _parts(kind: str, render: Any, list_key: str, schema: str, param: str
           ) -> dict[str, Any]:
    """List, show, delete and delete-all of one kind of namespace part."""

    async def list_(request: Request) -> Response:
        namespace = request.path_params["namespace"]
        part = images(request).metadefs.list_part(caller(request), namespace, kind)
        return json_response({list_key: render(namespace, part),
                              "schema": f"/v2/schemas/metadefs/{schema}"})

    async def show(request: Request) -> Response:
        p = request.path_params
        value = images(request).metadefs.get_part(caller(request), p["namespace"], kind,
                                                  p[param])
        return json_response(render(p["namespace"], {p[param]: value}, one=True))

    async def delete(request: Request) -> Response:
        p = request.path_params
        images(request).metadefs.delete_part(caller(request), p["namespace"], kind,
                                             p.get(param))
        return no_content()

    return {"list": list_, "show": show, "delete": delete}


def _render_objects(namespace: str, part: dict[str, Any], one: bool = False) -> Any:
    items = [_object(namespace, n, v) for n, v in sorted(part.items())]
    return items[0] if one else items


def _render_properties(namespace: str, part: dict[str, Any], one: bool = False) -> Any:
    if one:
        [(name, value)] = part.items()
        return {"name": name, **value}
    return part


def _render_tags(namespace: str, part: dict[str, Any], one: bool = False) -> Any:
    items = [_tag(n, v) for n, v in sorted(part.items())]
    return items[0] if one else items


def _render_assocs(namespace: str, part: dict[str, Any], one: bool = False) -> Any:
    items = [_assoc(n, v) for n, v in sorted(part.items())]
    return items[0] if one else items


OBJECTS = _parts("objects", _render_objects, "objects", "objects", "object_name")
PROPERTIES = _parts("properties", _render_properties, "properties", "properties",
                    "property_name")
TAGS = _parts("tags", _render_tags, "tags", "tags", "tag_name")
ASSOCS = _parts("resource_types", _render_assocs, "resource_type_associations",
                "resource_type_associations", "resource_type")


async def create_object(request: Request) -> Response:
    namespace = request.path_params["namespace"]
    name, value = images(request).metadefs.put_object(caller(request), namespace,
                                                      await read_json(request))
    return json_response(_object(namespace, name, value), status=201)


async def update_object(request: Request) -> Response:
    p = request.path_params
    name, value = images(request).metadefs.put_object(
        caller(request), p["namespace"], await read_json(request), p["object_name"])
    return json_response(_object(p["namespace"], name, value))


async def create_property(request: Request) -> Response:
    name, value = images(request).metadefs.put_property(
        caller(request), request.path_params["namespace"], await read_json(request))
    return json_response({"name": name, **value}, status=201)


async def update_property(request: Request) -> Response:
    p = request.path_params
    name, value = images(request).metadefs.put_property(
        caller(request), p["namespace"], await read_json(request), p["property_name"])
    return json_response({"name": name, **value})


async def create_tag(request: Request) -> Response:
    p = request.path_params
    name, value = images(request).metadefs.put_tag(caller(request), p["namespace"],
                                                   p["tag_name"])
    return json_response(_tag(name, value), status=201)


async def update_tag(request: Request) -> Response:
    p = request.path_params
    body = await read_json(request)
    name, value = images(request).metadefs.put_tag(caller(request), p["namespace"],
                                                   body.get("name"), p["tag_name"])
    return json_response(_tag(name, value))


async def create_tags(request: Request) -> Response:
    body = await read_json(request)
    tags = body.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise InvalidField("tags", "must be a list of objects with a name")
    append = request.headers.get("x-openstack-append", "").lower() == "true"
    names = images(request).metadefs.replace_tags(
        caller(request), request.path_params["namespace"], [t.get("name") for t in tags],
        append)
    return json_response({"tags": [{"name": n} for n in names]}, status=201)


async def create_association(request: Request) -> Response:
    name, value = images(request).metadefs.put_association(
        caller(request), request.path_params["namespace"], await read_json(request))
    return json_response(_assoc(name, value), status=201)


async def list_resource_types(request: Request) -> Response:
    return json_response({"resource_types":
                          images(request).metadefs.resource_types(caller(request))})


# -- schemas --------------------------------------------------------------------------------


def _s(type_: Any, **extra: Any) -> dict[str, Any]:
    return {"type": type_, **extra}


_PROPERTY = {
    "name": _s("string", maxLength=80), "title": _s("string"), "description": _s("string"),
    "type": _s("string", enum=list(PROPERTY_TYPES)), "default": {},
    "readonly": _s("boolean"), "operators": _s("array", items=_s("string")),
    "enum": _s("array"), "minimum": _s("number"), "maximum": _s("number"),
    "minLength": _s("integer", minimum=0), "maxLength": _s("integer", minimum=0),
    "pattern": _s("string", format="regex"), "items": _s("object"),
    "uniqueItems": _s("boolean", default=False),
    "minItems": _s("integer", minimum=0), "maxItems": _s("integer", minimum=0),
    "additionalItems": _s("boolean"),
}
_STAMPS = {"created_at": _s("string", readOnly=True, format="date-time"),
           "updated_at": _s("string", readOnly=True, format="date-time")}
_ASSOC = {"name": _s("string", maxLength=80), "prefix": _s("string", maxLength=80),
          "properties_target": _s("string", maxLength=80), **_STAMPS}
_TAG = {"name": _s("string", maxLength=80), **_STAMPS}
_OBJECT = {"name": _s("string", maxLength=80), "description": _s("string"),
           "required": _s("array", items=_s("string")),
           "properties": _s("object", additionalProperties=_s("object")),
           "schema": _s("string", readOnly=True), "self": _s("string", readOnly=True),
           **_STAMPS}
_NAMESPACE = {
    "namespace": _s("string", maxLength=80), "display_name": _s("string", maxLength=80),
    "description": _s("string", maxLength=500),
    "visibility": _s("string", enum=list(VISIBILITIES)), "protected": _s("boolean"),
    "owner": _s("string", maxLength=255),
    "resource_type_associations": _s("array", items=_s("object", properties=_ASSOC)),
    "properties": _s("object", additionalProperties=_s("object", properties=_PROPERTY)),
    "objects": _s("array", items=_s("object", properties=_OBJECT)),
    "tags": _s("array", items=_s("object", properties=_TAG)),
    "schema": _s("string", readOnly=True), "self": _s("string", readOnly=True), **_STAMPS,
}


def _one(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"name": name, "properties": properties, "required": required,
            "additionalProperties": False}


def _many(name: str, item: dict[str, Any], key: str) -> dict[str, Any]:
    return {"name": name, "properties": {
        key: _s("array", items=item), "first": _s("string"), "next": _s("string"),
        "schema": _s("string")}, "links": [{"rel": "first", "href": "{first}"},
                                           {"rel": "next", "href": "{next}"},
                                           {"rel": "describedby", "href": "{schema}"}]}


SCHEMAS: dict[str, dict[str, Any]] = {
    "namespace": _one("namespace", _NAMESPACE, ["namespace"]),
    "namespaces": _many("namespaces", _one("namespace", _NAMESPACE, ["namespace"]),
                        "namespaces"),
    "object": _one("object", _OBJECT, ["name"]),
    "objects": _many("objects", _one("object", _OBJECT, ["name"]), "objects"),
    "property": _one("property", _PROPERTY, ["name", "title", "type"]),
    "properties": {"name": "properties", "properties": {
        "properties": _s("object", additionalProperties=_s("object", properties=_PROPERTY)),
        "schema": _s("string")}},
    "tag": _one("tag", _TAG, ["name"]),
    "tags": _many("tags", _one("tag", _TAG, ["name"]), "tags"),
    "resource_type": _one("resource_type_association", _ASSOC, ["name"]),
    "resource_types": _many("resource_type_associations",
                            _one("resource_type_association", _ASSOC, ["name"]),
                            "resource_type_associations"),
}


def _schema_route(name: str) -> Route:
    async def show(request: Request) -> Response:
        caller(request)
        return json_response(SCHEMAS[name])
    return Route(f"/v2/schemas/metadefs/{name}", show, methods=["GET"])


_ONE = f"{NS}/{{namespace}}"
_OBJ = f"{_ONE}/objects/{{object_name}}"
_PROP = f"{_ONE}/properties/{{property_name}}"
_TAG_ONE = f"{_ONE}/tags/{{tag_name}}"
routes = [
    Route(NS, admin(create_namespace), methods=["POST"]),
    Route(NS, reader(list_namespaces), methods=["GET"]),
    Route(_ONE, reader(show_namespace), methods=["GET"]),
    Route(_ONE, admin(update_namespace), methods=["PUT"]),
    Route(_ONE, admin(delete_namespace), methods=["DELETE"]),
    Route(f"{_ONE}/objects", admin(create_object), methods=["POST"]),
    Route(f"{_ONE}/objects", reader(OBJECTS["list"]), methods=["GET"]),
    Route(f"{_ONE}/objects", admin(OBJECTS["delete"]), methods=["DELETE"]),
    Route(_OBJ, reader(OBJECTS["show"]), methods=["GET"]),
    Route(_OBJ, admin(update_object), methods=["PUT"]),
    Route(_OBJ, admin(OBJECTS["delete"]), methods=["DELETE"]),
    Route(f"{_ONE}/properties", admin(create_property), methods=["POST"]),
    Route(f"{_ONE}/properties", reader(PROPERTIES["list"]), methods=["GET"]),
    Route(f"{_ONE}/properties", admin(PROPERTIES["delete"]), methods=["DELETE"]),
    Route(_PROP, reader(PROPERTIES["show"]), methods=["GET"]),
    Route(_PROP, admin(update_property), methods=["PUT"]),
    Route(_PROP, admin(PROPERTIES["delete"]), methods=["DELETE"]),
    Route(f"{_ONE}/tags", admin(create_tags), methods=["POST"]),
    Route(f"{_ONE}/tags", reader(TAGS["list"]), methods=["GET"]),
    Route(f"{_ONE}/tags", admin(TAGS["delete"]), methods=["DELETE"]),
    Route(_TAG_ONE, admin(create_tag), methods=["POST"]),
    Route(_TAG_ONE, reader(TAGS["show"]), methods=["GET"]),
    Route(_TAG_ONE, admin(update_tag), methods=["PUT"]),
    Route(_TAG_ONE, admin(TAGS["delete"]), methods=["DELETE"]),
    Route(f"{_ONE}/resource_types", admin(create_association), methods=["POST"]),
    Route(f"{_ONE}/resource_types", reader(ASSOCS["list"]), methods=["GET"]),
    Route(f"{_ONE}/resource_types/{{resource_type}}", admin(ASSOCS["delete"]),
          methods=["DELETE"]),
    Route("/v2/metadefs/resource_types", reader(list_resource_types), methods=["GET"]),
    *(_schema_route(name) for name in SCHEMAS),
]

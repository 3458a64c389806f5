"""/v2/schemas/image(s) and /v2/schemas/member(s): JSON schemas of the bodies this API
returns, as Glance publishes them (clients such as glanceclient build their models
from them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.api.common import caller, json_response
from onestack.services.image import fields

_UUID = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"


def _prop(type_: Any, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "description": description, **extra}


def image_schema() -> dict[str, Any]:
    read_only = {"readOnly": True}
    properties = {
        "id": _prop("string", "An identifier for the image", pattern=_UUID),
        "name": _prop(["null", "string"], "Descriptive name for the image", maxLength=255),
        "status": _prop("string", "Status of the image", enum=list(fields.STATUSES),
                        **read_only),
        "visibility": _prop("string", "Scope of image accessibility",
                            enum=list(fields.VISIBILITIES)),
        "protected": _prop("boolean", "If true, image will not be deletable."),
        "os_hidden": _prop("boolean", "If true, image will not appear in default image "
                                      "list response."),
        "checksum": _prop(["null", "string"], "md5 hash of image contents.", maxLength=32,
                          **read_only),
        "os_hash_algo": _prop(["null", "string"], "Algorithm to calculate the "
                              "os_hash_value", maxLength=64, **read_only),
        "os_hash_value": _prop(["null", "string"], "Hexdigest of the image contents "
                               "using the algorithm specified by the os_hash_algo",
                               maxLength=128, **read_only),
        "owner": _prop(["null", "string"], "Owner of the image", maxLength=255),
        "size": _prop(["null", "integer"], "Size of image file in bytes", **read_only),
        "virtual_size": _prop(["null", "integer"], "Virtual size of image in bytes",
                              **read_only),
        "container_format": _prop(["null", "string"], "Format of the container",
                                  enum=[None, *fields.CONTAINER_FORMATS]),
        "disk_format": _prop(["null", "string"], "Format of the disk",
                             enum=[None, *fields.DISK_FORMATS]),
        "created_at": _prop("string", "Date and time of image registration", **read_only),
        "updated_at": _prop("string", "Date and time of the last image modification",
                            **read_only),
        "tags": _prop("array", "List of strings related to the image",
                      items={"type": "string", "maxLength": 255}),
        "min_ram": _prop("integer", "Amount of ram (in MB) required to boot image."),
        "min_disk": _prop("integer", "Amount of disk space (in GB) required to boot "
                                     "image."),
        "self": _prop("string", "An image self url", **read_only),
        "file": _prop("string", "An image file url", **read_only),
        "stores": _prop("string", "Store in which image data resides.", **read_only),
        "schema": _prop("string", "An image schema url", **read_only),
    }
    return {
        "name": "image",
        "properties": properties,
        "additionalProperties": {"type": "string"},
        "links": [{"rel": "self", "href": "{self}"},
                  {"rel": "enclosure", "href": "{file}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {name: {"type": "array", "items": item},
                       "schema": {"type": "string"}, "first": {"type": "string"},
                       "next": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def member_schema() -> dict[str, Any]:
    return {
        "name": "member",
        "properties": {
            "created_at": _prop("string", "Date and time of image member creation"),
            "image_id": _prop("string", "An identifier for the image", pattern=_UUID),
            "member_id": _prop("string", "An identifier for the image member (tenantId)"),
            "schema": {"type": "string", "readOnly": True},
            "status": _prop("string", "The status of this image member",
                            enum=list(fields.MEMBER_STATUSES)),
            "updated_at": _prop("string", "Date and time of last modification of image "
                                          "member"),
        },
    }


async def show_image_schema(request: Request) -> Response:
    caller(request)
    return json_response(image_schema())


async def show_images_schema(request: Request) -> Response:
    caller(request)
    return json_response(collection("images", image_schema()))


async def show_member_schema(request: Request) -> Response:
    caller(request)
    return json_response(member_schema())


async def show_members_schema(request: Request) -> Response:
    caller(request)
    return json_response(collection("members", member_schema()))


routes = [
    Route("/v2/schemas/image", show_image_schema, methods=["GET"]),
    Route("/v2/schemas/images", show_images_schema, methods=["GET"]),
    Route("/v2/schemas/member", show_member_schema, methods=["GET"]),
    Route("/v2/schemas/members", show_members_schema, methods=["GET"]),
]

"""What an image's fields may hold: Glance's base properties, which of them a user may
set, and the rules for free-form properties and tags.

Glance's answers carry over: an unknown value or a wrong type is a 400, an attempt to
set a field the service manages (``status``, ``checksum``, ...) or a reserved name is a
403.
"""

from __future__ import annotations

import re
from typing import Any

from onestack.common.errors import BadRequest, Forbidden

#: Glance's default ``[image_format]`` lists.
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "community", "shared", "private")
STATUSES = ("queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated")
MEMBER_STATUSES = ("pending", "accepted", "rejected")

#: Fields only the service writes; setting one is a 403 ("read-only").
READ_ONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
             "direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value",
             "stores")
#: Names no image may carry as properties (403, "reserved").
RESERVED = ("location", "deleted", "deleted_at")
RESERVED_PREFIX = "os_glance"
#: Base properties a user may set (at creation; most also by PATCH).
WRITABLE = ("name", "visibility", "protected", "os_hidden", "owner", "container_format",
            "disk_format", "min_disk", "min_ram", "tags")
#: Every base property: these are never free-form properties.
BASE = (*READ_ONLY, *WRITABLE, "locations")

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MAX_NAME = 255
MAX_TAG = 255
MAX_PROPERTY_KEY = 255
MAX_PROPERTY_VALUE = 65535


def _string(field: str, value: Any, nullable: bool, max_len: int) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        kind = "null or string" if nullable else "string"
        raise BadRequest(f"Invalid value for '{field}': {value!r} is not of type {kind}.")
    if len(value) > max_len:
        raise BadRequest(f"Invalid value for '{field}': longer than {max_len} characters.")
    return value


def _choice(field: str, value: Any, choices: tuple[str, ...], nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if value not in choices:
        raise BadRequest(f"Invalid value for '{field}': {value!r} is not one of "
                         f"{', '.join(choices)}.")
    return str(value)


def _non_negative(field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"Invalid value for '{field}': {value!r} is not of type integer.")
    if value < 0:
        raise BadRequest(f"Invalid value for '{field}': cannot be a negative value.")
    if value > 2**31 - 1:
        raise BadRequest(f"Invalid value for '{field}': too large.")
    return value


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid value for '{field}': {value!r} is not of type boolean.")
    return value


def check_tags(value: Any) -> list[str]:
    """A list of tags, deduplicated (Glance keeps tags as a set)."""
    if not isinstance(value, list):
        raise BadRequest(f"Invalid value for 'tags': {value!r} is not of type array.")
    tags: list[str] = []
    for tag in value:
        checked = check_tag(tag)
        if checked not in tags:
            tags.append(checked)
    return tags


def check_tag(tag: Any) -> str:
    tag = _string("tags", tag, nullable=False, max_len=MAX_TAG)
    assert tag is not None
    if not tag.strip():
        raise BadRequest("Invalid value for 'tags': a tag must not be empty.")
    return tag


def check_base(field: str, value: Any) -> Any:
    """Validate a writable base property; returns the value to store."""
    if field == "name":
        return _string(field, value, nullable=True, max_len=MAX_NAME)
    if field == "owner":
        return _string(field, value, nullable=True, max_len=255)
    if field == "visibility":
        return _choice(field, value, VISIBILITIES, nullable=False)
    if field == "disk_format":
        return _choice(field, value, DISK_FORMATS, nullable=True)
    if field == "container_format":
        return _choice(field, value, CONTAINER_FORMATS, nullable=True)
    if field in ("protected", "os_hidden"):
        return _boolean(field, value)
    if field in ("min_disk", "min_ram"):
        return _non_negative(field, value)
    if field == "tags":
        return check_tags(value)
    raise AssertionError(f"not a writable base property: {field}")


def check_settable(name: str) -> None:
    """403 unless a user may set (or remove) ``name`` at all."""
    if name in READ_ONLY:
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")
    if name == "locations":
        raise Forbidden("Image locations are not supported: image data is uploaded or "
                        "imported, never referenced.")


def check_property(name: str, value: Any) -> str:
    """A free-form property: a key of at most 255 characters with a string value."""
    if not name:
        raise BadRequest("A property name must not be empty.")
    if len(name) > MAX_PROPERTY_KEY:
        raise BadRequest("Custom property should not be greater than 255 characters.")
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value for property '{name}': {value!r} is not of type "
                         "string.")
    if len(value) > MAX_PROPERTY_VALUE:
        raise BadRequest(f"Invalid value for property '{name}': longer than "
                         f"{MAX_PROPERTY_VALUE} characters.")
    return value


def check_image_id(value: Any) -> str:
    if not isinstance(value, str) or not UUID_RE.match(value):
        raise BadRequest(f"Invalid value for 'id': {value!r} does not match the UUID "
                         "pattern.")
    return value.lower()

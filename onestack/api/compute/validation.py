"""Nova's value formats for request bodies and query parameters (its JSON schemas'
``uuid``, ``ip``, metadata, tags, host names, user data, ``date-time``), shared by the
server routes, the actions and the metadata routes. Each ``check_*`` answers the value
or raises ``InvalidField`` with the field's path, as Nova's schema messages read."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
import uuid as uuidlib
from typing import Any

from starlette.requests import Request

from onestack.api.compute.common import check_object
from onestack.api.compute.microversion import version
from onestack.common.errors import BadRequest, InvalidField
from onestack.services.compute.server_requests import MAX_TAG_LENGTH, MAX_TAGS


def check_uuid(field: str, value: Any) -> str:
    """Nova's ``uuid`` format (any spelling ``uuid.UUID`` reads; answered as given)."""
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    try:
        uuidlib.UUID(value)
    except ValueError:
        raise InvalidField(field, f"{value!r} is not a 'uuid'") from None
    return value


def check_ip(field: str, value: Any, version_: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        kind = {4: "ipv4", 6: "ipv6"}.get(version_ or 0, "ip address")
        raise InvalidField(field, f"{value!r} is not a '{kind}'") from None
    if version_ is not None and address.version != version_:
        raise InvalidField(field, f"{value!r} is not a 'ipv{version_}'")
    # Nova stores addresses normalised: IPv6 in its compressed form.
    return str(address)


_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def check_metadata(field: str, value: Any, allow_empty: bool = True) -> dict[str, str]:
    """Nova's ``metadata``: keys of ``[a-zA-Z0-9-_:. ]{1,255}``, string values of at
    most 255 characters."""
    value = check_object(field, value)
    for key, item in value.items():
        if not _METADATA_KEY.match(key):
            raise InvalidField(field, f"Additional properties are not allowed ('{key}' was "
                               "unexpected)")
        if not isinstance(item, str):
            raise InvalidField(f"{field}/{key}", f"{item!r} is not of type 'string'")
        if len(item) > 255:
            raise InvalidField(f"{field}/{key}", f"{item!r} is too long")
    return value


_TAG = re.compile(r"^[^,/]*$")


def check_tag(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    if not 1 <= len(value) <= MAX_TAG_LENGTH or not _TAG.match(value):
        raise InvalidField(field, f"{value!r} is not a valid tag: 1 to {MAX_TAG_LENGTH} "
                           "characters without '/' and ','")
    return value


def check_tags(field: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise InvalidField(field, f"{value!r} is not of type 'array'")
    if len(value) > MAX_TAGS:
        raise InvalidField(field, f"{value!r} is too long (at most {MAX_TAGS} tags)")
    return [check_tag(f"{field}/{i}", t) for i, t in enumerate(value)]


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$")
_FQDN = re.compile(r"^[a-zA-Z0-9-._]*$")


def check_hostname(request: Request, field: str, value: Any) -> str:
    """2.90: a DNS label of 2 to 63 characters; 2.94: an FQDN of up to 255."""
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    if version(request) >= (2, 94):
        if not 1 <= len(value) <= 255 or not _FQDN.match(value):
            raise InvalidField(field, f"{value!r} is not a valid host name")
    elif not 2 <= len(value) <= 63 or not _HOSTNAME.match(value):
        raise InvalidField(field, f"{value!r} does not match "
                           "'^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'")
    return value


def check_fqdn(field: str, value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not _FQDN.match(value):
        raise InvalidField(field, f"{value!r} is not a valid host name")
    return value


def check_string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    return value


def check_disk_config(field: str, value: Any) -> str:
    if value not in ("AUTO", "MANUAL"):
        raise InvalidField(field, f"{value!r} is not one of ['AUTO', 'MANUAL']")
    return str(value)


def check_user_data(field: str, value: Any, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    if len(value) > 65535:
        raise InvalidField(field, "is too long (at most 65535 characters)")
    return value


def check_personality(field: str, value: Any) -> list[tuple[str, bytes]]:
    """``personality`` (before 2.57): ``[{"path", "contents" (base64)}]``; the files
    as (path, bytes). Their number and sizes are quota limits, checked by the service."""
    if not isinstance(value, list):
        raise InvalidField(field, f"{value!r} is not of type 'array'")
    files: list[tuple[str, bytes]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidField(f"{field}/{i}", f"{item!r} is not of type 'object'")
        extra = set(item) - {"path", "contents"}
        if extra:
            raise InvalidField(f"{field}/{i}", "Additional properties are not allowed "
                                               f"({', '.join(sorted(extra))})")
        path, contents = item.get("path"), item.get("contents")
        if not isinstance(path, str) or not path:
            raise InvalidField(f"{field}/{i}/path", "is required, a non-empty string")
        if not isinstance(contents, str):
            raise InvalidField(f"{field}/{i}/contents", "is required, a base64 string")
        try:
            data = base64.b64decode(contents, validate=True)
        except ValueError:
            raise BadRequest(f"Personality content for {path} cannot be decoded.") \
                from None
        files.append((path, data))
    return files



def time_param(name: str, raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {raw}. "
                         f"'{raw}' is not a 'date-time'") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value

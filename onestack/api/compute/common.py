"""What the Compute API modules share: the service, Nova's links and pagination, query
parameters, timestamps and the lenient JSON types Nova's schemas accept.

Shared by every module under ``api/compute``; add to it rather than copying.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from onestack.api.common import base_url, bounded_int
from onestack.common.errors import BadRequest, InvalidField, OneStackError
from onestack.services.compute import Compute

#: Nova's ``osapi_max_limit``: the largest page, and the page size when none is asked.
MAX_LIMIT = 1000
#: Nova's ``db.constants.MAX_INT`` (the largest value an API integer may have).
MAX_INT = 0x7FFFFFFF

TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")
FALSE_WORDS = ("0", "f", "false", "off", "n", "no")


class NotImplementedFault(OneStackError):
    """Nova's 501 ``notImplemented`` (``common.raise_feature_not_supported``): a feature
    Nova has and this cloud does not."""

    status = 501
    title = "Not Implemented"
    fault = "notImplemented"


def compute(request: Request) -> Compute:
    """The ``Compute`` service of the app."""
    service: Compute = request.app.state.compute
    return service


def server_id(request: Request) -> str:
    """The ``{server_id}`` of the path."""
    return str(request.path_params["server_id"])


# -- links ---------------------------------------------------------------------------


def api_root(request: Request) -> str:
    """``http://host:port/compute``: bookmark links hang off this, versioned links off
    ``<root>/v2.1``."""
    return f"{base_url(request)}/compute"


def resource_links(request: Request, collection: str, ident: str) -> list[dict[str, str]]:
    """Nova's ``self`` and ``bookmark`` links of one resource."""
    root = api_root(request)
    return [{"rel": "self", "href": f"{root}/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{root}/{collection}/{ident}"}]


def next_links(request: Request, collection: str, count: int, last_id: str | None
               ) -> list[dict[str, str]]:
    """Nova's collection links: a ``next`` link when the page is full (``count`` equals
    the requested limit, capped at ``MAX_LIMIT``), whose marker is the last item."""
    raw = request.query_params.get("limit")
    try:
        wanted = int(raw) if raw is not None else MAX_LIMIT
    except ValueError:
        wanted = MAX_LIMIT
    max_items = min(wanted, MAX_LIMIT)
    if not max_items or max_items != count or last_id is None:
        return []
    params = dict(sorted(request.query_params.items()))
    params["marker"] = last_id
    href = f"{api_root(request)}/v2.1/{collection}?{urlencode(params)}"
    return [{"rel": "next", "href": href}]


# -- query parameters ----------------------------------------------------------------


def query_param(request: Request, name: str) -> str | None:
    """The first value of a query parameter (Nova reads the first of repeated ones)."""
    if not request.scope.get("query_string"):
        return None
    return request.query_params.get(name)


def non_negative(name: str, raw: str) -> int:
    """A query parameter that must be an integer 0 or greater (and one a database can
    compare with: below 2**63)."""
    value = bounded_int(name, raw)
    if value is None:
        raise BadRequest(f"{name} param must be an integer")
    if value < 0:
        raise BadRequest(f"{name} param must be positive")
    return value


def capped(raw: str, maximum: int) -> int:
    """A string of digits as an integer, at most ``maximum`` (however many digits)."""
    digits = raw.lstrip("0")
    return maximum if len(digits) > 20 else min(int(digits or "0"), maximum)


def limit_and_marker(request: Request) -> tuple[int, str | None]:
    """Nova's ``get_limit_and_marker``: the page size (at most ``MAX_LIMIT``; 0 or
    absent mean ``MAX_LIMIT``) and the marker, if any."""
    raw = query_param(request, "limit")
    limit = MAX_LIMIT if raw is None else non_negative("limit", raw)
    return min(limit or MAX_LIMIT, MAX_LIMIT), query_param(request, "marker")


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    """A strict boolean query parameter (``oslo.utils`` ``bool_from_string``)."""
    raw = query_param(request, name)
    if raw is None:
        return default
    return strict_bool(raw, name)


def strict_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().lower() in TRUE_WORDS:
            return True
        if value.strip().lower() in FALSE_WORDS:
            return False
    raise BadRequest(f"Invalid value {value!r} for {name}: expected a boolean "
                     f"(one of {', '.join(TRUE_WORDS + FALSE_WORDS)}).")


def refuse_unknown_query(request: Request, allowed: Iterable[str],
                         since: tuple[int, int] = (2, 75)) -> None:
    """From microversion 2.75 Nova's query schemas refuse parameters they do not
    define; older versions ignore them."""
    from onestack.api.compute.microversion import version

    if version(request) < since or not request.scope.get("query_string"):
        return
    known = set(allowed)
    for name in request.query_params:
        if name not in known:
            raise BadRequest(f"Invalid input for query parameters {name}. Value: "
                             f"{request.query_params.getlist(name)}. Additional "
                             f"properties are not allowed ('{name}' was unexpected)")


# -- time ----------------------------------------------------------------------------


def nova_time(value: dt.datetime | None) -> str | None:
    """Nova's timestamp format in bodies: ``2012-10-08T21:10:44.587336`` (naive UTC)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


# -- Nova's JSON types ---------------------------------------------------------------


def _printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def check_name(field: str, value: Any, max_length: int = 255) -> str:
    """Nova's ``name`` type: 1 to 255 printable characters, no leading or trailing
    whitespace."""
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string'")
    if not 1 <= len(value) <= max_length:
        raise InvalidField(field, f"must be 1 to {max_length} characters long")
    if not all(_printable(c) for c in value) or value != value.strip():
        raise InvalidField(field, f"{value!r} does not match the name format: printable "
                           "characters. Can not start or end with whitespace.")
    return value


def check_description(field: str, value: Any, max_length: int) -> str | None:
    """Nova's ``description``: printable characters (spaces allowed anywhere), or null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidField(field, f"{value!r} is not of type 'string', 'null'")
    if len(value) > max_length:
        raise InvalidField(field, f"is longer than {max_length} characters")
    if not all(_printable(c) for c in value):
        raise InvalidField(field, "must contain printable characters only")
    return value


_DIGITS = re.compile(r"^[0-9]+$")
_SIGNED = re.compile(r"^-?[0-9]+$")


def check_int(field: str, value: Any, minimum: int, maximum: int = MAX_INT,
              signed: bool = False) -> int:
    """An integer, or a string of digits (Nova's ``['integer', 'string']`` types), within
    [minimum, maximum]."""
    if isinstance(value, bool):
        raise InvalidField(field, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        if not (_SIGNED if signed else _DIGITS).match(value):
            raise InvalidField(field, f"{value!r} is not a valid integer")
        if len(value.lstrip("-0")) > 20:  # int() refuses thousands of digits
            raise InvalidField(field, f"{value[:40]}... is out of range")
        value = int(value)
    if not isinstance(value, int):
        raise InvalidField(field, f"{value!r} is not of type 'integer', 'string'")
    if value < minimum:
        raise InvalidField(field, f"{value} is less than the minimum of {minimum}")
    if value > maximum:
        raise InvalidField(field, f"{value} is greater than the maximum of {maximum}")
    return value


_BOOL_ENUM = {True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
              False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"}


def check_bool(field: str, value: Any) -> bool:
    """Nova's ``boolean`` type: a JSON boolean or one of the usual words."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or value not in _BOOL_ENUM:
        raise InvalidField(field, f"{value!r} is not one of the boolean values")
    return value.lower() in ("true", "1", "on", "yes")


def check_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(field, f"{value!r} is not of type 'object'")
    return value


def only_keys(field: str, value: dict[str, Any], allowed: Iterable[str],
              required: Iterable[str] = ()) -> None:
    """JSON schema's ``additionalProperties: false`` and ``required``."""
    known = set(allowed)
    for key in value:
        if key not in known:
            raise InvalidField(field, f"Additional properties are not allowed ('{key}' was "
                               "unexpected)")
    for key in required:
        if key not in value:
            raise InvalidField(field, f"'{key}' is a required property")

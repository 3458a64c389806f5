"""What every API module uses: JSON in and out, validation, the caller's token."""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from onestack.common.errors import BadRequest, InvalidField, PayloadTooLarge, Unauthorized
from onestack.db.models.base import INT64_MAX, INT64_MIN
from onestack.services.identity import access_rules
from onestack.services.identity.context import ValidatedToken

M = TypeVar("M", bound=BaseModel)
#: The largest request body a JSON route reads (a larger one is a 413).
MAX_BODY = 1 << 20
#: How deeply arrays and objects may nest in a JSON body: far beyond any OpenStack body,
#: far below where Python's recursive parser (and everything that walks the result)
#: would run out of stack.
MAX_JSON_DEPTH = 100


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    headers=headers, media_type="application/json")


def json_bytes_response(body: bytes, status: int = 200,
                        headers: dict[str, str] | None = None) -> Response:
    """Like ``json_response`` for a body already encoded (e.g. cached per token)."""
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole request body; a 413, without reading on, once it is over ``limit``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and (len(length) > 18 or int(length) > limit):
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # what Starlette's own ``Request.body()`` caches
    return body


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; a 400 otherwise (413 if too large)."""
    raw = await read_body(request)
    if not raw:
        raise BadRequest("The request body is empty; a JSON object is expected.")
    body = loads_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def loads_json(raw: bytes) -> Any:
    """Parse a request body, refusing (400) what the parser or the database cannot take:
    invalid JSON, nesting deeper than ``MAX_JSON_DEPTH`` (checked before parsing, without
    recursion), integers outside the 64-bit signed range, ``NaN``/``Infinity``, and
    strings with NUL characters or unpaired surrogates (``check_text``)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"The request body is not acceptable JSON: arrays and objects are "
                         f"nested more than {MAX_JSON_DEPTH} deep.")
    try:
        value = json.loads(text, parse_int=_json_int, parse_float=_json_float,
                           parse_constant=_json_constant)
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    check_text(value, "")
    return value


#: A JSON string (an unterminated one runs to the end, so the scan stays linear).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings
    do not count); a loop, not a recursion, so any depth can be measured."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot nest deeper than it has brackets; the common case
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _json_int(digits: str) -> int:
    if len(digits) > 20 or not INT64_MIN <= (value := int(digits)) <= INT64_MAX:
        raise BadRequest(f"The request body is not acceptable JSON: the integer "
                         f"{digits[:40]}{'...' if len(digits) > 40 else ''} is outside the "
                         "64-bit signed range.")
    return value


def _json_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise BadRequest(f"The request body is not acceptable JSON: the number "
                         f"{digits[:40]} is out of range.")
    return value


def _json_constant(name: str) -> float:
    raise BadRequest(f"The request body is not valid JSON: {name} is not a JSON value.")


def bounded_int(name: str, raw: str) -> int | None:
    """A query parameter as an integer a database can compare with; None if it is not
    an integer at all (the caller says what it expected), a 400 if it is out of range."""
    text = raw.strip()
    if not _INTEGER.match(text):
        return None
    if len(text) > 20 or not INT64_MIN <= (value := int(text)) <= INT64_MAX:
        raise BadRequest(f"Invalid value {raw[:40]!r} for {name}: the integer is outside "
                         "the 64-bit signed range.")
    return value


def check_text(value: Any, path: str) -> None:
    """Refuse strings no database can store: NUL characters and unpaired surrogates
    (JSON can carry both as escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidField(path or "body", "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidField(path or "body", "is not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path or "body")
            check_text(item, f"{path}/{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}/{index}")


def parse(model: type[M], data: Any, root: str) -> M:
    """Validate ``data`` against ``model``; a 400 naming the first offending field."""
    if not isinstance(data, dict):
        raise InvalidField(root, f"{data!r} is not of type 'object'")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = "/".join([root, *(str(p) for p in err["loc"])])
        raise InvalidField(path, err["msg"]) from None


def body_part(body: dict[str, Any], key: str) -> dict[str, Any]:
    """``body[key]``, which must be an object (e.g. ``{"user": {...}}``)."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise InvalidField(key, "is a required property and must be an object")
    return value


def query_bool(request: Request, name: str) -> bool | None:
    """A boolean query parameter (``?nocatalog``, ``?enabled=false``); None if absent."""
    if not request.scope.get("query_string"):
        return None  # the common case; skips parsing the query string
    value = request.query_params.get(name)
    if value is None:
        return None
    if value.lower() in ("", "1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise BadRequest(f"Invalid value {value!r} for query parameter {name!r}: "
                     "expected true or false.")


def caller(request: Request) -> ValidatedToken:
    """The validated ``X-Auth-Token`` of the request; a 401 if absent or bad, or if
    it comes from an application credential whose access rules do not allow this
    request (services/identity/access_rules.py)."""
    token = request.headers.get("x-auth-token")
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    vt: ValidatedToken = request.app.state.identity.tokens.validate(token)
    if vt.app_cred is not None and vt.app_cred.get("access_rules"):
        access_rules.enforce(vt.app_cred["access_rules"], request.method, request.url.path)
    return vt


def base_url(request: Request) -> str:
    """The public URL, as configured (links in bodies use it)."""
    return request.app.state.config.public_url

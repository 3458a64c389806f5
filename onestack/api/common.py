"""What every API module uses: JSON in and out, validation, the caller's token."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from onestack.common.errors import BadRequest, InvalidField, Unauthorized
from onestack.services.identity.context import ValidatedToken

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 1 << 20


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


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; a 400 otherwise."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest("The request body is too large.")
    if not raw:
        raise BadRequest("The request body is empty; a JSON object is expected.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    check_text(body, "")
    return body


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
    """The validated ``X-Auth-Token`` of the request; a 401 if absent or bad."""
    token = request.headers.get("x-auth-token")
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    return request.app.state.identity.tokens.validate(token)


def base_url(request: Request) -> str:
    """The public URL, as configured (links in bodies use it)."""
    return request.app.state.config.public_url

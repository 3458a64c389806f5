"""What the volume service's modules share: Cinder's errors and messages, who sees
what, and the states a volume moves through (docs/design/volumes.md)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from onestack.common.errors import BadRequest, Forbidden, NotFound, OneStackError
from onestack.db.models import Snapshot, Volume
from onestack.services.identity.context import ValidatedToken

#: The context of the cloud itself (compute's own calls, recovery): sees everything.
Ctx = ValidatedToken | None

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}$")
#: Cinder's ``db.constants.MAX_INT``: the largest size a request may ask for.
MAX_INT = 0x7FFFFFFF

#: States from which a volume may be deleted (without force).
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
#: Statuses an admin may set with os-reset_status.
VOLUME_STATUSES = ("creating", "available", "reserved", "attaching", "in-use",
                   "detaching", "deleting", "error", "error_deleting", "error_extending",
                   "extending", "uploading", "maintenance", "awaiting-transfer",
                   "downloading", "retyping", "error_restoring", "error_managing",
                   "backing-up", "restoring-backup")
SNAPSHOT_STATUSES = ("creating", "available", "deleting", "error", "error_deleting")


class NotImplementedFault(OneStackError):
    """Cinder's 501 ``notImplemented``."""

    status = 501
    title = "Not Implemented"
    fault = "notImplemented"


class InvalidInput(BadRequest):
    """Cinder's ``InvalidInput``: ``Invalid input received: <reason>``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid input received: {reason}")


class InvalidVolume(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid volume: {reason}")


class InvalidSnapshot(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid snapshot: {reason}")


def is_admin(ctx: Ctx) -> bool:
    return ctx is None or ctx.is_admin


def forbidden(rule: str) -> Forbidden:
    return Forbidden(f"Policy doesn't allow {rule} to be performed.")


def check_project(ctx: Ctx, project_id: str | None) -> None:
    """The ``{project_id}`` of a URL must be the token's project (administrators may
    name any project)."""
    if project_id is None or is_admin(ctx):
        return
    assert ctx is not None
    if project_id != ctx.project_id:
        raise Forbidden(f"Policy doesn't allow access to project {project_id} with a "
                        f"token scoped to project {ctx.project_id}.")


def visible(ctx: Ctx, project_id: str) -> bool:
    return is_admin(ctx) or (ctx is not None and ctx.project_id == project_id)


Q = TypeVar("Q", bound="Select[Any]")


def scope_to_caller(query: Q, project_column: InstrumentedAttribute[str], ctx: Ctx,
                    all_tenants: bool, project: str | None = None) -> Q:
    """A list's query cut to the rows the caller may list: its own project's; an
    administrator asking for ``all_tenants`` gets every project's, or only
    ``project``'s when a ``project_id`` filter names one."""
    if not (is_admin(ctx) and all_tenants):
        assert ctx is not None
        return query.where(project_column == ctx.project_id)
    if project:
        return query.where(project_column == project)
    return query


def find_volume(session: Session, ctx: Ctx, volume_id: str,
                for_update: bool = False) -> Volume:
    """The volume if the caller may see it; Cinder's 404 otherwise."""
    volume = None
    if UUID_RE.match(volume_id):
        volume = session.get(Volume, volume_id.lower(), with_for_update=for_update)
    if volume is None or not visible(ctx, volume.project_id):
        raise NotFound(f"Volume {volume_id} could not be found.")
    return volume


def find_snapshot(session: Session, ctx: Ctx, snapshot_id: str) -> Snapshot:
    snapshot = None
    if UUID_RE.match(snapshot_id):
        snapshot = session.get(Snapshot, snapshot_id.lower())
    if snapshot is None or not visible(ctx, snapshot.project_id):
        raise NotFound(f"Snapshot {snapshot_id} could not be found.")
    return snapshot


def field_error(path: str, value: Any, message: str) -> BadRequest:
    """Cinder's JSON-schema validation message."""
    return BadRequest(f"Invalid input for field/attribute {path}. Value: {value}. {message}")


def required_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A request body's ``key`` member, which must be an object (Cinder's schema
    message otherwise): ``{"volume": {...}}``."""
    spec = body.get(key)
    if not isinstance(spec, dict):
        raise field_error(key, spec, f"'{key}' is a required property")
    return spec


def one_action(body: dict[str, Any]) -> tuple[str, Any]:
    """The name and argument of an ``/action`` request's body, which names one."""
    if len(body) != 1:
        raise BadRequest("Malformed request body: exactly one action is expected.")
    return next(iter(body.items()))


def check_size(value: Any, path: str = "size", allow_none: bool = False) -> int | None:
    """Cinder's ``volume_size`` type: an integer (or a string of digits) from 1 to
    MAX_INT."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise field_error(path, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+", value):
            raise field_error(path, value, f"'{value}' does not match '^[0-9]+$'")
        if len(value.lstrip("0")) > 12:
            raise field_error(path, value, f"{value} is greater than the maximum of "
                              f"{MAX_INT}")
        value = int(value)
    assert isinstance(value, int)
    if value < 1:
        raise field_error(path, value, f"{value} is less than the minimum of 1")
    if value > MAX_INT:
        raise field_error(path, value, f"{value} is greater than the maximum of {MAX_INT}")
    return value


def check_string(value: Any, path: str, max_length: int = 255, allow_none: bool = True
                 ) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise field_error(path, value, f"{value!r} is not of type 'string'")
    if len(value) > max_length:
        raise field_error(path, value, f"'{value[:40]}...' is too long")
    return value


def check_metadata(value: Any, path: str = "metadata") -> dict[str, str]:
    """Cinder's ``metadata_allows_null`` type: string keys of 1 to 255 characters,
    string values of at most 255."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise field_error(path, value, f"{value!r} is not of type 'object'")
    for key, item in value.items():
        if not 1 <= len(key) <= 255:
            raise field_error(path, value, f"'{key[:40]}' is not a valid metadata key")
        if not isinstance(item, str):
            raise field_error(path, value, f"{item!r} is not of type 'string'")
        if len(item) > 255:
            raise field_error(path, value, f"the value of '{key[:40]}' is too long")
    return dict(value)


TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")
FALSE_WORDS = ("0", "f", "false", "off", "n", "no")


def check_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise InvalidInput(f"{path} must be a boolean, not {value!r}.")

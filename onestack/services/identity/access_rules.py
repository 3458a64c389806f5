"""Application credential access rules: which requests a token from a credential
with rules may make.

A rule is a service type (as in the catalog), an HTTP method and a path glob, the path
as the service sees it under its endpoint's mount point (``/v2.1/servers/*`` for
compute, ``/v2/images`` for image, ``/v3/users/*`` for identity). ``*`` (and a
``{name}`` placeholder) matches one non-empty path segment, ``**`` any run of
characters, slashes included. A token whose credential has rules may make a request
only if one rule matches it; every other request is refused with 401, as Keystone's
auth middleware refuses it. ``caller()`` (onestack/api/common.py), where every API
route authenticates its token, makes the check.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from onestack.common.errors import InvalidField, Unauthorized

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
FIELD = "application_credential/access_rules"
_VERSION = re.compile(r"/v\d[\d.]*$")
_TOKEN = re.compile(r"\*\*|\*|\{[^}/]*\}|[^*{]+|\{")


def check_rule(rule: Any, index: int) -> dict[str, str]:
    """A new rule as sent by a client (``service``, ``method``, ``path``), checked;
    a rule naming an existing one by ``id`` is returned as ``{"id": ...}``."""
    where = f"{FIELD}/{index}"
    if not isinstance(rule, dict):
        raise InvalidField(where, f"{rule!r} is not of type 'object'")
    unknown = set(rule) - {"id", "service", "method", "path"}
    if unknown:
        raise InvalidField(where, f"unknown attribute(s) {sorted(unknown)}")
    if set(rule) == {"id"}:
        if not isinstance(rule["id"], str) or not rule["id"]:
            raise InvalidField(f"{where}/id", "must be a non-empty string")
        return {"id": rule["id"]}
    out: dict[str, str] = {}
    for key, limit in (("service", 64), ("method", 16), ("path", 225)):
        value = rule.get(key)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidField(f"{where}/{key}",
                               f"is required: a string of 1 to {limit} characters")
        out[key] = value
    if out["method"] not in METHODS:
        raise InvalidField(f"{where}/method", f"must be one of {', '.join(METHODS)}")
    if not out["path"].startswith("/"):
        raise InvalidField(f"{where}/path", "must start with '/'")
    if "id" in rule:
        if not isinstance(rule["id"], str) or not rule["id"]:
            raise InvalidField(f"{where}/id", "must be a non-empty string")
        out["id"] = rule["id"]
    return out


@functools.lru_cache(maxsize=1024)
def _pattern(glob: str) -> re.Pattern[str]:
    parts = []
    for token in _TOKEN.findall(glob):
        if token == "**":
            parts.append(".*")
        elif token == "*" or (token.startswith("{") and token.endswith("}")):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + r"\Z")


def path_matches(glob: str, path: str) -> bool:
    return _pattern(glob).match(path) is not None


@functools.lru_cache(maxsize=1)
def _mounts() -> list[tuple[str, frozenset[str]]]:
    """(mount point, service types served there), the longest mount first."""
    from onestack.services.identity.bootstrap import SERVICES
    by_mount: dict[str, set[str]] = {}
    for service_type, _name, path in SERVICES:
        by_mount.setdefault(_VERSION.sub("", path.rstrip("/")), set()).add(service_type)
    return sorted(((m, frozenset(t)) for m, t in by_mount.items()),
                  key=lambda item: len(item[0]), reverse=True)


def target(path: str) -> tuple[frozenset[str], str]:
    """The service types a request path goes to and the path under their mount."""
    for mount, types in _mounts():
        if not mount:
            return types, path
        if path == mount or path.startswith(mount + "/"):
            return types, path[len(mount):] or "/"
    return frozenset(), path


def allows(rules: list[dict[str, Any]], method: str, path: str) -> bool:
    types, relative = target(path)
    return any(rule["service"] in types and rule["method"] == method and
               path_matches(rule["path"], relative) for rule in rules)


def enforce(rules: list[dict[str, Any]] | None, method: str, path: str) -> None:
    """401 unless a rule matches (no rules: no limit)."""
    if rules and not allows(rules, method, path):
        raise Unauthorized("The request you have made requires authentication: the "
                           "application credential's access rules do not allow "
                           f"{method} {path}.")

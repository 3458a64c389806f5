"""The access level of each Image route (``onestack.api.policy``), refused with
Glance's 403; who may see and change which image is ``services.image.policy``."""

from __future__ import annotations

from onestack.api.policy import Endpoint, guard
from onestack.common.errors import Forbidden


def _denied(rule: str) -> Exception:
    return Forbidden(f"You are not authorized to perform the requested action: {rule}.")


def reader(endpoint: Endpoint) -> Endpoint:
    """A project-scoped token (reads; the service shows only what the caller may see)."""
    return guard("reader", _denied)(endpoint)


def member(endpoint: Endpoint) -> Endpoint:
    """The ``member`` role on the token's project."""
    return guard("member", _denied)(endpoint)


def admin(endpoint: Endpoint) -> Endpoint:
    return guard("admin", _denied)(endpoint)

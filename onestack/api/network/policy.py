"""The access level of each Networking route (``onestack.api.policy``), refused with
Neutron's ``PolicyNotAuthorized``: ``(rule:create_network) is disallowed by policy``."""

from __future__ import annotations

from onestack.api.policy import Endpoint, guard
from onestack.services.network.base import policy_error


def _denied(rule: str) -> Exception:
    return policy_error(f"rule:{rule}")


def reader(endpoint: Endpoint, rule: str | None = None) -> Endpoint:
    """Any role on a project (reads; the service shows only what the caller may see)."""
    return guard("reader", _denied, rule)(endpoint)


def member(endpoint: Endpoint, rule: str | None = None) -> Endpoint:
    """The ``member`` role on the token's project (writes in the caller's project)."""
    return guard("member", _denied, rule)(endpoint)


def admin(endpoint: Endpoint, rule: str | None = None) -> Endpoint:
    return guard("admin", _denied, rule)(endpoint)

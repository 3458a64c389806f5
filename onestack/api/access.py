"""The access-level decorators of a service's routes, made once for every service.

A service's routes wear ``reader``, ``member``, ``admin`` (``api.policy``'s levels) or,
for an endpoint serving several methods, ``reads_and_writes`` and
``reads_and_admin_writes``. What differs between services is only the refusal: the
service's own 403, naming the policy rule the service has for the endpoint. A service
builds an ``AccessLevels`` from that and takes its decorators from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from onestack.api.policy import Endpoint, guard


class AccessLevels:
    """The decorators of one service. A caller below an endpoint's level gets
    ``forbidden(prefix + rule)``, the rule being ``rules[<endpoint's name>]`` (the name
    itself when it has none)."""

    def __init__(self, forbidden: Callable[[str], Exception],
                 rules: Mapping[str, str] | None = None, prefix: str = "") -> None:
        self._forbidden = forbidden
        self._rules = rules if rules is not None else {}
        self._prefix = prefix

    def denied(self, endpoint: str) -> Exception:
        return self._forbidden(f"{self._prefix}{self._rules.get(endpoint, endpoint)}")

    def reader(self, endpoint: Endpoint) -> Endpoint:
        """A project-scoped token (reads; the service shows only the caller's project)."""
        return guard("reader", self.denied)(endpoint)

    def member(self, endpoint: Endpoint) -> Endpoint:
        """The ``member`` role on the token's project."""
        return guard("member", self.denied)(endpoint)

    def admin(self, endpoint: Endpoint) -> Endpoint:
        return guard("admin", self.denied)(endpoint)

    def reads_and_writes(self, endpoint: Endpoint) -> Endpoint:
        """One endpoint for several methods: GET for readers, the others for members."""
        return guard({"GET": "reader", "PUT": "member", "POST": "member", "DELETE": "member"},
                     self.denied)(endpoint)

    def reads_and_admin_writes(self, endpoint: Endpoint) -> Endpoint:
        """GET for readers, every other method for administrators (e.g. volume types)."""
        return guard({"GET": "reader", "PUT": "admin", "POST": "admin", "DELETE": "admin"},
                     self.denied)(endpoint)

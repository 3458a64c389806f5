"""Who is calling: the result of validating a token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onestack.services.identity.tokens import TokenData


@dataclass
class ValidatedToken:
    """A token that passed every check, with what its body and policy need."""

    token: str
    data: TokenData
    user: dict[str, Any]                 # {"id", "name", "domain": {"id", "name"}, ...}
    roles: list[dict[str, str]] = field(default_factory=list)   # [{"id", "name"}]
    project: dict[str, Any] | None = None  # {"id", "name", "domain": {...}}
    domain: dict[str, str] | None = None   # {"id", "name"}
    app_cred: dict[str, Any] | None = None  # {"id", "name", "restricted"}
    oauth1: dict[str, str] | None = None  # {"access_token_id", "consumer_id"}
    #: OS-TRUST:trust of a trust-scoped token: {"id", "impersonation", "trustee_user",
    #: "trustor_user"}
    trust: dict[str, Any] | None = None
    #: Rendered bodies, kept as long as this validation result is.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def user_id(self) -> str:
        return self.data.user_id

    @property
    def project_id(self) -> str | None:
        return self.data.project_id

    @property
    def domain_id(self) -> str | None:
        return self.data.domain_id

    @property
    def system(self) -> bool:
        """Scoped to the whole deployment (roles held on the system)."""
        return self.data.system

    @property
    def role_names(self) -> set[str]:
        return {r["name"] for r in self.roles}

    @property
    def is_admin(self) -> bool:
        """Cloud administrator: holds `admin` on the token's scope (a project, a domain
        or the system)."""
        return "admin" in self.role_names

    @property
    def restricted(self) -> bool:
        """An application-credential token not allowed to manage credentials."""
        return bool(self.app_cred and self.app_cred.get("restricted", True))


RequestContext = ValidatedToken

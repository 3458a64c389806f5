"""Application credentials: a secret a user makes for a program, bound to one project
and a subset of the user's roles there.

As in Keystone: a user creates credentials only for themself, with a project-scoped
token, carrying only roles that token has (by default all of them); the secret is shown
once and only its argon2 hash is kept; a token from a *restricted* credential may not
create or delete credentials.
"""

from __future__ import annotations

import builtins
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidField,
    NotFound,
    Unauthorized,
)
from onestack.db.models import ApplicationCredential, Role, User, utcnow
from onestack.db.models.identity import AccessRule
from onestack.services.identity import access_rules as rules_mod
from onestack.services.identity.base import SubService, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize, enforce

AUTH_FAILED = "The request you have made requires authentication."
FIELD = "application_credential"


def parse_expiry(value: str) -> dt.datetime:
    """An ISO 8601 expiry as naive UTC (no zone means UTC); 400 if bad or past."""
    text = value.strip()
    try:
        when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z"))
                                         else text)
    except ValueError:
        raise InvalidField(f"{FIELD}/expires_at",
                           f"{value!r} is not an ISO 8601 timestamp") from None
    if when.tzinfo is not None:
        try:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise InvalidField(f"{FIELD}/expires_at", f"{value!r} is out of range") from None
    if when <= utcnow():
        raise InvalidField(f"{FIELD}/expires_at", "must not be before now")
    return when


def _encodable(value: Any) -> bool:
    """False if any string in ``value`` holds what neither argon2 nor a database column
    takes: a NUL character or an unpaired surrogate."""
    if isinstance(value, dict):
        return all(_encodable(v) for v in value.values())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    return True


def _check_unrestricted(ctx: ValidatedToken) -> None:
    if ctx.restricted:
        raise Forbidden("You are not authorized to perform the requested action: using a "
                        "token from a restricted application credential to create or "
                        "delete an application credential.")


class ApplicationCredentials(SubService):
    def get_for_token(self, session: Session, cred_id: str) -> ApplicationCredential | None:
        return session.get(ApplicationCredential, cred_id)

    async def authenticate(self, ref: dict[str, Any]) -> ApplicationCredential:
        """Check an ``application_credential`` auth method body; returns the credential."""
        path = "auth/identity/application_credential"
        secret = ref.get("secret")
        if not isinstance(secret, str):
            raise InvalidField(f"{path}/secret", f"{secret!r} is not of type 'string'")
        if not _encodable(ref):
            raise InvalidField(path, "strings must be valid Unicode without NUL characters")
        with self.db.session() as session:
            cred = None
            if ref.get("id") is not None:
                if not isinstance(ref["id"], str):
                    raise InvalidField(f"{path}/id", "must be a string")
                cred = session.get(ApplicationCredential, ref["id"])
            elif ref.get("name") is not None:
                user_ref = ref.get("user")
                if not isinstance(user_ref, dict):
                    raise InvalidField(f"{path}/user", "is required with a credential name")
                user = self.identity.users.find_for_auth(session, user_ref, f"{path}/user")
                if user is not None:
                    cred = session.scalar(select(ApplicationCredential).where(
                        ApplicationCredential.user_id == user.id,
                        ApplicationCredential.name == ref["name"]))
            else:
                raise InvalidField(path, "needs an id, or a name and a user")
            stored = cred.secret_hash if cred else None
        ok = await self.identity.hasher.verify_async(stored, secret)
        if cred is None or not ok:
            raise Unauthorized(AUTH_FAILED)
        if cred.expires_at is not None and cred.expires_at <= utcnow():
            raise Unauthorized("The application credential has expired.")
        with self.db.session() as session:
            user = session.get(User, cred.user_id)
            if user is None or not user.enabled:
                raise Unauthorized(AUTH_FAILED)
        return cred

    # -- management -----------------------------------------------------------------

    def _role_ids(self, session: Session, ctx: ValidatedToken,
                  requested: list[dict[str, str]] | None) -> list[str]:
        """The role ids a new credential carries: those requested, each of which the
        caller's token must hold, or else every role of the token."""
        held = {r["id"]: r["name"] for r in ctx.roles}
        if not requested:
            return list(held)
        out: list[str] = []
        for i, ref in enumerate(requested):
            role_id = ref.get("id")
            name = ref.get("name")
            if role_id is None and name is None:
                raise InvalidField(f"{FIELD}/roles/{i}", "needs an id or a name")
            if role_id is None:
                role_id = next((rid for rid, rname in held.items() if rname == name), None)
                if role_id is None and session.scalar(
                        select(Role.id).where(Role.name == name)) is None:
                    raise NotFound(f"Could not find role: {name}.")
            if role_id is None or role_id not in held:
                raise BadRequest(f"Invalid application credential: Cannot create an "
                                 f"application credential with unassigned role "
                                 f"({role_id or name}).")
            if role_id not in out:
                out.append(role_id)
        return out

    def authorize_create(self, ctx: ValidatedToken, user_id: str) -> None:
        """The policy checks of ``create``, made before the request body is read (a
        refusal must not depend on the body)."""
        enforce(ctx, "identity:create_application_credential", user_id=user_id)
        _check_unrestricted(ctx)

    async def create(self, ctx: ValidatedToken, user_id: str, *, name: str,
                     description: str = "", secret: str | None = None,
                     expires_at: str | None = None,
                     roles: list[dict[str, str]] | None = None, unrestricted: bool = False,
                     access_rules: list[Any] | None = None,
                     ) -> tuple[ApplicationCredential, str]:
        """Create a credential for the caller; returns it and its secret (shown once).
        Only a caller's token makes one: it is bound to the token's project.
        ``access_rules`` limit what its tokens may call (access_rules.py): new rules
        (``service``, ``method``, ``path``) or the ``id`` of one the user has."""
        self.authorize_create(ctx, user_id)
        if user_id != ctx.user_id:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "Cannot create an application credential for another user.")
        if ctx.project_id is None:
            raise BadRequest("Application credentials are bound to a project: create them "
                             "with a project-scoped token.")
        expiry = parse_expiry(expires_at) if expires_at else None
        wanted = [rules_mod.check_rule(r, i) for i, r in enumerate(access_rules or [])]
        secret = secret or secrets.token_urlsafe(64)
        with self.db.session() as session:
            role_ids = self._role_ids(session, ctx, roles)
            self._check_name_free(session, user_id, name)
        secret_hash = await self.identity.hasher.hash_async(secret)
        with self.db.session() as session:
            self._check_name_free(session, user_id, name)
            rule_ids = self._rule_ids(session, user_id, wanted)
            cred = ApplicationCredential(
                id=new_id(), name=name, user_id=user_id, project_id=ctx.project_id,
                secret_hash=secret_hash, description=description, expires_at=expiry,
                unrestricted=unrestricted, roles=role_ids, access_rules=rule_ids)
            session.add(cred)
            try:
                session.flush()
            except IntegrityError:
                raise self._duplicate(name) from None
            self.changed(session)
        return cred, secret

    def _rule_ids(self, session: Session, user_id: str, wanted: list[dict[str, str]]
                  ) -> list[str]:
        """The ids of the rules a new credential carries: a rule the user already has
        (named by id, or the same service, method and path) is shared, not copied."""
        out: list[str] = []
        for rule in wanted:
            row = None
            if "service" in rule:
                row = session.scalar(select(AccessRule).where(
                    AccessRule.user_id == user_id, AccessRule.service == rule["service"],
                    AccessRule.method == rule["method"], AccessRule.path == rule["path"]))
            elif "id" in rule:
                row = session.get(AccessRule, rule["id"])
                if row is None or row.user_id != user_id:
                    raise NotFound(f"Could not find Access Rule: {rule['id']}.")
            if row is None:
                row = AccessRule(id=new_id(), user_id=user_id, service=rule["service"],
                                 method=rule["method"], path=rule["path"])
                session.add(row)
                session.flush()
            if row.id not in out:
                out.append(row.id)
        return out

    @staticmethod
    def _duplicate(name: str) -> Conflict:
        return Conflict(f"Conflict occurred attempting to store application_credential - "
                        f"Duplicate entry found with name {name}.")

    def _check_name_free(self, session: Session, user_id: str, name: str) -> None:
        if session.scalar(select(ApplicationCredential.id).where(
                ApplicationCredential.user_id == user_id,
                ApplicationCredential.name == name)):
            raise self._duplicate(name)

    def list(self, ctx: ValidatedToken | None, user_id: str, name: str | None = None
             ) -> list[ApplicationCredential]:
        authorize(ctx, "identity:list_application_credentials", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            stmt = select(ApplicationCredential).where(
                ApplicationCredential.user_id == user_id)
            if name is not None:
                stmt = stmt.where(ApplicationCredential.name == name)
            return list(session.scalars(stmt.order_by(ApplicationCredential.name)))

    def get(self, ctx: ValidatedToken | None, user_id: str, cred_id: str
            ) -> ApplicationCredential:
        authorize(ctx, "identity:get_application_credential", user_id=user_id)
        with self.db.session() as session:
            cred = session.get(ApplicationCredential, cred_id)
            if cred is None or cred.user_id != user_id:
                raise NotFound(f"Could not find Application Credential: {cred_id}.")
            return cred

    def delete(self, ctx: ValidatedToken | None, user_id: str, cred_id: str) -> None:
        """Delete a credential; the tokens made with it stop working at once."""
        if ctx is not None:
            enforce(ctx, "identity:delete_application_credential", user_id=user_id)
            _check_unrestricted(ctx)
        with self.db.session() as session:
            cred = session.get(ApplicationCredential, cred_id)
            if cred is None or cred.user_id != user_id:
                raise NotFound(f"Could not find Application Credential: {cred_id}.")
            session.delete(cred)
            self.changed(session)

    def roles_of(self, creds: Sequence[ApplicationCredential]) -> dict[str, dict[str, Any]]:
        """``{role_id: {"id", "name", "domain_id"}}`` for the roles these credentials
        carry (roles deleted since are left out)."""
        ids = {rid for cred in creds for rid in cred.roles}
        if not ids:
            return {}
        with self.db.session() as session:
            return {r.id: {"id": r.id, "name": r.name, "domain_id": r.domain_id}
                    for r in session.scalars(select(Role).where(Role.id.in_(ids)))}

    # -- access rules ---------------------------------------------------------------

    @staticmethod
    def _render_rule(rule: AccessRule) -> dict[str, str]:
        return {"id": rule.id, "service": rule.service, "method": rule.method,
                "path": rule.path}

    def rules_of(self, session: Session, cred: ApplicationCredential
                 ) -> builtins.list[dict[str, str]]:
        """A credential's access rules, in the order it was given them."""
        if not cred.access_rules:
            return []
        rows = {r.id: r for r in session.scalars(select(AccessRule).where(
            AccessRule.id.in_(cred.access_rules)))}
        return [self._render_rule(rows[i]) for i in cred.access_rules if i in rows]

    def access_rules_of(self, creds: Sequence[ApplicationCredential]
                        ) -> dict[str, dict[str, str]]:
        """``{rule_id: rule}`` for the access rules these credentials carry."""
        ids = {rid for cred in creds for rid in cred.access_rules or []}
        if not ids:
            return {}
        with self.db.session() as session:
            return {r.id: self._render_rule(r) for r in session.scalars(
                select(AccessRule).where(AccessRule.id.in_(ids)))}

    def list_rules(self, ctx: ValidatedToken | None, user_id: str, **filters: str
                   ) -> builtins.list[dict[str, str]]:
        """``GET /v3/users/{id}/access_rules`` (filters: service, method, path)."""
        authorize(ctx, "identity:list_access_rules", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            stmt = select(AccessRule).where(AccessRule.user_id == user_id)
            for key, value in filters.items():
                stmt = stmt.where(getattr(AccessRule, key) == value)
            return [self._render_rule(r) for r in session.scalars(
                stmt.order_by(AccessRule.service, AccessRule.path, AccessRule.id))]

    def _rule(self, session: Session, user_id: str, rule_id: str) -> AccessRule:
        rule = session.get(AccessRule, rule_id)
        if rule is None or rule.user_id != user_id:
            raise NotFound(f"Could not find Access Rule: {rule_id}.")
        return rule

    def get_rule(self, ctx: ValidatedToken | None, user_id: str, rule_id: str
                 ) -> dict[str, str]:
        authorize(ctx, "identity:get_access_rule", user_id=user_id)
        with self.db.session() as session:
            return self._render_rule(self._rule(session, user_id, rule_id))

    def delete_rule(self, ctx: ValidatedToken | None, user_id: str, rule_id: str) -> None:
        """Delete an access rule no credential of the user uses any more (403 if one
        does: delete the credential first)."""
        if ctx is not None:
            enforce(ctx, "identity:delete_access_rule", user_id=user_id)
            _check_unrestricted(ctx)
        with self.db.session() as session:
            rule = self._rule(session, user_id, rule_id)
            for cred in session.scalars(select(ApplicationCredential).where(
                    ApplicationCredential.user_id == user_id)):
                if rule_id in (cred.access_rules or []):
                    raise Forbidden(f"You are not authorized to perform the requested "
                                    f"action: access rule {rule_id} is in use by "
                                    f"application credential {cred.id}; delete the "
                                    f"credential first.")
            session.delete(rule)
            self.changed(session)

"""Issuing, validating and revoking tokens.

Issuing and validating share one path: a new token is validated before it is handed
out, so a token can never be issued that validation would refuse. A token is good while
it has not expired, no revocation event matches it, its user and the user's domain are
enabled, its project or domain exists and is enabled, the user still holds a role there,
and (for application-credential tokens) the credential exists and has not expired.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Forbidden, InvalidField, NotFound, Unauthorized
from onestack.db.models import Domain, Project, RevocationEvent, User, utcnow
from onestack.services.identity import compliance
from onestack.services.identity.base import isotime
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.oauth1 import SignedRequest
from onestack.services.identity.policy import authorize
from onestack.services.identity.throttle import FailedLogins
from onestack.services.identity.tokens import (
    InvalidToken,
    TokenData,
    TokenFormatter,
    new_audit_id,
)
from onestack.services.identity.users import ACCOUNT_LOCKED

if TYPE_CHECKING:
    from onestack.services.identity.service import Identity

AUTH_REQUIRED = "The request you have made requires authentication."
_CACHE_MAX = 20000


class TokenNotFound(NotFound):
    def __init__(self, reason: str = "") -> None:
        super().__init__("Could not find token." + (f" {reason}" if reason else ""))


def _dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(path, f"{value!r} is not of type 'object'")
    return value


def _str(container: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
    value = container.get(key)
    if value is None:
        if required:
            raise InvalidField(f"{path}/{key}", "is a required property")
        return None
    if not isinstance(value, str) or not value:
        raise InvalidField(f"{path}/{key}", f"{value!r} is not a non-empty string")
    return value


class Tokens:
    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.failed_logins = FailedLogins(lambda: identity.config.identity)
        self._formatter: TokenFormatter | None = None
        self._cache: dict[str, tuple[tuple, ValidatedToken]] = {}
        #: (revision, [(audit_id, user_id, project_id, issued_before)]): plain values,
        #: never ORM objects, which a rolled-back session would expire under us.
        self._revocations: tuple[tuple, list[tuple]] | None = None

    @property
    def formatter(self) -> TokenFormatter:
        if self._formatter is None:
            self._formatter = TokenFormatter(self.identity.keys)
        return self._formatter

    # -- validation -----------------------------------------------------------------

    def validate(self, token: str) -> ValidatedToken:
        """Check a token; raises ``Unauthorized`` with the reason if it is not good."""
        # a key rotation can drop the key a cached token was made under
        revision = (*self.identity.revision(), self.formatter.key_signature)
        hit = self._cache.get(token)
        now = time.time()
        if hit is not None and hit[0] == revision and hit[1].data.expires_at > now:
            return hit[1]
        try:
            data = self.formatter.decode(token)
        except InvalidToken as exc:
            raise Unauthorized(f"The token is not valid: {exc}.") from None
        vt = self._check(token, data, revision)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (revision, vt)
        return vt

    def validate_subject(self, ctx: ValidatedToken | None, token: str,
                         action: str = "validate") -> ValidatedToken:
        """Like ``validate`` for ``X-Subject-Token``: a bad token is a 404. ``action``
        (``validate``, ``check`` or ``revoke``) names the caller's policy rule,
        ``identity:<action>_token``, checked against the subject's user."""
        try:
            vt = self.validate(token)
        except Unauthorized as exc:
            raise TokenNotFound(exc.message) from None
        authorize(ctx, f"identity:{action}_token", user_id=vt.user_id)
        return vt

    def _revocation_events(self, session: Session, revision: tuple) -> list[tuple]:
        if self._revocations is None or self._revocations[0] != revision:
            horizon = time.time() - 2 * max(self.identity.config.identity.token_expiration,
                                            86400)
            events = [tuple(row) for row in session.execute(
                select(RevocationEvent.audit_id, RevocationEvent.user_id,
                       RevocationEvent.project_id, RevocationEvent.issued_before)
                .where(RevocationEvent.revoked_at > horizon))]
            self._revocations = (revision, events)
        return self._revocations[1]

    def _check(self, token: str, data: TokenData, revision: tuple) -> ValidatedToken:
        if data.expires_at <= time.time():
            raise Unauthorized("The token has expired.")
        with self.identity.db.session() as session:
            for audit_id, user_id, project_id, issued_before in \
                    self._revocation_events(session, revision):
                if data.issued_at > issued_before:
                    continue
                if audit_id is not None and audit_id not in data.audit_ids:
                    continue
                if user_id is not None and user_id != data.user_id:
                    continue
                if project_id is not None and project_id != data.project_id:
                    continue
                raise Unauthorized("The token has been revoked.")
            user = session.get(User, data.user_id)
            if user is None:
                raise Unauthorized("The token's user no longer exists.")
            user_domain = session.get(Domain, user.domain_id)
            if not user.enabled or user_domain is None or not user_domain.enabled:
                raise Unauthorized("The token's user is disabled.")
            vt = ValidatedToken(token=token, data=data, user={
                "id": user.id, "name": user.name,
                "domain": {"id": user_domain.id, "name": user_domain.name},
                "password_expires_at": isotime(user.password_expires_at),
            })
            app_cred = None
            delegated: list[str] | None = None
            role_holder = user.id
            if data.trust_id:
                grant = self.identity.trusts.for_token(session, data.trust_id, user.id,
                                                       data.project_id)
                vt.trust = grant.body
                delegated, role_holder = grant.roles, grant.role_holder_id
            if "oauth1" in data.methods:
                access = self.identity.oauth1.for_token(session, data.app_cred_id or "")
                if access is None or access.authorizing_user_id != user.id:
                    raise Unauthorized("The token's OAuth access token no longer exists.")
                vt.oauth1 = {"access_token_id": access.id,
                             "consumer_id": access.consumer_id}
                delegated = list(access.roles)
            elif data.app_cred_id:
                app_cred = self.identity.app_creds.get_for_token(session, data.app_cred_id)
                if app_cred is None or app_cred.user_id != user.id:
                    raise Unauthorized("The token's application credential no longer exists.")
                if app_cred.expires_at is not None and app_cred.expires_at <= utcnow():
                    raise Unauthorized("The token's application credential has expired.")
                vt.app_cred = {"id": app_cred.id, "name": app_cred.name,
                               "restricted": not app_cred.unrestricted}
                if app_cred.access_rules:
                    vt.app_cred["access_rules"] = self.identity.app_creds.rules_of(
                        session, app_cred)
            if data.project_id:
                project = session.get(Project, data.project_id)
                if project is None:
                    raise Unauthorized("The token's project no longer exists.")
                domain = session.get(Domain, project.domain_id)
                if not project.enabled or domain is None or not domain.enabled:
                    raise Unauthorized("The token's project is disabled.")
                vt.project = {"id": project.id, "name": project.name,
                              "domain": {"id": domain.id, "name": domain.name}}
                roles = self.identity.assignments.effective_roles(
                    session, role_holder, project_id=project.id,
                    only=app_cred.roles if app_cred is not None else delegated)
                if not roles:
                    raise Unauthorized(
                        f"User {user.id} has no access to project {project.id}.")
                vt.roles = [{"id": r.id, "name": r.name} for r in roles]
            elif data.domain_id:
                domain = session.get(Domain, data.domain_id)
                if domain is None or not domain.enabled:
                    raise Unauthorized("The token's domain does not exist or is disabled.")
                vt.domain = {"id": domain.id, "name": domain.name}
                roles = self.identity.assignments.effective_roles(
                    session, user.id, domain_id=domain.id)
                if not roles:
                    raise Unauthorized(f"User {user.id} has no access to domain {domain.id}.")
                vt.roles = [{"id": r.id, "name": r.name} for r in roles]
            elif data.system:
                roles = self.identity.assignments.effective_roles(session, user.id,
                                                                  system=True)
                if not roles:
                    raise Unauthorized(f"User {user.id} has no access to the system.")
                vt.roles = [{"id": r.id, "name": r.name} for r in roles]
        return vt

    # -- issuing --------------------------------------------------------------------

    async def authenticate(self, body: Any, source: str | None = None,
                           signed: SignedRequest | None = None) -> ValidatedToken:
        """``POST /v3/auth/tokens``: returns the new, validated token.

        ``source`` is the client's address: failed password and application-credential
        logins are counted per source, and a source over the limit gets 429. ``signed``
        is the request as an OAuth signature covers it (the ``oauth1`` method).
        """
        auth = _dict(_dict(body, "body").get("auth"), "auth")
        ident = _dict(auth.get("identity"), "auth/identity")
        methods = ident.get("methods")
        if not isinstance(methods, list) or not methods or not all(
                isinstance(m, str) for m in methods):
            raise InvalidField("auth/identity/methods", "must be a non-empty list of strings")
        supported = {"password", "token", "application_credential", "oauth1"}
        if not set(methods) <= supported:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
        if len(set(methods)) > 1:
            raise Unauthorized("Authenticate with exactly one of password, token, "
                               "application_credential or oauth1.")
        method = methods[0]
        scope_body = auth.get("scope")
        now = time.time()
        expires_at = now + self.identity.config.identity.token_expiration
        audit_ids: tuple[str, ...] = (new_audit_id(),)
        app_cred_id = None
        token_methods: tuple[str, ...] = (method,)
        if method == "password":
            pw = _dict(ident.get("password"), "auth/identity/password")
            user_ref = _dict(pw.get("user"), "auth/identity/password/user")
            self.failed_logins.check(source)
            try:
                user_id = await self._check_password(user_ref)
            except Unauthorized:
                self.failed_logins.failed(source)
                raise
            project_id, domain_id, system = self._resolve_scope(scope_body, user_id)
        elif method == "token":
            tok = _dict(ident.get("token"), "auth/identity/token")
            try:
                original = self.validate(_str(tok, "id", "auth/identity/token") or "")
            except Unauthorized as exc:   # Keystone: a bad token to rescope is a 404
                raise TokenNotFound(exc.message) from None
            if original.app_cred:
                raise Forbidden("An application credential token cannot be rescoped.")
            if original.oauth1:
                raise Forbidden("A token obtained through OAuth cannot be rescoped.")
            if original.trust:
                raise Forbidden("You are not authorized to perform the requested action: "
                                "rescope a trust-scoped token.")
            user_id = original.user_id
            expires_at = original.data.expires_at
            audit_ids = (audit_ids[0], original.data.audit_ids[0])
            token_methods = tuple(dict.fromkeys(("token",) + original.data.methods))
            if scope_body is None:
                project_id, domain_id = original.project_id, original.domain_id
                system = original.system
            else:
                project_id, domain_id, system = self._resolve_scope(scope_body, user_id)
        elif method == "oauth1":
            if scope_body is not None:
                raise Unauthorized("An OAuth access token cannot request a scope: its "
                                   "project is the one delegated.")
            if signed is None:
                raise Unauthorized("The oauth1 method needs a signed request.")
            access = self.identity.oauth1.authenticate(signed)
            user_id, project_id, domain_id = (access.authorizing_user_id,
                                              access.project_id, None)
            system = False
            app_cred_id = access.id   # the payload's delegation slot (tokens.METHODS)
            if access.expires_at is not None:
                expires_at = min(expires_at,
                                 access.expires_at.replace(tzinfo=_utc()).timestamp())
        else:
            if scope_body is not None:
                raise Unauthorized("Application credentials cannot request a scope.")
            ac_body = _dict(ident.get("application_credential"),
                            "auth/identity/application_credential")
            self.failed_logins.check(source)
            try:
                cred = await self.identity.app_creds.authenticate(ac_body)
            except Unauthorized:
                self.failed_logins.failed(source)
                raise
            user_id, project_id, domain_id = cred.user_id, cred.project_id, None
            system = False
            app_cred_id = cred.id
            if cred.expires_at is not None:
                expires_at = min(expires_at, cred.expires_at.timestamp()
                                 if cred.expires_at.tzinfo else
                                 cred.expires_at.replace(tzinfo=_utc()).timestamp())
        trust_id = None
        if isinstance(scope_body, dict) and "OS-TRUST:trust" in scope_body:
            # the trustee authenticated (password or token): the trust gives the rest
            grant = self.identity.trusts.use(scope_body["OS-TRUST:trust"], user_id)
            user_id, project_id, domain_id, system = grant.user_id, grant.project_id, \
                None, False
            trust_id = grant.trust_id
            if grant.expires_at is not None:
                expires_at = min(expires_at,
                                 grant.expires_at.replace(tzinfo=_utc()).timestamp())
        data = TokenData(user_id=user_id, methods=token_methods, expires_at=expires_at,
                         issued_at=now, audit_ids=audit_ids, project_id=project_id,
                         domain_id=domain_id, app_cred_id=app_cred_id, system=system,
                         trust_id=trust_id)
        token = self.formatter.encode(data)
        return self.validate(token)

    async def _check_password(self, user_ref: dict[str, Any]) -> str:
        password = user_ref.get("password")
        if not isinstance(password, str):
            raise InvalidField("auth/identity/password/user/password",
                               f"{password!r} is not of type 'string'")
        users = self.identity.users
        with self.identity.db.session() as session:
            user = users.find_for_auth(session, user_ref, "auth/identity/password/user")
            stored = user.password_hash if user else None
            locked = bool(user and user.locked_until and user.locked_until > utcnow())
            user_id = user.id if user else None
        ok = await self.identity.hasher.verify_async(stored, password)
        if user_id is None or (locked and not ok):
            raise Unauthorized(AUTH_REQUIRED)
        if locked:
            raise Unauthorized(ACCOUNT_LOCKED)
        users.record_login(user_id, ok)
        if not ok:
            raise Unauthorized(AUTH_REQUIRED)
        with self.identity.db.session() as session:
            user = session.get(User, user_id)
            if user is None or not user.enabled:
                raise Unauthorized(AUTH_REQUIRED)
            cfg = self.identity.config.identity
            if compliance.is_inactive(cfg, user):
                raise Unauthorized(f"The account is disabled for user: {user_id}.")
            if compliance.is_expired(user):
                raise compliance.password_expired(user_id)
        return user_id

    def _resolve_scope(self, scope: Any, user_id: str
                       ) -> tuple[str | None, str | None, bool]:
        """Turn a request's ``scope`` into (project_id, domain_id, system)."""
        if scope is None:
            with self.identity.db.session() as session:
                user = session.get(User, user_id)
                default = user.default_project_id if user else None
                if default and session.get(Project, default) is not None and \
                        self.identity.assignments.effective_roles(
                            session, user_id, project_id=default):
                    return default, None, False
            return None, None, False
        if scope == "unscoped":
            return None, None, False
        scope = _dict(scope, "auth/scope")
        if "OS-TRUST:trust" in scope:   # the trust names the project (authenticate)
            if len(scope) > 1:
                raise BadRequest("Specify a trust, a project, a domain or the system as "
                                 "the scope, not several.")
            return None, None, False
        if len([k for k in ("project", "domain", "system") if k in scope]) > 1:
            raise BadRequest("Specify a project, a domain or the system as the scope, "
                             "not several.")
        with self.identity.db.session() as session:
            if "project" in scope:
                ref = _dict(scope["project"], "auth/scope/project")
                project = self.identity.projects.find_by_ref(session, ref, "auth/scope/project")
                if project is None:
                    raise Unauthorized(AUTH_REQUIRED)
                return project.id, None, False
            if "domain" in scope:
                ref = _dict(scope["domain"], "auth/scope/domain")
                domain = self.identity.domains.find_by_ref(session, ref, "auth/scope/domain")
                if domain is None:
                    raise Unauthorized(AUTH_REQUIRED)
                return None, domain.id, False
        if "system" in scope:
            system = _dict(scope["system"], "auth/scope/system")
            if system.get("all") is not True or len(system) != 1:
                raise InvalidField("auth/scope/system", "must be {\"all\": true}")
            return None, None, True
        raise InvalidField("auth/scope", "must name a project, a domain or the system")

    # -- revocation -----------------------------------------------------------------

    def revoke(self, ctx: ValidatedToken | None, vt: ValidatedToken) -> None:
        """Revoke one token (and every token rescoped from it)."""
        authorize(ctx, "identity:revoke_token", user_id=vt.user_id)
        with self.identity.db.session() as session:
            session.add(RevocationEvent(audit_id=vt.data.audit_ids[0],
                                        issued_before=time.time(), revoked_at=time.time()))
            self.identity.bump_revision(session)

    def revoke_user(self, session: Session, user_id: str) -> None:
        """Revoke every token the user holds now (password change, disable)."""
        now = time.time()
        session.add(RevocationEvent(user_id=user_id, issued_before=now, revoked_at=now))
        self.identity.bump_revision(session)

    # -- what a token may reach (/v3/auth/...) ---------------------------------------

    def catalog(self, ctx: ValidatedToken) -> list[dict[str, Any]]:
        """The catalog of the caller's (scoped) token."""
        authorize(ctx, "identity:get_auth_catalog")
        if ctx.project is None and ctx.domain is None and not ctx.system:
            raise Forbidden("The authenticated token is not scoped, so it has no catalog.")
        catalog: list[dict[str, Any]] = self.render(ctx)["token"]["catalog"]
        return catalog

    def projects(self, ctx: ValidatedToken) -> list[Project]:
        """The enabled projects (in enabled domains) the caller may scope a token to."""
        authorize(ctx, "identity:get_auth_projects")
        with self.identity.db.session() as session:
            ids = self.identity.assignments.project_ids_for_user(session, ctx.user_id)
            projects = list(session.scalars(select(Project).where(
                Project.id.in_(ids), Project.enabled.is_(True)).order_by(Project.name)))
            enabled_domains = set(session.scalars(select(Domain.id).where(
                Domain.enabled.is_(True))))
        return [p for p in projects if p.domain_id in enabled_domains]

    def domains(self, ctx: ValidatedToken) -> list[Domain]:
        """The enabled domains the caller may scope a token to."""
        authorize(ctx, "identity:get_auth_domains")
        with self.identity.db.session() as session:
            ids = self.identity.assignments.domain_ids_for_user(session, ctx.user_id)
            return list(session.scalars(select(Domain).where(
                Domain.id.in_(ids), Domain.enabled.is_(True)).order_by(Domain.name)))

    def systems(self, ctx: ValidatedToken) -> list[dict[str, bool]]:
        """``[{"all": true}]`` when the caller may scope a token to the system."""
        authorize(ctx, "identity:get_auth_system")
        with self.identity.db.session() as session:
            if self.identity.assignments.system_holders(session, ctx.user_id):
                return [{"all": True}]
        return []

    # -- rendering ------------------------------------------------------------------

    def render(self, vt: ValidatedToken, catalog: bool = True) -> dict[str, Any]:
        """The ``token`` body Keystone returns, built once per token and revision."""
        key = "body" if catalog else "body-nocatalog"
        cached = vt.cache.get(key)
        if cached is not None:
            return cached
        body: dict[str, Any] = {
            "methods": list(vt.data.methods),
            "user": vt.user,
            "audit_ids": list(vt.data.audit_ids),
            "expires_at": isotime(vt.data.expires_at),
            "issued_at": isotime(vt.data.issued_at),
        }
        if vt.project is not None:
            body["project"] = vt.project
            body["is_domain"] = False
        if vt.domain is not None:
            body["domain"] = vt.domain
        if vt.system:
            body["system"] = {"all": True}
        if vt.project is not None or vt.domain is not None or vt.system:
            body["roles"] = vt.roles
            if catalog:
                with self.identity.db.session() as session:
                    body["catalog"] = self.identity.catalog.build(session, vt.project_id,
                                                                     vt.user_id)
        # an unscoped token has no catalog at all (not an empty one), as in Keystone
        if vt.app_cred is not None:
            body["application_credential"] = vt.app_cred
        if vt.oauth1 is not None:
            body["OS-OAUTH1"] = vt.oauth1
        if vt.trust is not None:
            body["OS-TRUST:trust"] = vt.trust
        result = {"token": body}
        vt.cache[key] = result
        return result

    def render_json(self, vt: ValidatedToken, catalog: bool = True) -> bytes:
        """``render`` encoded as the response body, also kept with the validation result
        (so a cache hit on ``validate`` serves the token without encoding it again)."""
        key = "json" if catalog else "json-nocatalog"
        cached = vt.cache.get(key)
        if cached is None:
            cached = json.dumps(self.render(vt, catalog),
                                separators=(",", ":")).encode()
            vt.cache[key] = cached
        return cached


def _utc() -> dt.tzinfo:
    return dt.UTC

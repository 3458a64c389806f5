"""OAuth 1.0a delegation (Keystone's OS-OAUTH1 extension).

A user delegates some of their roles on one project to a program, the *consumer*,
without giving it their password:

1. an administrator registers the consumer (``/v3/OS-OAUTH1/consumers``): an id and a
   secret;
2. the consumer asks for a *request token* for a project (``POST .../request_token``,
   signed with its secret, the project in the ``Requested-Project-Id`` header);
3. a user who holds roles on that project authorizes it for some of them
   (``PUT .../authorize/{request_token_id}``) and hands the consumer the *verifier*;
4. the consumer exchanges request token and verifier for an *access token*
   (``POST .../access_token``, signed with both secrets); the request token is spent;
5. with the access token the consumer gets Keystone tokens (``POST /v3/auth/tokens``
   with the ``oauth1`` method, signed): scoped to the project, holding the delegated
   roles that the user still has, and naming the access token (``OS-OAUTH1``).

The user lists and deletes their access tokens (``/v3/users/{id}/OS-OAUTH1/
access_tokens``); deleting one, or the consumer, ends the tokens made with it.

Requests are signed as RFC 5849 says (HMAC-SHA1 or HMAC-SHA256 over the method, the
URL and the parameters, keyed by the consumer's and the token's secrets). Timestamps
must be within ten minutes of now and a nonce is accepted once; the nonces are kept in
memory, per process, for that window.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Forbidden, InvalidField, NotFound, Unauthorized
from onestack.db.models import Project, Role
from onestack.db.models.base import utcnow
from onestack.db.models.identity import OAuthAccessToken, OAuthConsumer, OAuthRequestToken
from onestack.services.identity.base import SubService, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

REQUEST_TOKEN_LIFETIME = 28800   # seconds (Keystone's default)
ACCESS_TOKEN_LIFETIME = 86400
CLOCK_SKEW = 600
_DIGESTS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def _enc(value: str) -> str:
    """RFC 5849 percent-encoding: everything but unreserved characters."""
    return quote(value, safe="~")


@dataclass
class SignedRequest:
    """What a signature covers: the method, the URL as the client addressed it, the
    ``Authorization: OAuth ...`` header and any form-encoded body."""

    method: str
    url: str
    authorization: str | None
    form: list[tuple[str, str]]


def oauth_params(header: str | None) -> dict[str, str]:
    """The parameters of an ``Authorization: OAuth k="v", ...`` header."""
    if not header or not header[:6].lower() == "oauth ":
        raise Unauthorized("The request is not signed with OAuth 1.0a "
                           "(Authorization: OAuth ...).")
    params: dict[str, str] = {}
    for part in header[6:].split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise Unauthorized(f"Malformed OAuth parameter: {key.strip()[:64]}")
        params[unquote(key.strip())] = unquote(value[1:-1])
    return params


def base_string(req: SignedRequest, params: dict[str, str]) -> str:
    parts = urlsplit(req.url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) \
        else f"{host}:{port}"
    pairs = [(k, v) for k, v in params.items() if k not in ("oauth_signature", "realm")]
    pairs += parse_qsl(parts.query, keep_blank_values=True) + req.form
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v))
                                                          for k, v in pairs))
    return "&".join((req.method.upper(), _enc(f"{scheme}://{netloc}{parts.path}"),
                     _enc(normalized)))


def signature(req: SignedRequest, params: dict[str, str], consumer_secret: str,
              token_secret: str = "") -> str:
    digest = _DIGESTS[params["oauth_signature_method"]]
    key = f"{_enc(consumer_secret)}&{_enc(token_secret)}".encode()
    mac = hmac.new(key, base_string(req, params).encode(), digest).digest()
    return base64.b64encode(mac).decode()


def _expired(expires_at: dt.datetime | None) -> bool:
    return expires_at is not None and expires_at <= utcnow()


def _iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


class OAuth1(SubService):
    def __init__(self, identity: Any) -> None:
        super().__init__(identity)
        self._nonces: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # -- consumers ----------------------------------------------------------------

    @staticmethod
    def authorize_write(ctx: ValidatedToken | None, action: str) -> None:
        """The policy check of a consumer write, made before its body is read."""
        authorize(ctx, f"identity:{action}_consumer")

    def create_consumer(self, ctx: ValidatedToken | None, description: str | None,
                        extra: dict[str, Any]) -> OAuthConsumer:
        authorize(ctx, "identity:create_consumer")
        with self.db.session() as session:
            consumer = OAuthConsumer(id=new_id(), secret=secrets.token_urlsafe(32),
                                     description=description, extra=extra)
            session.add(consumer)
            session.flush()
            session.expunge(consumer)
            return consumer

    def list_consumers(self, ctx: ValidatedToken | None) -> list[OAuthConsumer]:
        authorize(ctx, "identity:list_consumers")
        with self.db.session() as session:
            return list(session.scalars(select(OAuthConsumer).order_by(OAuthConsumer.id)))

    def get_consumer(self, ctx: ValidatedToken | None, consumer_id: str) -> OAuthConsumer:
        authorize(ctx, "identity:get_consumer")
        with self.db.session() as session:
            return self._consumer(session, consumer_id)

    def update_consumer(self, ctx: ValidatedToken | None, consumer_id: str,
                        changes: dict[str, Any]) -> OAuthConsumer:
        authorize(ctx, "identity:update_consumer")
        with self.db.session() as session:
            consumer = self._consumer(session, consumer_id)
            if "description" in changes:
                consumer.description = changes.pop("description")
            if changes:
                consumer.extra = {**consumer.extra, **changes}
            return consumer

    def delete_consumer(self, ctx: ValidatedToken | None, consumer_id: str) -> None:
        """Delete the consumer with its request and access tokens; the tokens made with
        them stop working."""
        authorize(ctx, "identity:delete_consumer")
        with self.db.session() as session:
            consumer = self._consumer(session, consumer_id)
            for model in (OAuthAccessToken, OAuthRequestToken):
                for row in session.scalars(select(model).where(
                        model.consumer_id == consumer_id)):
                    session.delete(row)
            session.flush()   # the tokens first: the database would cascade them
            session.delete(consumer)
            self.changed(session)

    @staticmethod
    def _consumer(session: Session, consumer_id: str) -> OAuthConsumer:
        consumer = session.get(OAuthConsumer, consumer_id)
        if consumer is None:
            raise NotFound(f"Could not find consumer: {consumer_id}.")
        return consumer

    # -- signatures ---------------------------------------------------------------

    def _verify(self, session: Session, req: SignedRequest, token_secret_of: Any = None
                ) -> tuple[OAuthConsumer, dict[str, str]]:
        """Check the request's signature, timestamp and nonce; the consumer and the
        OAuth parameters. ``token_secret_of(params)`` gives the token's secret (and
        raises for an unknown token) when the request is signed with one."""
        params = oauth_params(req.authorization)
        for name in ("oauth_consumer_key", "oauth_signature_method", "oauth_signature",
                     "oauth_timestamp", "oauth_nonce"):
            if not params.get(name):
                raise Unauthorized(f"The OAuth parameter {name} is missing.")
        if params["oauth_signature_method"] not in _DIGESTS:
            raise Unauthorized("Unsupported OAuth signature method "
                               f"{params['oauth_signature_method'][:32]!r}; use HMAC-SHA1 "
                               "or HMAC-SHA256.")
        if params.get("oauth_version", "1.0") != "1.0":
            raise Unauthorized("Only OAuth 1.0 is supported.")
        consumer = session.get(OAuthConsumer, params["oauth_consumer_key"])
        if consumer is None:
            raise Unauthorized("The OAuth consumer is not known.")
        token_secret = token_secret_of(params) if token_secret_of is not None else ""
        expected = signature(req, params, consumer.secret, token_secret)
        if not hmac.compare_digest(expected, params["oauth_signature"]):
            raise Unauthorized("The OAuth signature is not valid.")
        try:
            stamp = int(params["oauth_timestamp"])
        except ValueError:
            raise Unauthorized("The OAuth timestamp is not a number.") from None
        now = time.time()
        if abs(now - stamp) > CLOCK_SKEW:
            raise Unauthorized("The OAuth timestamp is too far from the server's clock.")
        with self._lock:
            self._nonces = {k: t for k, t in self._nonces.items()
                            if t > now - 2 * CLOCK_SKEW}
            key = (consumer.id, params["oauth_nonce"])
            if key in self._nonces:
                raise Unauthorized("The OAuth nonce was used already.")
            self._nonces[key] = now
        return consumer, params

    # -- the delegation -----------------------------------------------------------

    def request_token(self, req: SignedRequest, project_id: str | None
                      ) -> OAuthRequestToken:
        """Step 2: a consumer asks for roles on ``project_id``."""
        with self.db.session() as session:
            consumer, _ = self._verify(session, req)
            if not project_id:
                raise BadRequest("The Requested-Project-Id header is required.")
            if session.get(Project, project_id) is None:
                raise NotFound(f"Could not find project: {project_id}.")
            token = OAuthRequestToken(
                id=secrets.token_hex(16), secret=secrets.token_urlsafe(24),
                consumer_id=consumer.id, project_id=project_id, roles=[],
                expires_at=utcnow() + dt.timedelta(seconds=REQUEST_TOKEN_LIFETIME))
            session.add(token)
            session.flush()
            session.expunge(token)
            return token

    def authorize_request_token(self, ctx: ValidatedToken, request_token_id: str,
                                roles: list[dict[str, Any]]) -> str:
        """Step 3: the caller delegates ``roles`` (ids or names) that they hold on the
        token's project; the verifier the consumer needs."""
        authorize(ctx, "identity:authorize_request_token")
        if "oauth1" in ctx.data.methods or ctx.app_cred is not None:
            raise Forbidden("A token obtained through delegation cannot authorize a "
                            "request token.")
        if not roles:
            raise InvalidField("roles", "name at least one role to delegate")
        with self.db.session() as session:
            token = session.get(OAuthRequestToken, request_token_id)
            if token is None or _expired(token.expires_at):
                raise NotFound(f"Could not find request token: {request_token_id}.")
            if token.authorizing_user_id is not None:
                raise Unauthorized("The request token has been authorized already.")
            held = {r.id: r for r in self.identity.assignments.effective_roles(
                session, ctx.user_id, project_id=token.project_id)}
            by_name = {r.name: r for r in held.values()}
            wanted: list[str] = []
            for i, ref in enumerate(roles):
                if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
                    raise InvalidField(f"roles/{i}", "must be an object with an id or a "
                                                     "name")
                role = held.get(ref["id"]) if ref.get("id") else by_name.get(ref["name"])
                if role is None:
                    what = ref.get("id") or ref.get("name")
                    if session.get(Role, str(what)) is None and not session.scalar(
                            select(Role.id).where(Role.name == str(what))):
                        raise NotFound(f"Could not find role: {what}.")
                    raise Unauthorized(f"You do not hold role {what} on project "
                                       f"{token.project_id}, so you cannot delegate it.")
                if role.id not in wanted:
                    wanted.append(role.id)
            token.authorizing_user_id = ctx.user_id
            token.roles = wanted
            token.verifier = secrets.token_hex(4)
            return token.verifier

    def access_token(self, req: SignedRequest) -> OAuthAccessToken:
        """Step 4: the authorized request token and its verifier, for an access token."""
        with self.db.session() as session:
            request_token: list[OAuthRequestToken] = []

            def secret_of(params: dict[str, str]) -> str:
                token = session.get(OAuthRequestToken, params.get("oauth_token", ""))
                if token is None or _expired(token.expires_at):
                    raise Unauthorized("The request token is not known or has expired.")
                request_token.append(token)
                return token.secret

            consumer, params = self._verify(session, req, secret_of)
            token = request_token[0]
            if token.consumer_id != consumer.id:
                raise Unauthorized("The request token belongs to another consumer.")
            if token.authorizing_user_id is None or token.verifier is None:
                raise Unauthorized("The request token has not been authorized.")
            if not hmac.compare_digest(params.get("oauth_verifier", ""), token.verifier):
                raise Unauthorized("The OAuth verifier is not valid.")
            access = OAuthAccessToken(
                id=secrets.token_hex(16), secret=secrets.token_urlsafe(24),
                consumer_id=consumer.id, authorizing_user_id=token.authorizing_user_id,
                project_id=token.project_id, roles=list(token.roles),
                expires_at=utcnow() + dt.timedelta(seconds=ACCESS_TOKEN_LIFETIME))
            session.add(access)
            session.delete(token)   # spent
            session.flush()
            session.expunge(access)
            return access

    def authenticate(self, req: SignedRequest) -> OAuthAccessToken:
        """Step 5: the access token a signed ``oauth1`` authentication names."""
        with self.db.session() as session:
            found: list[OAuthAccessToken] = []

            def secret_of(params: dict[str, str]) -> str:
                access = session.get(OAuthAccessToken, params.get("oauth_token", ""))
                if access is None:
                    raise Unauthorized("The access token is not known.")
                if _expired(access.expires_at):
                    raise Unauthorized("The access token has expired.")
                found.append(access)
                return access.secret

            consumer, _ = self._verify(session, req, secret_of)
            access = found[0]
            if access.consumer_id != consumer.id:
                raise Unauthorized("The access token belongs to another consumer.")
            session.expunge(access)
            return access

    def for_token(self, session: Session, access_token_id: str) -> OAuthAccessToken | None:
        """The access token a Keystone token was made with, while it is valid."""
        access = session.get(OAuthAccessToken, access_token_id)
        if access is None or _expired(access.expires_at):
            return None
        return access

    # -- the user's access tokens -------------------------------------------------

    def list_access_tokens(self, ctx: ValidatedToken | None, user_id: str
                           ) -> list[OAuthAccessToken]:
        self._own(ctx, user_id)
        with self.db.session() as session:
            return list(session.scalars(select(OAuthAccessToken).where(
                OAuthAccessToken.authorizing_user_id == user_id)
                .order_by(OAuthAccessToken.id)))

    def get_access_token(self, ctx: ValidatedToken | None, user_id: str,
                         access_token_id: str) -> OAuthAccessToken:
        self._own(ctx, user_id)
        with self.db.session() as session:
            return self._access(session, user_id, access_token_id)

    def delete_access_token(self, ctx: ValidatedToken | None, user_id: str,
                            access_token_id: str) -> None:
        self._own(ctx, user_id)
        with self.db.session() as session:
            session.delete(self._access(session, user_id, access_token_id))
            self.changed(session)

    def access_token_roles(self, ctx: ValidatedToken | None, user_id: str,
                           access_token_id: str) -> list[Role]:
        self._own(ctx, user_id)
        with self.db.session() as session:
            access = self._access(session, user_id, access_token_id)
            roles = [session.get(Role, rid) for rid in access.roles]
            return [r for r in roles if r is not None]

    @staticmethod
    def _own(ctx: ValidatedToken | None, user_id: str) -> None:
        authorize(ctx, "identity:list_access_tokens", user_id=user_id)
        if ctx is not None and "oauth1" in ctx.data.methods:
            raise Forbidden("A token obtained through delegation cannot manage access "
                            "tokens.")

    @staticmethod
    def _access(session: Session, user_id: str, access_token_id: str) -> OAuthAccessToken:
        access = session.get(OAuthAccessToken, access_token_id)
        if access is None or access.authorizing_user_id != user_id:
            raise NotFound(f"Could not find access token: {access_token_id}.")
        return access


def render_expiry(value: dt.datetime | None) -> str | None:
    return _iso(value)

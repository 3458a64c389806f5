"""Token format: a Fernet token (AES-128-CBC + HMAC-SHA256, from `cryptography`)
around a small msgpack payload. Tokens are never stored; they carry who, what scope,
which methods, when they expire, and their audit ids. Whether a token is still good
(user enabled, project present, not revoked, ...) is decided at validation time.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from dataclasses import dataclass, field

import msgpack
from cryptography.fernet import InvalidToken as FernetInvalidToken
from cryptography.fernet import MultiFernet

from onestack.services.identity.keys import KeyRepository

PAYLOAD_VERSION = 1
#: Bit positions in the token payload: append, never reorder. A token whose methods
#: include ``oauth1`` carries its OAuth access token's id where an application
#: credential's would be. A trust-scoped token (OS-TRUST) carries its trust's id in a
#: tenth element, absent from every other token (so tokens made before trusts existed,
#: nine elements long, still decode).
METHODS = ("password", "token", "application_credential", "oauth1")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class InvalidToken(Exception):
    """The token cannot be read: malformed, forged, or under a key no longer held."""


@dataclass(frozen=True)
class TokenData:
    user_id: str
    methods: tuple[str, ...]
    expires_at: float
    issued_at: float
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    app_cred_id: str | None = None
    #: Scoped to the whole deployment (Keystone's ``{"system": {"all": true}}``).
    system: bool = False
    #: The trust a trust-scoped token was made with (OS-TRUST).
    trust_id: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def scope(self) -> str:
        if self.project_id:
            return "project"
        if self.domain_id:
            return "domain"
        if self.system:
            return "system"
        return "unscoped"


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def _pack_id(value: str | None) -> bytes | str | None:
    if value is not None and _HEX32.match(value):
        return bytes.fromhex(value)
    return value


def _unpack_id(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.hex()
    return value


def _pack_audit(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _unpack_audit(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


class TokenFormatter:
    """Encrypts and decrypts token payloads with the keys of a key repository.

    The keys are re-read when the repository changes (``onestack admin rotate-keys``
    while the server runs), checked at most once a second.
    """

    def __init__(self, keys: KeyRepository) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._signature: tuple = ()
        self._checked = 0.0
        self._fernet: MultiFernet | None = None
        self._reload()

    def _reload(self) -> None:
        signature = self._keys.signature()
        if signature != self._signature or self._fernet is None:
            self._fernet = self._keys.load()
            self._signature = signature

    @property
    def key_signature(self) -> tuple:
        """Changes when the key repository does (re-read at most once a second)."""
        self._current()
        return self._signature

    def _current(self) -> MultiFernet:
        now = time.monotonic()
        if now - self._checked > 1.0:
            with self._lock:
                self._checked = now
                self._reload()
        assert self._fernet is not None
        return self._fernet

    def encode(self, data: TokenData) -> str:
        methods = sum(1 << METHODS.index(m) for m in data.methods)
        if data.project_id:
            scope_type, scope_id = 1, data.project_id
        elif data.domain_id:
            scope_type, scope_id = 2, data.domain_id
        elif data.system:
            scope_type, scope_id = 3, None
        else:
            scope_type, scope_id = 0, None
        payload = [
            PAYLOAD_VERSION, _pack_id(data.user_id), methods, scope_type, _pack_id(scope_id),
            data.expires_at, data.issued_at, [_pack_audit(a) for a in data.audit_ids],
            _pack_id(data.app_cred_id),
        ]
        if data.trust_id:
            payload.append(_pack_id(data.trust_id))
        token = self._current().encrypt(msgpack.packb(payload, use_bin_type=True))
        return token.rstrip(b"=").decode()

    def decode(self, token: str) -> TokenData:
        if not token or len(token) > 1024:
            raise InvalidToken("malformed token")
        raw = token.encode() + b"=" * (-len(token) % 4)
        try:
            payload = msgpack.unpackb(self._current().decrypt(raw), raw=False)
            trust_id = payload.pop() if isinstance(payload, list) and len(payload) == 10 \
                else None
            (version, user_id, methods, scope_type, scope_id, expires_at, issued_at,
             audit_ids, app_cred_id) = payload
        except (FernetInvalidToken, ValueError, TypeError, msgpack.ExtraData,
                msgpack.UnpackException) as exc:
            raise InvalidToken("the token cannot be decrypted") from exc
        if version != PAYLOAD_VERSION:
            raise InvalidToken(f"unknown token payload version {version}")
        return TokenData(
            user_id=_unpack_id(user_id) or "",
            methods=tuple(m for i, m in enumerate(METHODS) if methods & (1 << i)),
            expires_at=float(expires_at),
            issued_at=float(issued_at),
            audit_ids=tuple(_unpack_audit(a) for a in audit_ids),
            project_id=_unpack_id(scope_id) if scope_type == 1 else None,
            domain_id=_unpack_id(scope_id) if scope_type == 2 else None,
            app_cred_id=_unpack_id(app_cred_id),
            system=scope_type == 3,
            trust_id=_unpack_id(trust_id),
        )

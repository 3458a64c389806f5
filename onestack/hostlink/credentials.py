"""A credential per host: what a remote agent proves itself with, instead of a password.

``onestack admin host-credential create HOST`` makes a random secret, prints it once
(for the host's ``--credential`` file) and keeps only its SHA-256 digest, in
``<state-dir>/host-credentials/<host>`` (mode 0600, in the private state directory).
The secret is 256 random bits, so a plain hash is as good as a slow one here.

Host -> server: every request carries ``Authorization: OneStack-Host <host>:<secret>``;
the server hashes the secret and compares it with that host's digest. Server -> host:
the server cannot send the secret (it does not keep it), so it sends
``Authorization: OneStack-Server <key>`` where ``key`` is derived from the digest
(``server_key``); the agent derives the same key from its secret. Either way a request
over plain HTTP carries a bearer credential: outside loopback, put TLS in front.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

SCHEME_HOST = "OneStack-Host"
SCHEME_SERVER = "OneStack-Server"
DIRECTORY = "host-credentials"

#: A host name as os-hypervisors shows it: a DNS name, or a plain label.
HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$")


class CredentialError(ValueError):
    """A host name or credential file that cannot be used."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def server_key(secret_digest: str) -> str:
    """What the server proves itself with to a host (derived from the digest it keeps;
    the agent derives the same from its secret)."""
    return hmac.new(secret_digest.encode(), b"onestack server to host",
                    hashlib.sha256).hexdigest()


def host_authorization(host: str, secret: str) -> str:
    return f"{SCHEME_HOST} {host}:{secret}"


def server_authorization(secret_digest: str) -> str:
    return f"{SCHEME_SERVER} {server_key(secret_digest)}"


def parse_host_authorization(value: str | None) -> tuple[str, str] | None:
    """(host, secret) from an ``Authorization`` header, None if it is not one of ours."""
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME_HOST:
        return None
    host, sep, secret = rest.strip().partition(":")
    if not sep or not HOST_NAME.match(host) or not secret:
        return None
    return host, secret


def check_host_name(host: str) -> str:
    if not HOST_NAME.match(host) or host in (".", ".."):
        raise CredentialError(f"{host!r} is not a host name (letters, digits, '.', '-', "
                              "'_'; at most 253 characters).")
    return host


def read_secret(path: Path) -> str:
    """The secret in a host's credential file (its only line)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CredentialError(f"cannot read the credential file {path}: {exc}") from None
    if not text or any(c.isspace() for c in text):
        raise CredentialError(f"{path} does not hold a host credential (one line, as "
                              "`onestack admin host-credential create` printed it).")
    return text


class CredentialStore:
    """The digests of the hosts' secrets, one file per host under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / DIRECTORY

    def _path(self, host: str) -> Path:
        return self.directory / check_host_name(host)

    def create(self, host: str) -> str:
        """A new secret for ``host`` (any older one stops working); returns it."""
        secret = secrets.token_urlsafe(32)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(host)
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(digest(secret) + "\n")
        os.replace(partial, path)
        return secret

    def delete(self, host: str) -> bool:
        try:
            self._path(host).unlink()
        except FileNotFoundError:
            return False
        return True

    def hosts(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if not p.name.startswith("."))

    def digest_of(self, host: str) -> str | None:
        try:
            return self._path(host).read_text().strip() or None
        except (OSError, CredentialError):
            return None

    def verify(self, host: str, secret: str) -> bool:
        """Whether ``secret`` is ``host``'s current credential."""
        stored = self.digest_of(host)
        return stored is not None and hmac.compare_digest(stored, digest(secret))

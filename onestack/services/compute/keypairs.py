"""Key pairs (os-keypairs): public keys that belong to a user, named per user.

A key is imported (its public half is given) or, before microversion 2.92, generated
here: then the private half is returned once and never stored. ``ssh`` keys must parse
as OpenSSH public keys and their fingerprint is the MD5 of the key blob in colon hex, as
Nova computes it; ``x509`` keys are PEM certificates with a SHA-1 fingerprint.

A user manages their own key pairs; administrators manage anyone's (``user_id``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.db.models import KeyPair, utcnow
from onestack.services.compute import policy
from onestack.services.identity.context import ValidatedToken

if TYPE_CHECKING:
    from onestack.services.compute.service import Compute

SSH = "ssh"
X509 = "x509"
#: Microsoft's User Principal Name, the subjectAltName Nova's WinRM certificates carry.
_UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def invalid(reason: str) -> BadRequest:
    return BadRequest(f"Keypair data is invalid: {reason}")


def not_found(name: str, user_id: str) -> NotFound:
    return NotFound(f"Keypair {name} not found for user {user_id}")


def _colon_hex(digest: bytes) -> str:
    raw = digest.hex()
    return ":".join(a + b for a, b in zip(raw[::2], raw[1::2], strict=True))


def ssh_fingerprint(public_key: str) -> str:
    """Nova's fingerprint of an OpenSSH public key (MD5 of the key blob, colon hex);
    400 if the text is not a public key."""
    try:
        serialization.load_ssh_public_key(public_key.encode("utf-8"))
        blob = base64.b64decode(public_key.split(" ")[1])
    except Exception:  # noqa: BLE001 - any parse failure is the user's bad key
        raise invalid("failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(pem: str) -> str:
    """SHA-1 of a PEM certificate, colon hex; 400 if it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise invalid(f"failed to generate X509 fingerprint. Error message: {exc}") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - Nova's format


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == X509 else ssh_fingerprint(public_key)


def generate_ssh(bits: int = 2048) -> tuple[str, str]:
    """(private key PEM, OpenSSH public key) of a new RSA key, as Nova generated them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} Generated-by-Nova"


def generate_x509(user_id: str, bits: int = 2048) -> tuple[str, str]:
    """(base64 PKCS#12 bundle without password, PEM certificate): Nova's WinRM client
    certificate for ``user_id`` (CN=user_id, clientAuth, UPN user_id@localhost)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    now = dt.datetime.now(dt.UTC)
    upn = f"{user_id}@localhost".encode()[:127]
    # the otherName value: the UPN as a DER UTF8String (short-form length)
    utf8 = b"\x0c" + bytes([len(upn)]) + upn
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(
                _UPN_OID, utf8)]), critical=False)
            .sign(key, hashes.SHA256()))
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption())
    return base64.b64encode(bundle).decode(), cert.public_bytes(
        serialization.Encoding.PEM).decode()


def keypair_id(keypair: KeyPair) -> int:
    """The integer ``id`` Nova shows: our key pairs are keyed by (user, name), so this
    is a stable number derived from both."""
    return zlib.crc32(f"{keypair.user_id}\x00{keypair.name}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class KeyPairView:
    """A key pair as the API renders it."""

    id: int
    name: str
    user_id: str
    type: str
    public_key: str
    fingerprint: str
    created_at: dt.datetime | None

    @classmethod
    def of(cls, keypair: KeyPair) -> KeyPairView:
        return cls(id=keypair_id(keypair), name=keypair.name, user_id=keypair.user_id,
                   type=keypair.type, public_key=keypair.public_key,
                   fingerprint=keypair.fingerprint, created_at=keypair.created_at)


class KeyPairs:
    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.db = compute.db

    # -- for other services ---------------------------------------------------------

    @staticmethod
    def get(session: Session, user_id: str, name: str) -> KeyPair:
        """The key pair a server create names; Nova's 400 if the user has none so
        named."""
        keypair = session.get(KeyPair, (user_id, name))
        if keypair is None:
            raise BadRequest("Invalid key_name provided.")
        return keypair

    # -- the API --------------------------------------------------------------------

    @staticmethod
    def _owner(ctx: ValidatedToken, user_id: str | None, action: str) -> str:
        owner = user_id or ctx.user_id
        if owner != ctx.user_id and not ctx.is_admin:
            raise policy.forbidden(f"os_compute_api:os-keypairs:{action}")
        return owner

    def list(self, ctx: ValidatedToken, user_id: str | None = None,
             limit: int | None = None, marker: str | None = None) -> list[KeyPairView]:
        owner = self._owner(ctx, user_id, "index")
        with self.db.session() as session:
            stmt = select(KeyPair).where(KeyPair.user_id == owner).order_by(KeyPair.name)
            if marker is not None:
                if session.get(KeyPair, (owner, marker)) is None:
                    raise BadRequest(f"Marker {marker} could not be found.")
                stmt = stmt.where(KeyPair.name > marker)
            if limit:
                stmt = stmt.limit(limit)
            return [KeyPairView.of(k) for k in session.scalars(stmt)]

    def show(self, ctx: ValidatedToken, name: str, user_id: str | None = None
             ) -> KeyPairView:
        owner = self._owner(ctx, user_id, "show")
        with self.db.session() as session:
            keypair = session.get(KeyPair, (owner, name))
            if keypair is None:
                raise not_found(name, owner)
            return KeyPairView.of(keypair)

    def create(self, ctx: ValidatedToken, name: str, key_type: str = SSH,
               public_key: str | None = None, user_id: str | None = None
               ) -> tuple[KeyPairView, str | None]:
        """Import ``public_key``, or generate a key pair when it is None. Returns the
        key pair and the private key (generated ones only)."""
        owner = self._owner(ctx, user_id, "create")
        if key_type not in (SSH, X509):
            raise invalid(f"unknown key type {key_type!r}")
        with self.db.session() as session:
            self._check_quota(session, ctx, owner)
        private_key = None
        if public_key is None:
            if key_type == X509:
                private_key, public_key = generate_x509(owner)
            else:
                private_key, public_key = generate_ssh()
        print_ = fingerprint(public_key, key_type)
        try:
            with self.db.session() as session:
                if session.get(KeyPair, (owner, name)) is not None:
                    raise Conflict(f"Key pair '{name}' already exists.")
                self._check_quota(session, ctx, owner)
                keypair = KeyPair(user_id=owner, name=name, type=key_type,
                                  public_key=public_key, fingerprint=print_,
                                  created_at=utcnow())
                session.add(keypair)
                session.flush()
                view = KeyPairView.of(keypair)
        except IntegrityError:
            raise Conflict(f"Key pair '{name}' already exists.") from None
        return view, private_key

    def _check_quota(self, session: Session, ctx: ValidatedToken, owner: str) -> None:
        self.compute.quotas.check(session, ctx.project_id, {"key_pairs": 1}, user_id=owner)

    def delete(self, ctx: ValidatedToken, name: str, user_id: str | None = None) -> None:
        owner = self._owner(ctx, user_id, "delete")
        with self.db.session() as session:
            keypair = session.get(KeyPair, (owner, name))
            if keypair is None:
                raise not_found(name, owner)
            session.delete(keypair)

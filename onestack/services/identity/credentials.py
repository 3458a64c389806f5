"""Credentials (``/v3/credentials``) and the EC2 extension built on them
(``/v3/users/{user_id}/credentials/OS-EC2``).

A credential is a secret a user keeps in Identity for some other program: an EC2-style
access/secret pair, a TOTP seed, a certificate. Identity only stores it; nothing here
authenticates with it. As in Keystone: the owner or an administrator manages a
credential; a credential of type ``ec2`` has a JSON blob holding ``access`` and must
name a project, and its id is the SHA-256 of the access key, so that the key finds it.
The blob is kept as given (Keystone encrypts blobs at rest under a key repository of
their own; OneStack keeps them in the state database, which only the server reads).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, Forbidden, InvalidField, NotFound
from onestack.db.models import Project, User
from onestack.db.models.identity import Credential
from onestack.services.identity.base import SubService, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import allowed, authorize

EC2 = "ec2"
FIELD = "credential"
_MAX_BLOB = 65535


def ec2_id(access: str) -> str:
    return hashlib.sha256(access.encode()).hexdigest()


def _ec2_access(blob: str, path: str) -> str:
    try:
        parsed = json.loads(blob)
    except ValueError:
        raise InvalidField(path, "the blob of an ec2 credential must be a JSON object "
                                 "holding 'access'") from None
    access = parsed.get("access") if isinstance(parsed, dict) else None
    if not isinstance(access, str) or not access:
        raise InvalidField(path, "the blob of an ec2 credential must hold a non-empty "
                                 "'access'")
    return access


class Credentials(SubService):
    def _not_found(self, credential_id: str) -> NotFound:
        return NotFound(f"Could not find credential: {credential_id}.")

    def _get_visible(self, session: Session, ctx: ValidatedToken | None, rule: str,
                     credential_id: str) -> Credential:
        """The credential if the caller may ``rule`` it; another user's is a 404 to a
        caller who may not see it, as if it did not exist."""
        cred = session.get(Credential, credential_id)
        if cred is None:
            raise self._not_found(credential_id)
        if ctx is not None and not allowed(ctx, rule, user_id=cred.user_id):
            if allowed(ctx, "identity:get_credential", user_id=cred.user_id):
                authorize(ctx, rule, user_id=cred.user_id)
            raise self._not_found(credential_id)
        return cred

    def _check(self, session: Session, *, user_id: str, project_id: str | None, type_: str,
               blob: str) -> str | None:
        """Validate the fields of a credential; the id an ec2 credential must have."""
        get_or_404(session, User, user_id, "user")
        if project_id is not None:
            get_or_404(session, Project, project_id, "project")
        if len(blob) > _MAX_BLOB:
            raise InvalidField(f"{FIELD}/blob", f"is longer than {_MAX_BLOB} characters")
        if type_ != EC2:
            return None
        if project_id is None:
            raise InvalidField(f"{FIELD}/project_id", "is required for an ec2 credential")
        return ec2_id(_ec2_access(blob, f"{FIELD}/blob"))

    def authorize_create(self, ctx: ValidatedToken | None, user_id: Any) -> None:
        authorize(ctx, "identity:create_credential",
                  user_id=user_id if isinstance(user_id, str) else None)

    def create(self, ctx: ValidatedToken | None, *, user_id: str, type_: str, blob: str,
               project_id: str | None = None, extra: dict[str, Any] | None = None
               ) -> Credential:
        self.authorize_create(ctx, user_id)
        with self.db.session() as session:
            cred_id = self._check(session, user_id=user_id, project_id=project_id,
                                  type_=type_, blob=blob) or new_id()
            if session.get(Credential, cred_id) is not None:
                raise Conflict("A credential with this access key already exists.")
            cred = Credential(id=cred_id, user_id=user_id, project_id=project_id,
                              type=type_, blob=blob, extra=extra or {})
            session.add(cred)
            session.flush()
            session.expunge(cred)
            return cred

    def list_credentials(self, ctx: ValidatedToken | None, *, user_id: str | None = None,
             type_: str | None = None) -> list[Credential]:
        """Every credential the caller may see (an administrator: all; others: their
        own), filtered by user and type."""
        stmt = select(Credential)
        if ctx is not None and not allowed(ctx, "identity:list_credentials", user_id=None):
            if user_id is not None and user_id != ctx.user_id:
                return []
            user_id = ctx.user_id
        if user_id is not None:
            stmt = stmt.where(Credential.user_id == user_id)
        if type_ is not None:
            stmt = stmt.where(Credential.type == type_)
        with self.db.session() as session:
            return list(session.scalars(stmt.order_by(Credential.created_at,
                                                      Credential.id)))

    def get(self, ctx: ValidatedToken | None, credential_id: str) -> Credential:
        with self.db.session() as session:
            return self._get_visible(session, ctx, "identity:get_credential", credential_id)

    def update(self, ctx: ValidatedToken | None, credential_id: str,
               changes: dict[str, Any]) -> Credential:
        """``changes``: any of user_id, project_id, type, blob (and extra attributes)."""
        with self.db.session() as session:
            cred = self._get_visible(session, ctx, "identity:update_credential",
                                     credential_id)
            user_id = changes.get("user_id", cred.user_id)
            if user_id != cred.user_id:   # handing it to someone else: they must be yours
                authorize(ctx, "identity:update_credential", user_id=user_id)
            project_id = changes.get("project_id", cred.project_id)
            type_ = changes.get("type", cred.type)
            blob = changes.get("blob", cred.blob)
            self._check(session, user_id=user_id, project_id=project_id, type_=type_,
                        blob=blob)
            cred.user_id, cred.project_id, cred.type, cred.blob = (user_id, project_id,
                                                                   type_, blob)
            if changes.get("extra"):
                cred.extra = {**(cred.extra or {}), **changes["extra"]}
            session.flush()
            session.expunge(cred)
            return cred

    def delete(self, ctx: ValidatedToken | None, credential_id: str) -> None:
        with self.db.session() as session:
            cred = self._get_visible(session, ctx, "identity:delete_credential",
                                     credential_id)
            session.delete(cred)

    def delete_for_user(self, session: Session, user_id: str) -> None:
        for cred in session.scalars(select(Credential).where(Credential.user_id == user_id)):
            session.delete(cred)

    # -- OS-EC2 -----------------------------------------------------------------------

    def authorize_ec2(self, ctx: ValidatedToken | None, user_id: str) -> None:
        """The policy check of ``ec2_create``, made before the body is read."""
        authorize(ctx, "identity:ec2_create_credential", user_id=user_id)

    def ec2_create(self, ctx: ValidatedToken | None, user_id: str,
                   project_id: str) -> tuple[Credential, dict[str, Any]]:
        """A new access/secret pair for the user on a project the user holds a role
        on; returns the credential and its parsed blob."""
        authorize(ctx, "identity:ec2_create_credential", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            get_or_404(session, Project, project_id, "project")
            if not self.identity.assignments.effective_roles(session, user_id,
                                                             project_id=project_id):
                raise Forbidden(f"User {user_id} has no role on project {project_id}.")
            access = secrets.token_hex(16)
            blob = {"access": access, "secret": secrets.token_hex(16), "trust_id": None,
                    "app_cred_id": None, "access_token_id": None}
            cred = Credential(id=ec2_id(access), user_id=user_id, project_id=project_id,
                              type=EC2, blob=json.dumps(blob), extra={})
            session.add(cred)
            session.flush()
            session.expunge(cred)
            return cred, blob

    def ec2_list(self, ctx: ValidatedToken | None, user_id: str) -> list[Credential]:
        authorize(ctx, "identity:ec2_list_credentials", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            return list(session.scalars(select(Credential).where(
                Credential.user_id == user_id, Credential.type == EC2)
                .order_by(Credential.created_at, Credential.id)))

    def _ec2_one(self, session: Session, user_id: str, access: str) -> Credential:
        cred = session.get(Credential, ec2_id(access))
        if cred is None or cred.type != EC2 or cred.user_id != user_id:
            raise NotFound(f"Could not find credential: {access}.")
        return cred

    def ec2_get(self, ctx: ValidatedToken | None, user_id: str, access: str) -> Credential:
        authorize(ctx, "identity:ec2_get_credential", user_id=user_id)
        with self.db.session() as session:
            return self._ec2_one(session, user_id, access)

    def ec2_delete(self, ctx: ValidatedToken | None, user_id: str, access: str) -> None:
        authorize(ctx, "identity:ec2_delete_credential", user_id=user_id)
        with self.db.session() as session:
            session.delete(self._ec2_one(session, user_id, access))


def ec2_blob(cred: Credential) -> dict[str, Any]:
    """The parsed blob of an ec2 credential (a blob set by hand may not parse)."""
    try:
        parsed = json.loads(cred.blob)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

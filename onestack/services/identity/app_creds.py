"""Application credentials: a secret a user makes for a program, bound to one project
and a subset of the user's roles there."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.errors import InvalidField, Unauthorized
from onestack.db.models import ApplicationCredential, User, utcnow
from onestack.services.identity.base import SubService

AUTH_FAILED = "The request you have made requires authentication."


class ApplicationCredentials(SubService):
    def get_for_token(self, session: Session, cred_id: str) -> ApplicationCredential | None:
        return session.get(ApplicationCredential, cred_id)

    async def authenticate(self, ref: dict[str, Any]) -> ApplicationCredential:
        """Check an ``application_credential`` auth method body; returns the credential."""
        path = "auth/identity/application_credential"
        secret = ref.get("secret")
        if not isinstance(secret, str):
            raise InvalidField(f"{path}/secret", f"{secret!r} is not of type 'string'")
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
        ok = await anyio.to_thread.run_sync(self.identity.hasher.verify, stored, secret)
        if cred is None or not ok:
            raise Unauthorized(AUTH_FAILED)
        if cred.expires_at is not None and cred.expires_at <= utcnow():
            raise Unauthorized("The application credential has expired.")
        with self.db.session() as session:
            user = session.get(User, cred.user_id)
            if user is None or not user.enabled:
                raise Unauthorized(AUTH_FAILED)
        return cred

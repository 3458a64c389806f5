"""Users: who logs in, with a password, in a domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, InvalidField, NotFound
from onestack.db.models import Assignment, Domain, User, utcnow
from onestack.services.identity.base import SubService, new_id


class Users(SubService):
    def find_for_auth(self, session: Session, ref: dict[str, Any], path: str) -> User | None:
        """The user a login names by ``id``, or by ``name`` and ``domain``; None if none.

        Returns the user whatever its state; the caller checks it is enabled.
        """
        if ref.get("id") is not None:
            if not isinstance(ref["id"], str):
                raise InvalidField(f"{path}/id", "must be a string")
            return session.get(User, ref["id"])
        name = ref.get("name")
        if not isinstance(name, str):
            raise InvalidField(path, "needs an id, or a name and a domain")
        domain_ref = ref.get("domain")
        if not isinstance(domain_ref, dict):
            raise InvalidField(f"{path}/domain", "is required with a user name")
        domain = self.identity.domains.find_by_ref(session, domain_ref, f"{path}/domain")
        if domain is None:
            return None
        return session.scalar(select(User).where(User.domain_id == domain.id,
                                                 User.name == name))

    def record_login(self, user_id: str, ok: bool) -> None:
        """Count failed logins and lock the user out after too many in a row."""
        cfg = self.identity.config.identity
        with self.db.session() as session:
            user = session.get(User, user_id)
            if user is None:
                return
            if ok:
                if user.failed_auth_count or user.locked_until:
                    user.failed_auth_count = 0
                    user.locked_until = None
                return
            user.failed_auth_count += 1
            if cfg.lockout_failure_attempts and \
                    user.failed_auth_count >= cfg.lockout_failure_attempts:
                user.locked_until = utcnow() + dt.timedelta(seconds=cfg.lockout_duration)
                user.failed_auth_count = 0

    def create(self, *, name: str, domain_id: str = "default", password: str | None = None,
               enabled: bool = True, default_project_id: str | None = None,
               description: str = "", email: str | None = None,
               options: dict[str, Any] | None = None, id: str | None = None,
               extra: dict[str, Any] | None = None) -> User:
        password_hash = self.identity.hasher.hash(password) if password is not None else None
        with self.db.session() as session:
            if session.get(Domain, domain_id) is None:
                raise NotFound(f"Could not find domain: {domain_id}.")
            if session.scalar(select(User.id).where(User.domain_id == domain_id,
                                                    User.name == name)):
                raise Conflict(f"Conflict occurred attempting to store user - Duplicate "
                               f"entry found with name {name} at domain ID {domain_id}.")
            user = User(id=id or new_id(), name=name, domain_id=domain_id, enabled=enabled,
                        default_project_id=default_project_id, description=description,
                        email=email, password_hash=password_hash,
                        password_created_at=utcnow() if password_hash else None,
                        options=options or {}, extra=extra or {})
            session.add(user)
            session.flush()
            return user

    def set_password(self, session: Session, user: User, password: str) -> None:
        """Store a new password hash and revoke the user's existing tokens."""
        user.password_hash = self.identity.hasher.hash(password)
        user.password_created_at = utcnow()
        user.failed_auth_count = 0
        user.locked_until = None
        self.identity.tokens.revoke_user(session, user.id)

    def delete_in(self, session: Session, user_id: str) -> None:
        session.execute(delete(Assignment).where(Assignment.actor_id == user_id))
        user = session.get(User, user_id)
        if user is not None:
            session.delete(user)
        self.changed(session)

    def reset_password(self, name_or_id: str, domain_name: str, password: str) -> str:
        """Operator reset (``onestack admin reset-password``): returns the user id."""
        with self.db.session() as session:
            user = session.get(User, name_or_id) or self.find_for_auth(
                session, {"name": name_or_id, "domain": {"name": domain_name}}, "user")
            if user is None:
                raise NotFound(f"Could not find user {name_or_id!r} in domain "
                               f"{domain_name!r}.")
            self.set_password(session, user, password)
            return user.id

"""Users: who logs in, with a password, in a domain.

Password hashing is slow on purpose (argon2id): hash before opening a transaction, and
from async code in a worker thread (``hash_new_password`` is the piece to offload).
Changing a password or disabling a user revokes the user's existing tokens, as in
Keystone; deleting a user invalidates them (validation looks the user up).
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict, Forbidden, InvalidField, NotFound, Unauthorized
from onestack.db.models import (
    ApplicationCredential,
    Assignment,
    Domain,
    GroupMembership,
    Project,
    User,
    utcnow,
)
from onestack.db.models.identity import Credential
from onestack.services.identity import compliance
from onestack.services.identity.base import SubService, apply_filters, get_or_404, new_id
from onestack.services.identity.context import ValidatedToken
from onestack.services.identity.policy import authorize

#: Keystone's user options (a null value removes an option).
BOOLEAN_OPTIONS = (
    "ignore_change_password_upon_first_use", "ignore_password_expiry",
    "ignore_lockout_failure_attempts", "lock_password", "ignore_user_inactivity",
    "multi_factor_auth_enabled",
)
USER_OPTIONS = (*BOOLEAN_OPTIONS, "multi_factor_auth_rules")
#: Columns of a user; every other attribute a client sends is kept in ``extra``.
COLUMNS = ("name", "enabled", "default_project_id", "description", "email", "options")
#: Attributes that may be sent but never change or land in ``extra``.
FIXED = ("id", "domain_id", "password", "links", "password_expires_at")
#: Told only to a caller who gave the right password, so that it tells a guesser
#: nothing (no login failure names a user or tells whether one exists).
ACCOUNT_LOCKED = "The account is locked; try again later or ask an administrator."
#: ``_unset`` marks "password not part of this update" (None clears the password).
_unset: Any = object()


def _conflict(name: str, domain_id: str) -> Conflict:
    return Conflict(f"Conflict occurred attempting to store user - Duplicate entry found "
                    f"with name {name} at domain ID {domain_id}.")


def merge_options(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply option changes (already shape-checked); a null value removes the option."""
    out = dict(current or {})
    for key, value in changes.items():
        if key not in USER_OPTIONS:
            raise InvalidField(f"user/options/{key}", "is not a known user option")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


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
                if cfg.disable_user_account_days_inactive > 0 and \
                        not compliance.is_inactive(cfg, user) and (
                        user.last_active_at is None or
                        user.last_active_at.date() != utcnow().date()):
                    user.last_active_at = utcnow()
                return
            if (user.options or {}).get("ignore_lockout_failure_attempts"):
                return
            user.failed_auth_count += 1
            if cfg.lockout_failure_attempts and \
                    user.failed_auth_count >= cfg.lockout_failure_attempts:
                user.locked_until = utcnow() + dt.timedelta(seconds=cfg.lockout_duration)
                user.failed_auth_count = 0

    # -- passwords ------------------------------------------------------------------

    def check_new_password(self, password: str, field: str = "user/password") -> None:
        """Raise a 400 naming ``field`` unless the password meets the policy (length,
        ``password_regex``)."""
        compliance.check_new_password(self.identity.config.identity, password, field)

    def hash_new_password(self, password: str, field: str = "user/password") -> str:
        """Check a new password against the policy and hash it (slow: off the loop)."""
        self.check_new_password(password, field)
        return self.identity.hasher.hash(password)

    def store_password_hash(self, session: Session, user: User, password_hash: str | None,
                            by_admin: bool = False, self_service: bool = False) -> None:
        """Store a new password hash (None: no password) and revoke the user's tokens.

        ``by_admin``: an administrator set it through the API (first use must change
        it, if so configured); ``self_service``: the user changed it themself."""
        cfg = self.identity.config.identity
        compliance.remember(cfg, user)
        now = utcnow()
        user.password_hash = password_hash
        user.password_created_at = now if password_hash else None
        user.password_expires_at = compliance.expires_at(
            cfg, user.options, now, by_admin) if password_hash else None
        user.password_self_service = self_service
        user.failed_auth_count = 0
        user.locked_until = None
        self.identity.tokens.revoke_user(session, user.id)

    def set_password(self, session: Session, user: User, password: str) -> None:
        """Store a new password hash and revoke the user's existing tokens."""
        self.store_password_hash(session, user, self.identity.hasher.hash(password))

    def authorize_change_password(self, ctx: ValidatedToken | None, user_id: str) -> None:
        """The policy check of ``change_password``, made before the request body is read."""
        authorize(ctx, "identity:change_password", user_id=user_id)

    async def change_password(self, ctx: ValidatedToken | None, user_id: str, original: str,
                              password: str) -> None:
        """A user's own password change (``POST /v3/users/{id}/password``).

        The original password authenticates the change, as a login would (failures
        count towards lockout); the user's existing tokens are revoked. ``ctx`` is None
        when the request came without a token (a user whose password expired).
        Security compliance: minimum age, password pattern, history (compliance.py).
        """
        self.authorize_change_password(ctx, user_id)
        cfg = self.identity.config.identity
        failed = "Error when changing user password: Invalid user / password"
        with self.db.session() as session:
            user = session.get(User, user_id)
            stored = user.password_hash if user else None
            locked = bool(user and user.locked_until and user.locked_until > utcnow())
            enabled = bool(user and user.enabled and not compliance.is_inactive(cfg, user))
            lock_password = bool(user and (user.options or {}).get("lock_password"))
            history = compliance.history_hashes(cfg, user) if user else []
            if user is not None:
                session.expunge(user)
        ok = await self.identity.hasher.verify_async(stored, original)
        if user is None:
            raise Unauthorized(failed)
        if locked and not ok:
            raise Unauthorized(failed)
        if locked:
            raise Unauthorized(ACCOUNT_LOCKED)
        self.record_login(user_id, ok)
        if not ok:
            raise Unauthorized(failed)
        if not enabled:
            raise Unauthorized("The account is disabled.")
        if lock_password:
            raise Forbidden("You cannot change your password at this time due to password "
                            "policy disallowing password changes. Please contact your "
                            "administrator to reset your password.")
        assert user is not None
        compliance.check_minimum_age(cfg, user)
        self.check_new_password(password)
        for old in history:
            if await self.identity.hasher.verify_async(old, password):
                raise compliance.history_error(cfg)
        password_hash = await self.identity.hasher.hash_async(password)
        with self.db.session() as session:
            user = get_or_404(session, User, user_id, "user")
            self.store_password_hash(session, user, password_hash, self_service=True)

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

    # -- CRUD -----------------------------------------------------------------------

    def _check_default_project(self, session: Session, project_id: str | None) -> None:
        """Keystone: a default project may not exist, but may not be a domain."""
        if project_id and session.get(Project, project_id) is None and \
                session.get(Domain, project_id) is not None:
            raise InvalidField("user/default_project_id",
                               f"User's default project ID cannot be a domain ID: "
                               f"{project_id}")

    def authorize_create(self, ctx: ValidatedToken | None) -> None:
        """The policy check of ``create``, made before the request body is read."""
        authorize(ctx, "identity:create_user")

    def create(self, ctx: ValidatedToken | None = None, *, name: str,
               domain_id: str = "default", password: str | None = None,
               enabled: bool = True, default_project_id: str | None = None,
               description: str = "", email: str | None = None,
               options: dict[str, Any] | None = None, id: str | None = None,
               extra: dict[str, Any] | None = None,
               password_hash: str | None = None) -> User:
        """Create a user. Give ``password`` (hashed here, slowly) or ``password_hash``
        (from ``hash_new_password`` run in a worker thread); an unknown domain is a 404.
        ``ctx`` is the API caller's token (None: the system itself)."""
        self.authorize_create(ctx)
        if password is not None:
            password_hash = self.identity.hasher.hash(password)
        name = name.strip()
        extra = {k: v for k, v in (extra or {}).items() if k not in COLUMNS + FIXED}
        with self.db.session() as session:
            if session.get(Domain, domain_id) is None:
                raise NotFound(f"Could not find domain: {domain_id}.")
            self._check_default_project(session, default_project_id)
            if session.scalar(select(User.id).where(User.domain_id == domain_id,
                                                    User.name == name)):
                raise _conflict(name, domain_id)
            now = utcnow()
            user_options = merge_options({}, options or {})
            user = User(id=id or new_id(), name=name, domain_id=domain_id, enabled=enabled,
                        default_project_id=default_project_id, description=description,
                        email=email, password_hash=password_hash,
                        password_created_at=now if password_hash else None,
                        password_expires_at=compliance.expires_at(
                            self.identity.config.identity, user_options, now,
                            by_admin=ctx is not None) if password_hash else None,
                        options=user_options, extra=extra)
            session.add(user)
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(name, domain_id) from None
            self.changed(session)
            return user

    def get(self, ctx: ValidatedToken | None, user_id: str) -> User:
        authorize(ctx, "identity:get_user", user_id=user_id)
        with self.db.session() as session:
            return get_or_404(session, User, user_id, "user")

    def authorize_list(self, ctx: ValidatedToken | None) -> None:
        authorize(ctx, "identity:list_users")

    def list(self, ctx: ValidatedToken | None, **filters: Any) -> list[User]:
        """Users matching equality filters (``name``, ``domain_id``, ``enabled``)."""
        self.authorize_list(ctx)
        with self.db.session() as session:
            stmt = apply_filters(select(User), User, filters).order_by(User.name, User.id)
            return list(session.scalars(stmt))

    def authorize_update(self, ctx: ValidatedToken | None, user_id: str) -> None:
        """The policy check of ``update``, made before the request body is read."""
        authorize(ctx, "identity:update_user", user_id=user_id)

    def update(self, ctx: ValidatedToken | None, user_id: str, changes: dict[str, Any],
               password_hash: str | None = _unset) -> User:
        """Apply a PATCH body (already shape-checked); unknown keys go to ``extra``.

        A new password comes as ``password_hash`` (None clears it); it revokes the
        user's tokens, as disabling the user does.
        """
        self.authorize_update(ctx, user_id)
        with self.db.session() as session:
            user = get_or_404(session, User, user_id, "user")
            if "id" in changes and changes["id"] != user_id:
                raise InvalidField("user/id", "Cannot change user ID")
            if "domain_id" in changes and changes["domain_id"] != user.domain_id:
                raise InvalidField("user/domain_id", "Cannot change Domain ID")
            if "name" in changes:
                name = changes["name"].strip()
                if name != user.name and session.scalar(select(User.id).where(
                        User.domain_id == user.domain_id, User.name == name)):
                    raise _conflict(name, user.domain_id)
                user.name = name
            if "default_project_id" in changes:
                self._check_default_project(session, changes["default_project_id"])
                user.default_project_id = changes["default_project_id"]
            if "description" in changes:
                user.description = changes["description"] or ""
            if "email" in changes:
                user.email = changes["email"]
            if "options" in changes:
                user.options = merge_options(user.options, changes["options"] or {})
            revoke = False
            if "enabled" in changes:
                revoke = user.enabled and not changes["enabled"]
                if changes["enabled"] and (not user.enabled or compliance.is_inactive(
                        self.identity.config.identity, user)):
                    user.last_active_at = utcnow()   # enabling again forgives inactivity
                user.enabled = changes["enabled"]
            extra = {k: v for k, v in changes.items() if k not in COLUMNS + FIXED}
            if extra:
                user.extra = {**user.extra, **extra}
            if password_hash is not _unset:
                self.store_password_hash(session, user, password_hash,
                                         by_admin=ctx is not None)
            elif revoke:
                self.identity.tokens.revoke_user(session, user.id)
            try:
                session.flush()
            except IntegrityError:
                raise _conflict(user.name, user.domain_id) from None
            self.changed(session)
            return user

    def delete(self, ctx: ValidatedToken | None, user_id: str) -> None:
        """Delete a user with its role assignments, memberships, application credentials
        and credentials."""
        authorize(ctx, "identity:delete_user", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            self.delete_in(session, user_id)

    def delete_in(self, session: Session, user_id: str) -> None:
        session.execute(delete(Assignment).where(Assignment.actor_id == user_id))
        session.execute(delete(GroupMembership).where(GroupMembership.user_id == user_id))
        session.execute(delete(ApplicationCredential)
                        .where(ApplicationCredential.user_id == user_id))
        session.execute(delete(Credential).where(Credential.user_id == user_id))
        user = session.get(User, user_id)
        if user is not None:
            session.delete(user)
        self.changed(session)

    def projects(self, ctx: ValidatedToken | None, user_id: str, **filters: Any
                 ) -> builtins.list[Project]:
        """The projects the user holds a role on (directly, by group or inherited)."""
        authorize(ctx, "identity:list_user_projects", user_id=user_id)
        with self.db.session() as session:
            get_or_404(session, User, user_id, "user")
            ids = self.identity.assignments.project_ids_for_user(session, user_id)
        return self.identity.projects.list(None, ids=ids, **filters)

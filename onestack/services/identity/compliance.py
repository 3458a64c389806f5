"""Security compliance: Keystone's ``[security_compliance]`` rules, read from
``[identity]`` (all off by default, as in Keystone).

- ``password_expires_days``: a password expires that many days after it is set
  (``password_expires_at`` in the user and in tokens); a login with it is then refused.
- ``change_password_upon_first_use``: a password an administrator sets (user create or
  update through the API) is expired at once, so the user must change it
  (``POST /v3/users/{id}/password``, which needs no token) before logging in.
- ``unique_last_password_count``: a user's own change may not reuse any of the last N
  passwords, the current one included (administrators' resets are not checked).
- ``minimum_password_age``: a user who set their password themself may not change it
  again for that many days (an administrator may reset it at any time).
- ``password_regex`` / ``password_regex_description``: every new password must match.
- ``disable_user_account_days_inactive``: a user who has not logged in for that many
  days is treated as disabled until an administrator enables them again.

The user options ``ignore_password_expiry``, ``ignore_change_password_upon_first_use``
and ``ignore_user_inactivity`` exempt one user; ``lock_password`` forbids the user's
own changes (users.py). Lockout (``lockout_failure_attempts``, ``lockout_duration``)
is in users.py too.
"""

from __future__ import annotations

import datetime as dt
import re

from onestack.common.config import IdentityConfig
from onestack.common.errors import BadRequest, InvalidField, Unauthorized
from onestack.db.models import User, utcnow


def password_expired(user_id: str) -> Unauthorized:
    return Unauthorized(f"The password is expired and needs to be changed for user: "
                        f"{user_id}.")


def check_new_password(cfg: IdentityConfig, password: str, field: str) -> None:
    """400 unless ``password`` meets the length and pattern rules."""
    minimum = cfg.minimum_password_length
    if len(password) < minimum:
        raise InvalidField(field, f"the password must be at least {minimum} characters long")
    if cfg.password_regex:
        try:
            ok = re.match(cfg.password_regex, password) is not None
        except re.error:
            raise BadRequest("Password validation error: the configured password_regex "
                             "is not a valid regular expression.") from None
        if not ok:
            detail = cfg.password_regex_description or \
                f"it must match {cfg.password_regex!r}"
            raise BadRequest(f"The password does not match the requirements: {detail}.")


def expires_at(cfg: IdentityConfig, options: dict | None, now: dt.datetime,
               by_admin: bool) -> dt.datetime | None:
    """When a password set now expires: at once when an administrator set it and
    first use must change it, after ``password_expires_days``, or never."""
    options = options or {}
    if by_admin and cfg.change_password_upon_first_use and \
            not options.get("ignore_change_password_upon_first_use"):
        return now
    if cfg.password_expires_days > 0 and not options.get("ignore_password_expiry"):
        return now + dt.timedelta(days=cfg.password_expires_days)
    return None


def is_expired(user: User) -> bool:
    """The password has expired (``ignore_password_expiry`` waives it, as in Keystone)."""
    if user.password_expires_at is None or user.password_expires_at > utcnow():
        return False
    return not (user.options or {}).get("ignore_password_expiry")


def check_minimum_age(cfg: IdentityConfig, user: User) -> None:
    """400 if the user set their current password themself too recently."""
    days = cfg.minimum_password_age
    if days <= 0 or not user.password_self_service or user.password_created_at is None:
        return
    allowed_from = user.password_created_at + dt.timedelta(days=days)
    now = utcnow()
    if now < allowed_from:
        left = (allowed_from - now).days
        raise BadRequest(
            f"You cannot change your password at this time due to the minimum password "
            f"age. Once you change your password, it must be used for {days} day(s) "
            f"before it can be changed. Please try again in {left} day(s) or contact "
            f"your administrator to reset your password.")


def history_hashes(cfg: IdentityConfig, user: User) -> list[str]:
    """The hashes a user's own new password must differ from (newest first)."""
    count = cfg.unique_last_password_count
    if count <= 0:
        return []
    hashes = [user.password_hash] if user.password_hash else []
    if count > 1:
        hashes += list(reversed(user.password_history or []))[:count - 1]
    return hashes[:count]


def history_error(cfg: IdentityConfig) -> BadRequest:
    return BadRequest(f"The new password cannot be identical to a previous password. The "
                      f"total number which includes the new password must be unique is "
                      f"{cfg.unique_last_password_count}.")


def remember(cfg: IdentityConfig, user: User) -> None:
    """Before a new password replaces the current one: keep the current one's hash in
    the history, as far back as ``unique_last_password_count`` needs."""
    keep = max(cfg.unique_last_password_count - 1, 0)
    history = list(user.password_history or [])
    if keep and user.password_hash:
        history.append(user.password_hash)
    user.password_history = history[-keep:] if keep else []


def is_inactive(cfg: IdentityConfig, user: User) -> bool:
    """The user has not logged in for ``disable_user_account_days_inactive`` days."""
    days = cfg.disable_user_account_days_inactive
    if days <= 0 or (user.options or {}).get("ignore_user_inactivity"):
        return False
    last = user.last_active_at or user.created_at
    return last is not None and last < utcnow() - dt.timedelta(days=days)

"""Dashboard sessions: kept on the server, named by a random id in an HttpOnly,
SameSite=Lax cookie.

A session holds the user's project-scoped Keystone token (never the password), what
the header shows (user, project, the projects to switch to, whether the user is an
admin), the service catalog's types, a CSRF token and one message to show on the next
page. It ends when its token expires, on logout, or when an API answers 401 to it.

The login form has no session yet: its CSRF token is an HMAC of a random value in a
second cookie (``onestack_login``), checked when the form comes back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

SESSION_COOKIE = "onestack_session"
LOGIN_COOKIE = "onestack_login"
#: Sessions kept at most (the oldest go first); a session is a few hundred bytes.
MAX_SESSIONS = 10000


@dataclass
class Session:
    token: str
    expires_at: float
    user_id: str
    user_name: str
    domain: str
    project_id: str
    project_name: str
    projects: list[tuple[str, str]]
    is_admin: bool
    services: set[str]
    roles: list[str]
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: list[tuple[str, str]] = field(default_factory=list)

    def remaining(self) -> int:
        return max(0, int(self.expires_at - time.time()))


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._secret = secrets.token_bytes(32)

    def create(self, session: Session) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sweep()
            self._sessions[sid] = session
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires_at <= time.time():
                del self._sessions[sid]
                return None
            return session

    def replace(self, sid: str, session: Session) -> None:
        with self._lock:
            self._sessions[sid] = session

    def drop(self, sid: str | None) -> Session | None:
        with self._lock:
            return self._sessions.pop(sid, None) if sid else None

    def _sweep(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]

    # the login form's CSRF token

    def login_csrf(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def check_login_csrf(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.login_csrf(nonce), token)

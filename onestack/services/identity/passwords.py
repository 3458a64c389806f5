"""Password and secret hashing: argon2id (argon2-cffi).

The cost is configurable (``[identity] argon2_*``); the default follows OWASP's
recommendation for argon2id (19 MiB, 2 passes, 1 lane). Verification is constant-time
inside the library.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Verified against when a user has no password or does not exist, so that a failed
# login costs the same time either way.
_DUMMY_SECRET = "onestack-dummy-secret"


class Hasher:
    def __init__(self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1):
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                  parallelism=parallelism)
        self._dummy = self._ph.hash(_DUMMY_SECRET)

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, stored: str | None, secret: str) -> bool:
        try:
            return self._ph.verify(stored or self._dummy, secret) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

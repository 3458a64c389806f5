"""Password and secret hashing: argon2id (argon2-cffi).

The cost is configurable (``[identity] argon2_*``); the default follows OWASP's
recommendation for argon2id (19 MiB, 2 passes, 1 lane). Verification is constant-time
inside the library.

Each hash or verification needs its own ``argon2_memory_kib`` block for the whole
computation, so a login storm run on unbounded threads costs 19 MiB per login in
flight (200 logins: ~1 GiB), and glibc keeps the freed blocks in its per-thread arenas.
So every argon2 call runs on a small pool of threads of its own (``workers``, one per
core by default: more could not finish sooner) and the rest wait in its queue. The pool's
threads live as long as the process, so each one's glibc arena keeps and reuses one
block: the memory argon2 holds stays at ``workers`` blocks, during a storm and after.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Verified against when a user has no password or does not exist, so that a failed
# login costs the same time either way.
_DUMMY_SECRET = "onestack-dummy-secret"

T = TypeVar("T")


class Hasher:
    """argon2id hashing and verification, at most ``workers`` at a time.

    The synchronous methods block until a worker has done the job; the ``*_async``
    ones wait on the event loop without holding a thread.
    """

    def __init__(self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1,
                 workers: int = 0) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                  parallelism=parallelism)
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        #: argon2 computations running now, and the most there ever were at once.
        self.running = 0
        self.most_running = 0
        self._dummy = self.hash(_DUMMY_SECRET)

    def _submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        return self._pool.submit(self._counted, fn, *args)

    def _counted(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.running -= 1

    def _hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def _verify(self, stored: str | None, secret: str) -> bool:
        try:
            return self._ph.verify(stored or self._dummy, secret) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def hash(self, secret: str) -> str:
        return self._submit(self._hash, secret).result()

    def verify(self, stored: str | None, secret: str) -> bool:
        """True if ``secret`` matches ``stored``; with no stored hash, still one
        verification (against a dummy) and False."""
        return self._submit(self._verify, stored, secret).result()

    async def hash_async(self, secret: str) -> str:
        return await asyncio.wrap_future(self._submit(self._hash, secret))

    async def verify_async(self, stored: str | None, secret: str) -> bool:
        return await asyncio.wrap_future(self._submit(self._verify, stored, secret))

    def close(self) -> None:
        """Stop the workers once queued work is done."""
        self._pool.shutdown(wait=False)

"""Failed logins per source: a client that keeps guessing is told to wait (429).

Per-user lockout stops guessing one account's password but lets anyone lock any account
(which is why the bootstrap admin is exempt from it); it does nothing against a client
trying one password on many accounts. So failed password and application-credential
logins are also counted per client address in a sliding window
(``[identity] failed_logins_per_source`` in ``failed_logins_window`` seconds); past
the limit every such login from that address is refused with 429 and ``Retry-After``
until the oldest failure leaves the window, before any argon2 work is done. Successful
logins do not reset the count. The counts live in memory (one process; a restart
forgets them) and are bounded by ``MAX_SOURCES`` addresses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from onestack.common.config import IdentityConfig
from onestack.common.errors import TooManyRequests

#: Addresses tracked at most; past that, those with no failure in the window are
#: forgotten first, then the longest-tracked ones.
MAX_SOURCES = 10000


class FailedLogins:
    """Counts failed logins per source address; the limits are read from the config
    on every call, so a change applies at once."""

    def __init__(self, config: Callable[[], IdentityConfig],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def check(self, source: str | None) -> None:
        """Raise TooManyRequests if ``source`` has failed too often lately."""
        cfg = self._config()
        limit, window = cfg.failed_logins_per_source, cfg.failed_logins_window
        if source is None or limit <= 0:
            return
        now = self._clock()
        with self._lock:
            times = self._failures.get(source)
            if times is None:
                return
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) < limit:
                return
            retry = max(1, math.ceil(times[0] + window - now))
        raise TooManyRequests("Too many failed logins from this address; try again in "
                              f"{retry} seconds.", headers={"Retry-After": str(retry)})

    def failed(self, source: str | None) -> None:
        """Record one failed login from ``source``."""
        cfg = self._config()
        if source is None or cfg.failed_logins_per_source <= 0:
            return
        now = self._clock()
        with self._lock:
            times = self._failures.get(source)
            if times is None:
                if len(self._failures) >= MAX_SOURCES:
                    self._forget(now - cfg.failed_logins_window)
                times = self._failures[source] = deque()
            times.append(now)
            while len(times) > cfg.failed_logins_per_source:
                times.popleft()

    def _forget(self, horizon: float) -> None:
        for source in [s for s, t in self._failures.items() if not t or t[-1] <= horizon]:
            del self._failures[source]
        while len(self._failures) >= MAX_SOURCES:
            del self._failures[next(iter(self._failures))]

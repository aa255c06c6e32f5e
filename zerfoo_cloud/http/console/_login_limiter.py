"""
How often one client address may try an admin key at the console's
operator sign-in: a sliding window per address, kept in this process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock

__all__ = [
    "LOGIN_ATTEMPTS",
    "LOGIN_WINDOW",
    "MAX_TRACKED_ADDRESSES",
    "LoginLimiter",
]

#: Tries of an admin key one address may make per `LOGIN_WINDOW`.
LOGIN_ATTEMPTS = 5
#: The window, in seconds.
LOGIN_WINDOW = 60.0
#: At most this many addresses are remembered (the least recent go first).
MAX_TRACKED_ADDRESSES = 10_000


class LoginLimiter:
    """
    Allows each address *attempts* tries per *window* seconds.

    The count lives in this process: a fleet of *n* processes allows up to
    *n* times as many tries per address, still far too few to guess a
    256-bit admin key. Safe to call from many threads.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        attempts: int = LOGIN_ATTEMPTS,
        window: float = LOGIN_WINDOW,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.clock = clock
        self.attempts = attempts
        self.window = window
        self.max_addresses = max_addresses
        self._tries: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, address: str) -> float:
        """
        Count one try from *address*; return 0 if it is allowed, else the
        seconds until the next one will be.
        """
        now = self.clock()
        with self._lock:
            tries = self._tries.pop(address, None)
            if tries is None:
                tries = deque()
            while tries and tries[0] <= now - self.window:
                tries.popleft()
            self._tries[address] = tries
            while len(self._tries) > self.max_addresses:
                self._tries.popitem(last=False)
            if len(tries) >= self.attempts:
                return max(tries[0] + self.window - now, 0.001)
            tries.append(now)
            return 0.0

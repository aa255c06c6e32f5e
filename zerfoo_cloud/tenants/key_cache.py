"""
The lookup cache of `TenantManager.get_by_api_key`: tenants found by key.

It maps a key's hash (never the key) to when it was read and what was
found, keeps the most recently used last, and drops the least recently used
past its size. Entries expire after a time to live given on each lookup, so
a key re-keyed or deleted by another process sharing the store stops
working within it. Each entry belongs to a *group* (a tenant's id), and
`KeyCache.forget` drops one group's entries in time proportional to their
number, so a message saying a tenant changed drops that tenant's keys at
once. A lookup that read the store before such a drop cannot put back what
it read (`KeyCache.epoch`).
"""

from __future__ import annotations

import collections
import math
import threading
from typing import Generic, TypeVar

from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "MAX_CACHE_TTL",
    "KeyCache",
    "check_cache_size",
    "check_ttl",
]

#: How long `TenantManager.get_by_api_key` keeps a tenant it found, by default.
DEFAULT_CACHE_TTL = 0.5
#: The longest *cache_ttl*: a key deleted by another process stops working
#: within one second.
MAX_CACHE_TTL = 1.0
#: How many tenants `TenantManager.get_by_api_key` keeps, by default.
DEFAULT_CACHE_SIZE = 10_000

T = TypeVar("T")


def check_ttl(value: object) -> float:
    """
    Return *value* as a time to live: 0 to `MAX_CACHE_TTL` seconds.

    Raises:
        InvalidConfigError: it is not one (field ``cache_ttl``).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= MAX_CACHE_TTL
    ):
        msg = f"cache_ttl must be 0 to {MAX_CACHE_TTL} seconds, not {value!r}"
        raise InvalidConfigError(msg, field="cache_ttl")
    return float(value)


def check_cache_size(value: object) -> int:
    """
    Return *value* as a cache size: a positive integer.

    Raises:
        InvalidConfigError: it is not one (field ``cache_size``).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"cache_size must be a positive integer, not {value!r}"
        raise InvalidConfigError(msg, field="cache_size")
    return value


class KeyCache(Generic[T]):
    """
    Values by key hash, each kept for a time to live and filed under a group
    (a tenant id); safe for many threads.

    Every `forget` and `clear` advances `epoch`; `put` given the epoch read
    before the value was looked up keeps nothing if it has moved since, so a
    value read before a drop never outlives it.
    """

    __slots__ = ("_entries", "_epoch", "_groups", "_lock")

    def __init__(self) -> None:
        # Key hash -> (when it was read, the value, its group); most
        # recently used last.
        self._entries: collections.OrderedDict[str, tuple[float, T, str]] = (
            collections.OrderedDict()
        )
        # Group -> the key hashes filed under it.
        self._groups: dict[str, set[str]] = {}
        self._epoch = 0
        self._lock = threading.Lock()

    @property
    def epoch(self) -> int:
        """
        How many times entries were dropped by `forget` or `clear`.
        """
        return self._epoch

    def _unfile(self, digest: str, group: str) -> None:
        # Under the lock: remove *digest* from *group*'s index.
        digests = self._groups.get(group)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._groups[group]

    def get(self, digest: str, now: float, ttl: float) -> T | None:
        """
        Return the value kept for *digest* if it was read less than *ttl*
        seconds before *now*, else ``None`` (and forget an expired one; a
        clock that went backwards expires it too).
        """
        entries = self._entries
        with self._lock:
            hit = entries.get(digest)
            if hit is not None:
                if 0.0 <= now - hit[0] < ttl:
                    entries.move_to_end(digest)
                    return hit[1]
                del entries[digest]
                self._unfile(digest, hit[2])
        return None

    def put(
        self,
        digest: str,
        now: float,
        value: T,
        size: int,
        *,
        group: str = "",
        epoch: int | None = None,
    ) -> bool:
        """
        Keep *value* for *digest*, read at *now*, filed under *group*; past
        *size* entries, drop the least recently used.

        With *epoch* (`epoch` read before *value* was looked up), keep
        nothing if entries were dropped since. Returns whether it was kept.
        """
        entries = self._entries
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return False
            old = entries.pop(digest, None)
            if old is not None:
                self._unfile(digest, old[2])
            entries[digest] = (now, value, group)
            self._groups.setdefault(group, set()).add(digest)
            if len(entries) > size:
                gone, (_, _, gone_group) = entries.popitem(last=False)
                self._unfile(gone, gone_group)
        return True

    def forget(self, group: str) -> int:
        """
        Drop every value filed under *group*; return how many were dropped.
        """
        with self._lock:
            self._epoch += 1
            digests = self._groups.pop(group, ())
            for digest in digests:
                del self._entries[digest]
            return len(digests)

    def clear(self) -> None:
        """
        Forget every value.
        """
        with self._lock:
            self._epoch += 1
            self._entries.clear()
            self._groups.clear()

    def __len__(self) -> int:
        """
        How many values are kept (expired ones included until looked up).
        """
        return len(self._entries)

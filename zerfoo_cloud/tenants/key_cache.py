"""
The lookup cache of `TenantManager.get_by_api_key`: tenants found by key.

It maps a key's hash (never the key) to when it was read and what was
found, keeps the most recently used last, and drops the least recently used
past its size. Entries expire after a time to live given on each lookup, so
a key re-keyed or deleted by another process sharing the store stops
working within it.
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
    Values by key hash, each kept for a time to live; safe for many threads.
    """

    __slots__ = ("_entries", "_lock")

    def __init__(self) -> None:
        # Key hash -> (when it was read, the value); most recently used last.
        self._entries: collections.OrderedDict[str, tuple[float, T]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

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
        return None

    def put(self, digest: str, now: float, value: T, size: int) -> None:
        """
        Keep *value* for *digest*, read at *now*; past *size* entries, drop
        the least recently used.
        """
        entries = self._entries
        with self._lock:
            entries[digest] = (now, value)
            if len(entries) > size:
                entries.popitem(last=False)

    def clear(self) -> None:
        """
        Forget every value.
        """
        with self._lock:
            self._entries.clear()

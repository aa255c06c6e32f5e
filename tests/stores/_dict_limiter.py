"""
The smallest limiter backend: a dict under a lock implementing only the
methods `zerfoo_cloud.stores.protocols.LimiterStore` documents, with the
arithmetic of `zerfoo_cloud.buckets`.

It stands for a store written outside the library (a Redis or PostgreSQL
backend would do the same steps in a script or a transaction): the
conformance suite runs against it, and it drives a `Tenant` and a
`RateLimiter` end to end.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

from zerfoo_cloud.buckets import (
    BucketState,
    adjust_bucket,
    refill,
    refill_all,
    take_all,
)

_Slot = tuple[str, int] | None
_Buckets = Sequence[tuple[str, float, float, int]]
_Admitted = tuple[bool, bool, list[float]]


class DictLimiterStore:
    """
    A limiter store in a dict and a counter: ``admit``, ``settle``, ``get``,
    ``slots_in_use``, ``clear`` and ``close``, and nothing else.
    """

    def __init__(self) -> None:
        self.states: dict[str, BucketState] = {}
        self.slots: Counter[str] = Counter()
        self.lock = threading.Lock()

    def admit(self, slot: _Slot, buckets: _Buckets, now: float) -> _Admitted:
        keys = [bucket[0] for bucket in buckets]
        asks = [bucket[1:] for bucket in buckets]
        with self.lock:
            states = [self.states.get(key) for key in keys]
            if slot is not None and self.slots[slot[0]] >= slot[1]:
                return False, False, refill_all(states, asks, now)
            new, levels = take_all(states, asks, now)
            if new is not None:
                self.states.update(zip(keys, map(BucketState._make, new), strict=True))
                if slot is not None:
                    self.slots[slot[0]] += 1
            return True, new is not None, levels

    def settle(
        self, slot_key: str | None, buckets: _Buckets, now: float
    ) -> list[float]:
        levels = []
        with self.lock:
            for key, capacity, rate, delta in buckets:
                state = self.states.get(key)
                if delta:
                    state = adjust_bucket(state, capacity, rate, delta, now)
                    self.states[key] = state
                levels.append(refill(state, capacity, rate, now)[0])
            if slot_key is not None and self.slots[slot_key] > 0:
                self.slots[slot_key] -= 1
            return levels

    def get(self, key: str) -> BucketState | None:
        return self.states.get(key)

    def slots_in_use(self, key: str) -> int:
        return self.slots[key]

    def clear(self, prefix: str) -> None:
        with self.lock:
            for table in (self.states, self.slots):
                for key in [k for k in table if k.startswith(prefix)]:
                    del table[key]

    def close(self) -> None:
        pass

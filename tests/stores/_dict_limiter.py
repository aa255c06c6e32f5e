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
from zerfoo_cloud.slots import SlotKeys, Slots, slot_key_list, slot_list

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

    def admit(self, slot: Slots, buckets: _Buckets, now: float) -> _Admitted:
        keys = [bucket[0] for bucket in buckets]
        asks = [bucket[1:] for bucket in buckets]
        slots = slot_list(slot)
        several = slot is not None and (not slot or not isinstance(slot[0], str))
        with self.lock:
            states = [self.states.get(key) for key in keys]
            counts = [self.slots[key] for key, _ in slots]
            if any(n >= limit for n, (_, limit) in zip(counts, slots, strict=True)):
                levels = refill_all(states, asks, now)
                return False, False, levels + counts if several else levels
            new, levels = take_all(states, asks, now)
            if new is not None:
                self.states.update(zip(keys, map(BucketState._make, new), strict=True))
                for key, _ in slots:
                    self.slots[key] += 1
            if several:
                levels += [self.slots[key] for key, _ in slots]
            return True, new is not None, levels

    def settle(self, slot_key: SlotKeys, buckets: _Buckets, now: float) -> list[float]:
        levels = []
        with self.lock:
            for key, capacity, rate, delta in buckets:
                state = self.states.get(key)
                if delta:
                    state = adjust_bucket(state, capacity, rate, delta, now)
                    self.states[key] = state
                levels.append(refill(state, capacity, rate, now)[0])
            for key in slot_key_list(slot_key):
                if self.slots[key] > 0:
                    self.slots[key] -= 1
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

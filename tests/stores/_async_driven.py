"""
`AsyncDriven`: a `LimiterStore` whose primitive is the asyncio one of an
`AsyncLimiterStore`, so the conformance suite checks `admit_async` and
`settle_async` too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from zerfoo_cloud.buckets import BucketState
from zerfoo_cloud.slots import SlotKeys, Slots
from zerfoo_cloud.stores.protocols import AsyncLimiterStore

T = TypeVar("T")


class AsyncDriven:
    """
    *store*'s `admit_async` and `settle_async`, run on one event loop in a
    thread of its own and waited for: every caller's thread shares that
    loop (and its asyncio client), as the requests of an ASGI server do.
    The reads and upkeep are *store*'s own.
    """

    def __init__(self, store: AsyncLimiterStore) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self.loop).result(30)

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """`admit_async`, on the loop."""
        return self._run(self.store.admit_async(slot, buckets, now))

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """`settle_async`, on the loop."""
        return self._run(self.store.settle_async(slot_key, buckets, now))

    def get(self, key: str) -> BucketState | None:
        """The store's own."""
        return self.store.get(key)

    def slots_in_use(self, key: str) -> int:
        """The store's own."""
        return self.store.slots_in_use(key)

    def clear(self, prefix: str) -> None:
        """The store's own."""
        self.store.clear(prefix)

    def close(self) -> None:
        """Close the store (its client closes on the loop), then stop the loop."""
        self.store.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

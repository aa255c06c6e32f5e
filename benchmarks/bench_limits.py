"""
Limiter decisions per second: zerfoo-cloud's token buckets against `limits`.

One workload for every contender: one key, a limit high enough that every
decision is granted (so each is a full read-modify-write), single thread.
The baseline is the fastest of `limits`' moving-window and sliding-window
strategies on its memory storage, measured in the same run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import (
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from benchmarks._timing import rate, row
from zerfoo_cloud import TenantConfig, TenantManager, generate_api_key
from zerfoo_cloud.limits import Rate, RateLimiter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryLimiterStore

LIMIT = 10**9


def main() -> None:
    """
    Print decisions per second for each contender and the ratios.
    """
    item = RateLimitItemPerMinute(LIMIT)
    moving = MovingWindowRateLimiter(MemoryStorage())
    sliding = SlidingWindowCounterRateLimiter(MemoryStorage())
    baseline_moving = rate(lambda: moving.hit(item, "tenant"))
    baseline_sliding = rate(lambda: sliding.hit(item, "tenant"))
    baseline = max(baseline_moving, baseline_sliding)

    bucket = Rate(LIMIT)
    memory = RateLimiter(MemoryLimiterStore())
    ours_memory = rate(lambda: memory.acquire("tenant", bucket))

    with tempfile.TemporaryDirectory() as folder:
        stores = LMDBStores.open(Path(folder) / "db")
        try:
            on_lmdb = RateLimiter(stores.limits)
            ours_lmdb = rate(lambda: on_lmdb.acquire("tenant", bucket))
            manager = TenantManager(stores.tenants, limits=stores.limits)
            key = generate_api_key()
            manager.create(TenantConfig("acme", key, 0, 0))
            for i in range(999):
                manager.create(TenantConfig(f"t{i}", generate_api_key(), 0, 0))
            lookups_lmdb = rate(lambda: manager.get_by_api_key(key), batch=200)
        finally:
            stores.close()

    memory_manager = TenantManager()
    memory_manager.create(TenantConfig("acme", key, 0, 0))
    lookups_memory = rate(lambda: memory_manager.get_by_api_key(key))

    print("   limiter decisions, single thread (baseline: limits' fastest of")
    print("   moving-window and sliding-window on memory storage)")
    print(row("limits moving-window (memory)", baseline_moving, baseline))
    print(row("limits sliding-window-counter (memory)", baseline_sliding, baseline))
    print(row("zerfoo-cloud token bucket, memory store", ours_memory, baseline))
    print(row("zerfoo-cloud token bucket, LMDB store", ours_lmdb, baseline))
    print("   get_by_api_key lookups (1,000 tenants)")
    print(row("memory store", lookups_memory))
    print(row("LMDB store", lookups_lmdb))


if __name__ == "__main__":
    main()

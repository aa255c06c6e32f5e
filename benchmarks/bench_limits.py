"""
Limiter decisions per second: zerfoo-cloud's token buckets against `limits`.

One workload for every contender: one key, a limit high enough that every
decision is granted (so each is a full read-modify-write), single thread.
The baseline is the fastest of `limits`' moving-window and sliding-window
strategies on its memory storage, measured in the same run.

Then whole requests (`Tenant.begin_request` + `Tenant.end_request`: one
admit and one settle, a slot and two buckets) on the memory, LMDB and Redis
stores side by side, and decisions on Redis against `limits`' Redis storage
(both over one connection to the Redis on 127.0.0.1:6379; skipped with a
line when it is not running).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import (
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from benchmarks._timing import rate, row
from zerfoo_cloud import TenantConfig, TenantManager, generate_api_key
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.limits import Rate, RateLimiter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryLimiterStore
from zerfoo_cloud.stores.protocols import LimiterStore
from zerfoo_cloud.stores.redis import RedisLimiterStore

LIMIT = 10**9
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_PREFIX = f"zc-bench:{os.getpid()}:"


def _requests_per_second(limits: LimiterStore) -> float:
    # begin_request + end_request of one tenant (a slot, requests, tokens).
    manager = TenantManager(limits=limits)
    manager.create(TenantConfig("acme", generate_api_key(), LIMIT, LIMIT, 1000))
    tenant = manager.get("acme")

    def request() -> None:
        tenant.begin_request(100)
        tenant.end_request(100, 60)

    return rate(request, batch=200)


def _redis_rows(memory_requests: float) -> list[str]:
    # Whole requests and decisions on Redis, with limits' Redis storage as the peer.
    try:
        store = RedisLimiterStore.from_url(REDIS_URL, prefix=REDIS_PREFIX)
        store.clear("")
    except StoreError as exc:
        return [f"   (Redis rows skipped: {exc})"]
    try:
        requests = _requests_per_second(store)
        on_redis = RateLimiter(store)
        bucket = Rate(LIMIT)
        ours = rate(lambda: on_redis.acquire("tenant", bucket), batch=200)
        store.clear("")
    finally:
        store.close()
    item = RateLimitItemPerMinute(LIMIT)
    storage = RedisStorage(REDIS_URL, key_prefix=REDIS_PREFIX + "limits")
    moving = MovingWindowRateLimiter(storage)
    sliding = SlidingWindowCounterRateLimiter(storage)
    peer_moving = rate(lambda: moving.hit(item, "tenant"), batch=200)
    peer_sliding = rate(lambda: sliding.hit(item, "tenant"), batch=200)
    storage.reset()
    peer = max(peer_moving, peer_sliding)
    return [
        row("Redis store", requests, memory_requests),
        "   limiter decisions on Redis, single thread (baseline: limits' fastest",
        "   of moving-window and sliding-window on its Redis storage)",
        row("limits moving-window (Redis)", peer_moving, peer),
        row("limits sliding-window-counter (Redis)", peer_sliding, peer),
        row("zerfoo-cloud token bucket, Redis store", ours, peer),
    ]


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
            requests_lmdb = _requests_per_second(stores.limits)
        finally:
            stores.close()

    memory_manager = TenantManager()
    memory_manager.create(TenantConfig("acme", key, 0, 0))
    lookups_memory = rate(lambda: memory_manager.get_by_api_key(key))
    requests_memory = _requests_per_second(MemoryLimiterStore())

    print("   limiter decisions, single thread (baseline: limits' fastest of")
    print("   moving-window and sliding-window on memory storage)")
    print(row("limits moving-window (memory)", baseline_moving, baseline))
    print(row("limits sliding-window-counter (memory)", baseline_sliding, baseline))
    print(row("zerfoo-cloud token bucket, memory store", ours_memory, baseline))
    print(row("zerfoo-cloud token bucket, LMDB store", ours_lmdb, baseline))
    print("   get_by_api_key lookups (1,000 tenants)")
    print(row("memory store", lookups_memory))
    print(row("LMDB store", lookups_lmdb))
    print("   whole requests, admit + settle (a slot, requests and tokens),")
    print("   single thread (baseline: the memory store)")
    print(row("memory store", requests_memory, requests_memory))
    print(row("LMDB store", requests_lmdb, requests_memory))
    for line in _redis_rows(requests_memory):
        print(line)


if __name__ == "__main__":
    main()

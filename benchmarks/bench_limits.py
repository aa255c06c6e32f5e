"""
Limiter decisions per second: zerfoo-cloud's token buckets against `limits`.

One workload for every contender: one key, a limit high enough that every
decision is granted (so each is a full read-modify-write), single thread.
The baseline is the fastest of `limits`' moving-window and sliding-window
strategies on its memory storage, measured in the same run.

Then whole requests (`Tenant.begin_request` + `Tenant.end_request`: one
admit and one settle, a slot and two buckets) on the memory, LMDB and Redis
stores side by side (and, on memory and LMDB, with a key that has limits of
its own: two slots and four buckets), and decisions on Redis against `limits`' Redis storage
(both over one connection to the Redis on 127.0.0.1:6379; skipped with a
line when it is not running).

Last, the asyncio path an ASGI server takes: admissions per second from
`CONCURRENCY` coroutines on one event loop (`RateLimiter.admit_async`),
against `limits`' asyncio strategies on its asyncio Redis storage
(``limits.aio``, redis-py's asyncio client) at the same concurrency, and
against its sync API; and whole requests (`Tenant.begin_request_async` +
`Tenant.end_request_async`) at that concurrency.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.aio.strategies import (
    SlidingWindowCounterRateLimiter as AsyncSlidingWindowCounter,
)
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
#: Coroutines admitting at once on one event loop (the asyncio rows).
CONCURRENCY = 64


def _requests_per_second(limits: LimiterStore) -> float:
    # begin_request + end_request of one tenant (a slot, requests, tokens).
    manager = TenantManager(limits=limits)
    manager.create(TenantConfig("acme", generate_api_key(), LIMIT, LIMIT, 1000))
    tenant = manager.get("acme")

    def request() -> None:
        tenant.begin_request(100)
        tenant.end_request(100, 60)

    return rate(request, batch=200)


def _key_requests_per_second(limits: LimiterStore) -> float:
    # begin_request + end_request with a key that has limits of its own:
    # two slots and four buckets in one admit, one settle.
    manager = TenantManager(limits=limits)
    manager.create(TenantConfig("acme", generate_api_key(), LIMIT, LIMIT, 1000))
    secret, _ = manager.create_key(
        "acme",
        name="bench",
        rate_limit=LIMIT,
        token_budget=LIMIT,
        max_concurrent_requests=1000,
    )
    tenant = manager.get_by_api_key(secret)

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
        *_redis_async_rows(peer),
    ]


async def _concurrent_rate(
    call: Callable[[], Awaitable[object]], seconds: float = 1.0
) -> float:
    # Calls per second of CONCURRENCY coroutines each awaiting *call* in a
    # loop; the best of three runs of about *seconds*.
    best = 0.0
    for _ in range(3):
        done = 0
        deadline = time.perf_counter() + seconds / 3

        async def worker(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await call()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*[worker(deadline) for _ in range(CONCURRENCY)])
        best = max(best, done / (time.perf_counter() - started))
    return best


async def _async_figures(store: RedisLimiterStore) -> tuple[float, float, float, float]:
    # Ours (decisions, whole requests) and limits' asyncio strategies.
    limiter = RateLimiter(store)
    bucket = Rate(LIMIT)
    manager = TenantManager(limits=store)
    manager.create(TenantConfig("acme", generate_api_key(), LIMIT, LIMIT, 10**6))
    tenant = manager.get("acme")

    async def request() -> None:
        await tenant.begin_request_async(100)
        await tenant.end_request_async(100, 60)

    item = RateLimitItemPerMinute(LIMIT)
    storage = AsyncRedisStorage(
        "async+" + REDIS_URL,
        implementation="redispy",
        key_prefix=REDIS_PREFIX + "limits-aio",
    )
    moving = AsyncMovingWindow(storage)
    sliding = AsyncSlidingWindowCounter(storage)
    try:
        ours = await _concurrent_rate(
            lambda: limiter.admit_async(None, (("tenant", bucket, 1),))
        )
        requests = await _concurrent_rate(request)
        peer_moving = await _concurrent_rate(lambda: moving.hit(item, "tenant"))
        peer_sliding = await _concurrent_rate(lambda: sliding.hit(item, "tenant"))
        await storage.reset()
    finally:
        await store.async_connection.aclose()  # type: ignore[union-attr]
    return ours, requests, peer_moving, peer_sliding


def _redis_async_rows(peer_sync: float) -> list[str]:
    # The asyncio path, beside limits' asyncio and sync figures on Redis.
    try:
        store = RedisLimiterStore.from_url(REDIS_URL, prefix=REDIS_PREFIX)
        store.clear("")
    except StoreError as exc:
        return [f"   (asyncio Redis rows skipped: {exc})"]
    try:
        ours, requests, peer_moving, peer_sliding = asyncio.run(_async_figures(store))
        store.clear("")
    finally:
        store.close()
    peer = max(peer_moving, peer_sliding)
    return [
        f"   asyncio: {CONCURRENCY} coroutines on one event loop, one process",
        "   (baseline: limits' fastest asyncio strategy on its asyncio Redis",
        "   storage at the same concurrency; then its sync single thread)",
        row("limits.aio moving-window (Redis)", peer_moving, peer),
        row("limits.aio sliding-window-counter (Redis)", peer_sliding, peer),
        row("zerfoo-cloud admit_async, Redis store", ours, peer),
        row("zerfoo-cloud admit_async vs limits' fastest sync", ours, peer_sync),
        row("whole requests, begin/end_request_async", requests, peer),
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
            key_requests_lmdb = _key_requests_per_second(stores.limits)
        finally:
            stores.close()

    memory_manager = TenantManager()
    memory_manager.create(TenantConfig("acme", key, 0, 0))
    lookups_memory = rate(lambda: memory_manager.get_by_api_key(key))
    requests_memory = _requests_per_second(MemoryLimiterStore())
    key_requests_memory = _key_requests_per_second(MemoryLimiterStore())

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
    print("   whole requests with a key's own limits (two slots, four buckets),")
    print("   single thread (baseline: the memory store without them)")
    print(row("memory store, key limits", key_requests_memory, requests_memory))
    print(row("LMDB store, key limits", key_requests_lmdb, requests_memory))


if __name__ == "__main__":
    main()

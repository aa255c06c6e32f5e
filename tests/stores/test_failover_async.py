"""
`FailoverLimiterStore` on the asyncio path (``serve --counters-fail-open``
under ASGI): the primary is awaited through its ``admit_async`` and
``settle_async``, never called synchronously on the event loop, with the
same switching as the sync path.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from pathlib import Path

from tests._redis_servers import start_redis
from tests.stores.test_failover import (
    AOF,
    BUCKET,
    SLOT,
    Unplugged,
    failing_over_redis,
)
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.stores.failover import FailoverLimiterStore
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore


class AsyncUnplugged(Unplugged):
    """`Unplugged` with asyncio twins; counts the sync calls it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_calls = 0

    def admit(
        self,
        slot: tuple[str, int] | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        self.sync_calls += 1
        return super().admit(slot, buckets, now)

    def settle(
        self,
        slot_key: str | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        self.sync_calls += 1
        return super().settle(slot_key, buckets, now)

    async def admit_async(
        self,
        slot: tuple[str, int] | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        await asyncio.sleep(0)
        self._check()
        return MemoryLimiterStore.admit(self, slot, buckets, now)

    async def settle_async(
        self,
        slot_key: str | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        await asyncio.sleep(0)
        self._check()
        return MemoryLimiterStore.settle(self, slot_key, buckets, now)


def test_the_primary_is_awaited_and_switches_as_on_the_sync_path() -> None:
    primary, fallback = AsyncUnplugged(), MemoryLimiterStore()
    switches: list[str] = []
    store = FailoverLimiterStore(
        primary,
        fallback,
        on_failover=lambda to, error: switches.append(to),
        probe_min=0.01,
    )

    async def run() -> None:
        assert (await store.admit_async(SLOT, BUCKET, 0.0))[1]
        await store.settle_async(SLOT[0], [], 0.0)
        primary.down = True
        # On the fallback: its own 3 a minute, then refused; one switch.
        results = [(await store.admit_async(None, BUCKET, 0.0))[1] for _ in range(4)]
        assert results == [True, True, True, False]
        assert switches == ["fallback"]
        held = await store.admit_async(SLOT, [], 0.0)
        assert held[1]
        assert fallback.slots_in_use(SLOT[0]) == 1
        primary.down = False
        await asyncio.sleep(0.02)
        # The next call probes, the primary answers: back on it.
        assert (await store.admit_async(None, BUCKET, 0.0))[1]
        assert switches == ["fallback", "primary"]
        # The slot taken on the fallback is given back there.
        await store.settle_async(SLOT[0], [], 0.0)
        assert fallback.slots_in_use(SLOT[0]) == 0

    asyncio.run(run())
    assert primary.sync_calls == 0


def test_other_errors_are_raised_and_switch_nothing() -> None:
    class Broken(AsyncUnplugged):
        async def admit_async(
            self,
            slot: tuple[str, int] | None,
            buckets: Sequence[tuple[str, float, float, int]],
            now: float,
        ) -> tuple[bool, bool, list[float]]:
            msg = "NOSCRIPT"
            raise ValueError(msg)

    store = FailoverLimiterStore(Broken(), MemoryLimiterStore())

    async def run() -> None:
        try:
            await store.admit_async(None, BUCKET, 0.0)
        except ValueError:
            return
        raise AssertionError("not raised")  # pragma: no cover

    asyncio.run(run())
    assert not store.on_fallback
    assert store.switches == 0


def test_fails_open_on_a_killed_redis_on_the_asyncio_path(tmp_path: Path) -> None:
    """A real Redis killed and restarted, tenants admitted with ``*_async``."""
    proc, port, redis_store, limits, switches = failing_over_redis(tmp_path)
    store = MemoryTenantStore()
    TenantManager(store, limits=MemoryLimiterStore()).create(
        TenantConfig("acme", "key-a", 2, 0)
    )
    tenant = TenantManager(store, limits=limits).get("acme")

    async def allowed() -> bool:
        return (await tenant.begin_request_async(0)).allowed

    async def scenario() -> None:
        try:
            await steps()
        finally:
            # This loop's client, closed on the loop before it ends.
            await redis_store.async_connection.aclose()  # type: ignore[union-attr]

    async def steps() -> None:
        nonlocal proc
        assert await allowed()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # This host's own 2 a minute.
        assert [await allowed() for _ in range(3)] == [True, True, False]
        assert switches == ["fallback"]
        proc = start_redis(tmp_path, port, *AOF)
        await asyncio.sleep(0.1)
        # Redis kept 1 of 2: one more there, then refused.
        assert [await allowed() for _ in range(2)] == [True, False]
        assert switches == ["fallback", "primary"]

    try:
        asyncio.run(scenario())
    finally:
        proc.kill()
        proc.wait(10)
        limits.close()

"""
`FailoverLimiterStore`: fail open on this host's counters while the shared
Redis cannot be reached, switch once (not once per request), probe with
backoff, come back, and settle every slot where it was admitted.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests._redis_servers import start_redis, start_redis_anywhere
from tests.conftest import FakeClock
from tests.http._support import free_port
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.buckets import BucketState
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreUnavailableError
from zerfoo_cloud.slots import SlotKeys, Slots
from zerfoo_cloud.stores.failover import FailoverLimiterStore, failover_limits
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.stores.redis import RedisLimiterStore

SLOT = ("t\x00con", 2)
BUCKET = [("t\x00req", 3.0, 0.0, 1)]


class Unplugged(MemoryLimiterStore):
    """
    A store that can be unplugged: while *down*, every call raises
    `StoreUnavailableError` (as `RedisLimiterStore` does); counts the calls
    it got, so the tests can see how often the primary was tried.
    """

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.tries = 0

    def _check(self) -> None:
        self.tries += 1
        if self.down:
            msg = "Redis at 127.0.0.1:1/0 failed: ConnectionError"
            raise StoreUnavailableError("redis", msg)

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        self._check()
        return super().admit(slot, buckets, now)

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        self._check()
        return super().settle(slot_key, buckets, now)

    def get(self, key: str) -> BucketState | None:
        self._check()
        return super().get(key)

    def slots_in_use(self, key: str) -> int:
        self._check()
        return super().slots_in_use(key)


Switches = list[tuple[str, bool]]


def _store(
    clock: FakeClock, **options: float
) -> tuple[FailoverLimiterStore, Unplugged, MemoryLimiterStore, Switches]:
    primary, fallback = Unplugged(), MemoryLimiterStore()
    switches: Switches = []

    def heard(to: str, error: StoreUnavailableError | None) -> None:
        switches.append((to, error is not None))

    store = FailoverLimiterStore(
        primary, fallback, on_failover=heard, clock=clock, **options
    )
    return store, primary, fallback, switches


def test_one_switch_for_many_requests_and_limits_hold_on_the_fallback(
    clock: FakeClock,
) -> None:
    """Primary down: the fallback admits its own 3, then refuses; one switch reported."""
    store, primary, fallback, switches = _store(clock)
    primary.down = True
    results = [store.admit(None, BUCKET, 0.0)[1] for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert switches == [("fallback", True)]
    assert store.switches == 1
    assert store.on_fallback
    assert primary.tries == 1  # no probe was due yet
    assert fallback.get("t\x00req") == BucketState(0.0, 0.0)


def test_probes_back_off_and_the_first_answer_switches_back(clock: FakeClock) -> None:
    """Probes at 0.5, 1, 2, 4 s ... capped at probe_max; the primary answering switches back."""
    store, primary, _, switches = _store(clock, probe_min=0.5, probe_max=2.0)
    primary.down = True
    store.admit(None, BUCKET, 0.0)
    tried_at = []
    for _ in range(80):  # ten seconds, a call every 1/8 s
        clock.advance(0.125)
        before = primary.tries
        store.admit(None, [("t\x00req", 1e9, 0.0, 1)], 0.0)
        if primary.tries > before:
            tried_at.append(clock.now - 1_700_000_000.0)
    gaps = [b - a for a, b in itertools.pairwise(tried_at)]
    assert tried_at[0] == 0.5
    assert gaps[:2] == [1.0, 2.0]
    assert all(gap == 2.0 for gap in gaps[2:])
    primary.down = False
    clock.advance(2.0)
    assert store.admit(None, BUCKET, 0.0)[1]
    assert not store.on_fallback
    assert switches == [("fallback", True), ("primary", False)]
    assert primary.get("t\x00req") is not None


def test_a_slot_taken_on_the_fallback_is_given_back_there(clock: FakeClock) -> None:
    """Admitted on the fallback, settled after the switch back: the fallback frees it, the primary's stay."""
    store, primary, fallback, _ = _store(clock)
    assert store.admit(SLOT, [], 0.0)[1]  # on the primary
    primary.down = True
    assert store.admit(SLOT, [], 0.0)[1]  # on the fallback
    assert fallback.slots_in_use(SLOT[0]) == 1
    primary.down = False
    clock.advance(1.0)
    assert store.slots_in_use(SLOT[0]) == 2  # probes, switches back; 1 + 1 held
    assert not store.on_fallback
    store.settle(SLOT[0], [], 0.0)
    assert fallback.slots_in_use(SLOT[0]) == 0
    assert primary.slots_in_use(SLOT[0]) == 1
    store.settle(SLOT[0], [], 0.0)
    assert primary.slots_in_use(SLOT[0]) == 0


def test_a_refund_goes_where_the_tenant_was_admitted(clock: FakeClock) -> None:
    """Without a slot, a settle follows the group's latest admission."""
    store, primary, fallback, _ = _store(clock)
    primary.down = True
    assert store.admit(None, [("t\x00tok", 100.0, 0.0, 40)], 0.0)[1]
    assert store.settle(None, [("t\x00tok", 100.0, 0.0, 30)], 0.0) == [90.0]
    assert fallback.get("t\x00tok") == BucketState(90.0, 0.0)
    # A tenant admitted on the primary before the outage settles there, and
    # while the primary cannot be reached that settle raises.
    assert primary.tries == 1  # the settle went straight to the fallback
    other, other_primary, _, _ = _store(clock)
    assert other.admit(None, [("u\x00tok", 100.0, 0.0, 40)], 0.0)[1]
    other_primary.down = True
    with pytest.raises(StoreUnavailableError):
        other.settle(None, [("u\x00tok", 100.0, 0.0, 30)], 0.0)


def test_failover_limits_falls_back_on_this_process() -> None:
    """failover_limits: the given store first, a new MemoryLimiterStore behind it."""
    primary = Unplugged()
    limits = failover_limits(primary)
    assert isinstance(limits.fallback, MemoryLimiterStore)
    primary.down = True
    assert limits.admit(None, BUCKET, 0.0)[1]
    assert limits.on_fallback
    assert limits.fallback.get("t\x00req") is not None
    limits.close()


def test_other_errors_do_not_switch(clock: FakeClock) -> None:
    """A StoreError that is not unavailability is raised and switches nothing."""

    class Broken(MemoryLimiterStore):
        def admit(self, *args: object) -> tuple[bool, bool, list[float]]:
            msg = "script error"
            raise StoreError(msg)

    switches: Switches = []
    store = FailoverLimiterStore(
        Broken(),
        MemoryLimiterStore(),
        on_failover=lambda to, e: switches.append((to, True)),
    )
    with pytest.raises(StoreError, match="script error"):
        store.admit(None, BUCKET, 0.0)
    assert not store.on_fallback
    assert switches == []


def test_a_failing_reporter_does_not_fail_requests(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """on_failover raising is logged; the request is still admitted on the fallback."""

    def broken(to: str, error: StoreUnavailableError | None) -> None:
        msg = "audit log down"
        raise RuntimeError(msg)

    primary = Unplugged()
    primary.down = True
    store = FailoverLimiterStore(primary, MemoryLimiterStore(), on_failover=broken)
    assert store.admit(None, BUCKET, 0.0)[1]
    assert "on_failover failed" in caplog.text
    assert "failing open" in caplog.text


@pytest.mark.parametrize(
    "options",
    [
        {"probe_min": 0},
        {"probe_min": -1.0},
        {"probe_max": float("inf")},
        {"probe_min": 2.0, "probe_max": 1.0},
        {"probe_min": True},
    ],
)
def test_bad_probe_options_are_refused(options: dict[str, Any]) -> None:
    """Probe intervals are positive, finite, and the cap is not below the start."""
    with pytest.raises(InvalidConfigError):
        FailoverLimiterStore(MemoryLimiterStore(), MemoryLimiterStore(), **options)


@pytest.mark.redis
@pytest.mark.slow
def test_fails_open_on_a_killed_redis_and_comes_back(tmp_path: Path) -> None:
    """
    A tenant on a real Redis that is killed: requests pass on this host's
    counters (one switch reported); restarted, the store switches back and
    the limit is Redis's again, with the slot taken meanwhile given back on
    the fallback.
    """
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    proc, port = start_redis_anywhere(tmp_path, *aof)
    redis_store = RedisLimiterStore.from_url(
        f"redis://127.0.0.1:{port}/0", connect_timeout=0.2, socket_timeout=0.5
    )
    switches: list[str] = []
    limits = FailoverLimiterStore(
        redis_store,
        MemoryLimiterStore(),
        on_failover=lambda to, e: switches.append(to),
        probe_min=0.05,
    )
    store = MemoryTenantStore()
    TenantManager(store, limits=MemoryLimiterStore()).create(
        TenantConfig("acme", "key-a", 2, 0, max_concurrent_requests=5)
    )
    tenants = TenantManager(store, limits=limits)
    tenant = tenants.get("acme")
    try:
        assert tenant.begin_request(0).allowed
        tenant.end_request(0, 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        held = tenant.begin_request(0)  # on the fallback: its own 2 per minute
        assert held.allowed
        assert tenant.begin_request(0).allowed
        assert not tenant.begin_request(0).allowed
        assert switches == ["fallback"]
        proc = start_redis(tmp_path, port, *aof)
        time.sleep(0.1)
        # Redis's bucket kept 1 of 2: one more passes there, then it refuses.
        assert tenant.begin_request(0).allowed
        assert switches == ["fallback", "primary"]
        assert not tenant.begin_request(0).allowed
        assert limits.fallback.slots_in_use("acme\x00con") == 2
        tenant.end_request(0, 0)
        tenant.end_request(0, 0)
        assert limits.fallback.slots_in_use("acme\x00con") == 0
        assert redis_store.slots_in_use("acme\x00con") == 1
        tenant.end_request(0, 0)
        assert redis_store.slots_in_use("acme\x00con") == 0
    finally:
        proc.kill()
        proc.wait(10)
        limits.close()


def test_the_asyncio_twins_switch_and_settle_as_the_sync_calls(
    clock: FakeClock,
) -> None:
    """admit_async/settle_async: the same switch, the same slot bookkeeping."""
    store, primary, fallback, switches = _store(clock)

    async def run() -> None:
        assert (await store.admit_async(SLOT, [], 0.0))[1]  # on the primary
        primary.down = True
        assert (await store.admit_async(SLOT, [], 0.0))[1]  # on the fallback
        assert fallback.slots_in_use(SLOT[0]) == 1
        await store.settle_async(SLOT[0], [], 0.0)
        assert fallback.slots_in_use(SLOT[0]) == 0

    asyncio.run(run())
    assert switches == [("fallback", True)]
    primary.down = False
    assert primary.slots_in_use(SLOT[0]) == 1


@pytest.mark.redis
def test_a_dead_redis_fails_over_on_the_event_loop() -> None:
    """A Redis nobody listens on, awaited through its asyncio client: admitted on the fallback."""
    redis_store = RedisLimiterStore.from_url(
        f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2
    )
    switches: list[str] = []
    store = FailoverLimiterStore(
        redis_store, MemoryLimiterStore(), on_failover=lambda to, e: switches.append(to)
    )
    assert hasattr(store, "admit_async")

    async def run() -> list[bool]:
        try:
            return [(await store.admit_async(None, BUCKET, 0.0))[1] for _ in range(5)]
        finally:
            await redis_store.async_connection.aclose()  # type: ignore[union-attr]

    assert asyncio.run(run()) == [True, True, True, False, False]
    assert switches == ["fallback"]
    store.close()


def test_slots_held_on_the_fallback_count_against_the_limit_after_the_switch_back(
    clock: FakeClock,
) -> None:
    """Two of two slots taken on the fallback: back on the primary, none is free until they are given back."""
    store, primary, _, _ = _store(clock)
    primary.down = True
    assert store.admit(SLOT, [], 0.0)[1]
    assert store.admit(SLOT, [], 0.0)[1]
    assert not store.admit(SLOT, [], 0.0)[1]
    primary.down = False
    clock.advance(1.0)
    assert store.slots_in_use(SLOT[0]) == 2  # switches back
    assert not store.on_fallback
    assert not store.admit(SLOT, [], 0.0)[1], "the limit is 2, and 2 are in use"
    store.settle(SLOT[0], [], 0.0)  # given back on the fallback
    assert store.admit(SLOT, [], 0.0)[1]
    assert not store.admit(SLOT, [], 0.0)[1]
    assert primary.slots_in_use(SLOT[0]) == 1


TWO_SLOTS = [("t\x00con", 2), ("t\x00k\x00con", 1)]


def test_several_slots_taken_on_the_fallback_are_given_back_there(
    clock: FakeClock,
) -> None:
    """A tenant's and a key's slot taken on the fallback count on the primary until settled there."""
    store, primary, fallback, _ = _store(clock)
    primary.down = True
    assert store.admit(TWO_SLOTS, [], 0.0) == (True, True, [1, 1])
    primary.down = False
    clock.advance(1.0)
    assert store.slots_in_use("t\x00con") == 1  # switches back; 0 + 1 held
    # The key's one slot is held on the fallback: the primary refuses, and
    # reports the counts the fallback holds too.
    assert store.admit(TWO_SLOTS, [], 0.0) == (False, False, [1, 1])
    # Another key of the tenant has room: the tenant's second slot.
    other = [("t\x00con", 2), ("t\x00j\x00con", 1)]
    assert store.admit(other, [], 0.0) == (True, True, [2, 1])
    assert primary.slots_in_use("t\x00con") == 1
    store.settle([key for key, _ in TWO_SLOTS], [], 0.0)  # on the fallback
    assert fallback.slots_in_use("t\x00con") == 0
    assert fallback.slots_in_use("t\x00k\x00con") == 0
    assert primary.slots_in_use("t\x00con") == 1
    store.settle([key for key, _ in other], [], 0.0)
    assert primary.slots_in_use("t\x00con") == 0
    assert primary.slots_in_use("t\x00j\x00con") == 0


def test_a_settle_of_slots_held_in_both_places_frees_each_where_it_is(
    clock: FakeClock,
) -> None:
    """The tenant's slot held on the fallback, the key's on the primary: each is given back where it is held."""
    store, primary, fallback, _ = _store(clock)
    primary.down = True
    assert store.admit(("t\x00con", 2), [], 0.0)[1]  # a key without a limit
    primary.down = False
    clock.advance(1.0)
    assert store.slots_in_use("t\x00con") == 1  # switches back
    assert store.admit(TWO_SLOTS, [("t\x00tok", 100.0, 0.0, 10)], 0.0)[1]
    assert primary.slots_in_use("t\x00k\x00con") == 1

    async def run() -> None:
        await store.settle_async(
            ["t\x00con", "t\x00k\x00con"], [("t\x00tok", 100.0, 0.0, 10)], 0.0
        )

    asyncio.run(run())
    assert fallback.slots_in_use("t\x00con") == 0
    assert primary.slots_in_use("t\x00k\x00con") == 0
    assert primary.slots_in_use("t\x00con") == 1
    store.settle("t\x00con", [], 0.0)
    assert primary.slots_in_use("t\x00con") == 0

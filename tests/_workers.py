"""
Functions run in child processes by the multi-process tests (spawn context).
"""

from __future__ import annotations

import multiprocessing.synchronize
import time
from pathlib import Path

from zerfoo_cloud import TenantManager
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.protocols import LimiterStore


def hammer_requests(
    path: str,
    api_key: str,
    attempts: int,
    start: multiprocessing.synchronize.Event,
    results: multiprocessing.Queue[int],
    now: float,
) -> None:
    """
    Try *attempts* requests as the tenant with *api_key*; report how many passed.

    Every process reads the same frozen time *now*, so no refill happens
    while they race and exactly the quota may pass.
    """
    stores = LMDBStores.open(Path(path))
    manager = TenantManager(stores.tenants, limits=stores.limits, clock=lambda: now)
    tenant = manager.get_by_api_key(api_key)
    start.wait(30)
    allowed = sum(tenant.allow_request() for _ in range(attempts))
    stores.close()
    results.put(allowed)


def hold_slots(
    path: str,
    api_key: str,
    count: int,
    ready: multiprocessing.synchronize.Event,
) -> None:
    """
    Take *count* concurrency slots, signal *ready*, then sleep until killed.
    """
    stores = LMDBStores.open(Path(path))
    tenant = TenantManager(stores.tenants, limits=stores.limits).get_by_api_key(api_key)
    for _ in range(count):
        assert tenant.allow_concurrent()
    ready.set()
    time.sleep(60)


def race_admits(
    path: str,
    slot_limit: int,
    capacity: float,
    attempts: int,
    events: tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event],
    results: multiprocessing.Queue[int],
) -> None:
    """
    Try *attempts* admissions (a slot of *slot_limit* and one unit of a
    bucket of *capacity* that never refills) straight through the LMDB
    limiter store's primitive; report how many passed.

    Waits for the first of *events* to start, and keeps its slots (by
    staying alive) until the second is set.
    """
    start, done = events
    stores = LMDBStores.open(Path(path))
    store = stores.limits
    start.wait(30)
    allowed = sum(
        store.admit(("race", slot_limit), [("race-r", capacity, 0.0, 1)], 1.0)[1]
        for _ in range(attempts)
    )
    results.put(allowed)
    done.wait(60)
    stores.close()


def admit_on_command(
    store_url: str,
    prefix: str,
    commands: multiprocessing.Queue[tuple[str, int, float, int, int] | None],
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue[int],
) -> None:
    """
    Serve rounds of racing admissions until ``None`` arrives.

    *store_url* is an LMDB folder or a Redis URL (*prefix* keeps its keys
    apart). Each command ``(key, slot_limit, capacity, cost, attempts)``
    waits on *start* with the other workers, then tries *attempts*
    admissions of a slot of *slot_limit* and *cost* units of a bucket of
    *capacity* that never refills, holding every slot it got, and reports
    how many passed.
    """
    from zerfoo_cloud.stores.redis import RedisLimiterStore

    stores = None
    if store_url.startswith("redis://"):
        store: LimiterStore = RedisLimiterStore.from_url(store_url, prefix=prefix)
    else:
        stores = LMDBStores.open(Path(store_url))
        store = stores.limits
    try:
        while (command := commands.get(timeout=120)) is not None:
            key, slot_limit, capacity, cost, attempts = command
            start.wait(60)
            passed = sum(
                store.admit(
                    (key, slot_limit), [(f"{key}-r", capacity, 0.0, cost)], 1.0
                )[1]
                for _ in range(attempts)
            )
            results.put(passed)
    finally:
        store.close()
        if stores is not None:
            stores.close()


def race_key_slots(
    path: str,
    key_slot: str,
    attempts: int,
    events: tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event],
    results: multiprocessing.Queue[int],
) -> None:
    """
    Try *attempts* admissions of a tenant's slot (limit 30) and the slot
    *key_slot* (limit 20) together, through the primitive of an LMDB
    folder opened with its writer process; report how many passed, then
    keep the slots until the second of *events* is set.
    """
    start, done = events
    stores = LMDBStores.open(Path(path), writer_process=True)
    store = stores.limits
    start.wait(30)
    slots = [("acme\x00con", 30), (key_slot, 20)]
    allowed = sum(store.admit(slots, [], 1.0)[1] for _ in range(attempts))
    results.put(allowed)
    done.wait(60)
    stores.close()

"""
Work for child processes sharing one Redis (spawned: the module is imported
fresh in each).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize

from zerfoo_cloud.stores.redis import RedisLimiterStore


def race_admits(
    url: str,
    prefix: str,
    limits: tuple[int, float],
    attempts: int,
    events: tuple[multiprocessing.synchronize.Event, multiprocessing.synchronize.Event],
    results: multiprocessing.Queue[int],
) -> None:
    """
    Try *attempts* admissions (a slot of ``limits[0]`` and one unit of a
    bucket of capacity ``limits[1]`` that never refills) on the Redis
    limiter store at *url*, on Redis's clock; report how many passed.

    Waits for the first of *events* to start, and keeps its slots (by
    staying alive, renewing its leases) until the second is set.
    """
    slot_limit, capacity = limits
    start, done = events
    store = RedisLimiterStore.from_url(url, prefix=prefix)
    start.wait(30)
    allowed = sum(
        store.admit(("race\x00c", slot_limit), [("race\x00r", capacity, 0.0, 1)], 0.0)[
            1
        ]
        for _ in range(attempts)
    )
    results.put(allowed)
    done.wait(60)
    store.close()

"""
The limiter primitive shared by processes: admissions racing from several
processes over one LMDB folder never pass a limit.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests import _workers
from zerfoo_cloud.buckets import BucketState
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = [pytest.mark.lmdb, pytest.mark.slow]

SPAWN = multiprocessing.get_context("spawn")


@pytest.mark.parametrize(
    ("slot_limit", "capacity"),
    [(50, 300.0), (1000, 30.0)],
    ids=["slots-bind", "bucket-binds"],
)
def test_processes_racing_admit_never_pass_a_limit(
    tmp_path: Path, slot_limit: int, capacity: float
) -> None:
    """Four processes admitting at once get exactly the slots or units there are."""
    path = tmp_path / "db"
    LMDBStores.open(path).close()
    start, done = SPAWN.Event(), SPAWN.Event()
    results: multiprocessing.Queue[int] = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_workers.race_admits,
            args=(str(path), slot_limit, capacity, 100, (start, done), results),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        start.set()
        counts = [results.get(timeout=120) for _ in procs]
        expected = min(slot_limit, int(capacity))
        assert sum(counts) == expected, counts
        with LMDBStores.open(path) as stores:
            # Every holder is alive: its slots count.
            assert stores.limits.slots_in_use("race") == expected
            assert stores.limits.get("race-r") == BucketState(capacity - expected, 1.0)
    finally:
        done.set()
        for p in procs:
            p.join(30)
    assert [p.exitcode for p in procs] == [0] * 4


def test_processes_racing_with_two_slots_never_pass_either_limit(
    tmp_path: Path,
) -> None:
    """Four processes (writer-process stores) take a tenant's and a key's slot together: neither limit is passed, and a dead holder's slots of both keys come back."""
    path = tmp_path / "db"
    LMDBStores.open(path).close()
    start, done = SPAWN.Event(), SPAWN.Event()
    results: multiprocessing.Queue[int] = SPAWN.Queue()
    keys = [
        "acme\x00k1\x00con",
        "acme\x00k1\x00con",
        "acme\x00k2\x00con",
        "acme\x00k2\x00con",
    ]
    procs = [
        SPAWN.Process(
            target=_workers.race_key_slots,
            args=(str(path), key, 25, (start, done), results),
        )
        for key in keys
    ]
    for p in procs:
        p.start()
    try:
        start.set()
        counts = [results.get(timeout=120) for _ in procs]
        assert sum(counts) == 30, counts
        with LMDBStores.open(path) as stores:
            limits = stores.limits
            assert limits.slots_in_use("acme\x00con") == 30
            k1 = limits.slots_in_use("acme\x00k1\x00con")
            k2 = limits.slots_in_use("acme\x00k2\x00con")
            assert k1 + k2 == 30
            assert max(k1, k2) <= 20
            done.set()
            for p in procs:
                p.join(30)
            # Every holder has exited, its slots still recorded: the full
            # tenant is found free again, and so is a key.
            slots = [("acme\x00con", 30), ("acme\x00k1\x00con", 20)]
            free, allowed, levels = limits.admit(slots, [], 1.0)
            assert (free, allowed, levels[0]) == (True, True, 1)
            assert limits.slots_in_use("acme\x00k1\x00con") == 1
    finally:
        done.set()
        for p in procs:
            p.join(30)

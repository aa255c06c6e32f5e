"""
What only the LMDB replay cache does: purge expired entries, share them
between processes, and keep them across a reopen.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from tests.stores._replay_workers import add_in_child
from zerfoo_cloud.errors import CorruptRecordError
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.lmdb._replay import PURGE_BATCH

pytestmark = pytest.mark.lmdb

NOW = 1_700_000_000.0


def test_expired_entries_are_purged(lmdb_stores: LMDBStores) -> None:
    """
    Each add purges up to PURGE_BATCH expired entries, oldest first.
    """
    cache = lmdb_stores.replay
    for i in range(PURGE_BATCH + 10):
        cache.add(f"old{i}", NOW + 1 + i / 1000, NOW)
    assert len(cache) == PURGE_BATCH + 10
    cache.add("new", NOW + 100, NOW + 50)
    assert len(cache) == 10 + 1
    cache.add("newer", NOW + 100, NOW + 50)
    assert len(cache) == 2
    assert lmdb_stores.durable.stat("replay_expiry")["entries"] == 2


def test_replaced_entry_leaves_no_stale_index(lmdb_stores: LMDBStores) -> None:
    """
    Re-adding an expired key not yet purged replaces its index entry too.
    """
    cache = lmdb_stores.replay
    for i in range(PURGE_BATCH):
        cache.add(f"old{i}", NOW + 1, NOW)
    cache.add("k", NOW + 2, NOW)
    # The purge of this add takes the PURGE_BATCH oldest; "k" is re-added.
    assert cache.add("k", NOW + 10, NOW + 5)
    assert lmdb_stores.durable.stat("replay_expiry")["entries"] == 1
    assert not cache.add("k", NOW + 10, NOW + 9)


def test_entries_survive_a_reopen(tmp_path: Path) -> None:
    """
    A recorded key is still a replay after the store is closed and opened again.
    """
    with LMDBStores.open(tmp_path / "db") as stores:
        assert stores.replay.add("k", NOW + 60, NOW)
    with LMDBStores.open(tmp_path / "db") as stores:
        assert not stores.replay.add("k", NOW + 60, NOW + 1)


def test_corrupt_entry_is_reported(lmdb_stores: LMDBStores) -> None:
    """
    A stored expiry of the wrong size raises CorruptRecordError naming the key.
    """
    db = lmdb_stores.durable.dbs["replay"]
    lmdb_stores.durable.write(lambda txn: txn.put(b"kbad", b"xx", db=db))
    with pytest.raises(CorruptRecordError, match="'bad'"):
        lmdb_stores.replay.add("bad", NOW + 60, NOW)


@pytest.mark.slow
def test_replay_is_caught_across_processes(tmp_path: Path) -> None:
    """
    A key added by one process is a replay for another sharing the folder.
    """
    path = str(tmp_path / "db")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert pool.submit(add_in_child, path, "k", NOW + 60, NOW).result(timeout=120)
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        assert not pool.submit(add_in_child, path, "k", NOW + 60, NOW + 1).result(
            timeout=120
        )
    with LMDBStores.open(path) as stores:
        assert not stores.replay.add("k", NOW + 60, NOW + 2)
        assert stores.replay.add("k", NOW + 120, NOW + 60)

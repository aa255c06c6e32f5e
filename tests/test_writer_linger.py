"""
`BatchWriter`'s linger: items gather into one commit, and a flush or close
never waits for it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from zerfoo_cloud import AuditLogger, TokenMeter
from zerfoo_cloud._writer import DEFAULT_LINGER, MAX_LINGER, BatchWriter
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.stores.lmdb import WRITER_PROCESS_LINGER, LMDBStores


class Recorder:
    """
    A commit function that remembers each batch.
    """

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[int]) -> None:
        with self.lock:
            self.batches.append(list(batch))


@pytest.mark.parametrize("linger", [0, 0.01, MAX_LINGER])
def test_linger_in_range_is_accepted(linger: float) -> None:
    """A linger from 0 to MAX_LINGER is accepted."""
    writer = BatchWriter(Recorder(), name="w", noun="items", linger=linger)
    assert writer.linger == linger


@pytest.mark.parametrize("linger", [-0.001, MAX_LINGER + 0.001, float("nan")])
def test_linger_out_of_range_is_refused(linger: float) -> None:
    """A negative linger, one past MAX_LINGER or NaN is refused."""
    with pytest.raises(InvalidConfigError) as info:
        BatchWriter(Recorder(), name="w", noun="items", linger=linger)
    assert info.value.field == "linger"


def test_items_submitted_together_share_one_commit() -> None:
    """Items queued within the linger are committed in one batch, without a flush."""
    commit = Recorder()
    writer = BatchWriter(commit, name="w", noun="items", linger=0.5)
    for n in range(5):
        writer.submit(n)
    deadline = time.monotonic() + 10
    while writer.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert commit.batches == [[0, 1, 2, 3, 4]]
    writer.close(10)


def test_flush_and_close_do_not_wait_for_the_linger() -> None:
    """A flush ends the linger at once: it returns within a timeout far below it."""
    commit = Recorder()
    writer = BatchWriter(commit, name="w", noun="items", linger=MAX_LINGER)
    writer.submit(1)
    writer.flush(timeout=MAX_LINGER / 2)
    writer.submit(2)
    writer.close(timeout=MAX_LINGER / 2)
    assert [n for batch in commit.batches for n in batch] == [1, 2]


def test_meter_and_logger_take_a_linger(tmp_path: Path) -> None:
    """TokenMeter and AuditLogger pass linger on, default to DEFAULT_LINGER (WRITER_PROCESS_LINGER through the store's writer process) and refuse one past MAX_LINGER."""
    stores = LMDBStores.open(tmp_path / "db")
    other = LMDBStores.open(tmp_path / "other", writer_process=True)
    try:
        made: list[TokenMeter | AuditLogger] = [
            TokenMeter(stores.billing),
            AuditLogger(stores.audit),
            TokenMeter(other.billing),
            AuditLogger(other.audit),
            TokenMeter(stores.billing, linger=MAX_LINGER),
            AuditLogger(other.audit, linger=0),
        ]
        lingers = [m._writers[0].linger for m in made]
        assert lingers == [
            DEFAULT_LINGER,
            DEFAULT_LINGER,
            WRITER_PROCESS_LINGER,
            WRITER_PROCESS_LINGER,
            MAX_LINGER,
            0,
        ]
        for m in made:
            m.close()
        for cls, store in ((TokenMeter, stores.billing), (AuditLogger, stores.audit)):
            with pytest.raises(InvalidConfigError) as info:
                cls(store, linger=MAX_LINGER + 0.001)  # type: ignore[arg-type]
            assert info.value.field == "linger"
    finally:
        stores.close()
        other.close()

"""
TokenMeter: non-blocking group commit, flush and retry, summaries, usage
recorders and their failures.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FakeClock
from zerfoo_cloud import _writer as _writer_module
from zerfoo_cloud.errors import InvalidConfigError, StoreError
from zerfoo_cloud.metering import (
    MAX_MODEL_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_TOKENS,
    BillingRecord,
    NDJSONFileRecorder,
    NDJSONRecorder,
    TokenMeter,
    UsageEvent,
    UsageSummary,
    billable_model,
    summarize,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryBillingStore
from zerfoo_cloud.stores.protocols import BillingStore

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)
SECRET_WORD = "hunter2-very-secret"


#: A failure count that outlasts any test: the store fails every add() until
#: the test sets ``fail = 0``. A test that expects a flush to fail uses it
#: rather than a count, since whether the writer's first commit runs before
#: or after the flush asks is up to the scheduler, and a flush that asks
#: after a failure makes the writer retry at once.
FAIL_UNTIL_TOLD = 10**9


class GatedStore:
    """
    A billing store that holds every add() until its gate opens and fails
    the next *fail* add() calls.
    """

    def __init__(self) -> None:
        self.inner = MemoryBillingStore()
        self.gate = threading.Event()
        self.gate.set()
        self.fail = 0
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def add(self, records: Sequence[BillingRecord]) -> int:
        self.threads.add(threading.current_thread().name)
        assert self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError(f"disk on fire, password={SECRET_WORD}")
        self.batches.append(len(records))
        return self.inner.add(records)

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        return self.inner.query(tenant_id, start, end)

    def close(self) -> None:
        pass


class InMemoryGatedStore(GatedStore):
    """A gated store that says it lives in memory."""

    in_memory: ClassVar[bool] = True


@pytest.fixture
def gated() -> Iterator[GatedStore]:
    """A gated store whose gate is opened again after the test."""
    store = GatedStore()
    yield store
    store.gate.set()
    store.fail = 0


@pytest.fixture
def meter(gated: GatedStore, clock: FakeClock) -> Iterator[TokenMeter]:
    """A background meter over the gated store."""
    m = TokenMeter(gated, clock=clock, retry_interval=60)
    yield m
    gated.gate.set()
    gated.fail = 0
    m.close()


# -- recording --------------------------------------------------------------


def test_record_returns_before_the_store_is_written(
    meter: TokenMeter, gated: GatedStore
) -> None:
    """record() returns while the store is still blocked; flush() waits for it."""
    gated.gate.clear()
    record = meter.record("acme", 1, 2)
    assert meter.pending == 1
    with pytest.raises(StoreError, match="still had 1 billing records"):
        meter.flush(timeout=0.05)
    gated.gate.set()
    meter.flush()
    assert meter.pending == 0
    assert gated.inner.all() == [record]
    assert threading.current_thread().name not in gated.threads


def test_records_queued_during_a_commit_go_in_one_batch(
    meter: TokenMeter, gated: GatedStore
) -> None:
    """Records made while a commit runs are committed together (group commit)."""
    gated.gate.clear()
    for i in range(1000):
        meter.record("acme", i, 0)
    gated.gate.set()
    meter.flush()
    assert sum(gated.batches) == 1000
    assert len(gated.batches) <= 2


def test_batches_never_exceed_max_batch(gated: GatedStore) -> None:
    """No commit gets more than max_batch records."""
    gated.gate.clear()
    meter = TokenMeter(gated, max_batch=100)
    for i in range(450):
        meter.record("acme", i, 0)
    gated.gate.set()
    meter.close()
    assert sum(gated.batches) == 450
    assert max(gated.batches) <= 100


def test_failed_commit_keeps_records_and_flush_raises(
    meter: TokenMeter, gated: GatedStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing store makes flush() raise StoreError; the records are kept and written on the next flush."""
    gated.fail = FAIL_UNTIL_TOLD
    records = [meter.record("acme", i, 0) for i in range(10)]
    with pytest.raises(StoreError, match="kept and retried") as info:
        meter.flush()
    assert SECRET_WORD not in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert meter.error is not None
    assert meter.pending == 10
    gated.fail = 0
    meter.flush()
    assert meter.error is None
    assert sorted(gated.inner.all(), key=lambda r: r.input_tokens) == records
    assert SECRET_WORD not in caplog.text
    assert "could not write" in caplog.text


def test_failed_commit_is_retried_without_flush(gated: GatedStore) -> None:
    """After a failure the writer retries on its own every retry_interval."""
    gated.fail = 2
    meter = TokenMeter(gated, retry_interval=0.01)
    meter.record("acme", 1, 1)
    deadline = time.monotonic() + 10
    while meter.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert meter.pending == 0
    assert len(gated.inner.all()) == 1
    meter.close()


def test_max_pending_at_and_past_the_limit(gated: GatedStore) -> None:
    """With the store failing, max_pending records are kept and the next raises StoreError unrecorded."""
    gated.fail = FAIL_UNTIL_TOLD
    meter = TokenMeter(gated, max_pending=3, retry_interval=60)
    for _ in range(3):
        meter.record("acme", 1, 1)
    with pytest.raises(StoreError, match=r"limit.*not recorded"):
        meter.record("acme", 1, 1)
    assert meter.pending == 3
    gated.fail = 0
    meter.close()
    assert len(gated.inner.all()) == 3


@pytest.mark.parametrize(
    ("option", "good", "bad"),
    [("max_batch", 1, 0), ("max_pending", 1, 0), ("retry_interval", 0.001, 0)],
)
def test_writer_options_at_and_past_their_limits(
    option: str, good: float, bad: float
) -> None:
    """The smallest allowed option works; one below raises InvalidConfigError."""
    ok: dict[str, Any] = {option: good}
    TokenMeter(MemoryBillingStore(), **ok).close()
    wrong: dict[str, Any] = {option: bad}
    with pytest.raises(InvalidConfigError) as info:
        TokenMeter(MemoryBillingStore(), **wrong)
    assert info.value.field == option


def test_close_flushes_and_refuses_new_records(gated: GatedStore) -> None:
    """close() writes what is queued; record() afterwards raises StoreError."""
    gated.gate.clear()
    meter = TokenMeter(gated)
    meter.record("acme", 1, 1)
    threading.Timer(0.05, gated.gate.set).start()
    meter.close()
    assert len(gated.inner.all()) == 1
    with pytest.raises(StoreError, match="closed"):
        meter.record("acme", 1, 1)
    meter.close()


def test_close_can_be_retried_after_a_failure(gated: GatedStore) -> None:
    """A close() that cannot write raises, keeps the records, and a later close() writes them."""
    gated.fail = FAIL_UNTIL_TOLD
    meter = TokenMeter(gated, retry_interval=60)
    meter.record("acme", 1, 1)
    with pytest.raises(StoreError):
        meter.close()
    with pytest.raises(StoreError, match="closed"):
        meter.record("acme", 1, 1)
    gated.fail = 0
    meter.close()
    assert len(gated.inner.all()) == 1


def test_context_manager_closes(gated: GatedStore) -> None:
    """Leaving a with block closes the meter, writing its records."""
    with TokenMeter(gated) as meter:
        meter.record("acme", 1, 1)
    assert len(gated.inner.all()) == 1


def test_aflush_waits_without_blocking_the_event_loop(
    meter: TokenMeter, gated: GatedStore
) -> None:
    """await aflush() lets other tasks run while the store is blocked, and returns once it is written."""

    async def scenario() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        gated.gate.clear()
        meter.record("acme", 1, 1)
        tick_task = asyncio.create_task(ticker())
        flush_task = asyncio.create_task(meter.aflush())
        await asyncio.sleep(0.05)
        assert not flush_task.done()
        seen = ticks
        gated.gate.set()
        await asyncio.wait_for(flush_task, 10)
        tick_task.cancel()
        return seen

    assert asyncio.run(scenario()) > 5
    assert len(gated.inner.all()) == 1


def test_aflush_raises_store_errors(meter: TokenMeter, gated: GatedStore) -> None:
    """await aflush() raises StoreError when the store fails."""
    gated.fail = FAIL_UNTIL_TOLD
    meter.record("acme", 1, 1)
    with pytest.raises(StoreError):
        asyncio.run(meter.aflush())
    gated.fail = 0
    asyncio.run(meter.aflush())
    assert len(gated.inner.all()) == 1


def test_in_memory_stores_are_written_at_once() -> None:
    """With a store that lives in memory, record() stores in the caller's thread; flush() has nothing to do."""
    store = InMemoryGatedStore()
    meter = TokenMeter(store)
    meter.record("acme", 1, 1)
    assert len(store.inner.all()) == 1
    assert store.threads == {threading.current_thread().name}
    meter.flush()
    asyncio.run(meter.aflush())
    meter.close()


def test_foreground_failure_raises_and_records_nothing(gated: GatedStore) -> None:
    """In foreground mode a failing store makes record() raise StoreError with nothing stored."""
    gated.fail = 1
    meter = TokenMeter(gated, background=False)
    with pytest.raises(StoreError, match="nothing was recorded"):
        meter.record("acme", 1, 1)
    assert meter.pending == 0
    meter.record("acme", 1, 1)
    assert len(gated.inner.all()) == 1


def test_query_reads_its_own_writes(meter: TokenMeter, gated: GatedStore) -> None:
    """query() first waits for the meter's queued records."""
    gated.gate.clear()
    record = meter.record("acme", 1, 1)
    threading.Timer(0.05, gated.gate.set).start()
    assert meter.query("acme", *EVER) == [record]


def test_query_still_reads_when_the_store_cannot_write(
    meter: TokenMeter, gated: GatedStore
) -> None:
    """A failing write does not stop query() from returning what is stored."""
    gated.fail = FAIL_UNTIL_TOLD
    meter.record("acme", 1, 1)
    assert meter.query("acme", *EVER) == []
    gated.fail = 0


def test_threads_recording_at_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Eight threads recording into LMDB at once store every record exactly once."""
    with LMDBStores.open(tmp_path / "db") as stores:
        meter = TokenMeter(stores.billing, max_batch=50)

        def work(n: int) -> None:
            for i in range(300):
                meter.record("acme", 1, 1, request_id=f"t{n}-{i}")

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        meter.flush()
        ids = [r.request_id for r in meter.query("acme", *EVER)]
        meter.close()
    assert len(ids) == 2400
    assert set(ids) == {f"t{n}-{i}" for n in range(8) for i in range(300)}


# -- arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": "é" * 128 + "a"}, "tenant_id"),
        ({"tenant_id": "\ud800"}, "tenant_id"),
        ({"tenant_id": 7}, "tenant_id"),
        ({"input_tokens": MAX_TOKENS + 1}, "input_tokens"),
        ({"output_tokens": -1}, "output_tokens"),
        ({"input_tokens": True}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"model": "m" * (MAX_MODEL_LENGTH + 1)}, "model"),
        ({"model": "\udfff"}, "model"),
        ({"request_id": "r" * (MAX_REQUEST_ID_LENGTH + 1)}, "request_id"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": "a b"}, "request_id"),
        ({"request_id": "é"}, "request_id"),
        ({"request_id": "a\n"}, "request_id"),
    ],
)
def test_bad_arguments_record_nothing(
    meter: TokenMeter, gated: GatedStore, kwargs: dict[str, object], field: str
) -> None:
    """Each argument just past its limit raises InvalidConfigError naming it, and nothing is recorded."""
    args: dict[str, object] = {
        "tenant_id": "acme",
        "input_tokens": 1,
        "output_tokens": 1,
    }
    args.update(kwargs)
    with pytest.raises(InvalidConfigError) as info:
        meter.record(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    meter.flush()
    assert meter.pending == 0
    assert gated.inner.all() == []


def test_arguments_at_their_limits_are_recorded(
    meter: TokenMeter, gated: GatedStore
) -> None:
    """The largest tenant id, token counts, model and request id are accepted."""
    record = meter.record(
        "é" * 128,
        MAX_TOKENS,
        0,
        model="m" * MAX_MODEL_LENGTH,
        request_id="r" * MAX_REQUEST_ID_LENGTH,
    )
    meter.flush()
    assert gated.inner.all() == [record]


def test_timestamps_come_from_the_clock_to_the_microsecond() -> None:
    """A record's timestamp is the clock's time, microseconds included."""
    meter = TokenMeter(MemoryBillingStore(), clock=lambda: 1_700_000_000.123456)
    record = meter.record("acme", 1, 1)
    assert record.timestamp == datetime(
        2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc
    )
    assert len(record.request_id) == 32
    assert record.total_tokens == 2


def test_query_needs_aware_datetimes() -> None:
    """Naive datetimes or other types for start/end raise InvalidConfigError."""
    meter = TokenMeter(MemoryBillingStore())
    naive = datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(InvalidConfigError):
        meter.query("acme", naive, T0)
    with pytest.raises(InvalidConfigError):
        meter.summary("acme", T0, "tomorrow")  # type: ignore[arg-type]


# -- summaries --------------------------------------------------------------


def test_summary_groups() -> None:
    """summary() totals by model and day, by either, or overall, ordered by day then model."""
    store = MemoryBillingStore()
    day = timedelta(days=1)
    store.add(
        [
            BillingRecord("acme", 1, 10, T0, "b"),
            BillingRecord("acme", 2, 20, T0 + timedelta(hours=23), "a"),
            BillingRecord("acme", 4, 40, T0 + day, "a"),
            BillingRecord("other", 8, 80, T0, "a"),
        ]
    )
    meter = TokenMeter(store)
    end = T0 + 2 * day
    d0, d1 = T0.date(), (T0 + day).date()
    assert meter.summary("acme", T0, end) == [
        UsageSummary("a", d0, 2, 20, 1),
        UsageSummary("b", d0, 1, 10, 1),
        UsageSummary("a", d1, 4, 40, 1),
    ]
    assert meter.summary("acme", T0, end, by="model") == [
        UsageSummary("a", None, 6, 60, 2),
        UsageSummary("b", None, 1, 10, 1),
    ]
    assert meter.summary("acme", T0, end, by=["day"]) == [
        UsageSummary(None, d0, 3, 30, 2),
        UsageSummary(None, d1, 4, 40, 1),
    ]
    assert meter.summary("acme", T0, end, by=()) == [UsageSummary(None, None, 7, 70, 3)]
    assert meter.summary("acme", end, end, by=()) == []
    for bad in (("week",), ("model", "model"), "modell"):
        with pytest.raises(InvalidConfigError):
            meter.summary("acme", T0, end, by=bad)


@pytest.fixture(scope="module")
def shared_lmdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LMDBStores]:
    """One LMDB store for a whole property test: each example uses its own tenant."""
    with LMDBStores.open(tmp_path_factory.mktemp("summary") / "db") as stores:
        yield stores


_records = st.lists(
    st.tuples(
        st.integers(0, 40 * 86_400_000_000),
        st.sampled_from(["", "a", "b", "模型"]),
        st.integers(0, 10**12),
        st.integers(0, 10**12),
    ),
    max_size=40,
)


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
@given(
    rows=_records,
    window=st.tuples(st.integers(-1, 41), st.integers(-1, 41)),
    by=st.sampled_from([("model", "day"), ("day", "model"), ("model",), ("day",), ()]),
)
def test_summary_totals_equal_sums_over_query(
    shared_lmdb: LMDBStores,
    backend: str,
    rows: list[tuple[int, str, int, int]],
    window: tuple[int, int],
    by: tuple[str, ...],
) -> None:
    """For any records and range, summary() rows add up to the query() totals and match summarize()."""
    tenant = uuid.uuid4().hex
    store: BillingStore = (
        shared_lmdb.billing if backend == "lmdb" else MemoryBillingStore()
    )
    store.add(
        [
            BillingRecord(tenant, i, o, T0 + timedelta(microseconds=us), model)
            for us, model, i, o in rows
        ]
    )
    meter = TokenMeter(store)
    start = T0 + timedelta(days=window[0], hours=5)
    end = T0 + timedelta(days=window[1], hours=17)
    found = meter.query(tenant, start, end)
    summary = meter.summary(tenant, start, end, by)
    assert sum(s.input_tokens for s in summary) == sum(r.input_tokens for r in found)
    assert sum(s.output_tokens for s in summary) == sum(r.output_tokens for r in found)
    assert sum(s.requests for s in summary) == len(found)
    assert summary == summarize(found, by)


# -- usage events -----------------------------------------------------------


class ListRecorder:
    """A recorder that keeps events and the threads that delivered them."""

    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self.threads: set[str] = set()
        self.flushes = 0

    def record(self, event: UsageEvent) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(event)

    def flush(self) -> None:
        self.flushes += 1


class RaisingRecorder:
    """A recorder that fails every other event, with a secret in the message."""

    def __init__(self) -> None:
        self.calls = 0

    def record(self, event: UsageEvent) -> None:
        self.calls += 1
        if self.calls % 2:
            raise ConnectionError(f"broker://user:{SECRET_WORD}@host refused")


def test_recorder_gets_events_off_the_request_path(clock: FakeClock) -> None:
    """The recorder is called from a background thread with one event per record, then flushed."""
    recorder = ListRecorder()
    meter = TokenMeter(MemoryBillingStore(), recorder=recorder, clock=clock)
    meter.record("acme", 3, 4, model="llama")
    meter.flush()
    assert recorder.events == [UsageEvent("acme", "llama", 3, 4, int(clock.now))]
    assert threading.current_thread().name not in recorder.threads
    assert recorder.flushes >= 1
    meter.close()


def test_raising_recorder_never_breaks_recording(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A recorder that raises is counted and logged without its message; every record is still stored."""
    store = MemoryBillingStore()
    meter = TokenMeter(store, recorder=RaisingRecorder())
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            meter.record("acme", i, i)
        meter.flush()
    assert len(store.all()) == 10
    assert meter.recorder_failures == 5
    assert "ConnectionError" in caplog.text
    assert SECRET_WORD not in caplog.text
    meter.close()


def test_full_recorder_queue_counts_failures() -> None:
    """Events that find the recorder's queue full are dropped and counted, and billing goes on."""
    gate = threading.Event()
    delivered: list[UsageEvent] = []

    class SlowRecorder:
        def record(self, event: UsageEvent) -> None:
            gate.wait(10)
            delivered.append(event)

    store = MemoryBillingStore()
    meter = TokenMeter(store, recorder=SlowRecorder(), max_pending=2)
    try:
        for i in range(10):
            meter.record("acme", i, i)
        assert len(store.all()) == 10
    finally:
        gate.set()
    meter.close()
    # At most one batch in the recorder's hands plus two queued got through.
    assert meter.recorder_failures >= 5
    assert meter.recorder_failures + len(delivered) == 10


def test_ndjson_lines_are_never_interleaved() -> None:
    """Eight threads writing through one NDJSONRecorder produce only whole JSON lines."""
    for stream in (io.StringIO(), io.BytesIO()):
        recorder = NDJSONRecorder(stream)

        def work(n: int, rec: NDJSONRecorder = recorder) -> None:
            for i in range(200):
                rec.record(UsageEvent(f"t{n}", "m" * 50, i, i, i))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        value = stream.getvalue()
        text = value.decode() if isinstance(value, bytes) else value
        events = [json.loads(line) for line in text.splitlines()]
        assert len(events) == 1600
        assert {(e["tenant_id"], e["timestamp"]) for e in events} == {
            (f"t{n}", i) for n in range(8) for i in range(200)
        }


def _event(i: int) -> UsageEvent:
    return UsageEvent("acme", "m", i, i, 1_700_000_000)


def _line_size(i: int) -> int:
    return len(_event(i).to_json()) + 1


def _lines(path: Path) -> list[dict[str, object]]:
    files = sorted(path.parent.glob(path.name + "*"), reverse=True)
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_file_rotates_just_past_max_bytes(tmp_path: Path) -> None:
    """A file filled exactly to max_bytes is kept; the next line starts a new file."""
    path = tmp_path / "usage.ndjson"
    size = _line_size(0)
    recorder = NDJSONFileRecorder(path, max_bytes=3 * size, backups=2)
    for i in range(3):
        recorder.record(_event(i))
    assert path.stat().st_size == 3 * size
    assert not path.with_name("usage.ndjson.1").exists()
    recorder.record(_event(3))
    assert path.with_name("usage.ndjson.1").stat().st_size == 3 * size
    assert path.stat().st_size == size
    recorder.close()
    assert [e["prompt_tokens"] for e in _lines(path)] == [0, 1, 2, 3]


def test_rotation_keeps_backups_and_drops_the_oldest(tmp_path: Path) -> None:
    """Rotation shifts .1 to .2 and drops what would pass the backup count."""
    path = tmp_path / "usage.ndjson"
    recorder = NDJSONFileRecorder(
        path, fsync="always", max_bytes=_line_size(0), backups=2
    )
    for i in range(5):
        recorder.record(_event(i))
    recorder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "usage.ndjson",
        "usage.ndjson.1",
        "usage.ndjson.2",
    ]
    assert [e["prompt_tokens"] for e in _lines(path)] == [2, 3, 4]


def test_a_line_longer_than_max_bytes_gets_its_own_file(tmp_path: Path) -> None:
    """A line bigger than max_bytes is written whole, alone in its file."""
    path = tmp_path / "usage.ndjson"
    recorder = NDJSONFileRecorder(path, fsync="never", max_bytes=10, backups=3)
    for i in range(3):
        recorder.record(_event(i))
    recorder.close()
    assert [len(p.read_text().splitlines()) for p in sorted(tmp_path.iterdir())] == [
        1,
        1,
        1,
    ]


def test_rotation_under_threads_keeps_every_line_whole(tmp_path: Path) -> None:
    """Eight threads writing with frequent rotation lose and split no line."""
    path = tmp_path / "usage.ndjson"
    recorder = NDJSONFileRecorder(path, fsync="never", max_bytes=4096, backups=1000)

    def work(n: int) -> None:
        for i in range(150):
            recorder.record(UsageEvent(f"t{n}", "m" * (i % 30), i, i, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    events = _lines(path)
    assert len(events) == 1200
    assert {(e["tenant_id"], e["timestamp"]) for e in events} == {
        (f"t{n}", i) for n in range(8) for i in range(150)
    }
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())


def test_file_recorder_appends_and_is_flushed_by_the_meter(tmp_path: Path) -> None:
    """A file recorder behind a meter holds every event after flush(), appending to what was there."""
    path = tmp_path / "usage.ndjson"
    path.write_text(_event(99).to_json() + "\n")
    recorder = NDJSONFileRecorder(path, fsync="batch")
    meter = TokenMeter(MemoryBillingStore(), recorder=recorder)
    for i in range(20):
        meter.record("acme", i, i)
    meter.flush()
    assert len(path.read_text().splitlines()) == 21
    meter.close()
    recorder.close()
    recorder.close()
    with pytest.raises(StoreError, match="closed"):
        recorder.record(_event(1))
    assert oct(path.stat().st_mode & 0o777) in {"0o600", "0o644"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"fsync": "sometimes"}, "fsync"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"backups": -1}, "backups"),
        ({"max_bytes": 1, "backups": 0}, "backups"),
        ({"max_bytes": True}, "max_bytes"),
    ],
)
def test_file_recorder_options_past_their_limits(
    tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    """Bad options raise InvalidConfigError naming the option."""
    with pytest.raises(InvalidConfigError) as info:
        NDJSONFileRecorder(tmp_path / "u", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_file_recorder_options_at_their_limits(tmp_path: Path) -> None:
    """max_bytes 0 (no rotation) and backups 1 are accepted."""
    NDJSONFileRecorder(tmp_path / "a", max_bytes=0, backups=0).close()
    NDJSONFileRecorder(tmp_path / "b", max_bytes=1, backups=1).close()


def test_file_recorder_unopenable_path(tmp_path: Path) -> None:
    """A path that cannot be opened raises StoreError."""
    with pytest.raises(StoreError, match="cannot open"):
        NDJSONFileRecorder(tmp_path / "missing" / "u.ndjson")


def test_counts_are_independent_per_meter() -> None:
    """Two meters over one store each count their own pending records."""
    store = MemoryBillingStore()
    a, b = TokenMeter(store), TokenMeter(store)
    for meter, n in zip((a, b), itertools.count(1), strict=False):
        meter.record("acme", n, n)
    assert (a.pending, b.pending, a.error) == (0, 0, None)
    assert len(store.all()) == 2


def test_foreground_meter_refuses_records_once_closed() -> None:
    """A closed meter in foreground mode raises StoreError and stores nothing."""
    store = MemoryBillingStore()
    meter = TokenMeter(store)
    meter.close()
    with pytest.raises(StoreError, match="closed"):
        meter.record("acme", 1, 1)
    assert store.all() == []


def test_aflush_waits_for_the_recorder_too() -> None:
    """await aflush() returns once the recorder was handed every earlier event."""
    recorder = ListRecorder()
    meter = TokenMeter(MemoryBillingStore(), recorder=recorder)
    for i in range(50):
        meter.record("acme", i, i)
    asyncio.run(meter.aflush())
    assert len(recorder.events) == 50
    meter.close()


def test_exit_hook_reports_what_it_could_not_write(
    gated: GatedStore, caplog: pytest.LogCaptureFixture
) -> None:
    """At interpreter exit, records a failing store still holds are logged as unwritten."""
    gated.fail = FAIL_UNTIL_TOLD
    meter = TokenMeter(gated, retry_interval=60)
    meter.record("acme", 1, 1)
    _writer_module._close_all()
    assert "at exit" in caplog.text
    assert meter.pending == 1
    gated.fail = 0
    meter.close()


@given(
    model=st.text(
        alphabet=st.characters(categories=["Cs", "Ll", "Lo", "Nd"]),
        max_size=MAX_MODEL_LENGTH + 20,
    )
)
def test_billable_model_always_makes_a_valid_record(model: str) -> None:
    """billable_model() keeps a valid name as it is and turns any other (too long, lone surrogates) into one a record holds."""
    billed = billable_model(model)
    BillingRecord("acme", 1, 1, T0, billed)
    try:
        model.encode()
    except UnicodeEncodeError:
        assert billed != model
        return
    assert (billed == model) == (len(model) <= MAX_MODEL_LENGTH)


def _writing(gated: GatedStore) -> bool:
    """Wait until the writer thread is inside add() (it holds a batch)."""
    deadline = time.monotonic() + 10
    while not gated.threads and time.monotonic() < deadline:
        time.sleep(0.005)
    return bool(gated.threads)


def test_a_flush_asked_while_its_records_are_being_written_completes(
    gated: GatedStore, meter: TokenMeter
) -> None:
    """Nothing queued behind the batch being written: the flush ends with that batch."""
    gated.gate.clear()
    meter.record("acme", 1, 1)
    assert _writing(gated)
    future = meter.flush_futures()[0]
    assert not future.done()
    gated.gate.set()
    future.result(10)
    assert gated.batches == [1]


def test_flushes_asked_between_two_batches_share_the_next_one(
    gated: GatedStore, meter: TokenMeter
) -> None:
    """Records queued while a batch is written go out in one batch that answers every flush."""
    gated.gate.clear()
    meter.record("acme", 1, 1)
    assert _writing(gated)
    futures = []
    for _ in range(5):
        meter.record("acme", 1, 1)
        futures += meter.flush_futures()
    assert not any(f.done() for f in futures)
    # One future for them all: one wake-up of a waiting event loop per batch.
    assert len({id(f) for f in futures}) == 1
    gated.gate.set()
    for future in futures:
        future.result(10)
    assert gated.batches == [1, 5]

"""
The local outbox: what the records database cannot take now waits on the
host's disk and reaches it once, in order, when it is back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.outbox._checks import billed_ids, chain, chain_verifies
from tests.outbox._primaries import Primary, open_primary
from zerfoo_cloud.audit import AuditEntry, AuditLogger, link_entry
from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.errors import (
    InvalidConfigError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.metrics import OutboxMetrics
from zerfoo_cloud.stores.outbox import (
    Outbox,
    OutboxAuditStore,
    OutboxBillingStore,
    OutboxDepth,
    takes_batch_key,
)
from zerfoo_cloud.stores.protocols import (
    ChainedAuditStore,
    LinkAdoptingAuditStore,
    SummarizingBillingStore,
    TenantListingBillingStore,
)

SECRET = b"k" * 32
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _records(ids: range | list[int], tenant: str = "acme") -> list[BillingRecord]:
    return [BillingRecord(tenant, i, 1, NOW, "m", f"r{i}") for i in ids]


def _eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _entry(i: int) -> AuditEntry:
    return AuditEntry(NOW, "acme", path=f"/v1/{i}")


def test_an_outage_is_kept_and_drained_exactly_once(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxBillingStore(primary.billing, outbox)
    meter = TokenMeter(store, retry_interval=0.05)
    for i in range(5):
        meter.record("acme", i, 1, request_id=f"r{i}")
    meter.flush()
    primary.switch.down()
    for i in range(5, 505):
        meter.record("acme", i, 1, request_id=f"r{i}")
    meter.flush()  # durable: in the outbox
    assert meter.error is None
    assert store.pending() == 500
    assert outbox.depth() == OutboxDepth(billing=500, audit=0)
    assert len(billed_ids(primary)) == 5

    primary.switch.up()
    assert outbox.wait_empty(10)
    ids = billed_ids(primary)
    assert sorted(ids) == sorted(f"r{i}" for i in range(505))
    assert len(set(ids)) == len(ids)
    assert store.pending() == 0
    assert (
        sum(
            s.requests
            for s in meter.summary(
                "acme", NOW.replace(year=2000), NOW.replace(year=2100), ()
            )
        )
        == 505
    )
    meter.close()


def test_only_unavailability_sends_records_to_the_outbox(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxBillingStore(primary.billing, outbox)

    def refuse(records: object) -> int:
        msg = "the database refused the batch"
        raise StoreError(msg)

    primary.billing.add = refuse  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="refused"):
        store.add(_records(range(3)))
    assert outbox.depth() == OutboxDepth(0, 0)


def test_new_records_queue_behind_waiting_ones(
    primary: Primary, tmp_path: Path
) -> None:
    # A long backoff: the drainer tries once, fails, and waits; meanwhile
    # the primary is back, yet new records go behind the waiting ones.
    with Outbox.open(tmp_path / "slow", first_retry=60, max_retry=60) as box:
        store = OutboxBillingStore(primary.billing, box)
        primary.switch.down()
        assert store.add(_records(range(3))) == 3
        time.sleep(0.2)
        primary.switch.up()
        assert store.add(_records(range(3, 6))) == 3
        assert billed_ids(primary) == []
        assert store.pending() == 6
        assert box.drain_now() == 6
        assert sorted(billed_ids(primary)) == sorted(f"r{i}" for i in range(6))
        store.close()


def test_duplicates_in_the_outbox_are_stored_once(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxBillingStore(primary.billing, outbox)
    primary.switch.down()
    store.add(_records(range(10)))
    assert store.add(_records([1, 1, 2])) == 2  # distinct ids
    store.add(_records(range(5, 15)))
    primary.switch.up()
    assert outbox.wait_empty(10)
    assert sorted(billed_ids(primary)) == sorted(f"r{i}" for i in range(15))


def test_a_lost_answer_is_not_a_second_charge(primary: Primary, outbox: Outbox) -> None:
    # The primary commits, then the connection breaks before the answer:
    # the batch goes to the outbox too, and the drain stores nothing new.
    store = OutboxBillingStore(primary.billing, outbox)
    primary.switch.lose_answers = 1
    store.add(_records(range(4)))
    assert store.pending() == 4
    assert outbox.wait_empty(10)
    assert sorted(billed_ids(primary)) == [f"r{i}" for i in range(4)]


def test_a_drain_that_fails_midway_keeps_the_rest(
    primary: Primary, tmp_path: Path
) -> None:
    with Outbox.open(tmp_path / "slow", first_retry=60, max_retry=60) as box:
        store = OutboxBillingStore(primary.billing, box, drain_batch=10)
        primary.switch.down()
        for part in range(5):
            store.add(_records(range(part * 10, part * 10 + 10)))
        primary.switch.up()
        primary.switch.fail_after = 2  # two batches go, then it is down
        with pytest.raises(StoreUnavailableError):
            box.drain_now()
        assert len(billed_ids(primary)) == 20
        assert store.pending() == 30
        assert box.drain_failures["billing"] >= 1
        primary.switch.up()
        assert box.drain_now() == 30
        ids = billed_ids(primary)
        assert sorted(ids) == sorted(f"r{i}" for i in range(50))
        store.close()


def test_threads_adding_while_it_drains_lose_nothing(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxBillingStore(primary.billing, outbox, drain_batch=7)
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            primary.switch.down()
            time.sleep(0.003)
            primary.switch.up()
            time.sleep(0.003)

    def add(worker: int) -> None:
        for n in range(40):
            base = worker * 10_000 + n * 5
            store.add(_records(range(base, base + 5)))

    flapper = threading.Thread(target=flap)
    flapper.start()
    workers = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    flapper.join()
    primary.switch.up()
    assert outbox.wait_empty(20)
    ids = billed_ids(primary)
    assert len(ids) == len(set(ids)) == 4 * 40 * 5
    assert set(ids) == {f"r{w * 10_000 + n}" for w in range(4) for n in range(200)}


def test_audit_entries_keep_their_order_and_the_chain_verifies(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxAuditStore(primary.audit, outbox)
    assert store.keyed
    logger = AuditLogger(store, secret=SECRET, retry_interval=0.05, max_batch=7)
    for i in range(10):
        logger.log(_entry(i))
    logger.flush()
    primary.switch.down()
    for i in range(10, 60):
        logger.log(_entry(i))
    logger.flush()
    assert store.pending() == 50
    primary.switch.up()
    for i in range(60, 80):
        logger.log(_entry(i))
    logger.flush()
    assert outbox.wait_empty(10)
    logger.flush()
    stored = chain(primary)
    assert [e.path for e in stored] == [f"/v1/{i}" for i in range(80)]
    assert [e.seq for e in stored] == list(range(1, 81))
    assert chain_verifies(primary, SECRET)
    assert logger.verify().ok
    logger.close()


def test_a_lost_audit_answer_is_stored_once_with_batch_keys(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxAuditStore(primary.audit, outbox)
    logger = AuditLogger(store, secret=SECRET)
    primary.switch.lose_answers = 1
    for i in range(5):
        logger.log(_entry(i))
    logger.flush()
    assert outbox.wait_empty(10)
    assert [e.path for e in chain(primary)] == [f"/v1/{i}" for i in range(5)]
    assert chain_verifies(primary, SECRET)
    logger.close()


def test_without_batch_keys_a_lost_answer_is_stored_twice(tmp_path: Path) -> None:
    # The documented caveat of a primary without batch keys: at least once.
    primary = open_primary("lmdb", tmp_path / "primary", keyed=False)
    with Outbox.open(tmp_path / "outbox", first_retry=0.01) as box:
        store = OutboxAuditStore(primary.audit, box)
        assert not store.keyed
        primary.switch.lose_answers = 1
        store.append_linked([_entry(0), _entry(1)], link_entry)
        assert box.wait_empty(10)
        assert [e.path for e in chain(primary)] == ["/v1/0", "/v1/1"] * 2
        assert chain_verifies(primary, None)
        store.close()
    primary.close()


def test_waiting_entries_wait_for_a_logger_to_link_them(
    primary: Primary, tmp_path: Path
) -> None:
    with Outbox.open(tmp_path / "outbox", first_retry=0.01) as box:
        first = OutboxAuditStore(primary.audit, box)
        logger = AuditLogger(first, secret=SECRET)
        primary.switch.down()
        for i in range(3):
            logger.log(_entry(i))
        logger.flush()
        logger.close()
        first.outbox.detach(first)
        primary.switch.up()
        # A new store (as in a restarted process) knows no link yet.
        second = OutboxAuditStore(primary.audit, box)
        assert not box.wait_empty(0.5)
        assert second.pending() == 3
        AuditLogger(second, secret=SECRET)  # hands its link over
        assert box.wait_empty(10)
        assert chain_verifies(primary, SECRET)
        assert not chain_verifies(primary, b"x" * 32)


def test_a_corrupt_batch_is_quarantined_and_the_rest_drained(
    primary: Primary, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    OutboxMetrics(registry).track(outbox)
    store = OutboxBillingStore(primary.billing, outbox, drain_batch=3)
    primary.switch.down()
    store.add(_records(range(3)))
    garbage = b"\x01\x00\x00\x00\x02not json"
    outbox.put("billing", 2, garbage)
    store.add(_records(range(3, 6)))
    with caplog.at_level(logging.ERROR, "zerfoo_cloud.outbox"):
        primary.switch.up()
        assert outbox.wait_empty(10)
    assert sorted(billed_ids(primary)) == [f"r{i}" for i in range(6)]
    assert "corrupt record 'batch 2' in outbox:billing" in caplog.text
    (bad,) = outbox.quarantined()
    assert (bad.kind, bad.number, bad.raw) == ("billing", 2, garbage)
    assert "not JSON" in bad.reason
    assert (
        registry.get_sample_value(
            "zerfoo_cloud_outbox_quarantined_total", {"kind": "billing"}
        )
        == 1
    )


def test_a_full_outbox_refuses_and_the_meter_keeps_the_records(
    primary: Primary, tmp_path: Path
) -> None:
    with Outbox.open(
        tmp_path / "small",
        map_size=1 << 16,
        max_map_size=1 << 16,
        first_retry=0.01,
        max_retry=0.05,
    ) as box:
        store = OutboxBillingStore(primary.billing, box)
        meter = TokenMeter(store, retry_interval=0.05, max_batch=100)
        primary.switch.down()
        for i in range(2000):
            meter.record("acme", i, 1, model="m" * 200, request_id=f"r{i}")
        with pytest.raises(StoreFullError):
            meter.flush()
        kept = store.pending()
        assert 0 < kept < 2000
        assert meter.pending == 2000 - kept  # the rest kept by the writer
        big = [BillingRecord("acme", 1, 1, NOW, "m" * 200, f"x{i}") for i in range(500)]
        with pytest.raises(StoreFullError):
            store.add(big)
        assert store.pending() == kept
        primary.switch.up()
        assert box.wait_empty(20)
        meter.flush(30)
        assert box.wait_empty(20)
        ids = billed_ids(primary)
        assert sorted(ids) == sorted(f"r{i}" for i in range(2000))
        meter.close()
        store.close()


def test_depth_metric_follows_the_outbox(primary: Primary, outbox: Outbox) -> None:
    registry = CollectorRegistry()
    OutboxMetrics(registry).track(outbox)
    billing = OutboxBillingStore(primary.billing, outbox)
    audit = OutboxAuditStore(primary.audit, outbox)
    logger = AuditLogger(audit, secret=SECRET)

    def sample(name: str, kind: str) -> float | None:
        return registry.get_sample_value(f"zerfoo_cloud_outbox_{name}", {"kind": kind})

    assert sample("pending", "billing") == 0
    primary.switch.down()
    billing.add(_records(range(7)))
    for i in range(4):
        logger.log(_entry(i))
    logger.flush()
    assert sample("pending", "billing") == 7
    assert sample("pending", "audit") == 4
    assert outbox.depth() == OutboxDepth(7, 4)
    _eventually(lambda: (sample("drain_failures_total", "billing") or 0) >= 1)
    primary.switch.up()
    assert outbox.wait_empty(10)
    # The gauge is set just after each change is committed.
    _eventually(lambda: sample("pending", "billing") == sample("pending", "audit") == 0)
    logger.close()


def test_the_stores_keep_the_protocols(primary: Primary, outbox: Outbox) -> None:
    billing = OutboxBillingStore(primary.billing, outbox)
    assert isinstance(billing, SummarizingBillingStore)
    assert isinstance(billing, TenantListingBillingStore)
    billing.add(_records(range(2)))
    assert billing.tenant_ids() == ["acme"]
    audit = OutboxAuditStore(primary.audit, outbox)
    assert isinstance(audit, ChainedAuditStore)
    assert isinstance(audit, LinkAdoptingAuditStore)
    assert takes_batch_key(primary.audit)
    assert not takes_batch_key(object())
    stored = audit.append(_entry(1))
    assert stored.seq == 1
    primary.switch.down()
    kept = audit.append(_entry(2))
    assert (kept.seq, kept.path) == (0, "/v1/2")
    with pytest.raises(InvalidConfigError):
        audit.append_linked([AuditEntry(None, "acme")], lambda p, e: e)
    with pytest.raises(InvalidConfigError, match="already drains"):
        OutboxBillingStore(primary.billing, outbox)
    with pytest.raises(InvalidConfigError):
        OutboxBillingStore(primary.billing, outbox, drain_batch=0)


def test_a_plain_primary_makes_a_plain_store(tmp_path: Path) -> None:
    class Plain:
        def add(self, records: object) -> int:
            return 0

        def query(self, *args: object) -> list[BillingRecord]:
            return []

        def close(self) -> None:
            pass

    with Outbox.open(tmp_path / "o") as box:
        store = OutboxBillingStore(Plain(), box)
        assert not isinstance(store, TenantListingBillingStore)
        assert store.summary("acme", NOW, NOW, ()) == []


def test_opening_a_folder_twice_shares_the_outbox(tmp_path: Path) -> None:
    first = Outbox.open(tmp_path / "o")
    second = Outbox.open(tmp_path / "o")
    assert first is second
    first.close()
    assert not second.closed
    second.close()
    assert second.closed
    assert oct((tmp_path / "o" / "data.mdb").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidConfigError):
        Outbox.open(tmp_path / "p", first_retry=0)
    with pytest.raises(InvalidConfigError):
        Outbox.open(tmp_path / "p", first_retry=2, max_retry=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_keeps_batches_through_its_own_handles(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxBillingStore(primary.billing, outbox)
    primary.switch.down()
    store.add(_records(range(5)))  # the parent's drainer runs, failing
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            # Behind the waiting records, without asking the primary; a
            # drain round of its own (the primary is still down).
            store.add(_records(range(5, 10)))
            try:
                outbox.drain_now()
            except StoreUnavailableError:
                code = 0 if outbox.depth() == OutboxDepth(10, 0) else 2
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's outbox and drainer go on, and drain the child's batch.
    store.add(_records(range(10, 12)))
    primary.switch.up()
    assert outbox.wait_empty(10)
    assert sorted(billed_ids(primary)) == sorted(f"r{i}" for i in range(12))


def test_a_foreign_failure_is_counted_kept_and_not_repeated(
    primary: Primary, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    store = OutboxBillingStore(primary.billing, outbox)
    primary.switch.down()
    store.add(_records(range(3)))
    primary.switch.up()
    real = primary.billing.add

    def leaky(records: object) -> int:
        msg = "postgresql://admin:hunter2@db/records refused"
        raise RuntimeError(msg)

    primary.billing.add = leaky  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "zerfoo_cloud.outbox"):
        with pytest.raises(RuntimeError):
            outbox.drain_now()
        _eventually(lambda: outbox.drain_failures["billing"] >= 2)
    assert "hunter2" not in caplog.text
    assert "RuntimeError" in caplog.text
    assert store.pending() == 3
    primary.billing.add = real  # type: ignore[method-assign]
    assert outbox.wait_empty(10)
    assert len(billed_ids(primary)) == 3


def test_a_corrupt_audit_batch_is_quarantined_and_the_chain_goes_on(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxAuditStore(primary.audit, outbox)
    logger = AuditLogger(store, secret=SECRET)
    primary.switch.down()
    store.append_linked([_entry(0)], link_entry)
    outbox.put("audit", 1, b"\x01\x00\x00\x00\x01" + b'{"key":"","entries":[{}]}')
    store.append_linked([_entry(1)], link_entry)
    logger.flush()
    primary.switch.up()
    assert outbox.wait_empty(10)
    assert [e.path for e in chain(primary)] == ["/v1/0", "/v1/1"]
    (bad,) = outbox.quarantined()
    assert (bad.kind, bad.number) == ("audit", 2)
    assert "wrong fields" in bad.reason
    logger.close()


def test_threads_appending_audit_entries_while_it_flaps_keep_each_once_in_order(
    primary: Primary, outbox: Outbox
) -> None:
    store = OutboxAuditStore(primary.audit, outbox)
    logger = AuditLogger(store, secret=SECRET)
    link = logger._linker
    stop = threading.Event()

    def flap() -> None:
        while not stop.is_set():
            primary.switch.down()
            time.sleep(0.004)
            primary.switch.up()
            time.sleep(0.004)

    def append(worker: int) -> None:
        for n in range(30):
            entries = [
                AuditEntry(NOW, "acme", path=f"/w{worker}/{n * 3 + i}")
                for i in range(3)
            ]
            store.append_linked(entries, link)

    flapper = threading.Thread(target=flap)
    flapper.start()
    workers = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    flapper.join()
    primary.switch.up()
    assert outbox.wait_empty(20)
    paths = [e.path for e in chain(primary)]
    assert len(paths) == len(set(paths)) == 4 * 90
    for worker in range(4):
        mine = [p for p in paths if p.startswith(f"/w{worker}/")]
        assert mine == [f"/w{worker}/{i}" for i in range(90)]
    assert chain_verifies(primary, SECRET)
    logger.close()

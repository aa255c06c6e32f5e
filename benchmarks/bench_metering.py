"""
Billing and audit throughput, and query speed on a large billing store.

- Billing records per second into LMDB through `TokenMeter` (group commit:
  the writer thread commits whatever is queued in one fsynced transaction),
  side by side with the baseline the issue names: one fsynced LMDB
  transaction per record (``store.add([record])``). Target: >= 100,000/s.
- `query` of one tenant's day and `summary` of one tenant's month out of
  1,000,000 records (100 tenants, 31 days, about 320 records per tenant-day),
  in milliseconds (median of several runs).
- Audit entries per second through `AuditLogger` with the HMAC hash chain,
  each entry made (and cleaned) in the loop as a request would.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from zerfoo_cloud.audit import AuditEntry, AuditLogger
from zerfoo_cloud.metering import BillingRecord, TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

GROUP_RECORDS = 300_000
SINGLE_SECONDS = 2.0
FIXTURE_RECORDS = 1_000_000
TENANTS = 100
DAYS = 31
AUDIT_ENTRIES = 100_000
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
MODELS = ("llama-3.1-8b", "mistral-7b", "qwen2-72b")
T = TypeVar("T")


def _row(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"   {name:<58} {value:>12,.1f} {unit}{note}", flush=True)


def _group_commit(stores: LMDBStores) -> float:
    clock = START.timestamp()
    meter = TokenMeter(stores.billing, clock=lambda: clock, max_pending=GROUP_RECORDS)
    started = time.perf_counter()
    for i in range(GROUP_RECORDS):
        meter.record("bench-group", 100, i, model="llama-3.1-8b")
    meter.flush()
    elapsed = time.perf_counter() - started
    meter.close()
    return GROUP_RECORDS / elapsed


def _one_transaction_per_record(stores: LMDBStores) -> float:
    store = stores.billing
    count = 0
    started = time.perf_counter()
    deadline = started + SINGLE_SECONDS
    while time.perf_counter() < deadline:
        store.add([BillingRecord("bench-single", 100, count, START, "llama-3.1-8b")])
        count += 1
    return count / (time.perf_counter() - started)


def _fixture(stores: LMDBStores) -> float:
    per_tenant_day = FIXTURE_RECORDS // (TENANTS * DAYS)
    step = timedelta(seconds=86_400 / per_tenant_day)
    started = time.perf_counter()
    for tenant in range(TENANTS):
        batch = [
            BillingRecord(
                f"tenant-{tenant:03d}",
                100 + i,
                20 + day,
                START + timedelta(days=day) + i * step,
                MODELS[i % len(MODELS)],
            )
            for day in range(DAYS)
            for i in range(per_tenant_day)
        ]
        stores.billing.add(batch)
    return time.perf_counter() - started


def _median_ms(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _audit(stores: LMDBStores) -> float:
    logger = AuditLogger(
        stores.audit, secret=b"benchmark-secret-0123456789", max_pending=AUDIT_ENTRIES
    )
    started = time.perf_counter()
    for i in range(AUDIT_ENTRIES):
        logger.log(
            AuditEntry(
                START,
                f"tenant-{i % TENANTS:03d}",
                resource="llama-3.1-8b",
                method="POST",
                path="/v1/chat/completions",
                status_code=200,
                remote_addr="10.1.2.3",
            )
        )
    logger.flush()
    elapsed = time.perf_counter() - started
    assert logger.verify().ok
    logger.close()
    return AUDIT_ENTRIES / elapsed


def main() -> None:
    """
    Print the throughputs, the group-commit ratio and the query times.
    """
    with (
        tempfile.TemporaryDirectory() as folder,
        LMDBStores.open(Path(folder) / "db", map_size=1 << 30) as stores,
    ):
        single = _one_transaction_per_record(stores)
        group = _group_commit(stores)
        _row("billing, one fsynced transaction per record (baseline)", single, "/s")
        _row(
            "billing, TokenMeter group commit",
            group,
            "/s",
            f"   x{group / single:,.0f} the baseline (target >= 100,000/s)",
        )
        _row(
            f"fixture: {FIXTURE_RECORDS:,} records in big transactions",
            _fixture(stores),
            "s",
        )
        day = START + timedelta(days=14)
        query_ms, found = _median_ms(
            lambda: stores.billing.query(
                "tenant-042", day, day + timedelta(days=1) - timedelta(microseconds=1)
            ),
            20,
        )
        _row(f"query one tenant's day ({len(found):,} records)", query_ms, "ms")
        meter = TokenMeter(stores.billing)
        month_end = START + timedelta(days=DAYS) - timedelta(microseconds=1)
        summary_ms, rows = _median_ms(
            lambda: meter.summary("tenant-042", START, month_end), 5
        )
        requests = sum(r.requests for r in rows)
        _row(f"summary of one tenant's month ({requests:,} records)", summary_ms, "ms")
        meter.close()
        _row("audit entries, AuditLogger with HMAC chain", _audit(stores), "/s")


if __name__ == "__main__":
    main()

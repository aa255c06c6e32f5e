"""
The PostgreSQL stores beside LMDB, side by side in one run.

- Billing records per second stored with ``store.add`` in batches of
  `BATCH` (what a `TokenMeter` writer commits under load), each batch one
  committed transaction: PostgreSQL (one INSERT per batch, WAL flushed at
  commit) against LMDB (one fsynced transaction per batch).
- Audit entries per second appended one per transaction (the worst case:
  each commit locks the chain's head) from `PROCESSES` processes at once,
  beside one process alone on PostgreSQL, and beside LMDB with
  `PROCESSES` processes: what serialising every host's appends on one
  head row costs. Then `PROCESSES` processes appending `AUDIT_BATCH`
  entries per transaction, as an `AuditLogger` under load does.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth); each run makes its own
database and drops it. Without the server it says so and measures nothing.
"""

from __future__ import annotations

import multiprocessing
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from zerfoo_cloud.audit import AuditEntry, link_entry
from zerfoo_cloud.metering import BillingRecord
from zerfoo_cloud.stores.lmdb import LMDBStores

#: Records per `add` call.
BATCH = 100
#: Batches stored per backend.
BATCHES = 200
#: Processes appending audit entries at once.
PROCESSES = 3
#: Entries per append in the batched audit measurement.
AUDIT_BATCH = 50
#: Seconds each audit measurement runs.
AUDIT_SECONDS = 2.0
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _row(name: str, value: float, unit: str) -> None:
    print(f"   {name:<58} {value:>12,.1f} {unit}", flush=True)


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _database() -> Iterator[str]:
    import psycopg

    from zerfoo_cloud.stores.postgres import upgrade_schema

    name = f"zc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_schema(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _batches(tag: str) -> list[list[BillingRecord]]:
    return [
        [
            BillingRecord(
                f"tenant-{i % 10}",
                100,
                i,
                START + timedelta(seconds=b * BATCH + i),
                "llama-3.1-8b",
                f"{tag}-{b}-{i}",
            )
            for i in range(BATCH)
        ]
        for b in range(BATCHES)
    ]


def _records_per_second(add: Callable[[list[BillingRecord]], int], tag: str) -> float:
    batches = _batches(tag)
    started = time.perf_counter()
    for batch in batches:
        add(batch)
    return BATCH * BATCHES / (time.perf_counter() - started)


def _open(backend: str, where: str) -> Any:
    if backend == "lmdb":
        return LMDBStores.open(where)
    from zerfoo_cloud.stores.postgres import PostgresStores

    return PostgresStores.open(where, max_size=1)


def _appender(backend: str, where: str, batch: int, start: Any, counts: Any) -> None:
    stores = _open(backend, where)
    entries = [AuditEntry(START, "tenant", path="/v1/chat/completions")] * batch
    start.wait()
    deadline = time.perf_counter() + AUDIT_SECONDS
    count = 0
    while time.perf_counter() < deadline:
        stores.audit.append_linked(entries, link_entry)
        count += batch
    counts.put(count)
    stores.close()


def _appends_per_second(
    backend: str, where: str, processes: int, batch: int = 1
) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    counts = context.Queue()
    workers = [
        context.Process(target=_appender, args=(backend, where, batch, start, counts))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # every process imported and connected
    start.set()
    total = sum(int(counts.get(timeout=60)) for _ in workers)
    for worker in workers:
        worker.join(30)
    return total / AUDIT_SECONDS


def main() -> None:
    """Print the billing and audit rates of both backends."""
    if not _postgres_up():
        print("   PostgreSQL is not running on 127.0.0.1:5432: nothing measured")
        return
    from zerfoo_cloud.stores.postgres import PostgresStores

    with _database() as url, tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "db")
        print(f"Billing, store.add of {BATCH} records per transaction:")
        with PostgresStores.open(url) as stores:
            postgres = _records_per_second(stores.billing.add, "pg")
        with LMDBStores.open(folder) as stores:
            lmdb = _records_per_second(stores.billing.add, "lmdb")
        _row("PostgreSQL records/s", postgres, "/s")
        _row("LMDB records/s (baseline)", lmdb, "/s")
        print(f"Audit, one entry per append, {AUDIT_SECONDS:.0f} s:")
        _row(
            f"PostgreSQL, {PROCESSES} processes",
            _appends_per_second("postgres", url, PROCESSES),
            "/s",
        )
        _row("PostgreSQL, 1 process", _appends_per_second("postgres", url, 1), "/s")
        _row(
            f"LMDB, {PROCESSES} processes (baseline)",
            _appends_per_second("lmdb", folder, PROCESSES),
            "/s",
        )
        print(f"Audit, {AUDIT_BATCH} entries per append, {AUDIT_SECONDS:.0f} s:")
        _row(
            f"PostgreSQL, {PROCESSES} processes",
            _appends_per_second("postgres", url, PROCESSES, AUDIT_BATCH),
            "/s",
        )
        _row(
            f"LMDB, {PROCESSES} processes (baseline)",
            _appends_per_second("lmdb", folder, PROCESSES, AUDIT_BATCH),
            "/s",
        )


if __name__ == "__main__":
    main()

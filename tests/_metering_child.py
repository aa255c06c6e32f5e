"""
Child processes for the metering and audit process tests.

Run as ``python -m tests._metering_child MODE PATH [ARGS...]``; each mode
prints what the parent test checks.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from zerfoo_cloud.audit import AuditEntry, AuditLogger
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.metering import NDJSONFileRecorder, TokenMeter, UsageEvent
from zerfoo_cloud.stores.lmdb import LMDBStores


def crash(path: str, count: int) -> None:
    """
    Record *count* records, flush, say so, then keep recording until killed.
    """
    stores = LMDBStores.open(path)
    meter = TokenMeter(stores.billing)
    for i in range(count):
        meter.record("acme", i, 1, model="m", request_id=f"r{i}")
    meter.flush()
    print("flushed", flush=True)
    i = count
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the parent kills us long before
        meter.record("acme", i, 1, request_id=f"r{i}")
        i += 1
        if i % 100 == 0:
            time.sleep(0.001)


def concurrent(path: str, name: str, count: int, shared: int) -> None:
    """
    Record *count* own records from two threads and *shared* ids both
    processes also record; log *count* audit entries; close.
    """
    stores = LMDBStores.open(path)
    meter = TokenMeter(stores.billing, max_batch=64)
    audit = AuditLogger(stores.audit, secret=b"s" * 32, max_batch=16)
    print("ready", flush=True)
    sys.stdin.readline()  # start together

    def work(part: int) -> None:
        for i in range(part, count, 2):
            meter.record("acme", 1, 1, request_id=f"{name}-{i}")
            audit.log(AuditEntry(tenant_id="acme", path=f"/{name}/{i}"))
        for i in range(part, shared, 2):
            meter.record("acme", 1, 1, request_id=f"shared-{i}")

    threads = [threading.Thread(target=work, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    meter.close()
    audit.close()
    stores.close()
    print("done", flush=True)


def exit_without_close(path: str, count: int) -> None:
    """
    Record *count* records and return without flushing or closing.
    """
    meter = TokenMeter(LMDBStores.open(path).billing)
    for i in range(count):
        meter.record("acme", 1, 1, request_id=f"x{i}")


def full_disk(path: str, count: int) -> None:
    """
    Fill the file size limit: flush must raise and keep the records; after
    the limit is lifted, a flush writes them all.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    stores = LMDBStores.open(path)
    meter = TokenMeter(stores.billing)
    meter.record("acme", 1, 1, request_id="before")
    meter.flush()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    size = (Path(path) / "data.mdb").stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, hard))
    for i in range(count):
        meter.record("acme", 1, 1, request_id=f"f{i}")
    result: dict[str, object] = {}
    try:
        meter.flush()
    except StoreError as exc:
        result["error"] = type(exc).__name__
        result["pending"] = meter.pending
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    meter.flush()
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    end = datetime(2100, 1, 1, tzinfo=timezone.utc)
    result["stored"] = len(meter.query("acme", start, end))
    meter.close()
    stores.close()
    print(json.dumps(result), flush=True)


def full_file(path: str, limit: int) -> None:
    """
    Append events to an NDJSON file until the file size limit stops it.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    recorder = NDJSONFileRecorder(path, fsync="never")
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    written = 0
    error = ""
    for i in range(10 * limit):
        try:
            recorder.record(UsageEvent("acme", "m" * (i % 7), i, i, i))
        except StoreError as exc:
            error = type(exc).__name__
            break
        written += 1
    recorder.close()
    print(json.dumps({"written": written, "error": error}), flush=True)


def main(argv: list[str]) -> None:
    """
    Dispatch to the mode named by argv[0].
    """
    mode, path, *args = argv
    if mode == "crash":
        crash(path, int(args[0]))
    elif mode == "concurrent":
        concurrent(path, args[0], int(args[1]), int(args[2]))
    elif mode == "exit":
        exit_without_close(path, int(args[0]))
    elif mode == "full-disk":
        full_disk(path, int(args[0]))
    elif mode == "full-file":
        full_file(path, int(args[0]))
    else:  # pragma: no cover
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])

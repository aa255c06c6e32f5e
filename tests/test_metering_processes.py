"""
Metering and audit across real processes: a killed writer, concurrent
writers, exit without close, and full disks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from zerfoo_cloud.audit import AuditLogger
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow

# Run as a module from the checkout: run as a script, its folder would come
# first on sys.path and tests/typing would hide the standard typing module.
CHILD = ["-m", "tests._metering_child"]
ROOT = Path(__file__).resolve().parents[1]
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


def _start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *CHILD, *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _run(*args: object) -> str:
    return subprocess.run(
        [sys.executable, *CHILD, *map(str, args)],
        cwd=ROOT,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout


def _request_ids(path: Path) -> Counter[str]:
    with LMDBStores.open(path) as stores:
        return Counter(r.request_id for r in stores.billing.query("acme", *EVER))


def test_records_flushed_before_sigkill_survive(tmp_path: Path) -> None:
    """Every record made before flush() returned is stored after the process is SIGKILLed."""
    path = tmp_path / "db"
    child = _start("crash", path, 2000)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "flushed\n"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    ids = _request_ids(path)
    assert all(ids[f"r{i}"] == 1 for i in range(2000))
    assert max(ids.values()) == 1


def test_two_processes_with_threads_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Two processes of two threads each record and log at once: every record once, one audit chain."""
    path = tmp_path / "db"
    children = [_start("concurrent", path, name, 600, 300) for name in ("a", "b")]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60)[0] for child in children]
    finally:
        for child in children:
            child.kill()
    assert outputs == ["done\n", "done\n"]
    ids = _request_ids(path)
    expected = {f"{n}-{i}" for n in "ab" for i in range(600)} | {
        f"shared-{i}" for i in range(300)
    }
    assert set(ids) == expected
    assert max(ids.values()) == 1
    with LMDBStores.open(path) as stores:
        audit = AuditLogger(stores.audit, secret=b"s" * 32)
        report = audit.verify()
        assert report.ok, report.message
        assert report.checked == 1200
        audit.close()


def test_records_are_written_at_exit_without_close(tmp_path: Path) -> None:
    """A process that exits normally without flush() or close() still writes its records."""
    path = tmp_path / "db"
    _run("exit", path, 500)
    ids = _request_ids(path)
    assert set(ids) == {f"x{i}" for i in range(500)}


def test_full_disk_raises_and_keeps_the_records(tmp_path: Path) -> None:
    """A full disk makes flush() raise StoreFullError; the kept records are written once space returns."""
    path = tmp_path / "db"
    out = _run("full-disk", path, 20000)
    result = json.loads(out)
    assert result == {"error": "StoreFullError", "pending": 20000, "stored": 20001}


def test_full_file_never_leaves_half_a_line(tmp_path: Path) -> None:
    """An NDJSON file that hits the file size limit raises and still ends with a whole line."""
    path = tmp_path / "usage.ndjson"
    out = _run("full-file", path, 5000)
    result = json.loads(out)
    assert result["error"] == "StoreFullError"
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert len(lines) == result["written"]
    assert all(json.loads(line)["tenant_id"] == "acme" for line in lines)
    assert len(data) <= 5000


def test_meter_on_reopened_store_sees_earlier_process(tmp_path: Path) -> None:
    """Records written by one process are read by a meter of another after reopening."""
    path = tmp_path / "db"
    _run("exit", path, 10)
    with LMDBStores.open(path) as stores:
        meter = TokenMeter(stores.billing)
        assert len(meter.query("acme", *EVER)) == 10
        meter.close()

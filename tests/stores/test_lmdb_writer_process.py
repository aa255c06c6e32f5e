"""
Billing and audit writes through the writer process of an LMDB store set
(``LMDBStores.open(path, writer_process=True)``): real child processes over a
real LMDB store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from zerfoo_cloud._clock import MAX_PLAIN_STAMP
from zerfoo_cloud._writer import DEFAULT_LINGER
from zerfoo_cloud.audit import (
    AuditAction,
    AuditEntry,
    AuditLogger,
    AuditResult,
    entry_hash,
    link_entry,
)
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreFullError
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.lmdb import _audit as _lmdb_audit
from zerfoo_cloud.stores.lmdb._commits import WriterProcessCommit
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"writer-process-secret-012345678"
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
#: How long a test waits for a process at most.
WAIT = 20.0


def _entry(i: int, tenant: str = "acme") -> AuditEntry:
    return AuditEntry(T0, tenant, path=f"/v1/{i}", status_code=200)


def _alive(pid: int) -> bool:
    # A zombie has exited; only its parent has not collected it yet.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def _flush_until_written(*writers: TokenMeter | AuditLogger) -> int:
    # A flush right after a writer process died reports that death; the
    # next one starts a new process and writes. Returns the failures seen.
    failures = 0
    for writer in writers:
        for _ in range(5):
            try:
                writer.flush(WAIT)
                break
            except StoreError:
                failures += 1
        else:
            pytest.fail("the records were never written")
    return failures


def _pid(writer: TokenMeter | AuditLogger) -> int:
    commit = writer._committer
    assert isinstance(commit, WriterProcessCommit)
    pid = commit.pid
    assert pid is not None
    return pid


def _open(path: Path, **options: Any) -> LMDBStores:
    return LMDBStores.open(path, writer_process=True, **options)


@pytest.mark.parametrize("secret", [SECRET, None], ids=["keyed", "unkeyed"])
def test_records_are_durable_and_seen_by_another_process(
    tmp_path: Path, secret: bytes | None
) -> None:
    """After flush() the writer processes' records are in the store for any process, the chain verifies, and close() ends them."""
    path = tmp_path / "db"
    with _open(path) as stores:
        meter = TokenMeter(stores.billing)
        logger = AuditLogger(stores.audit, secret=secret)
        for i in range(300):
            meter.record("acme", i, 2 * i, model="m", request_id=f"r{i}")
            logger.log(_entry(i))
        meter.flush(WAIT)
        logger.flush(WAIT)
        pids = [_pid(meter), _pid(logger)]
        assert os.getpid() not in pids
        assert pids[0] == pids[1]  # one writer process per store set
        assert len(meter.query("acme", *EVER)) == 300
        report = logger.verify()
        assert report.ok
        assert report.head.seq == 300
        program = textwrap.dedent(
            """
            import sys
            from zerfoo_cloud.audit import entry_hash
            from zerfoo_cloud.stores.lmdb import LMDBStores
            from datetime import datetime, timezone
            ever = (datetime(2000, 1, 1, tzinfo=timezone.utc),
                    datetime(2100, 1, 1, tzinfo=timezone.utc))
            key = sys.argv[2].encode() or None
            with LMDBStores.open(sys.argv[1]) as s:
                records = s.billing.query("acme", *ever)
                entries = s.audit.query("acme", *ever)
                good = all(entry_hash(e, key) == e.hash for e in entries)
                print(len(records), sum(r.output_tokens for r in records),
                      len(entries), good)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", program, str(path), (secret or b"").decode()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        assert done.stdout.split() == [
            "300",
            str(sum(2 * i for i in range(300))),
            "300",
            "True",
        ]
        meter.close()
        logger.close()
        assert stores.writer_process is not None
        assert stores.writer_process.pid is None
        assert all(_wait_gone(pid, 1.0) for pid in pids)


def test_killed_writer_process_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL of the writer processes mid-stream: every record is stored exactly once and the chain stays whole."""
    with _open(tmp_path / "db") as stores:
        meter = TokenMeter(stores.billing, retry_interval=0.05)
        logger = AuditLogger(stores.audit, secret=SECRET, retry_interval=0.05)
        meter.record("acme", 1, 1, request_id="first")
        logger.log(_entry(-1))
        meter.flush(WAIT)
        logger.flush(WAIT)
        killed: list[int] = []
        for i in range(600):
            meter.record("acme", 1, 1, request_id=f"r{i}")
            logger.log(_entry(i))
            if i in {150, 400}:
                pid = _next_process(stores, killed)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            if i % 50 == 0:
                time.sleep(0.01)  # let batches go out between the kills
        assert len(killed) >= 2
        _flush_until_written(meter, logger)
        ids = Counter(r.request_id for r in meter.query("acme", *EVER))
        assert ids == Counter(["first", *(f"r{i}" for i in range(600))])
        entries = logger.query("acme", *EVER)
        assert Counter(e.path for e in entries) == Counter(
            f"/v1/{i}" for i in range(-1, 600)
        )
        report = logger.verify()
        assert report.ok
        assert report.head.seq == 601
        assert all(_wait_gone(pid, 5.0) for pid in killed)
        meter.close()
        logger.close()


def _next_process(stores: LMDBStores, killed: list[int]) -> int:
    # The store set's writer process once one runs that was not killed yet
    # (the writer threads start a new one on their next retry).
    process = stores.writer_process
    assert process is not None
    deadline = time.monotonic() + WAIT
    while process.pid is None or process.pid in killed:
        assert time.monotonic() < deadline, "no new writer process"
        time.sleep(0.01)
    return process.pid


def test_batch_of_unknown_fate_is_sent_again_once(tmp_path: Path) -> None:
    """A batch the writer process may have committed before dying is sent again under its number and stored once."""
    with _open(tmp_path / "db") as stores:
        commit = stores.audit.committer(SECRET)
        assert commit is not None
        try:
            commit([_entry(0), _entry(1)])
            # As if the process had died after committing, before answering.
            commit._unsure = (commit._number, 2)
            batch = [_entry(0), _entry(1), _entry(2)]
            commit(batch)
            assert batch == []
            logger = AuditLogger(stores.audit, secret=SECRET)
            assert [e.path for e in logger.query("acme", *EVER)] == [
                "/v1/0",
                "/v1/1",
                "/v1/2",
            ]
            assert logger.verify().ok
            # The same frame twice, straight through the pipe: stored once.
            frame = (
                commit._number + 1,
                [(T0, "acme", "inference", "success", "", 200, "GET", "/v1/x", "")],
                b"w" * 16,
                SECRET,
            )
            assert commit.channel.call(frame) is None
            assert commit.channel.call(frame) is None
            assert len(logger.query("acme", *EVER)) == 4
            assert logger.verify().ok
        finally:
            commit.close()


def test_resent_batch_is_skipped_by_the_store(tmp_path: Path) -> None:
    """append_linked with a batch number stores a writer's batch once and skips older numbers; other writers are independent."""
    with _open(tmp_path / "db") as stores:
        audit = stores.audit
        one, two = os.urandom(16), os.urandom(16)
        assert len(audit.append_linked([_entry(0)], link_entry, batch=(one, 1))) == 1
        assert audit.append_linked([_entry(0)], link_entry, batch=(one, 1)) == []
        assert len(audit.append_linked([_entry(1)], link_entry, batch=(one, 3))) == 1
        assert audit.append_linked([_entry(2)], link_entry, batch=(one, 2)) == []
        assert len(audit.append_linked([_entry(3)], link_entry, batch=(two, 1))) == 1
        assert len(audit.append_linked([_entry(4)], link_entry)) == 1
        entries = audit.query("acme", *EVER)
        assert [e.path for e in entries] == ["/v1/0", "/v1/1", "/v1/3", "/v1/4"]
        assert all(entry_hash(e) == e.hash for e in entries)


def test_old_batch_markers_are_dropped(tmp_path: Path) -> None:
    """A writer's marker untouched for MARKER_TTL seconds is dropped when another is written; a recent one stays."""
    with _open(tmp_path / "db") as stores:
        meta = stores.durable.dbs["audit_meta"]
        now = int(time.time())
        old = _lmdb_audit._BATCH + b"o" * 16
        recent = _lmdb_audit._BATCH + b"r" * 16
        ttl = _lmdb_audit.MARKER_TTL

        def plant(txn: Any) -> None:
            txn.put(old, _lmdb_audit._MARKER.pack(5, now - ttl - 10), db=meta)
            txn.put(recent, _lmdb_audit._MARKER.pack(5, now - ttl + 60), db=meta)

        stores.durable.write(plant)
        writer = os.urandom(16)
        stores.audit.append_linked([_entry(0)], link_entry, batch=(writer, 1))
        keys = stores.durable.read(
            lambda txn: [k for k, _ in txn.cursor(db=meta) if k.startswith(b"batch/")]
        )
        assert sorted(keys) == sorted([recent, _lmdb_audit._BATCH + writer])


def test_full_store_raises_store_full_and_keeps_the_records(tmp_path: Path) -> None:
    """A map at its size limit: flush() raises StoreFullError and keeps the records; with room, each is written once."""
    small = 256 << 10
    with _open(tmp_path / "db", map_size=small, max_map_size=small) as stores:
        meter = TokenMeter(stores.billing, retry_interval=60)
        for i in range(3000):
            meter.record("acme", i, i, model="m" * 200, request_id=f"r{i}")
        with pytest.raises(StoreFullError, match="size limit"):
            meter.flush(WAIT)
        assert 0 < meter.pending <= 3000
        assert isinstance(meter.error, StoreFullError)
        # A new writer process opens the store as this process has it now.
        stores.durable.max_map_size = 64 << 20
        assert meter._committer is not None
        meter._committer.close()
        meter.flush(WAIT)
        assert meter.pending == 0
        ids = Counter(r.request_id for r in meter.query("acme", *EVER))
        assert ids == Counter(f"r{i}" for i in range(3000))
        meter.close()


def test_writer_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed parent closes the pipe, and its writer process exits within seconds."""
    program = textwrap.dedent(
        """
        import sys, time
        from zerfoo_cloud.metering import TokenMeter
        from zerfoo_cloud.stores.lmdb import LMDBStores
        stores = LMDBStores.open(sys.argv[1], writer_process=True)
        meter = TokenMeter(stores.billing)
        meter.record("acme", 1, 1)
        meter.flush(20)
        print(stores.writer_process.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", program, str(tmp_path / "db")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()
        parent.wait(WAIT)
        assert _wait_gone(pid, 5.0)
    finally:
        parent.kill()
        parent.wait(WAIT)
        if parent.stdout is not None:
            parent.stdout.close()


def test_writer_process_ignores_sigint(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the writer process stays and keeps writing."""
    with _open(tmp_path / "db") as stores:
        meter = TokenMeter(stores.billing)
        meter.record("acme", 1, 1, request_id="before")
        meter.flush(WAIT)
        pid = _pid(meter)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        time.sleep(0.2)
        assert _alive(pid)
        meter.record("acme", 1, 1, request_id="after")
        meter.flush(WAIT)
        assert _pid(meter) == pid
        assert {r.request_id for r in meter.query("acme", *EVER)} == {"before", "after"}
        meter.close()
        assert _wait_gone(pid, 1.0)


def test_writer_process_is_chosen_when_the_store_is_opened(tmp_path: Path) -> None:
    """Only a store set opened with writer_process=True gives committers (opening it again with the option turns it on); memory stores commit in the meter's own thread."""
    assert TokenMeter(MemoryBillingStore())._committer is None
    assert AuditLogger(MemoryAuditStore())._committer is None
    with LMDBStores.open(tmp_path / "db") as stores:
        assert stores.writer_process is None
        assert stores.billing.committer() is None
        assert stores.audit.committer(SECRET) is None
        meter = TokenMeter(stores.billing)
        assert meter._committer is None
        assert meter._writer.linger == DEFAULT_LINGER
        with _open(tmp_path / "db") as again:
            assert again is stores
            process = stores.writer_process
            assert process is not None
            billing = stores.billing.committer()
            audit = stores.audit.committer(SECRET)
            assert billing is not None
            assert audit is not None
            assert billing.channel is audit.channel is process
            with pytest.raises(TypeError, match="offload"):
                TokenMeter(stores.billing, offload=True)
        meter.close()


@pytest.mark.skipif(
    sys.platform != "linux", reason="fork semantics are tested on Linux"
)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_forked_child_records_through_its_own_writer_process(tmp_path: Path) -> None:
    """After fork() the child starts its own writer process; the parent's keeps working and nothing is lost."""
    with _open(tmp_path / "db") as stores:
        meter = TokenMeter(stores.billing)
        logger = AuditLogger(stores.audit, secret=SECRET)
        meter.record("acme", 1, 1, request_id="parent-0")
        logger.log(_entry(0))
        meter.flush(WAIT)
        logger.flush(WAIT)
        parent_pids = {_pid(meter), _pid(logger)}
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked child
            code = 1
            try:
                signal.alarm(int(WAIT))
                meter.record("acme", 1, 1, request_id="child-0")
                logger.log(_entry(1))
                meter.flush(WAIT)
                logger.flush(WAIT)
                mine = {_pid(meter), _pid(logger)}
                meter.close(WAIT)
                logger.close(WAIT)
                code = 0 if not mine & parent_pids else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + WAIT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child did not finish")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(status) == 0
        meter.record("acme", 1, 1, request_id="parent-1")
        logger.log(_entry(2))
        meter.flush(WAIT)
        logger.flush(WAIT)
        assert {_pid(meter), _pid(logger)} == parent_pids
        ids = Counter(r.request_id for r in meter.query("acme", *EVER))
        assert ids == Counter(["parent-0", "child-0", "parent-1"])
        report = logger.verify()
        assert report.ok
        assert report.head.seq == 3
        meter.close()
        logger.close()


def test_record_request_stores_what_record_stores(tmp_path: Path) -> None:
    """record_request() through the writer process stores the record record() stores, and refuses bad fields before queueing."""
    now = datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp()
    found = []
    for writer_process in (True, False):
        stores = LMDBStores.open(
            tmp_path / str(writer_process), writer_process=writer_process
        )
        meter = TokenMeter(stores.billing, clock=lambda: now)
        try:
            meter.record_request("acme", 3, 4, model="toy-1", request_id="r1")
            meter.record_request("acme", 0, 2**40, model="", request_id="r2")
            for bad in (
                {"input_tokens": -1},
                {"model": "m" * 300},
                {"request_id": "has space"},
                {"tenant_id": ""},
            ):
                fields: dict[str, Any] = {
                    "tenant_id": "acme",
                    "input_tokens": 1,
                    "output_tokens": 1,
                    "request_id": "r3",
                    **bad,
                }
                with pytest.raises(InvalidConfigError):
                    meter.record_request(**fields)
            meter.flush()
            found.append(meter.query("acme", *EVER))
        finally:
            meter.close()
            stores.close()
    assert [(r.request_id, r.input_tokens, r.output_tokens) for r in found[0]] == [
        ("r1", 3, 4),
        ("r2", 0, 2**40),
    ]
    assert found[0] == found[1]


def test_writer_process_that_cannot_open_the_store_loses_nothing(
    tmp_path: Path,
) -> None:
    """A writer process that cannot open the store (another schema) makes flush raise StoreError naming why; the records are kept and written once it can."""
    with _open(tmp_path / "db") as stores:
        meta = stores.durable.dbs["meta"]

        def schema(value: bytes) -> None:
            stores.durable.write(lambda txn: txn.put(b"schema_version", value, db=meta))

        meter = TokenMeter(stores.billing, retry_interval=60)
        schema(b"99")
        meter.record_request("acme", 1, 2, request_id="r1")
        with pytest.raises(StoreError, match="schema"):
            meter.flush(WAIT)
        assert meter.pending == 1
        assert stores.writer_process is not None
        assert stores.writer_process.pid is None  # the failed process was reaped
        schema(b"1")
        meter.flush(WAIT)
        assert [r.request_id for r in meter.query("acme", *EVER)] == ["r1"]
        meter.close()


def test_writer_process_that_cannot_start_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer process that cannot be started makes flush raise StoreError; the records are kept and written once it can."""
    with _open(tmp_path / "db") as stores:
        logger = AuditLogger(stores.audit, retry_interval=60)
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
        logger.log(AuditEntry(tenant_id="acme"))
        with pytest.raises(StoreError, match="cannot start"):
            logger.flush(WAIT)
        assert logger.pending == 1
        monkeypatch.undo()
        logger.flush(WAIT)
        assert len(logger.query("acme", *EVER)) == 1
        assert logger.verify().ok
        logger.close()


#: Clock readings: plain floats (sent as they are), an int, and floats
#: outside the plain range (made datetimes in the serving process).
CLOCK_READINGS = [
    T0.timestamp() + 0.123456,
    0.0,
    int(T0.timestamp()),
    MAX_PLAIN_STAMP - 0.5,
    MAX_PLAIN_STAMP + 0.5,
    -1.25,
]


def _log_request(logger: AuditLogger, path: str) -> None:
    logger.log_request(
        "acme",
        AuditAction.INFERENCE,
        AuditResult.SUCCESS,
        resource="m",
        status_code=200,
        method="POST",
        path=path,
        remote_addr="127.0.0.1",
    )


def test_writer_process_records_carry_the_clock_reading(tmp_path: Path) -> None:
    """Through the writer process, billing records and audit entries carry the same timestamps as without, whatever form the clock reading takes, and a clock reading no datetime can hold fails the caller."""
    found = []
    reading: list[float] = [0.0]

    def clock() -> float:
        return reading[0]

    for writer_process in (True, False):
        stores = LMDBStores.open(
            tmp_path / str(writer_process), writer_process=writer_process
        )
        meter = TokenMeter(stores.billing, clock=clock)
        logger = AuditLogger(stores.audit, secret=SECRET, clock=clock)
        try:
            for i, now in enumerate(CLOCK_READINGS):
                reading[0] = now
                meter.record_request("acme", 1, 2, model="m", request_id=f"r{i}")
                _log_request(logger, f"/v1/{i}")
            reading[0] = float("nan")
            with pytest.raises(ValueError, match="NaN"):
                meter.record_request("acme", 1, 2, request_id="nan")
            with pytest.raises(ValueError, match="NaN"):
                _log_request(logger, "/")
            meter.flush()
            logger.flush()
            ever = (
                datetime.min.replace(tzinfo=timezone.utc),
                datetime.max.replace(tzinfo=timezone.utc),
            )
            records = sorted(
                (r.request_id, r.timestamp) for r in meter.query("acme", *ever)
            )
            entries = [(e.path, e.timestamp) for e in logger.query("acme", *ever)]
            assert logger.verify().ok
            found.append((records, sorted(entries)))
        finally:
            meter.close()
            logger.close()
            stores.close()
    expected = [datetime.fromtimestamp(now, timezone.utc) for now in CLOCK_READINGS]
    assert [stamp for _, stamp in found[0][0]] == expected
    assert [stamp for _, stamp in found[0][1]] == expected
    assert found[0] == found[1]

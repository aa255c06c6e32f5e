"""
LMDB-specific behaviour: files, persistence, corruption, growth, processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import lmdb
import pytest

from tests import _workers
from tests._serving import run_python
from zerfoo_cloud import (
    AuditEntry,
    BillingRecord,
    CorruptRecordError,
    SchemaMismatchError,
    StoreError,
    StoreFullError,
    Tenant,
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
    generate_api_key,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.lmdb import _stores as lmdb_module

pytestmark = pytest.mark.lmdb

SPAWN = multiprocessing.get_context("spawn")


def manager_for(stores: LMDBStores) -> TenantManager:
    """
    A manager over the stores of one LMDB folder.
    """
    return TenantManager(stores.tenants, limits=stores.limits)


def raw_put(path: Path, db: str, key: bytes, value: bytes) -> None:
    """
    Write bytes straight into an LMDB database, bypassing the library.
    """
    env = lmdb.open(str(path), max_dbs=32, subdir=True)
    try:
        handle = env.open_db(db.encode())
        with env.begin(write=True) as txn:
            txn.put(key, value, db=handle)
    finally:
        env.close()


def test_files_are_private(tmp_path: Path) -> None:
    """The folder is 0700 and every file in it 0600."""
    with LMDBStores.open(tmp_path / "db") as stores:
        manager_for(stores).create(TenantConfig("a", "k", 1, 1))
    folder = tmp_path / "db"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_tenants_persist_across_reopen(tmp_path: Path) -> None:
    """Tenants written before close are there after reopening."""
    key = generate_api_key()
    with LMDBStores.open(tmp_path / "db") as stores:
        manager_for(stores).create(TenantConfig("acme", key, 10, 100, 2, ["m"]))
    with LMDBStores.open(tmp_path / "db") as stores:
        t = manager_for(stores).get_by_api_key(key)
        assert t.config().model_allow_list == ("m",)


def test_raw_key_is_not_in_the_file(tmp_path: Path) -> None:
    """No byte sequence of the raw key (created, updated or rotated) is in any file."""
    keys = [generate_api_key() for _ in range(2)]
    with LMDBStores.open(tmp_path / "db") as stores:
        m = manager_for(stores)
        m.create(TenantConfig("acme", keys[0], 10, 100))
        m.update("acme", api_key=keys[1])
        keys.append(m.rotate_key("acme"))
        m.get_by_api_key(keys[2]).allow_request()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*") if p.is_file())
    for key in keys:
        assert key.encode() not in blob
        assert key[3:20].encode() not in blob


def test_open_twice_returns_the_same_stores(tmp_path: Path) -> None:
    """A second open of one folder shares the environment; close is counted."""
    a = LMDBStores.open(tmp_path / "db")
    b = LMDBStores.open(str(tmp_path / "db"))
    assert a is b
    a.close()
    assert not b.closed
    manager_for(b).create(TenantConfig("x", "k", 1, 1))
    b.close()
    assert b.closed
    b.close()
    with pytest.raises(StoreError):
        b.tenants.get("x")
    c = LMDBStores.open(tmp_path / "db")
    assert c is not a
    assert c.tenants.get("x") is not None
    c.close()


def test_corrupt_tenant_record_is_named(tmp_path: Path) -> None:
    """A record that is not valid JSON raises CorruptRecordError naming it, in get and list."""
    with LMDBStores.open(tmp_path / "db") as stores:
        manager_for(stores).create(TenantConfig("good", "k1", 1, 1))
    raw_put(tmp_path / "db", "tenants", b"broken", b"{not json")
    with LMDBStores.open(tmp_path / "db") as stores:
        m = manager_for(stores)
        with pytest.raises(CorruptRecordError) as info:
            m.get("broken")
        assert info.value.key == "broken"
        assert "broken" in str(info.value)
        with pytest.raises(CorruptRecordError):
            m.list()
        assert m.get("good").id == "good"
        m.delete("broken")
        assert [c.id for c in m.list()] == ["good"]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":2}',
        b"[]",
        b'{"v":1,"id":"x"}',
        b'{"v":1,"id":"x","key_hash":"zz","rate_limit":1,"token_budget":1,"max_concurrent_requests":0,"model_allow_list":[],"created_at":0,"updated_at":0}',
        b'{"v":1,"id":"x","key_hash":"'
        + b"a" * 64
        + b'","rate_limit":"1","token_budget":1,"max_concurrent_requests":0,"model_allow_list":[],"created_at":0,"updated_at":0}',
        b'{"v":1,"id":"y","key_hash":"'
        + b"a" * 64
        + b'","rate_limit":1,"token_budget":1,"max_concurrent_requests":0,"model_allow_list":[],"created_at":0,"updated_at":0}',
        b"\xff\xfe",
    ],
)
def test_malformed_records_raise(tmp_path: Path, payload: bytes) -> None:
    """Wrong versions, shapes, types, hashes and ids are all reported as corrupt."""
    LMDBStores.open(tmp_path / "db").close()
    raw_put(tmp_path / "db", "tenants", b"x", payload)
    with LMDBStores.open(tmp_path / "db") as stores, pytest.raises(CorruptRecordError):
        stores.tenants.get("x")


def test_dangling_key_index_is_corrupt(tmp_path: Path) -> None:
    """A key index entry pointing to a missing tenant raises instead of matching."""
    LMDBStores.open(tmp_path / "db").close()
    from zerfoo_cloud.tenants import hash_api_key

    raw_put(tmp_path / "db", "tenant_keys", hash_api_key("k").encode(), b"ghost")
    with LMDBStores.open(tmp_path / "db") as stores, pytest.raises(CorruptRecordError):
        manager_for(stores).get_by_api_key("k")


def test_corrupt_bucket_is_named(tmp_path: Path) -> None:
    """A limiter state of the wrong size raises CorruptRecordError."""
    with LMDBStores.open(tmp_path / "db") as stores:
        m = manager_for(stores)
        m.create(TenantConfig("acme", "k", 5, 5))
        buckets = stores.volatile.dbs["buckets"]
        stores.volatile.write(lambda txn: txn.put(b"acme\x00req", b"short", db=buckets))
        with pytest.raises(CorruptRecordError) as info:
            m.get("acme").allow_request()
        assert "acme" in info.value.key
        with pytest.raises(CorruptRecordError) as info:
            m.get("acme").begin_request(1)  # the admission fast path
        assert "acme" in info.value.key


def test_schema_mismatch_refuses_to_open(tmp_path: Path) -> None:
    """A store written by another schema version is refused with both versions named."""
    LMDBStores.open(tmp_path / "db").close()
    raw_put(tmp_path / "db", "meta", b"schema_version", b"99")
    with pytest.raises(SchemaMismatchError) as info:
        LMDBStores.open(tmp_path / "db")
    assert info.value.found == 99
    assert info.value.expected == lmdb_module.SCHEMA_VERSION
    raw_put(tmp_path / "db", "meta", b"schema_version", b"garbage")
    with pytest.raises(SchemaMismatchError):
        LMDBStores.open(tmp_path / "db")


def test_unopenable_folder_is_a_store_error(tmp_path: Path) -> None:
    """A path under a regular file gives StoreError, not an OSError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError):
        LMDBStores.open(tmp_path / "file" / "db")


def test_map_grows_when_full(tmp_path: Path) -> None:
    """Writing past the initial map size grows the map and loses nothing."""
    with LMDBStores.open(tmp_path / "db", map_size=64 * 1024) as stores:
        m = manager_for(stores)
        for i in range(400):
            m.create(
                TenantConfig(
                    f"t{i}", f"key-{i}", 1, 1, 0, [f"model-{j}" for j in range(20)]
                )
            )
        assert stores.durable.info()["map_size"] > 64 * 1024
        assert len(m.list()) == 400


def test_map_at_its_limit_is_store_full(tmp_path: Path) -> None:
    """When the map cannot grow further, writes raise StoreFullError and write nothing."""
    with LMDBStores.open(
        tmp_path / "db", map_size=64 * 1024, max_map_size=128 * 1024
    ) as stores:
        m = manager_for(stores)
        created = 0
        with pytest.raises(StoreFullError) as info:  # noqa: PT012 - fills the map until it raises
            for i in range(10_000):
                m.create(
                    TenantConfig(
                        f"t{i}", f"key-{i}", 1, 1, 0, [f"model-{j}" for j in range(20)]
                    )
                )
                created += 1
        assert "max_map_size" in str(info.value)
        assert len(m.list()) == created
        with pytest.raises(TenantNotFoundError):
            m.get(f"t{created}")


def test_limiter_state_survives_a_killed_process_but_not_a_reboot(
    tmp_path: Path,
) -> None:
    """Limiter state written before a crash is kept; after a new boot id it is reset."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        m = manager_for(stores)
        m.create(TenantConfig("acme", "k", 2, 100))
        assert m.get("acme").allow_request()
        assert m.get("acme").allow_request()
    with LMDBStores.open(path) as stores:
        assert not manager_for(stores).get("acme").allow_request()
    (path / "limits.boot").write_text("another-boot\n")
    with LMDBStores.open(path) as stores:
        assert manager_for(stores).get("acme").allow_request()
        assert (path / "limits.boot").read_text().strip() == lmdb_module._boot_id()


def _full_of_slots_of_a_killed_child(stores: LMDBStores, path: Path) -> Tenant:
    """
    Create tenant "acme" with 3 slots, let a child process take all three
    (checking that they are taken), kill it, and return the tenant.
    """
    m = manager_for(stores)
    m.create(TenantConfig("acme", "k", 0, 0, max_concurrent_requests=3))
    ready = SPAWN.Event()
    child = SPAWN.Process(target=_workers.hold_slots, args=(str(path), "k", 3, ready))
    child.start()
    try:
        assert ready.wait(60)
        tenant = m.get("acme")
        assert tenant.in_flight() == 3
        assert tenant.begin_request(1).refused_by == "concurrency"
        assert not tenant.allow_concurrent()
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(30)
    return tenant


def test_slots_of_a_dead_process_are_reclaimed(tmp_path: Path) -> None:
    """A worker killed while holding slots does not leak them."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        tenant = _full_of_slots_of_a_killed_child(stores, path)
        assert tenant.in_flight() == 0
        assert tenant.allow_concurrent()


def test_admission_at_the_limit_reclaims_slots_of_a_dead_process(
    tmp_path: Path,
) -> None:
    """A request that finds every slot held by a killed worker gets one at once."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        tenant = _full_of_slots_of_a_killed_child(stores, path)
        assert tenant.begin_request(1).allowed
        assert tenant.allow_concurrent()
        assert tenant.in_flight() == 2


@pytest.mark.slow
def test_four_processes_admit_exactly_the_quota(tmp_path: Path) -> None:
    """Four processes sharing one LMDB folder together admit rate_limit requests, not 4x."""
    path = tmp_path / "db"
    key = generate_api_key()
    with LMDBStores.open(path) as stores:
        manager_for(stores).create(TenantConfig("acme", key, 300, 0))
    start = SPAWN.Event()
    results: multiprocessing.Queue[int] = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_workers.hammer_requests,
            args=(str(path), key, 200, start, results, time.time()),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    start.set()
    counts = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(counts) == 300, counts


def _refused_within(m: TenantManager, key: str, seconds: float) -> bool:
    """
    Poll `get_by_api_key` until *key* is refused; ``False`` if it still works
    after *seconds*.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            m.get_by_api_key(key)
        except TenantNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def test_changes_by_another_process_are_seen_in_time(tmp_path: Path) -> None:
    """A key created by another process works at once; one it re-keys or deletes stops working within one second."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        m = manager_for(stores)
        prog = """
            import sys
            from zerfoo_cloud import TenantConfig, TenantManager
            from zerfoo_cloud.stores.lmdb import LMDBStores
            op, path = sys.argv[1], sys.argv[2]
            with LMDBStores.open(path) as s:
                m = TenantManager(s.tenants, limits=s.limits)
                if op == "create":
                    m.create(TenantConfig("remote", "remote-key", 5, 5))
                elif op == "rotate":
                    print(m.rotate_key("remote"))
                else:
                    m.delete("remote")
        """
        run_python(prog, "create", str(path))
        assert m.get_by_api_key("remote-key").id == "remote"
        new_key = run_python(prog, "rotate", str(path)).stdout.strip()
        assert m.get_by_api_key(new_key).id == "remote"
        assert _refused_within(m, "remote-key", 1.0)
        run_python(prog, "delete", str(path))
        assert _refused_within(m, new_key, 1.0)


@pytest.mark.skipif(
    sys.platform != "linux", reason="fork semantics are tested on Linux"
)
def test_forked_child_reopens_the_environment(tmp_path: Path) -> None:
    """A child forked after open uses its own environment and sees shared state."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        m = manager_for(stores)
        m.create(TenantConfig("acme", "k", 3, 0))
        assert m.get("acme").allow_request()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                t = m.get_by_api_key("k")
                code = (
                    0
                    if (t.allow_request(), t.allow_request(), t.allow_request())
                    == (True, True, False)
                    else 3
                )
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not m.get("acme").allow_request()


@pytest.mark.skipif(
    sys.platform != "linux", reason="fork semantics are tested on Linux"
)
def test_forked_child_writes_billing_audit_and_replay_used_before_fork(
    tmp_path: Path,
) -> None:
    """Every store used before a fork writes in the child, into the same folder."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with LMDBStores.open(tmp_path / "db") as stores:
        stores.billing.add([BillingRecord("acme", 1, 1, when, "m", "before")])
        stores.audit.append(AuditEntry(when, "acme", resource="before"))
        assert stores.replay.add("before", 2e9, 1e9)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                stores.billing.add([BillingRecord("acme", 1, 1, when, "m", "child")])
                stores.audit.append(AuditEntry(when, "acme", resource="child"))
                code = 0 if stores.replay.add("child", 2e9, 1e9) else 3
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        ids = [r.request_id for r in stores.billing.query("acme", when, when)]
        assert ids == ["before", "child"]
        end = datetime(2100, 1, 1, tzinfo=UTC)
        entries = stores.audit.query("acme", when, end)
        assert [e.resource for e in entries] == ["before", "child"]
        assert not stores.replay.add("child", 2e9, 1e9)


def test_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    """After another process grows the map, this one keeps reading and writing."""
    path = tmp_path / "db"
    with LMDBStores.open(path, map_size=64 * 1024) as stores:
        m = manager_for(stores)
        m.create(TenantConfig("first", "k0", 1, 1))
        before = stores.durable.info()["map_size"]
        prog = """
            import sys
            from zerfoo_cloud import TenantConfig, TenantManager
            from zerfoo_cloud.stores.lmdb import LMDBStores
            with LMDBStores.open(sys.argv[1], map_size=64 * 1024) as s:
                m = TenantManager(s.tenants, limits=s.limits)
                for i in range(400):
                    m.create(TenantConfig(f"t{i}", f"key-{i}", 1, 1, 0, [f"m{j}" for j in range(20)]))
                print(s.durable.info()["map_size"])
        """
        grown = int(run_python(prog, str(path)).stdout)
        assert grown > before
        assert len(m.list()) == 401
        m.create(TenantConfig("last", "k-last", 1, 1))
        assert m.get("t399").id == "t399"
        assert stores.durable.info()["map_size"] >= grown


def test_threads_keep_working_while_the_map_grows(tmp_path: Path) -> None:
    """Readers in other threads never fail while a writer grows the map."""

    path = tmp_path / "db"
    with LMDBStores.open(path, map_size=64 * 1024) as stores:
        m = manager_for(stores)
        m.create(TenantConfig("anchor", "anchor-key", 0, 0))
        stop = threading.Event()
        errors: list[BaseException] = []
        reads = [0]

        def reader() -> None:
            # Readers pause between lookups as request handlers do; a tight
            # loop in three threads would starve the writer of the GIL.
            try:
                while not stop.is_set():
                    assert m.get_by_api_key("anchor-key").id == "anchor"
                    reads[0] += 1
                    time.sleep(0.0005)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(300):
                m.create(
                    TenantConfig(
                        f"t{i}", f"key-{i}", 1, 1, 0, [f"m{j}" for j in range(20)]
                    )
                )
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors
        assert reads[0] > 0
        assert stores.durable.info()["map_size"] > 64 * 1024


def test_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    """A folder this user cannot write gives StoreError, not an LMDB exception."""
    if os.geteuid() == 0:
        pytest.skip("root can write to read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError):
            LMDBStores.open(folder)
    finally:
        folder.chmod(0o700)


def test_a_corrupt_stored_price_table_is_named(lmdb_stores: LMDBStores) -> None:
    """A price entry that is not a table, or a version that is not a number, raises CorruptRecordError naming the store."""
    from zerfoo_cloud.pricing import PriceTable

    lmdb_stores.prices.replace(PriceTable("USD"), 0)
    db = lmdb_stores.durable.handles()["prices"]
    lmdb_stores.durable.write(lambda txn: txn.put(b"table", b"{", db=db))
    with pytest.raises(CorruptRecordError, match="lmdb:prices"):
        lmdb_stores.prices.read()
    lmdb_stores.durable.write(lambda txn: txn.put(b"version", b"x", db=db))
    with pytest.raises(CorruptRecordError, match="not a number"):
        lmdb_stores.prices.version()

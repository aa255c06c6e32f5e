"""
What the PostgreSQL stores do beyond the conformance suites: the schema
check and upgrade, month partitions, request ids across months, one audit
chain from several processes, tampering found by verify, batch keys, and
failures of the server, none of which shows the password.

Runs against the PostgreSQL on 127.0.0.1:5432, in databases of its own.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._postgres_servers import DEAD_URL, require_postgres, throwaway_database
from zerfoo_cloud import AuditEntry, AuditLogger, TokenMeter
from zerfoo_cloud.audit import (
    AuditProblem,
    AuditVerification,
    ChainLink,
    link_entry,
    verify_chain,
)
from zerfoo_cloud.cli import main
from zerfoo_cloud.errors import (
    CorruptRecordError,
    InvalidConfigError,
    SchemaMismatchError,
    StoreError,
    StoreUnavailableError,
    TenantNotFoundError,
)
from zerfoo_cloud.metering import BillingRecord, summarize
from zerfoo_cloud.pricing import NO_PRICES, ModelPrice, PriceTable
from zerfoo_cloud.stores.memory import MemoryLimiterStore
from zerfoo_cloud.stores.postgres import (
    SCHEMA_VERSION,
    PostgresStores,
    upgrade_schema,
)
from zerfoo_cloud.stores.postgres._schema import MIGRATIONS
from zerfoo_cloud.tenants import TenantManager, TenantRecord, hash_api_key

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
SECRET = b"audit-secret-0123456789"
PASSWORD = "s3cret-pw"


@pytest.fixture
def fresh_url() -> Iterator[str]:
    """An empty database, never upgraded."""
    require_postgres()
    with throwaway_database() as url:
        yield url


def _sql(url: str, statement: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(statement, params)


def rec(at: datetime, rid: str, tenant: str = "acme") -> BillingRecord:
    """A billing record of *tenant* at *at* with request id *rid*."""
    return BillingRecord(tenant, 3, 5, at, "m", rid)


# -- schema -------------------------------------------------------------------


def test_a_database_never_upgraded_is_refused(fresh_url: str) -> None:
    """Opening an empty database says to run zerfoo-cloud db upgrade."""
    with pytest.raises(SchemaMismatchError) as info:
        PostgresStores.open(fresh_url)
    assert info.value.found == 0
    assert info.value.expected == SCHEMA_VERSION
    assert "zerfoo-cloud db upgrade" in str(info.value)


def test_an_older_schema_is_refused_and_upgraded(fresh_url: str) -> None:
    """A version table with no version applied counts as version 0."""
    _sql(
        fresh_url,
        "CREATE TABLE zerfoo_cloud_schema (version integer PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())",
    )
    with pytest.raises(SchemaMismatchError, match="zerfoo-cloud db upgrade"):
        PostgresStores.open(fresh_url)
    assert upgrade_schema(fresh_url) == (0, SCHEMA_VERSION)
    PostgresStores.open(fresh_url).close()


def test_a_newer_schema_is_refused(fresh_url: str) -> None:
    """A database written by a later version is neither opened nor upgraded."""
    upgrade_schema(fresh_url)
    _sql(fresh_url, "INSERT INTO zerfoo_cloud_schema (version) VALUES (%s)", (99,))
    with pytest.raises(SchemaMismatchError) as info:
        PostgresStores.open(fresh_url)
    assert (info.value.found, info.value.expected) == (99, SCHEMA_VERSION)
    assert "upgrade zerfoo-cloud" in str(info.value)
    with pytest.raises(SchemaMismatchError):
        upgrade_schema(fresh_url)


def test_upgrade_is_idempotent(fresh_url: str) -> None:
    """A second upgrade finds nothing to do and changes nothing."""
    assert upgrade_schema(fresh_url) == (0, SCHEMA_VERSION)
    with PostgresStores.open(fresh_url) as stores:
        stores.billing.add([rec(T0, "kept")])
    assert upgrade_schema(fresh_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    with PostgresStores.open(fresh_url) as stores:
        assert [r.request_id for r in stores.billing.query("acme", T0, T0)] == ["kept"]


def _version_1(url: str) -> None:
    # A database as the first schema left it: version 1's statements only.
    ((_, statements),) = [m for m in MIGRATIONS if m[0] == 1]
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE zerfoo_cloud_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO zerfoo_cloud_schema (version) VALUES (1)")


def test_a_version_1_database_with_rows_is_refused_then_upgraded(
    fresh_url: str,
) -> None:
    """Billing rows of schema 1 survive the upgrade to 2 and read back unpriced; new rows carry cost, currency and key id."""
    _version_1(fresh_url)
    with psycopg.connect(fresh_url) as conn:
        conn.execute(
            "CREATE TABLE billing_y2025m03 PARTITION OF billing "
            "FOR VALUES FROM ('2025-03-01 00:00:00+00') TO ('2025-04-01 00:00:00+00')"
        )
        conn.execute(
            "INSERT INTO billing (tenant_id, ts, request_id, model, input_tokens,"
            " output_tokens) VALUES (%s, %s, %s, %s, %s, %s)",
            (b"acme", T0, "old-1", b"m", 7, 9),
        )
        conn.execute("INSERT INTO billing_request_ids VALUES (%s, %s)", ("old-1", T0))
    with pytest.raises(SchemaMismatchError, match="version 1") as info:
        PostgresStores.open(fresh_url)
    assert (info.value.found, info.value.expected) == (1, SCHEMA_VERSION)
    assert upgrade_schema(fresh_url) == (1, SCHEMA_VERSION)
    assert upgrade_schema(fresh_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    priced = BillingRecord("acme", 1, 2, T0 + US, "m", "new-1", 4321, "USD", "k1")
    with PostgresStores.open(fresh_url) as stores:
        assert stores.billing.add([priced]) == 1
        found = stores.billing.query("acme", T0, T0 + US)
        assert found == [BillingRecord("acme", 7, 9, T0, "m", "old-1"), priced]
        assert stores.billing.summary("acme", T0, T0 + US, ()) == summarize(found, ())


@contextmanager
def _migrated_to(url: str, last: int) -> Iterator[psycopg.Connection[Any]]:
    """A connection to *url* (committed when the block ends) whose database
    holds the schema as migrations 1 to *last* left it."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE zerfoo_cloud_schema (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in MIGRATIONS:
            if version <= last:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO zerfoo_cloud_schema (version) VALUES (%s)", (version,)
                )
        yield conn


def test_a_version_2_database_with_tenants_is_upgraded_to_several_keys(
    fresh_url: str,
) -> None:
    """Tenants stored by schema 2 keep their key after the upgrade to 3 (it becomes their first key); keys added since are unique across tenants."""
    with _migrated_to(fresh_url, 2) as conn:
        for tenant, key in (("acme", "acme-key"), ("beta", "beta-key")):
            old = TenantRecord(
                id=tenant, key_hash=hash_api_key(key), rate_limit=1, token_budget=1
            )
            raw = old.to_bytes()
            assert b'"keys"' not in raw  # exactly the bytes schema 2 held
            conn.execute(
                "INSERT INTO tenants (id, key_hash, record) VALUES (%s, %s, %s)",
                (tenant.encode(), old.key_hash.encode(), raw),
            )
    with pytest.raises(SchemaMismatchError, match="version 2"):
        PostgresStores.open(fresh_url)
    assert upgrade_schema(fresh_url) == (2, SCHEMA_VERSION)
    with PostgresStores.open(fresh_url) as stores:
        manager = TenantManager(
            stores.tenants, limits=MemoryLimiterStore(), cache_ttl=0
        )
        assert manager.get_by_api_key("acme-key").key_id == hash_api_key("acme-key")[:8]
        secret, made = manager.create_key("acme", name="new")
        assert manager.get_by_api_key(secret).key_id == made.id
        assert manager.get_by_api_key("beta-key").id == "beta"
        manager.delete("acme")
        with pytest.raises(TenantNotFoundError):
            manager.get_by_api_key(secret)
    with psycopg.connect(fresh_url) as conn:
        rows = conn.execute("SELECT tenant_id FROM tenant_keys").fetchall()
    assert rows == [(b"beta",)]


def test_a_version_3_database_is_upgraded_to_stored_prices(fresh_url: str) -> None:
    """A database at schema 3 (its tenants kept) gets the price table at 4, empty; upgrading again changes nothing; the table holds one row, of a positive version."""
    with _migrated_to(fresh_url, 3):
        pass
    with pytest.raises(SchemaMismatchError, match="version 3"):
        PostgresStores.open(fresh_url)
    assert upgrade_schema(fresh_url) == (3, SCHEMA_VERSION)
    assert upgrade_schema(fresh_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    table = PriceTable("USD", {"m": [ModelPrice(T0, 1, 2, 1)]})
    with PostgresStores.open(fresh_url) as stores:
        assert stores.prices.read() == NO_PRICES
        assert stores.prices.replace(table, 0) == 1
    with pytest.raises(psycopg.errors.CheckViolation):
        _sql(fresh_url, "INSERT INTO prices (id, version, body) VALUES (2, 1, '')")
    with pytest.raises(psycopg.errors.CheckViolation):
        _sql(fresh_url, "UPDATE prices SET version = 0")


def test_a_corrupt_stored_table_is_named(
    postgres_stores: PostgresStores, postgres_url: str
) -> None:
    """A price row that is not a table raises CorruptRecordError naming the store."""
    postgres_stores.prices.replace(PriceTable("USD"), 0)
    _sql(postgres_url, "UPDATE prices SET body = 'not json'")
    with pytest.raises(CorruptRecordError, match="postgresql:prices"):
        postgres_stores.prices.read()


def test_a_negative_cost_is_refused_by_the_database(fresh_url: str) -> None:
    """The cost column holds no negative amount, whatever writes to it."""
    upgrade_schema(fresh_url)
    with PostgresStores.open(fresh_url) as stores:
        stores.billing.add([rec(T0, "a")])
    with pytest.raises(psycopg.errors.CheckViolation):
        _sql(fresh_url, "UPDATE billing SET cost = -1")


@pytest.mark.slow
def test_upgrade_from_several_processes_at_once(fresh_url: str) -> None:
    """Upgrades racing from processes and threads: one applies, the rest find it done."""
    code = textwrap.dedent(
        """
        import sys
        from zerfoo_cloud.stores.postgres import upgrade_schema
        print(upgrade_schema(sys.argv[1]))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, fresh_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda _: upgrade_schema(fresh_url), range(4)))
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [*threaded, *(eval(out) for out, _ in outputs)]
    assert (
        sorted(results)
        == [(0, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 7
    )


def test_the_command_upgrades(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """zerfoo-cloud db upgrade prints the version it left and found."""
    assert main(["db", "upgrade", "--db", fresh_url]) == 0
    assert capsys.readouterr().out == f"schema at version {SCHEMA_VERSION} (was 0)\n"
    assert main(["--db", fresh_url, "db", "upgrade"]) == 0
    assert (
        capsys.readouterr().out
        == f"schema at version {SCHEMA_VERSION} (was {SCHEMA_VERSION})\n"
    )


def test_the_command_fails_in_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead server, a bad URL, no URL: one line each, never the password."""
    assert main(["db", "upgrade", "--db", DEAD_URL]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "127.0.0.1:9/zc" in err
    assert "unavailable" in err
    assert PASSWORD not in err
    assert main(["db", "upgrade", "--db", f"mysql://u:{PASSWORD}@h/db"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "postgresql://" in err
    assert PASSWORD not in err
    monkeypatch.delenv("ZERFOO_CLOUD_DB", raising=False)
    assert main(["db", "upgrade"]) == 2
    assert "--db URL" in capsys.readouterr().err


# -- failures -----------------------------------------------------------------


def test_a_dead_server_is_unavailable_quickly_and_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Opening a closed port fails at once with StoreUnavailableError naming host and database."""
    caplog.set_level(logging.DEBUG)
    began = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        PostgresStores.open(DEAD_URL, connect_timeout=1)
    assert time.monotonic() - began < 3
    error = info.value
    assert error.store == "postgresql"
    assert error.retry_after >= 1
    assert "127.0.0.1:9/zc" in str(error)
    for text in (str(error), repr(error), caplog.text, str(error.__cause__)):
        assert PASSWORD not in text
    with pytest.raises(StoreUnavailableError):
        upgrade_schema(DEAD_URL, connect_timeout=1)


def test_bad_urls_and_sizes_are_config_errors() -> None:
    """A URL of another scheme, an unparsable one, bad sizes: InvalidConfigError without the URL."""
    for url in (f"redis://u:{PASSWORD}@h/0", f"host=h password={PASSWORD} =", ""):
        with pytest.raises(InvalidConfigError) as info:
            PostgresStores.open(url)
        assert PASSWORD not in str(info.value)
    for sizes in ({"min_size": 2, "max_size": 1}, {"max_size": 0}):
        with pytest.raises(InvalidConfigError):
            PostgresStores.open(DEAD_URL, **sizes)
    with pytest.raises(InvalidConfigError):
        PostgresStores.open(DEAD_URL, connect_timeout=0)


def test_the_password_is_never_shown(postgres_url: str) -> None:
    """With a password in the URL (ignored by trust auth), repr and errors hide it."""
    url = postgres_url.replace("postgres@", f"postgres:{PASSWORD}@")
    missing_db = url.rsplit("/", 1)[0] + "/zc_no_such_database"
    with pytest.raises(StoreError) as info:
        PostgresStores.open(missing_db)
    assert "zc_no_such_database" in str(info.value)
    assert PASSWORD not in str(info.value)
    with PostgresStores.open(url) as stores:
        assert PASSWORD not in repr(stores)
        assert stores.location.endswith(url.rsplit("/", 1)[1])
        assert PASSWORD not in repr(stores._db)


def _end_sessions(url: str) -> None:
    # What a server restart does to the pool's connections.
    _sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (url.rsplit("/", 1)[1],),
    )


def test_lost_connections_are_replaced_for_reads_and_billing(
    postgres_url: str,
) -> None:
    """After every pooled connection died, reads and billing adds still succeed at once."""
    with PostgresStores.open(postgres_url, min_size=4, max_size=4) as stores:
        with ThreadPoolExecutor(4) as pool:  # four connections in the pool
            list(pool.map(lambda _: stores.tenants.list(), range(16)))
        for call in (
            lambda: stores.tenants.get("x"),
            lambda: stores.tenants.get_by_key_hash("x"),
            stores.tenants.list,
            lambda: stores.billing.add([rec(T0, "after-restart")]),
            lambda: stores.billing.query("acme", T0, T0),
            lambda: stores.billing.summary("acme", T0, T0, ()),
            stores.billing.tenant_ids,
            stores.billing.partitions,
            lambda: stores.audit.query("acme", T0, T0),
        ):
            _end_sessions(postgres_url)
            call()
        assert [r.request_id for r in stores.billing.query("acme", T0, T0)] == [
            "after-restart"
        ]


def test_a_lost_connection_fails_a_write_that_cannot_run_twice(
    postgres_url: str,
) -> None:
    """An audit append on a dead connection is StoreUnavailableError; the next one works."""
    with PostgresStores.open(postgres_url, min_size=1, max_size=1) as stores:
        assert stores.tenants.get("x") is None
        _end_sessions(postgres_url)
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            stores.audit.append(AuditEntry(T0, "acme"))
        assert stores.audit.append(AuditEntry(T0, "acme")).seq == 1


def test_a_busy_pool_is_unavailable_after_the_timeout(postgres_url: str) -> None:
    """With every connection held, a call waits connect_timeout, then StoreUnavailableError."""
    with PostgresStores.open(postgres_url, max_size=1, connect_timeout=1) as stores:
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with stores._db.transaction("holding"):
                held.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(10)
        began = time.monotonic()
        try:
            with pytest.raises(StoreUnavailableError):
                stores.tenants.get("x")
        finally:
            release.set()
            thread.join()
        assert 0.9 < time.monotonic() - began < 3
        assert stores.tenants.get("x") is None


def test_closed_stores_raise_and_close_twice(postgres_url: str) -> None:
    """After close every store raises StoreError; closing again is harmless."""
    stores = PostgresStores.open(postgres_url)
    stores.close()
    stores.close()
    assert stores.closed
    with pytest.raises(StoreError, match="closed"):
        stores.tenants.list()


def test_naive_times_are_refused(postgres_stores: PostgresStores) -> None:
    """Queries, summaries, purges and drops need aware datetimes."""
    naive = datetime(2025, 3, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(InvalidConfigError):
        postgres_stores.billing.query("acme", naive, T0)
    with pytest.raises(InvalidConfigError):
        postgres_stores.billing.drop_partitions_before(naive)
    with pytest.raises(InvalidConfigError):
        postgres_stores.audit.purge(naive)


def test_a_corrupt_tenant_record_is_named(
    postgres_stores: PostgresStores, postgres_url: str
) -> None:
    """A record that cannot be decoded raises CorruptRecordError, and can be deleted."""
    record = TenantRecord("acme", hash_api_key("k"), 60, 1000)
    postgres_stores.tenants.create(record)
    _sql(postgres_url, "UPDATE tenants SET record = %s", (b"{not json",))
    with pytest.raises(CorruptRecordError, match="acme"):
        postgres_stores.tenants.get("acme")
    postgres_stores.tenants.delete("acme")
    assert postgres_stores.tenants.list() == []


# -- billing ------------------------------------------------------------------


def test_partitions_follow_months_and_drop_whole(
    postgres_stores: PostgresStores,
) -> None:
    """Records either side of a month boundary land in two partitions; dropping takes whole months."""
    billing = postgres_stores.billing
    feb = datetime(2025, 2, 1, tzinfo=timezone.utc)
    records = [
        rec(feb - US, "jan-last"),
        rec(feb, "feb-first"),
        rec(datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), "mar"),
    ]
    assert billing.add(records) == 3
    assert billing.partitions() == [(2025, 1), (2025, 2), (2025, 3)]
    assert billing.query("acme", feb - US, feb) == records[:2]
    assert billing.drop_partitions_before(feb - US) == 0
    assert billing.drop_partitions_before(feb) == 1
    assert billing.partitions() == [(2025, 2), (2025, 3)]
    assert billing.query("acme", feb - US, feb) == records[1:2]
    assert billing.drop_partitions_before(feb) == 0
    # The dropped request id may be stored again; its month comes back.
    assert billing.add([records[0], records[1]]) == 1
    assert billing.partitions() == [(2025, 1), (2025, 2), (2025, 3)]
    assert (
        billing.drop_partitions_before(datetime(2025, 4, 1, tzinfo=timezone.utc)) == 3
    )
    assert billing.query("acme", feb - US, feb + timedelta(days=90)) == []
    assert billing.tenant_ids() == []


def test_a_month_dropped_by_another_host_is_made_again(postgres_url: str) -> None:
    """A store that thinks a partition exists recovers when another store dropped it."""
    with (
        PostgresStores.open(postgres_url) as one,
        PostgresStores.open(postgres_url) as two,
    ):
        assert one.billing.add([rec(T0, "a")]) == 1
        assert two.billing.drop_partitions_before(T0 + timedelta(days=31)) == 1
        assert one.billing.add([rec(T0, "b")]) == 1
        assert [r.request_id for r in two.billing.query("acme", T0, T0)] == ["b"]


def test_the_extreme_months_have_partitions(postgres_stores: PostgresStores) -> None:
    """The first and the last instants Python can hold are stored and found."""
    first = datetime.min.replace(tzinfo=timezone.utc)
    last = datetime.max.replace(tzinfo=timezone.utc)
    records = [rec(first, "first"), rec(last, "last")]
    assert postgres_stores.billing.add(records) == 2
    assert postgres_stores.billing.query("acme", first, last) == records
    assert postgres_stores.billing.partitions() == [(1, 1), (9999, 12)]
    assert postgres_stores.billing.drop_partitions_before(last) == 1


def test_a_request_id_is_stored_once_across_batches_and_months(
    postgres_stores: PostgresStores,
) -> None:
    """The same request id at another time, in another month or batch, is skipped."""
    billing = postgres_stores.billing
    assert billing.add([rec(T0, "r1"), rec(T0 + US, "r2")]) == 2
    later = T0 + timedelta(days=62)
    assert billing.add([rec(later, "r1"), rec(later, "r3")]) == 1
    assert billing.add([rec(later, "r4"), rec(T0 - timedelta(days=400), "r4")]) == 1
    found = billing.query("acme", T0 - timedelta(days=999), later)
    assert sorted(r.request_id for r in found) == ["r1", "r2", "r3", "r4"]
    assert [r.timestamp for r in found if r.request_id == "r1"] == [T0]


def test_concurrent_adds_of_the_same_ids_store_each_once(postgres_url: str) -> None:
    """Eight threads on two pools adding overlapping batches: each id stored once, no deadlock."""
    with (
        PostgresStores.open(postgres_url) as one,
        PostgresStores.open(postgres_url) as two,
    ):
        ids = [f"r{i:03d}" for i in range(200)]

        def add(n: int) -> int:
            store = (one, two)[n % 2].billing
            batch = ids[::-1] if n % 3 else ids
            month = T0 + timedelta(days=40 * (n % 4))
            return sum(
                store.add([rec(month, r) for r in batch[i : i + 50]])
                for i in range(0, 200, 50)
            )

        with ThreadPoolExecutor(8) as pool:
            added = sum(pool.map(add, range(8)))
        assert added == 200
        found = one.billing.query("acme", T0, T0 + timedelta(days=200))
        assert sorted(r.request_id for r in found) == ids


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3 * 86_400 * 40),
            st.sampled_from(["a", "b", "模"]),
            st.integers(0, 2**63 - 1),
            st.integers(0, 1000),
        ),
        max_size=40,
    ),
    st.sampled_from([(), ("model",), ("day",), ("model", "day")]),
)
def test_summary_equals_summarize_of_query(
    postgres_session_url: str,
    rows: list[tuple[int, str, int, int]],
    by: tuple[str, ...],
) -> None:
    """The SQL summary equals summarize(query(...)) for any records, huge counts included."""
    import uuid

    tenant = f"t-{uuid.uuid4().hex}"
    records = [
        BillingRecord(tenant, i, o, T0 + timedelta(seconds=s), m, f"{tenant}-{n}")
        for n, (s, m, i, o) in enumerate(rows)
    ]
    with PostgresStores.open(postgres_session_url, min_size=0) as stores:
        assert stores.billing.add(records) == len(records)
        start, end = T0 + timedelta(days=20), T0 + timedelta(days=100)
        found = stores.billing.query(tenant, start, end)
        assert found == sorted(
            (r for r in records if start <= r.timestamp <= end),
            key=lambda r: (r.timestamp, r.request_id),
        )
        assert stores.billing.summary(tenant, start, end, by) == summarize(found, by)


def test_a_meter_with_a_writer_thread(postgres_stores: PostgresStores) -> None:
    """TokenMeter's background writer stores into PostgreSQL unchanged."""
    now = T0.timestamp()
    meter = TokenMeter(postgres_stores.billing, clock=lambda: now)
    for i in range(300):
        meter.record("acme", 1, 2, model="m", request_id=f"w{i}")
    meter.flush()
    meter.close()
    assert len(postgres_stores.billing.query("acme", T0, T0)) == 300
    assert postgres_stores.billing.tenant_ids() == ["acme"]


# -- audit --------------------------------------------------------------------


def _verify(stores: PostgresStores, key: bytes | None = None) -> AuditVerification:
    return stores.audit.walk(lambda a, h, e: verify_chain(a, h, e, key))


@pytest.mark.slow
def test_audit_from_several_processes_forms_one_chain(postgres_url: str) -> None:
    """Three processes logging at once (writer threads, keyed chain): one chain that verifies."""
    code = textwrap.dedent(
        """
        import sys
        from datetime import datetime, timezone
        from zerfoo_cloud import AuditEntry, AuditLogger
        from zerfoo_cloud.stores.postgres import PostgresStores
        with PostgresStores.open(sys.argv[1]) as stores:
            audit = AuditLogger(stores.audit, secret=b"audit-secret-0123456789", linger=0.001)
            for i in range(200):
                audit.log(AuditEntry(datetime.now(timezone.utc), sys.argv[2], path=f"/{i}"))
            audit.close()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_url, f"t{n}"],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    with PostgresStores.open(postgres_url) as stores:
        audit = AuditLogger(stores.audit, secret=SECRET, background=False)
        report = audit.verify()
        assert report.ok, report.message
        assert report.checked == report.head.seq == 600
        assert not _verify(stores).ok  # unkeyed, the keyed hashes do not match
        audit.close()


def _logged(stores: PostgresStores, count: int) -> AuditLogger:
    audit = AuditLogger(stores.audit, secret=SECRET, background=False)
    for i in range(count):
        audit.log(AuditEntry(T0 + i * US, "acme", path=f"/{i}"))
    return audit


def _edit(url: str) -> None:
    _sql(
        url,
        "UPDATE audit SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '/2', '/x'), 'UTF8') WHERE seq = 3",
    )


def _delete_middle(url: str) -> None:
    _sql(url, "DELETE FROM audit WHERE seq = 3")


def _swap(url: str) -> None:
    _sql(
        url,
        "UPDATE audit SET seq = CASE seq WHEN 3 THEN -4 ELSE -3 END WHERE seq IN (3, 4);"
        "UPDATE audit SET seq = -seq WHERE seq < 0",
    )


def _garble(url: str) -> None:
    _sql(url, "UPDATE audit SET entry = '{not json'::bytea WHERE seq = 3")


def _delete_last(url: str) -> None:
    _sql(url, "DELETE FROM audit WHERE seq = 5")


def _append_copy(url: str) -> None:
    _sql(
        url,
        "INSERT INTO audit SELECT 6, tenant_id, ts,"
        " convert_to(replace(convert_from(entry, 'UTF8'), '\"seq\":5', '\"seq\":6'), 'UTF8') FROM audit WHERE seq = 5",
    )


def _insert_middle(url: str) -> None:
    # Entries 3.. move up one; a copy of entry 2 renumbered 3 goes between.
    _sql(
        url,
        "UPDATE audit SET seq = -(seq + 1) WHERE seq >= 3;"
        "UPDATE audit SET seq = -seq WHERE seq < 0;"
        "INSERT INTO audit SELECT 3, tenant_id, ts,"
        " convert_to(replace(convert_from(entry, 'UTF8'), '\"seq\":2', '\"seq\":3'), 'UTF8') FROM audit WHERE seq = 2",
    )


@pytest.mark.parametrize(
    ("tamper", "seq", "problem"),
    [
        (_edit, 3, AuditProblem.ALTERED),
        (_delete_middle, 3, AuditProblem.REMOVED),
        (_swap, 3, AuditProblem.REORDERED),
        (_garble, 3, AuditProblem.ALTERED),
        (_delete_last, 5, AuditProblem.REMOVED),
        (_append_copy, 6, AuditProblem.INSERTED),
        (_insert_middle, 3, AuditProblem.INSERTED),
    ],
)
def test_verify_finds_tampering_in_the_tables(
    postgres_stores: PostgresStores,
    postgres_url: str,
    tamper: Callable[[str], None],
    seq: int,
    problem: AuditProblem,
) -> None:
    """Editing, deleting, swapping, garbling or adding rows with SQL is reported at the first bad position."""
    audit = _logged(postgres_stores, 5)
    assert audit.verify().ok
    tamper(postgres_url)
    report = audit.verify()
    assert (report.ok, report.seq, report.problem) == (False, seq, problem)
    audit.close()


def test_a_forged_entry_past_the_head_is_noticed_and_blocks_appends(
    postgres_stores: PostgresStores, postgres_url: str
) -> None:
    """A well-formed entry written after the head is reported as inserted; appends refuse to overwrite it."""
    audit = _logged(postgres_stores, 3)
    (last,) = audit.query("acme", T0 + 2 * US, T0 + 2 * US)
    forged = link_entry(
        ChainLink(3, last.hash), AuditEntry(T0 + 3 * US, "acme"), SECRET
    )
    import json

    _sql(
        postgres_url,
        "INSERT INTO audit VALUES (4, %s, %s, %s)",
        (b"acme", forged.timestamp, json.dumps(forged.to_dict()).encode()),
    )
    report = audit.verify()
    assert (report.seq, report.problem, report.checked) == (4, AuditProblem.INSERTED, 4)
    with pytest.raises(CorruptRecordError, match="past the head"):
        postgres_stores.audit.append(AuditEntry(T0, "acme"))
    audit.close()


def test_a_rewritten_head_is_noticed(
    postgres_stores: PostgresStores, postgres_url: str
) -> None:
    """A head row that does not match the last entry is reported."""
    audit = _logged(postgres_stores, 3)
    _sql(postgres_url, "UPDATE audit_head SET head_hash = repeat('f', 64)")
    report = audit.verify()
    assert (report.seq, report.problem) == (3, AuditProblem.ALTERED)
    _sql(postgres_url, "DELETE FROM audit_head")
    with pytest.raises(CorruptRecordError, match="head"):
        audit.verify()
    audit.close()


def test_a_batch_key_is_stored_once(postgres_url: str) -> None:
    """A batch appended again with its key stores nothing, also when sent at once from many threads."""
    with PostgresStores.open(postgres_url) as stores:
        batch = [AuditEntry(T0, "acme", path="/a"), AuditEntry(T0, "acme", path="/b")]
        stored = stores.audit.append_linked(batch, link_entry, batch_key="outbox-1")
        assert [e.seq for e in stored] == [1, 2]
        assert stores.audit.append_linked(batch, link_entry, batch_key="outbox-1") == []
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(
                    lambda _: stores.audit.append_linked(
                        batch, link_entry, batch_key="outbox-2"
                    ),
                    range(8),
                )
            )
        assert sorted(len(r) for r in results) == [0] * 7 + [2]
        assert stores.audit.append_linked(batch, link_entry) != []
        report = _verify(stores)
        assert report.ok
        assert report.head.seq == 6
        # Purging the log forgets the keys recorded before the cutoff.
        stores.audit.purge(T0)
        assert stores.audit.append_linked(batch, link_entry, batch_key="outbox-1") == []
        stores.audit.purge(datetime.now(timezone.utc) + timedelta(seconds=1))
        assert (
            len(stores.audit.append_linked(batch, link_entry, batch_key="outbox-1"))
            == 2
        )


def test_walk_streams_one_snapshot(postgres_url: str) -> None:
    """Appends made while a walk runs are not seen by it; the walk never loads everything at once."""
    with PostgresStores.open(postgres_url) as stores:
        stores.audit.append_linked(
            [AuditEntry(T0, "acme", path=f"/{i}") for i in range(5000)], link_entry
        )
        seen: list[int] = []

        def visit(
            anchor: ChainLink,
            head: ChainLink,
            entries: Iterator[tuple[int, AuditEntry | None]],
        ) -> ChainLink:
            for n, (seq, _) in enumerate(entries):
                if n == 10:
                    stores.audit.append(AuditEntry(T0, "acme"))
                seen.append(seq)
            return head

        head = stores.audit.walk(visit)
        assert head.seq == 5000
        assert seen == list(range(1, 5001))
        assert _verify(stores).ok


def test_purge_in_chunks_keeps_the_anchor(
    postgres_stores: PostgresStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge larger than one chunk drops every old entry; the rest still verifies."""
    import zerfoo_cloud.stores.postgres._audit as audit_module

    monkeypatch.setattr(audit_module, "PURGE_CHUNK", 3)
    stored = postgres_stores.audit.append_linked(
        [AuditEntry(T0 + i * US, "acme") for i in range(10)], link_entry
    )
    assert postgres_stores.audit.purge(T0 + 7 * US) == 7
    report = _verify(postgres_stores)
    assert report.ok
    assert report.anchor == ChainLink(7, stored[6].hash)


def test_audit_entries_it_cannot_store_are_refused_before_any_write(
    postgres_stores: PostgresStores,
) -> None:
    """No timestamp, or a tenant id past 256 bytes: InvalidConfigError, nothing stored."""
    audit = postgres_stores.audit
    assert audit.append_linked([], link_entry) == []
    for bad in (AuditEntry(None, "acme"), AuditEntry(T0, "x" * 257)):
        with pytest.raises(InvalidConfigError):
            audit.append_linked([AuditEntry(T0, "acme"), bad], link_entry)
    assert audit.append(AuditEntry(T0, "x" * 256)).seq == 1
    assert [e.seq for e in audit.query("x" * 256, T0, T0)] == [1]


def test_concurrent_updates_from_two_pools_lose_nothing(postgres_url: str) -> None:
    """Eight threads on two pools each raising a limit 25 times: every change is kept."""
    import attrs

    with (
        PostgresStores.open(postgres_url) as one,
        PostgresStores.open(postgres_url) as two,
    ):
        one.tenants.create(TenantRecord("acme", hash_api_key("k"), 0, 1000))

        def bump(n: int) -> None:
            store = (one, two)[n % 2].tenants
            for _ in range(25):
                store.update(
                    "acme", lambda r: attrs.evolve(r, rate_limit=r.rate_limit + 1)
                )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(bump, range(8)))
        record = two.tenants.get("acme")
        assert record is not None
        assert record.rate_limit == 200


@pytest.mark.skipif(sys.platform != "linux", reason="fork semantics on Linux")
def test_a_forked_child_makes_its_own_pool(postgres_url: str) -> None:
    """A child forked after open uses a pool of its own; the parent's sessions live on."""
    import os

    with PostgresStores.open(postgres_url, min_size=2, max_size=2) as stores:
        assert stores.tenants.list() == []
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            status = 1
            try:
                record = TenantRecord("child", hash_api_key("c"), 1, 1)
                stores.tenants.create(record)
                status = 0 if stores.tenants.get("child") == record else 1
                stores.close()
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # Every connection of the parent's pool still works (audit appends
        # are not retried on a lost connection).
        for n in range(1, 5):
            assert stores.audit.append(AuditEntry(T0, "acme")).seq == n
        assert [r.id for r in stores.tenants.list()] == ["child"]


def test_a_server_that_never_answers_times_out() -> None:
    """A listener that accepts and stays silent: StoreUnavailableError within the connect timeout."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            PostgresStores.open(
                f"postgresql://zc:{PASSWORD}@127.0.0.1:{port}/zc", connect_timeout=1
            )
        assert time.monotonic() - began < 5
        assert f"127.0.0.1:{port}/zc" in str(info.value)
        assert PASSWORD not in str(info.value)


def test_the_urls_options_are_kept_beside_the_session_timezone() -> None:
    # A URL's ``options`` (say a search_path: one schema per deployment)
    # must reach the server: dropping it silently put these stores' tables
    # and records in another schema (another deployment's, or public).
    require_postgres()
    with throwaway_database() as base:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA zc_two")
        url = f"{base}?options=-c%20search_path%3Dzc_two"
        upgrade_schema(url)
        stores = PostgresStores.open(url, max_size=2)
        try:
            at = datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc)
            stores.billing.add([BillingRecord("t-1", 1, 2, at, "m", "r-1")])
            with stores._db.connection("checking") as conn:
                session = conn.execute(
                    "SELECT current_schema(), current_setting('TimeZone')"
                ).fetchone()
        finally:
            stores.close()
        assert session == ("zc_two", "UTC")
        with psycopg.connect(base, autocommit=True) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name IN ('billing', 'tenants', 'audit')"
                )
            }
            stored = conn.execute("SELECT count(*) FROM zc_two.billing").fetchone()
        assert tables == {"zc_two"}
        assert stored == (1,)


def test_a_months_partition_in_another_schema_is_not_taken_for_this_ones() -> None:
    # Two deployments in one database, a schema each: the first to bill a
    # month must not keep the second from making that month's partition.
    require_postgres()
    with throwaway_database() as base:
        urls = []
        for schema in ("zc_one", "zc_two"):
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            urls.append(f"{base}?options=-c%20search_path%3D{schema}")
            upgrade_schema(urls[-1])
        at = datetime(2031, 5, 6, 7, 8, tzinfo=timezone.utc)
        for number, url in enumerate(urls):
            stores = PostgresStores.open(url, max_size=2)
            try:
                record = BillingRecord("t-1", 1, 2, at, "m", f"r-{number}")
                assert stores.billing.add([record]) == 1
                assert stores.billing.partitions() == [(2031, 5)]
            finally:
                stores.close()

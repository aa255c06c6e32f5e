"""
`open_stores`: every URL form on real LMDB folders and a real Redis, the
combinations of records and counters, closing, and the one-line errors of
bad URLs (never with the password).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tests._serving import ROOT, free_port, run_python
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.errors import InvalidConfigError, StoreError
from zerfoo_cloud.stores.lmdb import LMDBLimiterStore, LMDBStores
from zerfoo_cloud.stores.lmdb._stores import _OPEN
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.stores.open import (
    COUNTERS_ENV,
    OUTBOX_ENV,
    RECORDS_ENV,
    Stores,
    lmdb_folder,
    open_stores,
    outbox_folder,
    redact_url,
    stores_from_env,
)
from zerfoo_cloud.stores.outbox import Outbox, OutboxAuditStore, OutboxBillingStore
from zerfoo_cloud.stores.redis import (
    RedisKeyRevocations,
    RedisLimiterStore,
    RedisReplayCache,
)

SECRET = "hunter2-S3CRET"


def _admit_one(stores: Stores, tenant: str = "acme") -> None:
    """Create *tenant* with a rate limit of 1 and admit one request."""
    manager = TenantManager(stores.tenants, limits=stores.limits)
    key = f"zc-{tenant}-0123456789abcdef0123456789"
    manager.create(TenantConfig(id=tenant, api_key=key, rate_limit=1, token_budget=100))
    assert stores.limits.admit(
        None, [(f"{tenant}\x00req", 1.0, 1 / 60, 1)], time.time()
    )[1]


# --- LMDB and memory --------------------------------------------------------


@pytest.mark.parametrize("form", ["plain", "lmdb-url"])
def test_an_lmdb_folder_holds_records_and_counters(tmp_path: Path, form: str) -> None:
    folder = tmp_path / "store"
    url = str(folder) if form == "plain" else f"lmdb://{folder}"
    with open_stores(url) as stores:
        assert isinstance(stores.limits, LMDBLimiterStore)
        _admit_one(stores)
        assert stores.records_url == stores.counters_url == url
        assert stores.revocations is None
    assert (folder / "data.mdb").exists()
    with LMDBStores.open(folder) as lmdb:
        assert lmdb.tenants.get("acme") is not None
        assert lmdb.limits.get("acme\x00req") is not None


def test_one_folder_named_twice_is_opened_once(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with open_stores(str(folder), f"lmdb://{folder}") as stores:
        lmdb = LMDBStores.open(folder)
        # This handle plus the single one open_stores took.
        assert _OPEN.references(lmdb) == 2
        lmdb.close()
        _admit_one(stores)
    assert lmdb.closed


def test_close_is_idempotent_and_closes_every_backend(tmp_path: Path) -> None:
    records, counters = tmp_path / "records", tmp_path / "counters"
    stores = open_stores(str(records), str(counters))
    held = LMDBStores.open(counters)  # a second reference, closed below
    held.close()
    stores.close()
    stores.close()
    assert stores.closed
    # Both folders are closed: opening them again builds new objects.
    for folder in (records, counters):
        with LMDBStores.open(folder) as again:
            assert _OPEN.references(again) == 1


def test_lmdb_counters_in_another_folder(tmp_path: Path) -> None:
    records, counters = tmp_path / "records", tmp_path / "counters"
    with open_stores(str(records), str(counters)) as stores:
        _admit_one(stores)
    with LMDBStores.open(counters) as lmdb:
        assert lmdb.limits.get("acme\x00req") is not None
        assert lmdb.tenants.get("acme") is None
    with LMDBStores.open(records) as lmdb:
        assert lmdb.limits.get("acme\x00req") is None
        assert lmdb.tenants.get("acme") is not None


def test_memory_records_and_counters(tmp_path: Path) -> None:
    with open_stores("memory://") as stores:
        assert isinstance(stores.tenants, MemoryTenantStore)
        assert isinstance(stores.limits, MemoryLimiterStore)
        _admit_one(stores)
    with open_stores("memory://", str(tmp_path / "c")) as stores:
        assert isinstance(stores.limits, LMDBLimiterStore)
        _admit_one(stores)
    with open_stores(str(tmp_path / "r"), "memory://") as stores:
        assert isinstance(stores.limits, MemoryLimiterStore)
        assert stores.counters_url == "memory://"
        _admit_one(stores)


def test_lmdb_folder_of_each_form(tmp_path: Path) -> None:
    assert lmdb_folder("relative/store") == Path("relative/store")
    assert lmdb_folder(f"lmdb://{tmp_path}") == tmp_path
    assert lmdb_folder("lmdb:///with%20space") == Path("/with space")
    assert lmdb_folder("memory://") is None
    assert lmdb_folder("postgresql://db.internal/zc") is None
    assert lmdb_folder("redis://h:6379/0", counters=True) is None
    assert lmdb_folder("/c", counters=True) == Path("/c")


def test_writer_process_is_for_lmdb_records(tmp_path: Path) -> None:
    with open_stores(str(tmp_path / "s"), writer_process=True) as stores:
        lmdb = LMDBStores.open(tmp_path / "s")
        assert lmdb.writer_process is not None
        lmdb.close()
    with open_stores("memory://", writer_process=True) as stores:
        _admit_one(stores)


def test_stores_from_env(tmp_path: Path) -> None:
    folder = tmp_path / "env-store"
    with stores_from_env({RECORDS_ENV: str(folder), COUNTERS_ENV: ""}) as stores:
        assert stores.records_url == stores.counters_url == str(folder)
    with stores_from_env(
        {RECORDS_ENV: str(folder), COUNTERS_ENV: str(tmp_path / "other")},
        counters="memory://",
    ) as stores:
        assert stores.counters_url == "memory://"
    with stores_from_env({}, records="memory://") as stores:
        assert stores.records_url == "memory://"
    with pytest.raises(InvalidConfigError, match=f"set {RECORDS_ENV}"):
        stores_from_env({})


def test_a_failed_open_closes_what_it_opened(tmp_path: Path) -> None:
    records = tmp_path / "records"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError):
        open_stores(str(records), str(blocker / "sub"))
    with LMDBStores.open(records) as again:
        assert _OPEN.references(again) == 1


# --- PostgreSQL ---------------------------------------------------------------


def test_postgres_records_need_counters() -> None:
    url = f"postgresql://zc:{SECRET}@db.internal:5432/zc"
    with pytest.raises(InvalidConfigError) as caught:
        open_stores(url)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{COUNTERS_ENV}=redis://" in message
    assert "lmdb:///" in message
    assert SECRET not in message
    assert caught.value.field == "counters"


def test_postgres_without_the_extra_names_it() -> None:
    # psycopg made missing (or the PostgreSQL stores absent from this tree):
    # one MissingExtraError line naming the postgres extra.
    code = """
        import sys
        sys.modules["psycopg"] = None
        sys.modules["psycopg_pool"] = None
        from zerfoo_cloud.errors import MissingExtraError
        from zerfoo_cloud.stores.open import open_stores
        try:
            open_stores("postgresql://zc:SECRET@127.0.0.1:5432/zc", "memory://")
        except MissingExtraError as exc:
            print(exc.extra)
            print(exc)
    """
    done = run_python(textwrap.dedent(code), cwd=ROOT, timeout=60)
    extra, message = done.stdout.splitlines()
    assert extra == "postgres"
    assert "needs the 'postgres' extra" in message
    assert "pip install 'zerfoo-cloud[postgres]'" in message
    assert "SECRET" not in message


def test_outbox_folder_is_one_per_database(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path)}
    one = outbox_folder(f"postgresql://zc:{SECRET}@db.internal:5432/zc", env)
    assert one.parent == tmp_path / "zerfoo-cloud" / "outbox"
    assert one.name.startswith("zc-")
    assert SECRET not in str(one)
    # Another user or password: the same database, the same folder.
    assert outbox_folder("postgresql://other@db.internal/zc", env) == one
    for other in (
        "postgresql://zc@db.internal:5433/zc",
        "postgresql://zc@db2.internal:5432/zc",
        "postgresql://zc@db.internal:5432/zc2",
    ):
        assert outbox_folder(other, env) != one
    hostile = outbox_folder("postgresql://h/..%2F..%2Fetc", env)
    assert hostile.parent == one.parent
    assert OUTBOX_ENV == "ZERFOO_CLOUD_OUTBOX"
    given = tmp_path / "here"
    assert outbox_folder("postgresql://h/zc", {OUTBOX_ENV: str(given)}) == given


@pytest.mark.postgres
@pytest.mark.redis
def test_postgres_records_and_redis_counters_make_a_fleet(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    counters = f"{redis_url}?prefix={redis_prefix}"
    folder = tmp_path / "outbox"
    with open_stores(postgres_url, counters, outbox=folder) as stores:
        assert isinstance(stores.revocations, RedisKeyRevocations)
        assert stores.revocations.channel == (redis_prefix + "revoked").encode()
        assert isinstance(stores.billing, OutboxBillingStore)
        assert isinstance(stores.audit, OutboxAuditStore)
        assert isinstance(stores.outbox, Outbox)
        assert stores.outbox.path == folder
        heard: list[str | None] = []
        manager = TenantManager(
            stores.tenants, limits=stores.limits, revocations=stores.revocations
        )
        listener = stores.revocations.subscribe(heard.append)
        try:
            manager.create(TenantConfig("acme", "zc-key-acme-1", 5, 0))
            deadline = time.monotonic() + 5
            while "acme" not in heard:
                assert time.monotonic() < deadline, heard
                time.sleep(0.01)
        finally:
            listener.close()
            manager.close()
        outbox = stores.outbox
    assert outbox.closed
    assert stores.revocations.connection.closed
    # LMDB records: no outbox, no revocations without Redis.
    with open_stores(str(tmp_path / "lmdb")) as stores:
        assert stores.revocations is None
        assert stores.outbox is None


# --- Redis --------------------------------------------------------------------


@pytest.mark.redis
def test_redis_counters_share_one_connection(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    url = f"{redis_url}?prefix={redis_prefix}&lease_seconds=30&socket_timeout=2"
    with open_stores(str(tmp_path / "s"), url) as stores:
        assert isinstance(stores.limits, RedisLimiterStore)
        assert isinstance(stores.replay, RedisReplayCache)
        assert stores.limits.connection is stores.replay.connection
        _admit_one(stores)
        stores.check_records()
        stores.check_counters()
        client = stores.limits.connection.client
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        assert keys, "the bucket is in Redis"
        assert stores.replay.add("assertion-1", time.time() + 60, time.time())
        assert not stores.replay.add("assertion-1", time.time() + 60, time.time())
        with LMDBStores.open(tmp_path / "s") as lmdb:
            # Counters went to Redis, not to the records folder.
            assert lmdb.limits.get("acme\x00req") is None
        for key in client.scan_iter(match=redis_prefix + "*"):
            client.delete(key)
    assert stores.limits.connection.closed


@pytest.mark.redis
def test_redis_cluster_counters(
    tmp_path: Path, redis_cluster_url: str, redis_prefix: str
) -> None:
    url = f"{redis_cluster_url}?cluster=1&prefix={redis_prefix}"
    with open_stores(str(tmp_path / "s"), url) as stores:
        assert isinstance(stores.limits, RedisLimiterStore)
        assert type(stores.limits.connection.client).__name__ == "RedisCluster"
        _admit_one(stores)
        stores.check_counters()
        assert stores.limits.get("acme\x00req") is not None
        assert stores.replay.add("cluster-assertion", time.time() + 60, time.time())
        stores.limits.clear("")
    # cluster=0 is a single Redis: the node answers, with MOVED for most keys.
    with open_stores("memory://", redis_cluster_url + "?cluster=0") as stores:
        assert isinstance(stores.limits, RedisLimiterStore)
        assert type(stores.limits.connection.client).__name__ == "Redis"


@pytest.mark.redis
def test_redis_down_fails_the_counters_check(tmp_path: Path) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?connect_timeout=0.5"
    with open_stores(str(tmp_path / "s"), url) as stores:
        stores.check_records()
        with pytest.raises(StoreError) as caught:
            stores.check_counters()
    assert SECRET not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


# --- Bad URLs -----------------------------------------------------------------

BAD_RECORDS = {
    "ftp://h/x": "unknown scheme 'ftp'",
    "redis://h:6379/0": "unknown scheme 'redis'",
    "lmdb://relative/store": "absolute path after three slashes",
    "lmdb://": "needs a folder",
    "lmdb:///": "needs a folder",
    "lmdb:///s?map_size=1": "no query parameters",
    "memory://x": "memory:// takes no host",
    "memory://?x=1": "memory:// takes no host",
    "postgresql:///zc": "names no host",
    f"postgresql://u:{SECRET}@h:port/zc": "port is not a number",
    "": "folder path is empty",
    "://x": "neither a folder path nor a URL",
    # A scheme without "//" is a typo, not a folder named "postgresql:".
    "postgresql:/h/zc": "write postgresql://",
    f"postgres:u:{SECRET}@h/zc": "write postgres://",
    "LMDB:/var/lib/zc": "write LMDB://",
    # libpq's key=value form is not a folder either (PostgresStores takes it).
    f"host=db.internal dbname=zc password={SECRET}": "write postgresql://",
    f" user=zc password='{SECRET} x' host=h": "write postgresql://",
}
BAD_COUNTERS = {
    "postgresql://h/zc": "unknown scheme 'postgresql'",
    f"redis://:{SECRET}@/0": "names no host",
    f"redis://:{SECRET}@h:99999/0": "port is not a number",
    f"redis://:{SECRET}@h:x/0": "port is not a number",
    f"redis://:{SECRET}@[::1/0": "does not parse",
    "redis://h/zero": "database number",
    "redis://h/0?pool=3": "unknown query parameter 'pool'",
    f"redis://h/0?password={SECRET}": "unknown query parameter 'password'",
    "redis://h/0?cluster=maybe": "cluster must be 1 or 0",
    "redis://h/3?cluster=1": "database 0 only",
    "redis://h/0?socket_timeout=0": "positive number of seconds",
    "redis://h/0?lease_seconds=1e12": "positive number of seconds",
    "redis://h/0?connect_timeout=nan": "positive number of seconds",
    "redis://h/0?prefix=a&prefix=b": "given twice",
    "redis://h/0#frag": "no #fragment",
    "lmdb://host/abs": "absolute path after three slashes",
    "redis:6379": "write redis://",
    f"rediss:/:{SECRET}@h:6379/0": "write rediss://",
    "memory:": "write memory://",
}


@pytest.mark.parametrize(("url", "why"), sorted(BAD_RECORDS.items()))
def test_bad_records_urls(url: str, why: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        open_stores(url, "memory://")
    message = str(caught.value)
    assert why in message
    assert f"({RECORDS_ENV}, --db)" in message
    assert caught.value.field == "records"
    assert "\n" not in message
    assert SECRET not in message
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


@pytest.mark.parametrize(("url", "why"), sorted(BAD_COUNTERS.items()))
def test_bad_counters_urls(url: str, why: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        open_stores(str(tmp_path / "s"), url)
    message = str(caught.value)
    assert why in message
    assert f"({COUNTERS_ENV}, --counters)" in message
    assert caught.value.field == "counters"
    assert "\n" not in message
    assert SECRET not in message
    assert caught.value.__context__ is None
    assert not (tmp_path / "s").exists(), "nothing is opened for a bad URL"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw@h/0", "rediss://user:***@h/0"),
        ("redis://pw-as-user@h/0", "redis://***@h/0"),
        ("redis://:p@ss/w:rd@h/0", "redis://:***@h/0"),
        ("redis://:pa?ss@h/0", "redis://:***@h/0"),
        ("redis://:pa#ss@h/0?prefix=x", "redis://:***@h/0?prefix=x"),
        ("redis://u:pw@h/0?prefix=a@b", "redis://u:***@b"),
        ("redis://h/0?prefix=a@b", "redis://***@b"),
        (
            "postgresql://u:pw@h/db?sslmode=require",
            "postgresql://u:***@h/db?sslmode=require",
        ),
        (
            "postgresql://h/db?password=pw&user=u",
            "postgresql://h/db?password=***&user=u",
        ),
        ("postgres://u@h/db?sslpassword=pw", "postgres://***@h/db?sslpassword=***"),
        # libpq decodes the names of query parameters as well as values.
        ("postgresql://h/db?p%61ssword=pw", "postgresql://h/db?p%61ssword=***"),
        ("postgresql://h/db?%70assword=pw", "postgresql://h/db?%70assword=***"),
        ("/var/lib/zerfoo-cloud", "/var/lib/zerfoo-cloud"),
        ("lmdb:///var/lib/zc", "lmdb:///var/lib/zc"),
        ("memory://", "memory://"),
        ("redis://h:6379/0?prefix=a:", "redis://h:6379/0?prefix=a:"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_with_passwords_are_redacted_in_reprs(tmp_path: Path) -> None:
    from zerfoo_cloud.serve import ServeConfig

    url = f"redis://:{SECRET}@127.0.0.1:1/0"
    with open_stores(str(tmp_path / "s"), url) as stores:
        assert SECRET not in repr(stores)
        assert SECRET not in stores.counters_url
        assert SECRET not in repr(stores.limits)
    config = ServeConfig(
        db=f"postgresql://u:{SECRET}@h/zc", counters=url, upstream="http://u"
    )
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_import_does_not_load_redis() -> None:
    done = run_python(
        """
        import sys
        import zerfoo_cloud.stores.open
        print("redis" in sys.modules)
        """,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "False"


def test_outbox_folder_reads_host_port_and_dbname_from_the_query(
    tmp_path: Path,
) -> None:
    # libpq takes host, port and dbname from the query too (and they win
    # over the URL's): two databases named only there must not share an
    # outbox, or one's billing would be drained into the other.
    env = {"XDG_STATE_HOME": str(tmp_path)}
    one = outbox_folder("postgresql:///zc?host=db1.internal", env)
    for other in (
        "postgresql:///zc?host=db2.internal",
        "postgresql:///zc?host=/var/run/postgresql",
        "postgresql:///zc?host=db1.internal&port=5433",
        "postgresql:///?host=db1.internal&dbname=zc2",
        "postgresql://db2.internal/zc?host=db1.internal&dbname=zc2",
    ):
        assert outbox_folder(other, env) != one, other
    same = (
        "postgresql://db1.internal:5432/zc",
        "postgresql://elsewhere/other?host=db1.internal&dbname=zc",
        "postgresql://u@/zc?host=db1.internal&port=5432&sslmode=require",
    )
    for alias in same:
        assert outbox_folder(alias, env) == one, alias
    assert outbox_folder("postgresql:///?host=h&dbname=billing", env).name.startswith(
        "billing-"
    )

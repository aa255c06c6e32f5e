"""
Open every store of a service from two URLs: records and counters.

Records (tenants, billing, audit) and counters (limits, concurrency slots,
the SAML replay cache) may live in different backends: records in LMDB on
one host or in PostgreSQL for a fleet, counters in LMDB on one host or in
Redis for a fleet::

    from zerfoo_cloud.stores.open import open_stores

    with open_stores("/var/lib/zerfoo-cloud", "redis://redis.internal:6379/0") as stores:
        tenants = TenantManager(stores.tenants, limits=stores.limits)

`stores_from_env` reads the two URLs from `RECORDS_ENV` and `COUNTERS_ENV`
(``ZERFOO_CLOUD_DB`` and ``ZERFOO_CLOUD_COUNTERS``), as ``zerfoo-cloud
serve`` and every ``zerfoo-cloud`` command do. The URL forms and the
combinations allowed are in ``docs/fleet.md``.

With Redis counters the stores carry `Stores.revocations` (a
`zerfoo_cloud.stores.redis.RedisKeyRevocations` on the same Redis), so a
key revoked through one host is refused by every host. PostgreSQL records
write billing and audit through a durable local outbox
(`zerfoo_cloud.stores.outbox`): while the database cannot be reached they
wait on this host's disk, in the folder `outbox_folder` names, and are
drained into it, exactly once, when it is back.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError, MissingExtraError
from zerfoo_cloud.stores._store_set import Stores
from zerfoo_cloud.stores._urls import (
    StoreTarget,
    parse_counters_url,
    parse_records_url,
    redact_url,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryBillingStore,
    MemoryLimiterStore,
    MemoryPriceStore,
    MemoryReplayCache,
    MemoryTenantStore,
)
from zerfoo_cloud.stores.outbox import Outbox, OutboxAuditStore, OutboxBillingStore

__all__ = [
    "COUNTERS_ENV",
    "OUTBOX_ENV",
    "RECORDS_ENV",
    "Stores",
    "lmdb_folder",
    "open_stores",
    "outbox_folder",
    "redact_url",
    "state_folder",
    "stores_from_env",
]

#: The environment variable naming the records store (a folder or a URL).
RECORDS_ENV = "ZERFOO_CLOUD_DB"
#: The environment variable naming the counters store (a folder or a URL).
COUNTERS_ENV = "ZERFOO_CLOUD_COUNTERS"
#: The environment variable naming the local outbox folder of PostgreSQL
#: records (default: `outbox_folder`).
OUTBOX_ENV = "ZERFOO_CLOUD_OUTBOX"

_RECORDS_WHERE = f"{RECORDS_ENV}, --db"
_COUNTERS_WHERE = f"{COUNTERS_ENV}, --counters"
_NO_COUNTERS = (
    f"PostgreSQL records need a counters store: set {COUNTERS_ENV}=redis://HOST:6379/0 "
    "(or --counters) for a fleet, or lmdb:///FOLDER for one host"
)


def lmdb_folder(url: str, *, counters: bool = False) -> Path | None:
    """
    The LMDB folder that the records URL *url* (with *counters*: the
    counters URL) names, or ``None`` when it names another backend.

    Raises:
        InvalidConfigError: *url* is not a records (counters) URL.
    """
    if counters:
        return parse_counters_url(url, _COUNTERS_WHERE).folder
    return parse_records_url(url, _RECORDS_WHERE).folder


def outbox_folder(records: str, env: Mapping[str, str] | None = None) -> Path:
    """
    The local outbox folder of the PostgreSQL records URL *records*:
    `OUTBOX_ENV` (``ZERFOO_CLOUD_OUTBOX``) of *env* (default: the process
    environment) when set, else one folder per database under the user's
    state folder: ``$XDG_STATE_HOME/zerfoo-cloud/outbox/DB-HASH``
    (``~/.local/state`` when ``XDG_STATE_HOME`` is unset), where *DB* is the
    database name and *HASH* is taken from host, port and name (those of
    the query over the URL's, as libpq reads them; never the user or
    password), so every process of one host writing to one
    database shares one outbox, and another database gets another.

    .. versionadded:: 0.1.0
    """
    environ = os.environ if env is None else env
    given = environ.get(OUTBOX_ENV)
    if given:
        return Path(given)
    parts = urlsplit(records)
    # libpq reads host, port and dbname from the query too, over the URL's.
    query = dict(parse_qsl(parts.query))
    database = query.get("dbname") or unquote(parts.path.lstrip("/")) or "postgres"
    host = query.get("host") or parts.hostname or ""
    port = query.get("port") or parts.port or 5432
    return state_folder("outbox", database, f"{host}:{port}/{database}", environ)


def state_folder(kind: str, name: str, where: str, env: Mapping[str, str]) -> Path:
    """
    The folder of this host's *kind* state (``outbox``, ``alerts``) for the
    store at *where*: ``$XDG_STATE_HOME/zerfoo-cloud/KIND/NAME-HASH`` of
    *env* (``~/.local/state`` when ``XDG_STATE_HOME`` is unset), *NAME*
    made safe for a file name and *HASH* taken from *where*.

    .. versionadded:: 0.1.0
    """
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(where.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64].lstrip(".") or "db"
    return Path(state) / "zerfoo-cloud" / kind / f"{safe}-{digest}"


class _Opening:
    """The backends opened so far, so a failure closes them all."""

    def __init__(self) -> None:
        self.closers: list[Callable[[], Any]] = []
        self.lmdb: dict[Path, LMDBStores] = {}
        self.revocations: Any = None
        self.outbox: Any = None

    def lmdb_stores(self, folder: Path, *, writer_process: bool) -> LMDBStores:
        key = Path(os.path.abspath(folder))  # noqa: PTH100 - no symlink resolving
        stores = self.lmdb.get(key)
        if stores is None:
            stores = LMDBStores.open(folder, writer_process=writer_process)
            self.lmdb[key] = stores
            self.closers.append(stores.close)
        return stores

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _postgres_stores(url: str) -> Any:
    feature = "PostgreSQL records (a postgresql:// URL)"
    try:
        # The postgres extra (psycopg): imported only for a postgresql:// URL.
        with needs_extra("postgres", feature):
            from zerfoo_cloud.stores.postgres import (  # type: ignore[import-not-found, unused-ignore]
                PostgresStores,
            )
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("zerfoo_cloud.stores.postgres"):
            raise
        # This installation has no PostgreSQL stores at all.
        raise MissingExtraError("postgres", feature, exc.name) from exc
    return PostgresStores.open(url)


def _with_outbox(stores: Any, folder: Path, opening: _Opening) -> tuple[Any, Any]:
    """PostgreSQL billing and audit, each through the local outbox *folder*."""
    outbox = Outbox.open(folder)
    # Closers run last first: the stores stop draining, then the outbox
    # closes, then the database.
    opening.closers.append(outbox.close)
    opening.outbox = outbox
    billing = OutboxBillingStore(stores.billing, outbox)
    opening.closers.append(billing.close)
    audit = OutboxAuditStore(stores.audit, outbox)
    opening.closers.append(audit.close)
    return billing, audit


def _redis_counters(target: StoreTarget, opening: _Opening) -> tuple[Any, Any]:
    # The redis extra (redis-py): imported only for a redis:// URL.
    from zerfoo_cloud.stores.redis import (
        RedisConnection,
        RedisKeyRevocations,
        RedisLimiterStore,
        RedisReplayCache,
    )

    options = dict(target.options)
    prefix = str(options.pop("prefix", "zc:"))
    store_options: dict[str, Any] = {
        name: options.pop(name) for name in ("lease_seconds",) if name in options
    }
    connection, _ = RedisConnection.from_url(target.url, options)
    # One connection pool for both stores; each close is idempotent.
    opening.closers.append(connection.close)
    limits = RedisLimiterStore(connection, prefix=prefix, **store_options)
    opening.closers.append(limits.close)
    replay = RedisReplayCache(connection, prefix=prefix)
    # Its own connection: the listening thread holds one for its
    # subscription; closed first (closers run last first).
    revocations_connection, _ = RedisConnection.from_url(
        target.url, dict(target.options)
    )
    opening.revocations = RedisKeyRevocations(revocations_connection, prefix=prefix)
    opening.closers.append(opening.revocations.close)
    return limits, replay


def _records(target: StoreTarget, opening: _Opening, *, writer_process: bool) -> Any:
    if target.kind == "lmdb":
        assert target.folder is not None
        return opening.lmdb_stores(target.folder, writer_process=writer_process)
    if target.kind == "memory":
        return _MemoryRecords()
    stores = _postgres_stores(target.url)
    opening.closers.append(stores.close)
    return stores


class _Records:
    def __init__(self, tenants: Any, billing: Any, audit: Any, prices: Any) -> None:
        self.tenants = tenants
        self.billing = billing
        self.audit = audit
        self.prices = prices


class _MemoryRecords:
    def __init__(self) -> None:
        self.tenants = MemoryTenantStore()
        self.billing = MemoryBillingStore()
        self.audit = MemoryAuditStore()
        self.prices = MemoryPriceStore()


def _counters(target: StoreTarget, opening: _Opening) -> tuple[Any, Any]:
    if target.kind == "lmdb":
        assert target.folder is not None
        stores = opening.lmdb_stores(target.folder, writer_process=False)
        return stores.limits, stores.replay
    if target.kind == "memory":
        return MemoryLimiterStore(), MemoryReplayCache()
    return _redis_counters(target, opening)


def open_stores(
    records: str,
    counters: str | None = None,
    *,
    writer_process: bool = False,
    outbox: str | os.PathLike[str] | None = None,
) -> Stores:
    """
    Open the records store *records* and the counters store *counters*.

    Args:
        records: where tenants, billing and audit live: a folder path or
            ``lmdb:///absolute/folder`` (LMDB, created if missing),
            ``memory://`` (this process only, gone when closed), or
            ``postgresql://user:password@host:5432/db`` (also
            ``postgres://``; the ``postgres`` extra).
        counters: where limits, concurrency slots and the SAML replay cache
            live: a folder path or ``lmdb:///absolute/folder``,
            ``memory://``, or ``redis://[:password@]host:6379/0``
            (``rediss://`` for TLS; the ``redis`` extra) with optional
            query parameters ``cluster=1`` (a Redis Cluster: the URL names
            one node), ``prefix`` (of every key, ``zc:`` by default),
            ``lease_seconds``, ``socket_timeout`` and ``connect_timeout``.
            ``None``: the records backend holds them (LMDB, memory); one
            LMDB folder named by both is opened once.
        writer_process: LMDB records commit billing and audit batches from
            one child process (see `LMDBStores.open`); ``serve`` sets it.
        outbox: the local outbox folder of PostgreSQL records (billing and
            audit wait there while the database cannot be reached; see
            `zerfoo_cloud.stores.outbox.Outbox`); ``None``: `outbox_folder`
            of *records* (``ZERFOO_CLOUD_OUTBOX``, else a folder per
            database under the user's state folder). Other records ignore
            it.

    Returns:
        The `Stores`; close it (or use it in a ``with`` block). With Redis
        counters its ``revocations`` is a
        `zerfoo_cloud.stores.redis.RedisKeyRevocations` on that Redis (with
        the URL's ``prefix``); otherwise ``None``. With PostgreSQL records
        its ``billing`` and ``audit`` are an
        `zerfoo_cloud.stores.outbox.OutboxBillingStore` and
        `zerfoo_cloud.stores.outbox.OutboxAuditStore`, and its ``outbox``
        the `zerfoo_cloud.stores.outbox.Outbox` they share. Its ``prices``
        is the records backend's `zerfoo_cloud.stores.protocols.PriceStore`.

    Raises:
        InvalidConfigError: a URL is malformed, or PostgreSQL records come
            without counters (limits would then hold per host).
        MissingExtraError: the backend's extra is not installed.
        StoreError: a store cannot be opened.

    .. versionadded:: 0.1.0
    """
    record_target = parse_records_url(records, _RECORDS_WHERE)
    if counters is None:
        if record_target.kind == "postgresql":
            raise InvalidConfigError(_NO_COUNTERS, field="counters")
        counter_target = record_target
    else:
        counter_target = parse_counters_url(counters, _COUNTERS_WHERE)
    opening = _Opening()
    try:
        opened = _records(record_target, opening, writer_process=writer_process)
        if counters is None and record_target.kind == "memory":
            limits, replay = MemoryLimiterStore(), MemoryReplayCache()
        else:
            limits, replay = _counters(counter_target, opening)
        if record_target.kind == "postgresql":
            folder = outbox_folder(records) if outbox is None else Path(outbox)
            billing, audit = _with_outbox(opened, folder, opening)
            opened = _Records(opened.tenants, billing, audit, opened.prices)
    except BaseException:
        opening.close()
        raise
    return Stores(
        tenants=opened.tenants,
        limits=limits,
        billing=opened.billing,
        audit=opened.audit,
        replay=replay,
        prices=opened.prices,
        records_url=record_target.shown,
        counters_url=counter_target.shown,
        closers=opening.closers,
        revocations=opening.revocations,
        outbox=opening.outbox,
    )


def stores_from_env(
    env: Mapping[str, str] | None = None,
    *,
    records: str | None = None,
    counters: str | None = None,
    writer_process: bool = False,
) -> Stores:
    """
    `open_stores` of *records* and *counters*, each read from *env*
    (default: the process environment) when not given: `RECORDS_ENV`
    (``ZERFOO_CLOUD_DB``) and `COUNTERS_ENV` (``ZERFOO_CLOUD_COUNTERS``).
    An empty value counts as unset.

    Raises:
        InvalidConfigError: no records store is given, or as `open_stores`.

    .. versionadded:: 0.1.0
    """
    environ = os.environ if env is None else env
    records = records or environ.get(RECORDS_ENV) or None
    if records is None:
        msg = f"no records store given: set {RECORDS_ENV} to a folder or URL, or pass --db"
        raise InvalidConfigError(msg, field="records")
    counters = counters or environ.get(COUNTERS_ENV) or None
    return open_stores(records, counters, writer_process=writer_process)

"""
The PostgreSQL schema: its versioned migrations, `upgrade_schema` that
applies them, and the check every `PostgresStores.open` makes.

Each migration is an ordered list of SQL statements with a version number;
the ``zerfoo_cloud_schema`` table holds one row per version applied. An
upgrade runs in one transaction under a transaction-level advisory lock, so
several hosts may run it at once: one applies what is missing, the others
then find nothing to do.
"""

from __future__ import annotations

from typing import Any

from zerfoo_cloud.errors import SchemaMismatchError
from zerfoo_cloud.stores.postgres._connection import connect_once, parse_url

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_schema", "upgrade_schema"]

#: The advisory lock key of schema upgrades ("zc-schem" as an integer).
SCHEMA_LOCK = 0x7A632D736368656D

_V1 = (
    # Tenants: the record's stored form (TenantRecord.to_bytes), byte for
    # byte, beside the two columns it is found by.
    """
    CREATE TABLE tenants (
        id bytea PRIMARY KEY,
        key_hash bytea NOT NULL CONSTRAINT tenants_key_hash_key UNIQUE,
        record bytea NOT NULL
    )
    """,
    # Billing: one row per record, partitioned by month of its timestamp;
    # the partitions are made on demand by the writers.
    """
    CREATE TABLE billing (
        tenant_id bytea NOT NULL,
        ts timestamptz NOT NULL,
        request_id text COLLATE "C" NOT NULL,
        model bytea NOT NULL,
        input_tokens bigint NOT NULL,
        output_tokens bigint NOT NULL
    ) PARTITION BY RANGE (ts)
    """,
    "CREATE INDEX billing_tenant_time ON billing (tenant_id, ts, request_id)",
    # Every request id stored, whatever its month: a unique index on the
    # partitioned table would have to include the timestamp.
    """
    CREATE TABLE billing_request_ids (
        request_id text COLLATE "C" PRIMARY KEY,
        ts timestamptz NOT NULL
    )
    """,
    "CREATE INDEX billing_request_ids_ts ON billing_request_ids (ts)",
    # Audit: entries by seq, the entry's stored JSON byte for byte.
    """
    CREATE TABLE audit (
        seq bigint PRIMARY KEY,
        tenant_id bytea NOT NULL,
        ts timestamptz NOT NULL,
        entry bytea NOT NULL
    )
    """,
    "CREATE INDEX audit_tenant_time ON audit (tenant_id, ts, seq)",
    # The chain's head and anchor: one row, locked by every append; both
    # start at GENESIS (seq 0, 64 zeros).
    """
    CREATE TABLE audit_head (
        id integer PRIMARY KEY CHECK (id = 1),
        head_seq bigint NOT NULL,
        head_hash text NOT NULL,
        anchor_seq bigint NOT NULL,
        anchor_hash text NOT NULL
    );
    INSERT INTO audit_head VALUES (1, 0, repeat('0', 64), 0, repeat('0', 64))
    """,
    # Batches appended with a key: each key is stored once.
    """
    CREATE TABLE audit_batches (
        batch_key text COLLATE "C" PRIMARY KEY,
        stored_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

_V2 = (
    # Costs in billing records: the cost in micro-units, its currency and
    # the API key's id. Rows of version 1 read back as unpriced (cost 0, no
    # currency) with no key id. Adding a column with a constant default
    # rewrites nothing (PostgreSQL 11 and later).
    """
    ALTER TABLE billing
        ADD COLUMN cost bigint NOT NULL DEFAULT 0 CONSTRAINT billing_cost_range
            CHECK (cost >= 0),
        ADD COLUMN currency text COLLATE "C" NOT NULL DEFAULT '',
        ADD COLUMN key_id text COLLATE "C" NOT NULL DEFAULT ''
    """,
)

_V3 = (
    # Several keys per tenant: the hash of every key of every tenant (its
    # original key and those in the record's ``keys``), unique across all
    # tenants, removed with its tenant. ``tenants.key_hash`` stays the hash
    # of the tenant's original key. Tenants of version 2 have one key each.
    """
    CREATE TABLE tenant_keys (
        key_hash bytea CONSTRAINT tenant_keys_pkey PRIMARY KEY,
        tenant_id bytea NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX tenant_keys_tenant ON tenant_keys (tenant_id)",
    "INSERT INTO tenant_keys (key_hash, tenant_id) SELECT key_hash, id FROM tenants",
)

_V4 = (
    # The price table every host prices with: one row (id 1), its version
    # (one more per change; a change names the version it was based on)
    # and its stored form (zerfoo_cloud.pricing.encode_table). No row: no
    # table yet (version 0). IF NOT EXISTS: a table made by hand before the
    # upgrade is kept, not an error.
    """
    CREATE TABLE IF NOT EXISTS prices (
        id integer PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL CHECK (version > 0),
        body bytea NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)

#: The migrations, oldest first: ``(version, statements)``.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
)

#: The schema version this library reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]

_UPGRADE_HINT = "run 'zerfoo-cloud db upgrade --db URL' (or upgrade_schema(url))"


def _version(conn: Any) -> int:
    row = conn.execute(
        "SELECT to_regclass('zerfoo_cloud_schema') IS NOT NULL"
    ).fetchone()
    if not row[0]:
        return 0
    row = conn.execute(
        "SELECT coalesce(max(version), 0) FROM zerfoo_cloud_schema"
    ).fetchone()
    return int(row[0])


def _mismatch(location: str, found: int) -> SchemaMismatchError:
    error = SchemaMismatchError(f"postgresql {location}", found, SCHEMA_VERSION)
    if found < SCHEMA_VERSION:
        message = (
            f"PostgreSQL database {location} has schema version {found}, this "
            f"zerfoo-cloud needs version {SCHEMA_VERSION}: {_UPGRADE_HINT}"
        )
        error.args = (message,)
    return error


def check_schema(conn: Any, location: str) -> None:
    """
    Refuse a database whose schema is not the one this library knows.

    Raises:
        SchemaMismatchError: it was never upgraded or is older (the message
            says to run ``zerfoo-cloud db upgrade``), or it is newer.
    """
    found = _version(conn)
    if found != SCHEMA_VERSION:
        raise _mismatch(location, found)


def upgrade_schema(url: str, *, connect_timeout: float = 5.0) -> tuple[int, int]:
    """
    Bring the database at *url* to `SCHEMA_VERSION`; return ``(from, to)``.

    Applies the missing migrations in one transaction, under an advisory
    lock, so it is safe to run again (``(n, n)``) and from several hosts
    at once.

    Raises:
        InvalidConfigError: *url* is not a PostgreSQL URL.
        StoreUnavailableError: the server cannot be reached.
        SchemaMismatchError: the database is newer than this library.
        StoreError: a migration failed; nothing was changed.

    .. versionadded:: 0.1.0
    """
    location, _ = parse_url(url)
    with connect_once(url, "upgrading the schema", connect_timeout) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS zerfoo_cloud_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        found = _version(conn)
        if found > SCHEMA_VERSION:
            raise _mismatch(location, found)
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO zerfoo_cloud_schema (version) VALUES (%s)", (version,)
            )
    return found, SCHEMA_VERSION

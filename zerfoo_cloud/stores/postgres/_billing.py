"""
The PostgreSQL billing store: records partitioned by month, each request id
stored once whatever its month.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.billing_records import BillingRecord, UsageSummary, summary_rows
from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError

with needs_extra("postgres", "PostgreSQL stores"):
    import psycopg.errors
    from psycopg import sql

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres._connection import PostgresConnection

__all__ = ["PARTITION_LOCK", "PostgresBillingStore", "partition_name"]

_STORE = "postgresql:billing"
#: The advisory lock key taken to create or drop billing partitions
#: ("zc-bill-" as an integer).
PARTITION_LOCK = 0x7A632D62696C6C2D
_PARTITION = re.compile(r"billing_y(\d{4})m(\d{2})")

# One statement: the request ids that are new are recorded (sorted, so two
# writers lock them in the same order and never deadlock), and only their
# records go into the billing table.
_INSERT = """
WITH incoming AS (
    SELECT * FROM unnest(
        %s::bytea[], %s::timestamptz[], %s::text[], %s::bytea[], %s::int8[], %s::int8[],
        %s::int8[], %s::text[], %s::text[]
    ) AS r(
        tenant_id, ts, request_id, model, input_tokens, output_tokens,
        cost, currency, key_id
    )
), fresh AS (
    INSERT INTO billing_request_ids (request_id, ts)
    SELECT request_id, ts FROM incoming ORDER BY request_id
    ON CONFLICT DO NOTHING
    RETURNING request_id
)
INSERT INTO billing (
    tenant_id, ts, request_id, model, input_tokens, output_tokens,
    cost, currency, key_id
)
SELECT
    i.tenant_id, i.ts, i.request_id, i.model, i.input_tokens, i.output_tokens,
    i.cost, i.currency, i.key_id
FROM incoming AS i JOIN fresh USING (request_id)
"""

# The distinct tenants, one index probe each (a loose index scan).
_TENANTS = """
WITH RECURSIVE t(id) AS (
    (SELECT tenant_id FROM billing ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (
        SELECT tenant_id FROM billing WHERE tenant_id > t.id
        ORDER BY tenant_id LIMIT 1
    )
    FROM t WHERE t.id IS NOT NULL
)
SELECT id FROM t WHERE id IS NOT NULL
"""


def partition_name(year: int, month: int) -> str:
    """
    The name of the billing partition of *month* of *year*.
    """
    return f"billing_y{year:04d}m{month:02d}"


def _bound(year: int, month: int) -> str:
    # The first instant of a month, as PostgreSQL reads it (years past 9999
    # included, which Python's datetime cannot hold).
    return f"{year:04d}-{month:02d}-01 00:00:00+00"


def _next(year: int, month: int) -> tuple[int, int]:
    return year + month // 12, month % 12 + 1


def _aware(ts: datetime) -> datetime:
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        msg = "timestamps must be timezone-aware datetimes (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return ts


def _tenant_id(raw: bytes) -> str:
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError as exc:
        name = bytes(raw).decode("utf-8", "backslashreplace")
        raise CorruptRecordError(_STORE, name, str(exc)) from exc


class _MissingPartitionError(Exception):
    pass


class PostgresBillingStore:
    """
    A `zerfoo_cloud.stores.protocols.SummarizingBillingStore` and
    `zerfoo_cloud.stores.protocols.TenantListingBillingStore` in
    PostgreSQL, shared by every host using the database. Get it from
    `zerfoo_cloud.stores.postgres.PostgresStores`.

    ``billing`` holds one row per record (rows stored before schema
    version 2 read back with cost 0, no currency and no key id),
    partitioned by the month of its
    timestamp (UTC), indexed by (tenant, time, request id); a month's
    partition is made by the first `add` that needs it, in that add's
    transaction. ``billing_request_ids`` holds every request id stored: a
    unique index on the partitioned table would have to include the
    timestamp, so it could not stop one request id stored at two times.
    Timestamps are kept to the microsecond.

    .. versionadded:: 0.1.0
    """

    def __init__(self, db: PostgresConnection) -> None:
        self._db = db
        self._known: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def _missing(self, months: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(set(months) - self._known)

    def _ensure_partitions(self, conn: Any, missing: list[tuple[int, int]]) -> None:
        names = [partition_name(*m) for m in missing]
        found = {
            row[0]
            for row in conn.execute(
                # This billing table's partitions: a table of that name in
                # another schema (another deployment's) is not one.
                "SELECT c.relname FROM pg_inherits AS i "
                "JOIN pg_class AS c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'billing'::regclass AND c.relname = ANY(%s)",
                (names,),
            )
        }
        absent = [
            m for m, name in zip(missing, names, strict=True) if name not in found
        ]
        if absent:
            # Hosts creating the same month wait for each other here; the
            # second one then finds the table there.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            for year, month in absent:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF billing "
                        "FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(partition_name(year, month)),
                        sql.Literal(_bound(year, month)),
                        sql.Literal(_bound(*_next(year, month))),
                    )
                )
        with self._lock:
            self._known.update(missing)

    def add(self, records: Sequence[BillingRecord]) -> int:
        """
        Store the records whose request id is new, in one transaction (one
        INSERT statement, and the partitions it needs); return how many.
        """
        unique: dict[str, BillingRecord] = {}
        for record in records:
            unique.setdefault(record.request_id, record)
        if not unique:
            return 0
        rows = sorted(unique.values(), key=lambda r: r.request_id)
        months = {(r.timestamp.year, r.timestamp.month) for r in rows}
        params = (
            [r.tenant_id.encode() for r in rows],
            [r.timestamp for r in rows],
            [r.request_id for r in rows],
            [r.model.encode() for r in rows],
            [r.input_tokens for r in rows],
            [r.output_tokens for r in rows],
            [r.cost for r in rows],
            [r.currency for r in rows],
            [r.key_id for r in rows],
        )
        for attempt in range(2):
            missing = self._missing(months)

            def store(
                conn: Any,
                missing: list[tuple[int, int]] = missing,
                attempt: int = attempt,
            ) -> int:
                # One statement needs no transaction of its own; making a
                # partition first does, so that both happen or neither.
                with conn.transaction() if missing else nullcontext():
                    if missing:
                        self._ensure_partitions(conn, missing)
                    try:
                        return int(conn.execute(_INSERT, params).rowcount)
                    except psycopg.errors.CheckViolation as exc:
                        # A month this process thought was there was dropped.
                        if attempt:
                            raise
                        raise _MissingPartitionError from exc

            try:
                # Storing twice stores once: the request ids are known.
                return self._db.idempotent("storing billing records", store)
            except _MissingPartitionError:
                with self._lock:
                    self._known.clear()
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _decode(self, row: Sequence[Any]) -> BillingRecord:
        (
            tenant,
            ts,
            request_id,
            model,
            input_tokens,
            output_tokens,
            cost,
            currency,
            key_id,
        ) = row
        try:
            return BillingRecord(
                bytes(tenant).decode(),
                input_tokens,
                output_tokens,
                ts,
                bytes(model).decode(),
                request_id,
                cost,
                currency,
                key_id,
            )
        except (ValueError, InvalidConfigError) as exc:
            name = f"{bytes(tenant).decode('utf-8', 'backslashreplace')}/{request_id}"
            raise CorruptRecordError(_STORE, name, str(exc)) from exc

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        Return the tenant's records in ``[start, end]``, oldest first (ties by
        request id): one index range scan over the months it spans.

        Raises:
            InvalidConfigError: *start* or *end* is not aware.
            CorruptRecordError: a record in the range cannot be decoded.
        """
        start, end = _aware(start), _aware(end)
        rows = self._db.idempotent(
            "reading billing records",
            lambda conn: conn.execute(
                "SELECT tenant_id, ts, request_id, model, input_tokens, "
                "output_tokens, cost, currency, key_id FROM billing WHERE tenant_id = %s AND ts >= %s AND ts <= %s "
                "ORDER BY ts, request_id",
                (tenant_id.encode("utf-8", "surrogatepass"), start, end),
            ).fetchall(),
        )
        return [self._decode(row) for row in rows]

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> list[UsageSummary]:
        """
        Total the tenant's records in ``[start, end]`` by model and/or UTC
        day, in the database (one GROUP BY over the index range).
        """
        start, end = _aware(start), _aware(end)
        by_model = "model" in by
        by_day = "day" in by
        model = "model" if by_model else "NULL::bytea"
        day = "(ts AT TIME ZONE 'UTC')::date" if by_day else "NULL::date"
        query = (
            f"SELECT {model}, {day}, sum(input_tokens), sum(output_tokens), count(*), "  # noqa: S608 - fixed column texts
            "sum(cost), currency "
            "FROM billing WHERE tenant_id = %s AND ts >= %s AND ts <= %s "
            "GROUP BY 1, 2, currency"
        )
        found = self._db.idempotent(
            "totalling billing records",
            lambda conn: conn.execute(
                query, (tenant_id.encode("utf-8", "surrogatepass"), start, end)
            ).fetchall(),
        )
        totals: dict[
            tuple[str | None, date | None, str], tuple[int, int, int, int]
        ] = {}
        for (
            raw_model,
            raw_day,
            input_tokens,
            output_tokens,
            count,
            cost,
            currency,
        ) in found:
            try:
                name = None if raw_model is None else bytes(raw_model).decode()
            except UnicodeDecodeError as exc:
                raise CorruptRecordError(
                    _STORE, f"{tenant_id}/model", str(exc)
                ) from exc
            totals[name, raw_day, currency] = (
                int(input_tokens),
                int(output_tokens),
                int(count),
                int(cost),
            )
        return summary_rows(totals)

    def tenant_ids(self) -> list[str]:
        """
        Return the id of every tenant with at least one record, sorted: one
        index probe per tenant, not a full scan.
        """
        rows = self._db.idempotent(
            "listing billed tenants", lambda conn: conn.execute(_TENANTS).fetchall()
        )
        return sorted(_tenant_id(raw) for (raw,) in rows)

    def partitions(self) -> list[tuple[int, int]]:
        """
        Return the ``(year, month)`` of every billing partition, oldest first.
        """
        return self._db.idempotent("listing billing partitions", self._partitions)

    @staticmethod
    def _partitions(conn: Any) -> list[tuple[int, int]]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'billing'::regclass"
        ).fetchall()
        found = []
        for (name,) in rows:
            match = _PARTITION.fullmatch(name)
            if match:
                found.append((int(match[1]), int(match[2])))
        return sorted(found)

    def drop_partitions_before(self, before: datetime) -> int:
        """
        Drop every month that ends at or before *before*: its records and
        their request ids, in one transaction. Returns how many months.

        A month is dropped whole, never in part: records of the month
        *before* falls in are kept. A record added later for a dropped
        month makes its partition again.

        Raises:
            InvalidConfigError: *before* is not aware.
        """
        cutoff = _aware(before).astimezone(timezone.utc)
        dropped = 0
        with self._db.transaction("dropping billing partitions") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            end: str | None = None
            for year, month in self._partitions(conn):
                after = _next(year, month)
                if (
                    after[0] > cutoff.year
                    or datetime(*after, 1, tzinfo=timezone.utc) > cutoff
                ):
                    continue
                conn.execute(
                    sql.SQL("DROP TABLE {}").format(
                        sql.Identifier(partition_name(year, month))
                    )
                )
                dropped += 1
                end = _bound(*after)
            if end is not None:
                conn.execute("DELETE FROM billing_request_ids WHERE ts < %s", (end,))
        with self._lock:
            self._known.clear()
        return dropped

    def close(self) -> None:
        """
        Nothing to release: `PostgresStores.close` closes the pool.
        """

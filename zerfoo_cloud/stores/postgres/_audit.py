"""
The PostgreSQL audit store: one hash chain, appended to by every host.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud.audit_records.chain import ChainLink, entry_json, link_entry
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError
from zerfoo_cloud.stores.postgres._billing import _aware

with needs_extra("postgres", "PostgreSQL stores"):
    import psycopg.errors

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres._connection import PostgresConnection

__all__ = ["PURGE_CHUNK", "WALK_ROWS", "PostgresAuditStore"]

T = TypeVar("T")

_STORE = "postgresql:audit"
#: Entries purged per transaction, so a large purge never holds the head
#: lock for long.
PURGE_CHUNK = 10_000
#: Entries `PostgresAuditStore.walk` fetches from its server-side cursor at
#: a time.
WALK_ROWS = 2_000

_LOCK_HEAD = (
    "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_head "
    "WHERE id = 1 FOR UPDATE"
)


def _decode(seq: int, raw: bytes) -> AuditEntry:
    try:
        return AuditEntry.from_dict(json.loads(bytes(raw)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptRecordError(_STORE, f"entry {seq}", str(exc)) from exc


def _decoded(seq: int, raw: bytes) -> AuditEntry | None:
    try:
        return _decode(seq, raw)
    except CorruptRecordError:
        return None


def _link_json(
    link: Callable[[ChainLink, AuditEntry], AuditEntry],
) -> Callable[[ChainLink, AuditEntry], tuple[AuditEntry, bytes]]:
    found: Callable[[ChainLink, AuditEntry], tuple[AuditEntry, bytes]] | None = getattr(
        link, "link_json", None
    )
    if found is not None:
        return found

    def link_json(prev: ChainLink, entry: AuditEntry) -> tuple[AuditEntry, bytes]:
        linked = link(prev, entry)
        return linked, entry_json(linked)

    return link_json


def _head(row: Sequence[Any] | None) -> tuple[ChainLink, ChainLink]:
    if row is None:
        raise CorruptRecordError(
            "postgresql:audit_head", "1", "the head row is missing"
        )
    return ChainLink(int(row[0]), str(row[1])), ChainLink(int(row[2]), str(row[3]))


class PostgresAuditStore:
    """
    A `zerfoo_cloud.stores.protocols.ChainedAuditStore` in PostgreSQL,
    shared by every host using the database. Get it from
    `zerfoo_cloud.stores.postgres.PostgresStores`.

    ``audit`` holds the entries by seq (1, 2, 3, ...) as their stored JSON,
    with the tenant and time indexed for queries; ``audit_head`` is one row
    holding the chain's head and anchor. Every append locks that row
    (``SELECT ... FOR UPDATE``) for its transaction, so appends from any
    number of hosts are serialised into one chain, exactly as LMDB's write
    lock serialises the processes of one host. ``audit_batches`` records
    the batch keys of `append_linked`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, db: PostgresConnection) -> None:
        self._db = db

    def append(self, entry: AuditEntry) -> AuditEntry:
        """
        Store *entry*, chained with unkeyed SHA-256, and return what was stored.
        """
        return self.append_linked([entry], link_entry)[0]

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
        *,
        batch_key: str | None = None,
    ) -> list[AuditEntry]:
        """
        Atomically append *entries* after the head, in one transaction that
        holds the head row's lock.

        Args:
            entries: what to append, in order.
            link: chains an entry after a link (`link_entry` or a keyed one).
            batch_key: when given, it is recorded in the same transaction,
                and a batch whose key was recorded already stores nothing
                and returns ``[]``: an outbox resending a batch it is unsure
                about stores it exactly once.

        Raises:
            InvalidConfigError: an entry has no timestamp, or a tenant id
                longer than 256 bytes; nothing was stored.
            StoreError: the database failed; nothing was stored.
        """
        if not entries:
            return []
        places = []
        for entry in entries:
            tenant = entry.tenant_id.encode("utf-8", "surrogatepass")
            if entry.timestamp is None or len(tenant) > MAX_TENANT_ID_BYTES:
                msg = "audit entries need a timestamp and a tenant id of at most 256 bytes"
                raise InvalidConfigError(msg, field="entry")
            places.append((tenant, entry.timestamp))
        link_json = _link_json(link)
        with self._db.transaction("appending audit entries") as conn:
            prev, _ = _head(conn.execute(_LOCK_HEAD).fetchone())
            if batch_key is not None:
                fresh = conn.execute(
                    "INSERT INTO audit_batches (batch_key) VALUES (%s) "
                    "ON CONFLICT DO NOTHING",
                    (batch_key,),
                ).rowcount
                if not fresh:
                    return []
            stored = []
            rows = []
            for entry, (tenant, ts) in zip(entries, places, strict=True):
                linked, raw = link_json(prev, entry)
                rows.append((linked.seq, tenant, ts, raw))
                stored.append(linked)
                prev = ChainLink(linked.seq, linked.hash)
            with conn.cursor() as cursor:
                try:
                    cursor.executemany(
                        "INSERT INTO audit (seq, tenant_id, ts, entry) "
                        "VALUES (%s, %s, %s, %s)",
                        rows,
                    )
                except psycopg.errors.UniqueViolation as exc:
                    raise CorruptRecordError(
                        _STORE, f"entry {rows[0][0]} or later", "exists past the head"
                    ) from exc
            conn.execute(
                "UPDATE audit_head SET head_seq = %s, head_hash = %s WHERE id = 1",
                (prev.seq, prev.hash),
            )
        return stored

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries in ``[start, end]``, oldest first (ties by
        seq): one index range scan.

        Raises:
            InvalidConfigError: *start* or *end* is not aware.
            CorruptRecordError: an entry in the range cannot be decoded.
        """
        start, end = _aware(start), _aware(end)
        rows = self._db.idempotent(
            "reading audit entries",
            lambda conn: conn.execute(
                "SELECT seq, entry FROM audit WHERE tenant_id = %s "
                "AND ts >= %s AND ts <= %s ORDER BY ts, seq",
                (tenant_id.encode("utf-8", "surrogatepass"), start, end),
            ).fetchall(),
        )
        return [_decode(seq, raw) for seq, raw in rows]

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """
        Call ``visit(anchor, head, entries)`` inside one REPEATABLE READ,
        read-only transaction: the head row and every entry are of one
        snapshot. Entries stream from a server-side cursor, `WALK_ROWS` at
        a time, so a long log is never held in memory.
        """
        with self._db.transaction("walking the audit log") as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            head, anchor = _head(
                conn.execute(
                    "SELECT head_seq, head_hash, anchor_seq, anchor_hash "
                    "FROM audit_head WHERE id = 1"
                ).fetchone()
            )
            with conn.cursor(name="zerfoo_cloud_audit_walk") as cursor:
                cursor.itersize = WALK_ROWS
                cursor.execute("SELECT seq, entry FROM audit ORDER BY seq")

                def entries() -> Iterator[tuple[int, AuditEntry | None]]:
                    for seq, raw in cursor:
                        yield seq, _decoded(seq, raw)

                return visit(anchor, head, entries())

    def purge(self, before: datetime) -> int:
        """
        Drop the oldest entries, in seq order, while they are older than
        *before*; the last dropped becomes the anchor.

        Works in transactions of `PURGE_CHUNK` entries, each one atomic and
        holding the head row's lock. The batch keys recorded before
        *before* are dropped too: a batch is never resent after that long.

        Raises:
            InvalidConfigError: *before* is not aware.
            CorruptRecordError: an entry to inspect cannot be decoded.
        """
        limit = _aware(before)
        with self._db.connection("purging audit batch keys") as conn:
            conn.execute("DELETE FROM audit_batches WHERE stored_at < %s", (limit,))
        total = 0
        while True:
            count = 0
            with self._db.transaction("purging audit entries") as conn:
                _head(conn.execute(_LOCK_HEAD).fetchone())
                rows = conn.execute(
                    "SELECT seq, entry FROM audit ORDER BY seq LIMIT %s", (PURGE_CHUNK,)
                ).fetchall()
                last: AuditEntry | None = None
                for seq, raw in rows:
                    entry = _decode(seq, raw)
                    assert entry.timestamp is not None
                    if entry.timestamp >= limit:
                        break
                    last = entry
                    count += 1
                if last is not None:
                    conn.execute("DELETE FROM audit WHERE seq <= %s", (last.seq,))
                    conn.execute(
                        "UPDATE audit_head SET anchor_seq = %s, anchor_hash = %s "
                        "WHERE id = 1",
                        (last.seq, last.hash),
                    )
            total += count
            if count < PURGE_CHUNK:
                return total

    def close(self) -> None:
        """
        Nothing to release: `PostgresStores.close` closes the pool.
        """

"""
The PostgreSQL tenant store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import (
    CorruptRecordError,
    InvalidConfigError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.tenant_records import TenantRecord

with needs_extra("postgres", "PostgreSQL stores"):
    import psycopg.errors

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres._connection import PostgresConnection

__all__ = ["PostgresTenantStore"]

_STORE = "postgresql:tenants"


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(key: bytes, raw: bytes) -> TenantRecord:
    name = bytes(key).decode("utf-8", "backslashreplace")
    try:
        record = TenantRecord.from_bytes(bytes(raw))
    except ValueError as exc:
        raise CorruptRecordError(_STORE, name, str(exc)) from exc
    if record.id != name:
        raise CorruptRecordError(_STORE, name, f"holds the record of {record.id!r}")
    return record


_KEY_CONSTRAINTS = frozenset({"tenants_key_hash_key", "tenant_keys_pkey"})


def _exists(tenant_id: str, exc: psycopg.errors.UniqueViolation) -> TenantExistsError:
    field = "api_key" if exc.diag.constraint_name in _KEY_CONSTRAINTS else "id"
    return TenantExistsError(tenant_id, field=field)


def _index(conn: Any, tenant_id: bytes, hashes: Iterable[str]) -> None:
    # Add *hashes* to the key index of *tenant_id* (sorted: the same lock
    # order in every transaction).
    rows = [(_raw(h), tenant_id) for h in sorted(hashes)]
    if rows:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO tenant_keys (key_hash, tenant_id) VALUES (%s, %s)", rows
            )


class PostgresTenantStore:
    """
    A `zerfoo_cloud.stores.protocols.TenantStore` in PostgreSQL, shared by
    every host using the database. Get it from
    `zerfoo_cloud.stores.postgres.PostgresStores`.

    Two tables: ``tenants``, the id and the original key's hash (both
    unique, both indexed) and the record's stored form
    (`TenantRecord.to_bytes`), which gives the record back exactly; and
    ``tenant_keys``, the hash of every key of every tenant (unique) and
    its tenant's id, changed in the same transaction.

    Every call waits on the network (``blocking_io``): the ASGI adapter
    looks keys up here from a worker thread, never on its event loop, so a
    database that is slow or down (each call then waits up to the pool's
    connect timeout) does not stall the host's other requests.

    .. versionadded:: 0.1.0
    """

    #: Calls wait on the network (see `zerfoo_cloud.stores.protocols.TenantStore`).
    blocking_io = True

    def __init__(self, db: PostgresConnection) -> None:
        self._db = db

    def create(self, record: TenantRecord) -> None:
        """
        Store a new record (see the protocol): one INSERT, whose unique
        constraints reject a taken id or key hash, even from another host
        at the same moment.
        """
        # A unique violation fails the transaction: raising out of the
        # block rolls it back.
        with self._db.transaction("creating a tenant") as conn:
            try:
                conn.execute(
                    "INSERT INTO tenants (id, key_hash, record) VALUES (%s, %s, %s)",
                    (_raw(record.id), _raw(record.key_hash), record.to_bytes()),
                )
                _index(conn, _raw(record.id), record.key_hashes())
            except psycopg.errors.UniqueViolation as exc:
                raise _exists(record.id, exc) from None

    def get(self, tenant_id: str) -> TenantRecord | None:
        """
        Return the record with this id, or ``None``.
        """
        row = self._db.idempotent(
            "reading a tenant",
            lambda conn: conn.execute(
                "SELECT id, record FROM tenants WHERE id = %s", (_raw(tenant_id),)
            ).fetchone(),
        )
        return None if row is None else _decode(row[0], row[1])

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        """
        Return the record with this key hash, or ``None``.
        """
        row = self._db.idempotent(
            "reading a tenant",
            lambda conn: conn.execute(
                "SELECT t.id, t.record FROM tenant_keys k JOIN tenants t"
                " ON t.id = k.tenant_id WHERE k.key_hash = %s",
                (_raw(key_hash),),
            ).fetchone(),
        )
        if row is None:
            return None
        record = _decode(row[0], row[1])
        if key_hash not in record.key_hashes():
            raise CorruptRecordError(
                _STORE, key_hash[:8] + "…", "its key index and record differ"
            )
        return record

    def update(
        self, tenant_id: str, change: Callable[[TenantRecord], TenantRecord]
    ) -> TenantRecord:
        """
        Atomically replace a record by ``change(old)`` (see the protocol):
        the row is locked (``SELECT ... FOR UPDATE``) from read to write.
        """
        key = _raw(tenant_id)
        with self._db.transaction("updating a tenant") as conn:
            row = conn.execute(
                "SELECT id, record FROM tenants WHERE id = %s FOR UPDATE", (key,)
            ).fetchone()
            if row is None:
                raise TenantNotFoundError(tenant_id)
            old = _decode(row[0], row[1])
            new = change(old)
            if new.id != old.id:
                msg = "a tenant's id cannot change"
                raise InvalidConfigError(msg, field="id")
            before, after = old.key_hashes(), new.key_hashes()
            gone = [_raw(h) for h in sorted(before - after)]
            try:
                if gone:
                    conn.execute(
                        "DELETE FROM tenant_keys WHERE tenant_id = %s"
                        " AND key_hash = ANY(%s)",
                        (key, gone),
                    )
                conn.execute(
                    "UPDATE tenants SET key_hash = %s, record = %s WHERE id = %s",
                    (_raw(new.key_hash), new.to_bytes(), key),
                )
                _index(conn, key, after - before)
            except psycopg.errors.UniqueViolation as exc:
                raise _exists(tenant_id, exc) from None
        return new

    def delete(self, tenant_id: str) -> None:
        """
        Remove a record and its keys (its row; its key index rows go with
        it), even a corrupt one.
        """
        with self._db.connection("deleting a tenant") as conn:
            cursor = conn.execute(
                "DELETE FROM tenants WHERE id = %s", (_raw(tenant_id),)
            )
            if cursor.rowcount == 0:
                raise TenantNotFoundError(tenant_id)

    def list(self) -> list[TenantRecord]:
        """
        Return every record, ordered by id (its UTF-8 bytes).

        Raises:
            CorruptRecordError: a record cannot be decoded (it is named).
        """
        rows: list[Any] = self._db.idempotent(
            "listing tenants",
            lambda conn: conn.execute(
                "SELECT id, record FROM tenants ORDER BY id"
            ).fetchall(),
        )
        return [_decode(k, v) for k, v in rows]

    def close(self) -> None:
        """
        Nothing to release: `PostgresStores.close` closes the pool.
        """

"""
The PostgreSQL tenant store.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _exists(tenant_id: str, exc: psycopg.errors.UniqueViolation) -> TenantExistsError:
    field = "api_key" if exc.diag.constraint_name == "tenants_key_hash_key" else "id"
    return TenantExistsError(tenant_id, field=field)


class PostgresTenantStore:
    """
    A `zerfoo_cloud.stores.protocols.TenantStore` in PostgreSQL, shared by
    every host using the database. Get it from
    `zerfoo_cloud.stores.postgres.PostgresStores`.

    One table, ``tenants``: the id and the key hash (both unique, both
    indexed) and the record's stored form (`TenantRecord.to_bytes`), which
    gives the record back exactly.

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
        with self._db.connection("creating a tenant") as conn:
            try:
                conn.execute(
                    "INSERT INTO tenants (id, key_hash, record) VALUES (%s, %s, %s)",
                    (_raw(record.id), _raw(record.key_hash), record.to_bytes()),
                )
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
                "SELECT id, record FROM tenants WHERE key_hash = %s",
                (_raw(key_hash),),
            ).fetchone(),
        )
        if row is None:
            return None
        record = _decode(row[0], row[1])
        if record.key_hash != key_hash:
            raise CorruptRecordError(
                _STORE, key_hash[:8] + "…", "its key hash column and record differ"
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
            try:
                conn.execute(
                    "UPDATE tenants SET key_hash = %s, record = %s WHERE id = %s",
                    (_raw(new.key_hash), new.to_bytes(), key),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise _exists(tenant_id, exc) from None
        return new

    def delete(self, tenant_id: str) -> None:
        """
        Remove a record and its key (one row), even a corrupt one.
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

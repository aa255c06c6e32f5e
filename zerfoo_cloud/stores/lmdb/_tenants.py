"""
The LMDB tenant store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import (
    CorruptRecordError,
    InvalidConfigError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.tenant_records import TenantRecord

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBTenantStore"]


class LMDBTenantStore:
    """
    A `zerfoo_cloud.stores.protocols.TenantStore` in LMDB, shared by every
    process of the host. Get it from `zerfoo_cloud.stores.lmdb.LMDBStores`.

    Two databases: ``tenants`` (id to JSON record) and ``tenant_keys`` (the
    hash of each of a tenant's keys to its id). Both change in one
    transaction.

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env

    @property
    def _db(self) -> Any:
        return self._env.handles()["tenants"]

    @property
    def _keys(self) -> Any:
        return self._env.handles()["tenant_keys"]

    def _decode(self, key: bytes, raw: bytes) -> TenantRecord:
        name = key.decode("utf-8", "backslashreplace")
        try:
            record = TenantRecord.from_bytes(raw)
        except ValueError as exc:
            raise CorruptRecordError("lmdb:tenants", name, str(exc)) from exc
        if record.id != name:
            raise CorruptRecordError(
                "lmdb:tenants", name, f"holds the record of {record.id!r}"
            )
        return record

    def _load(self, txn: Any, tenant_id: bytes) -> TenantRecord | None:
        raw = txn.get(tenant_id, db=self._db)
        return None if raw is None else self._decode(tenant_id, raw)

    def create(self, record: TenantRecord) -> None:
        """
        Store a new record (see the protocol).
        """
        key = record.id.encode()
        digests = [h.encode() for h in sorted(record.key_hashes())]

        def write(txn: Any) -> None:
            if txn.get(key, db=self._db) is not None:
                raise TenantExistsError(record.id)
            if any(txn.get(d, db=self._keys) is not None for d in digests):
                raise TenantExistsError(record.id, field="api_key")
            txn.put(key, record.to_bytes(), db=self._db)
            for digest in digests:
                txn.put(digest, key, db=self._keys)

        self._env.write(write)

    def get(self, tenant_id: str) -> TenantRecord | None:
        """
        Return the record with this id, or ``None``.
        """
        key = tenant_id.encode("utf-8", "surrogatepass")
        return self._env.read(lambda txn: self._load(txn, key))

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        """
        Return the record with this key hash, or ``None``.
        """
        digest = key_hash.encode("utf-8", "surrogatepass")

        def read(txn: Any) -> TenantRecord | None:
            tenant_id = txn.get(digest, db=self._keys)
            if tenant_id is None:
                return None
            record = self._load(txn, tenant_id)
            if record is None or key_hash not in record.key_hashes():
                raise CorruptRecordError(
                    "lmdb:tenant_keys",
                    key_hash[:8] + "…",
                    "points to a tenant that is missing or has another key",
                )
            return record

        return self._env.read(read)

    def update(
        self, tenant_id: str, change: Callable[[TenantRecord], TenantRecord]
    ) -> TenantRecord:
        """
        Atomically replace a record by ``change(old)`` (see the protocol).
        """
        key = tenant_id.encode("utf-8", "surrogatepass")

        def write(txn: Any) -> TenantRecord:
            old = self._load(txn, key)
            if old is None:
                raise TenantNotFoundError(tenant_id)
            new = change(old)
            if new.id != old.id:
                msg = "a tenant's id cannot change"
                raise InvalidConfigError(msg, field="id")
            before, after = old.key_hashes(), new.key_hashes()
            added = [h.encode() for h in sorted(after - before)]
            if any(txn.get(d, db=self._keys) is not None for d in added):
                raise TenantExistsError(tenant_id, field="api_key")
            for digest in sorted(before - after):
                txn.delete(digest.encode(), db=self._keys)
            for d in added:
                txn.put(d, key, db=self._keys)
            txn.put(key, new.to_bytes(), db=self._db)
            return new

        return self._env.write(write)

    def delete(self, tenant_id: str) -> None:
        """
        Remove a record and its key index entry (see the protocol).

        A corrupt record can be deleted too: its key index entry is found by
        scanning the index.
        """
        key = tenant_id.encode("utf-8", "surrogatepass")

        def write(txn: Any) -> None:
            raw = txn.get(key, db=self._db)
            if raw is None:
                raise TenantNotFoundError(tenant_id)
            txn.delete(key, db=self._db)
            try:
                old = self._decode(key, raw)
            except CorruptRecordError:
                with txn.cursor(db=self._keys) as cursor:
                    stale = [k for k, v in cursor if v == key]
                for k in stale:
                    txn.delete(k, db=self._keys)
                return
            for digest in old.key_hashes():
                txn.delete(digest.encode(), db=self._keys)

        self._env.write(write)

    def list(self) -> list[TenantRecord]:
        """
        Return every record, ordered by id.

        Raises:
            CorruptRecordError: a record cannot be decoded (it is named).
        """

        def read(txn: Any) -> list[TenantRecord]:
            with txn.cursor(db=self._db) as cursor:
                return [self._decode(k, v) for k, v in cursor]

        return self._env.read(read)

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """

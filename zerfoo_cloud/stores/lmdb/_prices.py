"""
The LMDB price store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import CorruptRecordError, PriceTableChangedError
from zerfoo_cloud.pricing.stored import (
    NO_PRICES,
    StoredPrices,
    decode_table,
    encode_table,
)

if TYPE_CHECKING:
    from zerfoo_cloud.pricing.table import PriceTable
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBPriceStore"]

_STORE = "lmdb:prices"
_VERSION = b"version"
_TABLE = b"table"


class LMDBPriceStore:
    """
    A `zerfoo_cloud.stores.protocols.PriceStore` in LMDB, shared by every
    process of the host. Get it from `zerfoo_cloud.stores.lmdb.LMDBStores`
    (``stores.prices``).

    The durable database ``prices`` holds two entries, changed in one
    transaction: ``version`` (decimal text) and ``table`` (the stored form,
    `zerfoo_cloud.pricing.encode_table`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env

    @property
    def _db(self) -> Any:
        return self._env.handles()["prices"]

    def _version(self, txn: Any) -> int:
        raw = txn.get(_VERSION, db=self._db)
        if raw is None:
            return 0
        try:
            return int(bytes(raw))
        except ValueError:
            raise CorruptRecordError(_STORE, "version", "not a number") from None

    def read(self) -> StoredPrices:
        """
        Return the table and its version (see the protocol).
        """

        def read(txn: Any) -> tuple[int, bytes | None]:
            version = self._version(txn)
            raw = txn.get(_TABLE, db=self._db)
            return version, None if raw is None else bytes(raw)

        version, raw = self._env.read(read)
        if version == 0:
            return NO_PRICES
        if raw is None:
            raise CorruptRecordError(_STORE, "table", "missing beside its version")
        return StoredPrices(decode_table(raw, _STORE), version)

    def version(self) -> int:
        """
        Return the version (see the protocol).
        """
        return self._env.read(self._version)

    def replace(self, table: PriceTable, expected_version: int) -> int:
        """
        Store *table* if the version is still *expected_version* (see the
        protocol), in one write transaction.
        """
        raw = encode_table(table)

        def write(txn: Any) -> int:
            found = self._version(txn)
            if found != expected_version:
                raise PriceTableChangedError(expected_version, found)
            txn.put(_TABLE, raw, db=self._db)
            txn.put(_VERSION, str(found + 1).encode(), db=self._db)
            return found + 1

        return self._env.write(write)

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """

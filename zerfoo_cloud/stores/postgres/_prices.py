"""
The PostgreSQL price store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import PriceTableChangedError
from zerfoo_cloud.pricing.stored import (
    NO_PRICES,
    StoredPrices,
    decode_table,
    encode_table,
)

if TYPE_CHECKING:
    from zerfoo_cloud.pricing.table import PriceTable
    from zerfoo_cloud.stores.postgres._connection import PostgresConnection

__all__ = ["PostgresPriceStore"]

_STORE = "postgresql:prices"


class PostgresPriceStore:
    """
    A `zerfoo_cloud.stores.protocols.PriceStore` in PostgreSQL, shared by
    every host using the database. Get it from
    `zerfoo_cloud.stores.postgres.PostgresStores` (``stores.prices``).

    One row of the table ``prices`` (schema version 4): the version and
    the stored form (`zerfoo_cloud.pricing.encode_table`). A change is one
    statement that writes only if the version is the expected one, so
    hosts changing prices at once cannot both succeed. Every call waits on
    the network (``blocking_io``).

    .. versionadded:: 0.1.0
    """

    #: Calls wait on the network (see `zerfoo_cloud.stores.protocols.PriceStore`).
    blocking_io = True

    def __init__(self, db: PostgresConnection) -> None:
        self._db = db

    def read(self) -> StoredPrices:
        """
        Return the table and its version (see the protocol).
        """
        row = self._db.idempotent(
            "reading the prices",
            lambda conn: conn.execute(
                "SELECT version, body FROM prices WHERE id = 1"
            ).fetchone(),
        )
        if row is None:
            return NO_PRICES
        return StoredPrices(decode_table(bytes(row[1]), _STORE), int(row[0]))

    def version(self) -> int:
        """
        Return the version (see the protocol).
        """
        row = self._db.idempotent(
            "reading the prices' version",
            lambda conn: conn.execute(
                "SELECT version FROM prices WHERE id = 1"
            ).fetchone(),
        )
        return 0 if row is None else int(row[0])

    def replace(self, table: PriceTable, expected_version: int) -> int:
        """
        Store *table* if the version is still *expected_version* (see the
        protocol): an INSERT of the first row (a second host's fails on the
        key) or an UPDATE conditional on the version.
        """
        body = encode_table(table)
        with self._db.connection("changing the prices") as conn:
            row = self._change(conn, body, expected_version)
            if row is not None:
                return int(row[0])
            found = conn.execute("SELECT version FROM prices WHERE id = 1").fetchone()
        raise PriceTableChangedError(expected_version, 0 if found is None else found[0])

    @staticmethod
    def _change(conn: Any, body: bytes, expected: int) -> Any:
        if expected == 0:
            return conn.execute(
                "INSERT INTO prices (id, version, body) VALUES (1, 1, %s)"
                " ON CONFLICT (id) DO NOTHING RETURNING version",
                (body,),
            ).fetchone()
        return conn.execute(
            "UPDATE prices SET version = version + 1, body = %s, changed_at = now()"
            " WHERE id = 1 AND version = %s RETURNING version",
            (body, expected),
        ).fetchone()

    def close(self) -> None:
        """
        Nothing to release: `PostgresStores.close` closes the pool.
        """

"""
`PostgresStores`: the tenant, billing and audit stores of one PostgreSQL
database, sharing one connection pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud.stores.postgres._audit import PostgresAuditStore
from zerfoo_cloud.stores.postgres._billing import PostgresBillingStore
from zerfoo_cloud.stores.postgres._connection import (
    PostgresConnection,
    check_pool_options,
    connect_once,
    parse_url,
)
from zerfoo_cloud.stores.postgres._prices import PostgresPriceStore
from zerfoo_cloud.stores.postgres._schema import check_schema
from zerfoo_cloud.stores.postgres._tenants import PostgresTenantStore

if TYPE_CHECKING:
    pass

__all__ = ["PostgresStores"]


class PostgresStores(ClosedOnExit):
    """
    The PostgreSQL stores of one database: `tenants`, `billing`, `audit`
    and `prices`,
    shared by every host that opens it.

    Use `open`, not the constructor. Close it with `close` or a ``with``
    block; the stores it handed out stop working then (they raise
    `zerfoo_cloud.errors.StoreError`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, db: PostgresConnection) -> None:
        self._db = db
        self.tenants = PostgresTenantStore(db)
        self.billing = PostgresBillingStore(db)
        self.audit = PostgresAuditStore(db)
        self.prices = PostgresPriceStore(db)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> PostgresStores:
        """
        Connect to the database at *url* and check its schema.

        Args:
            url: ``postgresql://user:password@host:5432/dbname`` or a libpq
                ``key=value`` string. The password never appears in an
                error, a log line or a repr.
            min_size: connections opened at once and kept open.
            max_size: connections at most; a call waiting longer than
                *connect_timeout* for a free one raises
                `zerfoo_cloud.errors.StoreUnavailableError`.
            connect_timeout: seconds to wait for a free connection, and for
                the server (whole seconds, at least 2, per connection
                attempt); also how long unacknowledged data may wait
                before a connection counts as lost.

        Raises:
            InvalidConfigError: a bad URL, size or timeout.
            StoreUnavailableError: the server cannot be reached.
            SchemaMismatchError: the database was never upgraded, or is
                older (run ``zerfoo-cloud db upgrade``), or newer than this
                library.
        """
        location, _ = parse_url(url)
        check_pool_options(min_size, max_size, connect_timeout)
        # One connection first: a server that refuses it fails at once, and
        # a database of another schema before any pool is made.
        with connect_once(url, "checking the schema", connect_timeout) as conn:
            check_schema(conn, location)
        return cls(
            PostgresConnection.open(
                url,
                min_size=min_size,
                max_size=max_size,
                connect_timeout=connect_timeout,
            )
        )

    @property
    def location(self) -> str:
        """
        Where the database is: ``host:port/dbname``, never the password.
        """
        return self._db.location

    @property
    def closed(self) -> bool:
        """
        Whether `close` was called.
        """
        return self._db.closed

    def close(self) -> None:
        """
        Close the pool. Calling it twice is harmless.
        """
        self._db.close()

    def __repr__(self) -> str:
        return f"PostgresStores({self._db.location!r})"

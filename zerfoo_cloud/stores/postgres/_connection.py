"""
A pool of connections to one PostgreSQL database, opened from a URL, with
every failure turned into a `zerfoo_cloud.errors.StoreError` (a
`zerfoo_cloud.errors.StoreUnavailableError` when the server cannot be
reached) that never shows the password.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreUnavailableError

with needs_extra("postgres", "PostgreSQL stores"):
    import psycopg
    import psycopg.conninfo
    import psycopg_pool

T = TypeVar("T")

__all__ = ["PostgresConnection", "check_pool_options", "connect_once", "parse_url"]

#: SQLSTATE classes and codes that mean the server cannot be used now:
#: connection exceptions, and the server shutting down or starting up.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
#: Every session works in UTC, so day boundaries and partition bounds are UTC.
_SESSION_OPTIONS = "-c TimeZone=UTC"
#: The longest connect timeout taken, in seconds.
_MAX_TIMEOUT = 3600
#: Pools a forked child inherited: kept, never used or closed (closing
#: would end the parent's sessions, which share their sockets).
_INHERITED: list[Any] = []


def parse_url(url: str) -> tuple[str, str | None]:
    """
    Return where *url* points (``host:port/dbname``, no user or password)
    and its password (``None`` if it has none).

    *url* is a ``postgresql://`` URL or a libpq ``key=value`` string.

    Raises:
        InvalidConfigError: *url* is neither (the message never shows it).
    """
    if not isinstance(url, str) or not url.strip():
        msg = "a PostgreSQL URL looks like postgresql://user@host:5432/dbname"
        raise InvalidConfigError(msg, field="url")
    if "://" in url and not url.startswith(("postgresql://", "postgres://")):
        scheme = url.split("://", 1)[0]
        msg = f"a PostgreSQL URL starts with postgresql:// or postgres://, not {scheme}://"
        raise InvalidConfigError(msg, field="url")
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        msg = "the PostgreSQL URL cannot be parsed; it looks like postgresql://user@host:5432/dbname"
        raise InvalidConfigError(msg, field="url") from exc
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or 5432)
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    password = params.get("password")
    where = f"{host}/{dbname}" if host.startswith("/") else f"{host}:{port}/{dbname}"
    return where, None if password is None else str(password)


def _lost(exc: BaseException | None) -> bool:
    # A connection that worked when it was lent and broke since (the server
    # restarted, or ended the session): another may work.
    return (
        isinstance(exc, psycopg.OperationalError)
        and not isinstance(exc, psycopg_pool.PoolTimeout)
        and (exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P01")))
    )


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    # No SQLSTATE: the client failed to reach the server or lost it.
    return state is None or state.startswith(_UNAVAILABLE_STATES)


class PostgresConnection:
    """
    A psycopg connection pool and where it points, for messages.

    ``connection(what)`` lends a connection in autocommit mode (each
    statement its own transaction: one round trip), ``transaction(what)``
    one inside a transaction; both turn any database failure in their
    block into `StoreError` naming *what* failed and where, without the
    URL's password.

    .. versionadded:: 0.1.0
    """

    def __init__(self, pool: Any, location: str, secret: str | None) -> None:
        self.pool = pool
        self.location = location
        self.closed = False
        self._secret = secret
        self._make_pool: Callable[[], Any] | None = None
        self._lock = threading.Lock()

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The inherited pool's connections are the parent's: a child makes
        # its own pool at its first call.
        if self.pool is not None:
            _INHERITED.append(self.pool)
            self.pool = None
        self._lock = threading.Lock()

    def _current_pool(self) -> Any:
        pool = self.pool
        if pool is None:
            with self._lock:
                if self.pool is None and self._make_pool is not None:
                    self.pool = self._make_pool()
                    self.pool.open(wait=False)
                pool = self.pool
        return pool

    @classmethod
    def open(
        cls,
        url: str,
        *,
        min_size: int,
        max_size: int,
        connect_timeout: float,
    ) -> PostgresConnection:
        """
        Open a pool of *min_size* to *max_size* connections to *url*,
        waiting at most *connect_timeout* seconds for each connection and
        for a free one.

        Raises:
            InvalidConfigError: a bad URL or size.
            StoreUnavailableError: the server cannot be reached.
        """
        location, secret = parse_url(url)
        check_pool_options(min_size, max_size, connect_timeout)
        connection = cls(None, location, secret)

        def make_pool() -> Any:
            return psycopg_pool.ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                kwargs={**connect_options(connect_timeout, url), "autocommit": True},
                open=False,
                name="zerfoo-cloud",
            )

        pool = make_pool()
        try:
            with connection.guard("connecting"):
                pool.open(wait=min_size > 0, timeout=connect_timeout)
        except BaseException:
            pool.close(timeout=0)
            raise
        connection.pool = pool
        connection._make_pool = make_pool
        reset_in_child(connection)
        return connection

    def error(self, what: str, exc: BaseException) -> StoreError:
        """
        Return the `StoreError` for *exc*, raised while *what*: a
        `StoreUnavailableError` when the server could not be reached.
        """
        detail = str(exc).strip().replace("\n", " ")
        if self._secret:
            detail = detail.replace(self._secret, "***")
        if _unavailable(exc):
            return StoreUnavailableError(
                "postgresql",
                f"PostgreSQL at {self.location} is unavailable while {what}: "
                f"{type(exc).__name__}: {detail}; check that PostgreSQL is "
                "running and reachable",
                retry_after=1.0,
            )
        return StoreError(
            f"PostgreSQL at {self.location} failed while {what}: "
            f"{type(exc).__name__}: {detail}"
        )

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """
        Turn a database failure in the block into `StoreError`.
        """
        try:
            yield
        except psycopg.Error as exc:
            error = self.error(what, exc)
            if self._secret and self._secret in str(exc):
                raise error from None
            raise error from exc

    @contextmanager
    def connection(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """
        Lend a connection in autocommit mode: for one statement, or reads
        that need no common snapshot. Errors of other kinds (the caller's)
        pass through unchanged.

        Raises:
            StoreError: the pool is closed, or the database failed.
        """
        if self.closed:
            msg = f"the PostgreSQL pool for {self.location} is closed"
            raise StoreError(msg)
        with self.guard(what), self._current_pool().connection() as conn:
            yield conn

    def idempotent(self, what: str, work: Callable[[Any], T]) -> T:
        """
        Return ``work(connection)`` (autocommit, as `connection`), trying
        once more after the pool dropped its broken connections if the
        connection was lost: for reads, and writes that may run twice.
        After a server restart every pooled connection is dead; this way
        the first call after it still succeeds.
        """
        try:
            with self.connection(what) as conn:
                return work(conn)
        except StoreUnavailableError as exc:
            if not _lost(exc.__cause__ or exc.__context__):
                raise
        self._current_pool().check()
        with self.connection(what) as conn:
            return work(conn)

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """
        Lend a connection for one transaction: committed when the block
        ends, rolled back when it raises (as `connection` otherwise).
        """
        with self.connection(what) as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """
        Close every connection of the pool. Calling it twice is harmless.
        """
        if not self.closed:
            self.closed = True
            if self.pool is not None:
                self.pool.close()

    def __repr__(self) -> str:
        return f"PostgresConnection({self.location!r})"


def check_pool_options(min_size: int, max_size: int, connect_timeout: float) -> None:
    """
    Raise `InvalidConfigError` unless ``0 <= min_size <= max_size``,
    ``max_size >= 1`` and *connect_timeout* is a positive number of seconds.
    """
    if not (isinstance(min_size, int) and isinstance(max_size, int)) or not (
        0 <= min_size <= max_size and max_size >= 1
    ):
        msg = f"pool sizes need 0 <= min_size <= max_size and max_size >= 1, not {min_size}, {max_size}"
        raise InvalidConfigError(msg, field="max_size")
    if not (
        isinstance(connect_timeout, (int, float)) and 0 < connect_timeout < _MAX_TIMEOUT
    ):
        msg = f"connect_timeout must be a positive number of seconds, not {connect_timeout!r}"
        raise InvalidConfigError(msg, field="connect_timeout")


def connect_options(connect_timeout: float, url: str = "") -> dict[str, Any]:
    """
    The options of every connection: a whole-second connect timeout (at
    least 2, libpq's least), UTC sessions (after the ``options`` of *url*,
    which are kept: a ``search_path``, say), and TCP keepalives and a TCP user timeout of
    *connect_timeout*, so a server that vanished mid-call (a dead host, a
    network partition) fails the call within seconds instead of hanging it.
    """
    given = psycopg.conninfo.conninfo_to_dict(url).get("options") if url else None
    return {
        "connect_timeout": max(2, math.ceil(connect_timeout)),
        "options": f"{given} {_SESSION_OPTIONS}" if given else _SESSION_OPTIONS,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": max(1000, round(connect_timeout * 1000)),
    }


@contextmanager
def connect_once(
    url: str, what: str, connect_timeout: float = 5.0
) -> Iterator[psycopg.Connection[Any]]:
    """
    One connection to *url* for one transaction (committed when the block
    ends), outside any pool: for schema upgrades and checks.

    Raises:
        InvalidConfigError: a bad URL.
        StoreUnavailableError: the server cannot be reached.
        StoreError: the database failed.
    """
    location, secret = parse_url(url)
    errors = PostgresConnection(None, location, secret)
    with (
        errors.guard(what),
        psycopg.connect(url, **connect_options(connect_timeout, url)) as conn,
    ):
        yield conn

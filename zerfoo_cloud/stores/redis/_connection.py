"""
A connection to Redis or a Redis Cluster: opened from a URL, with every
failure turned into one `zerfoo_cloud.errors.StoreError` that never shows
the password: `zerfoo_cloud.errors.StoreUnavailableError` when Redis
cannot be reached (refused, timed out, a cluster that is down), a plain
`zerfoo_cloud.errors.StoreError` for anything else (a script error, a key
of the wrong type, a wrong password).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreUnavailableError
from zerfoo_cloud.stores.redis._async_connection import AsyncRedisConnection

with needs_extra("redis", "Redis counters"):
    import redis
    import redis.cluster
    import redis.exceptions

__all__ = ["RedisConnection", "is_unreachable"]

#: What Redis not answering looks like: refused or lost connections,
#: timeouts, a cluster without a quorum or a primary, a node still loading.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
)


def is_unreachable(exc: BaseException) -> bool:
    """
    Whether *exc* (a redis-py error) means Redis cannot be reached now, as
    opposed to a refusal by a Redis that answered (a wrong password, a script
    error, a key of the wrong type).
    """
    return isinstance(exc, _UNREACHABLE) and not isinstance(
        exc, redis.exceptions.AuthenticationError
    )


def _location(url: str) -> str:
    # host:port/db of *url*, with no user name or password.
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        msg = f"a Redis URL starts with redis://, rediss:// or unix://, not {parts.scheme or '(none)'}://"
        raise InvalidConfigError(msg, field="url")
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    db = parts.path.strip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"


class RedisConnection:
    """
    A redis-py client (plain or cluster) and where it points, for messages.

    ``guard(what)`` turns any Redis failure in its block into `StoreError`
    naming *what* failed and where, without the URL's password:
    `StoreUnavailableError` when Redis cannot be reached.

    .. versionadded:: 0.1.0
    """

    def __init__(self, client: Any, location: str, secret: str | None) -> None:
        self.client = client
        #: Opens the asyncio twin of this connection (same URL and
        #: options), when it was opened by `from_url`.
        self.open_async: Callable[[], AsyncRedisConnection] | None = None
        self.closed = False
        self.location = location
        self._secret = secret

    @classmethod
    def from_url(
        cls, url: str, options: dict[str, Any]
    ) -> tuple[RedisConnection, dict[str, Any]]:
        """
        Connect lazily to the Redis at *url*; nothing is sent until the
        first command. Returns the connection and the *options* it did not
        take.

        It takes from *options*: ``cluster`` (*url* names a node of a Redis
        Cluster; default ``False``), ``socket_timeout`` (bounding each
        command) and ``connect_timeout`` (each connection attempt), in
        seconds, 1.0 by default.
        """
        rest = dict(options)
        cluster = bool(rest.pop("cluster", False))
        timeouts = {
            "socket_timeout": rest.pop("socket_timeout", 1.0),
            "socket_connect_timeout": rest.pop("connect_timeout", 1.0),
        }
        for name, value in timeouts.items():
            if not (isinstance(value, (int, float)) and value > 0):
                field = "connect_timeout" if "connect" in name else name
                msg = f"{field} must be a positive number of seconds, not {value!r}"
                raise InvalidConfigError(msg, field=field)
        location = _location(url)
        secret = urlsplit(url).password
        try:
            if cluster:
                client: Any = redis.cluster.RedisCluster.from_url(url, **timeouts)
            else:
                client = redis.Redis.from_url(url, **timeouts)
        except redis.exceptions.RedisError as exc:
            raise cls(None, location, secret).error("connecting", exc) from exc
        connection = cls(client, location, secret)
        connection.open_async = functools.partial(
            AsyncRedisConnection.from_url, url, dict(options), location
        )
        return connection, rest

    def error(self, what: str, exc: BaseException) -> StoreError:
        """
        Return the error for *exc*, raised while *what*:
        `StoreUnavailableError` (``store="redis"``) when Redis cannot be
        reached (`is_unreachable`), else `StoreError`.
        """
        detail = str(exc)
        if self._secret:
            detail = detail.replace(self._secret, "***")
        message = (
            f"Redis at {self.location} failed while {what}: "
            f"{type(exc).__name__}: {detail}; check that Redis is running and reachable"
        )
        if is_unreachable(exc):
            return StoreUnavailableError("redis", message)
        return StoreError(message)

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """
        Turn a Redis failure in the block into `StoreError`; the block
        does not run once the connection is closed.
        """
        if self.closed:
            msg = f"the Redis connection to {self.location} is closed"
            raise StoreError(msg)
        try:
            yield
        except redis.exceptions.RedisError as exc:
            raise self.error(what, exc) from exc

    def close(self) -> None:
        """
        Close the client's connections. Calling it twice is harmless.
        """
        if not self.closed:
            self.closed = True
            self.client.close()

    def __repr__(self) -> str:
        return f"RedisConnection({self.location!r})"

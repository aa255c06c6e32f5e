"""
The asyncio side of a Redis connection: one ``redis.asyncio`` client per
event loop, scripts run by ``EVALSHA`` in one round trip, and every failure
turned into `zerfoo_cloud.errors.StoreError` (`StoreUnavailableError` when
Redis cannot be reached or does not answer in time) that never shows the
password.

An asyncio client belongs to the loop it was made on: its sockets are that
loop's streams. So each loop that calls gets a client of its own, made on
first use, and a forked child makes new ones rather than share its
parent's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from zerfoo_cloud.stores.redis._connection import RedisConnection

with needs_extra("redis", "Redis counters"):
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.exceptions

__all__ = ["AsyncRedisConnection", "AsyncScript"]

#: Failures that mean Redis cannot be reached now (or did not answer in time).
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)

#: Seconds `AsyncRedisConnection.close` waits for another thread's loop to
#: close its client.
_CLOSE_WAIT = 5.0
#: A forked child's copies of its parent's clients, kept unused.
_INHERITED: list[Any] = []
#: Clients closing on the loop that called `close` (held until they are).
_CLOSING: set[asyncio.Task[None]] = set()


class AsyncScript:
    """
    A Lua script and its SHA-1: run by ``EVALSHA`` (one round trip), and
    by ``EVAL`` once on a server that does not hold it yet.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class AsyncRedisConnection:
    """
    The ``redis.asyncio`` clients (plain or cluster) of one Redis URL, one
    per event loop, and where they point, for messages.

    `run` runs a script on the calling loop's client and turns any failure
    into `StoreError` naming what failed and where, without the password:
    `StoreUnavailableError` when Redis is unreachable or slower than
    *socket_timeout*.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool,
        timeouts: dict[str, Any],
        location: str,
        secret: str | None,
    ) -> None:
        self._url = url
        self._cluster = cluster
        self._timeouts = timeouts
        self.location = location
        self._secret = secret
        self.closed = False
        self._lock = threading.Lock()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        reset_in_child(self)

    @classmethod
    def from_url(
        cls, url: str, options: dict[str, Any], sync: RedisConnection
    ) -> AsyncRedisConnection:
        """
        The asyncio twin of *sync*, opened from the same *url* and
        *options* (``cluster``, ``socket_timeout``, ``connect_timeout``,
        already checked by `RedisConnection.from_url`); lazily: nothing is
        sent until the first command.
        """
        return cls(
            url,
            cluster=bool(options.get("cluster", False)),
            timeouts={
                "socket_timeout": float(options.get("socket_timeout", 1.0)),
                "socket_connect_timeout": float(options.get("connect_timeout", 1.0)),
            },
            location=sync.location,
            secret=urlsplit(url).password,
        )

    def _forked(self) -> None:
        # The parent's clients hold the parent's sockets: never use them,
        # and never let them be collected either: closing one here would
        # unregister the parent's socket from the epoll both share.
        _INHERITED.extend(self._clients.values())
        self._lock = threading.Lock()
        self._clients = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            with self._lock:
                client = self._clients.get(loop)
                if client is None:
                    client = self._clients[loop] = self._new_client()
        return client

    def _new_client(self) -> Any:
        if self._cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(
                self._url, **self._timeouts
            )
        return redis.asyncio.Redis.from_url(self._url, **self._timeouts)

    def error(self, what: str, exc: BaseException) -> StoreError:
        """
        Return the `StoreError` for *exc*, raised while *what*:
        `StoreUnavailableError` when Redis could not be reached in time.
        """
        detail = str(exc) or "no answer in time"
        if self._secret:
            detail = detail.replace(self._secret, "***")
        message = (
            f"Redis at {self.location} failed while {what}: "
            f"{type(exc).__name__}: {detail}; check that Redis is running and reachable"
        )
        if isinstance(exc, _UNAVAILABLE):
            return StoreUnavailableError("redis", message)
        return StoreError(message)

    async def run(
        self, what: str, script: AsyncScript, keys: list[bytes], args: list[str]
    ) -> Any:
        """
        Run *script* with *keys* and *args* on this loop's client: one
        ``EVALSHA`` (an ``EVAL`` the first time a server lacks the script).

        Raises:
            StoreUnavailableError: Redis is unreachable or did not answer
                within *socket_timeout*.
            StoreError: any other failure, or the connection is closed.
        """
        if self.closed:
            msg = f"the Redis connection to {self.location} is closed"
            raise StoreError(msg)
        try:
            client = self._client()
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                return await client.eval(script.text, len(keys), *keys, *args)
        except (redis.exceptions.RedisError, *_UNAVAILABLE) as exc:
            raise self.error(what, exc) from exc

    async def aclose(self) -> None:
        """
        Close the calling loop's client; later calls on this loop make a new one.
        """
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        """
        Stop every loop's client: closed on its loop when that loop still
        runs (waited for, up to a few seconds, from another thread), else
        dropped with it. Calling it twice is harmless.
        """
        self.closed = True
        with self._lock:
            clients = list(self._clients.items())
            self._clients = weakref.WeakKeyDictionary()
        here = threading.get_ident()
        for loop, client in clients:
            if loop.is_closed():
                continue
            if not loop.is_running():
                loop.run_until_complete(client.aclose())
            elif getattr(loop, "_thread_id", None) == here:
                # Called on the loop's own thread: it closes once we return.
                task = loop.create_task(client.aclose())
                _CLOSING.add(task)
                task.add_done_callback(_CLOSING.discard)
            else:
                done = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                with contextlib.suppress(Exception):
                    done.result(_CLOSE_WAIT)

    def __repr__(self) -> str:
        return f"AsyncRedisConnection({self.location!r})"

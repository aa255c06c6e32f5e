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

Calls made on one loop while others are on their way share the trip: they
queue, and the next free *lane* (one of a few connections per loop) sends
the whole queue as one pipeline (``EVALSHA`` after ``EVALSHA``, no
transaction: each script stays its own atomic step) and hands each caller
its own answer. One call alone goes as it is. Each admission is still one
command; many of them cost one write and one read of the socket, and a
thousand concurrent requests need a few connections, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError, StoreUnavailableError

with needs_extra("redis", "Redis counters"):
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.exceptions

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    _pack = None

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
#: Pipelines one loop's client sends at once (each on a connection of its own).
_LANES = 4

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


#: `asyncio.timeout` (Python 3.11 and later).
_one_timeout: Callable[[float | None], Any] | None = getattr(asyncio, "timeout", None)


async def _answer(connection: Any, timeout: float | None) -> Any:
    # The next answer on *connection*; an error answer is returned, not
    # raised: it is its own call's failure (and was read whole). A
    # *timeout* of inf: none of its own (the batch has one).
    try:
        return await connection.read_response(timeout=timeout)
    except redis.exceptions.ResponseError as exc:
        return exc


class _Call:
    """One script call waiting in a loop's queue."""

    __slots__ = ("args", "done", "keys", "script")

    def __init__(
        self,
        script: AsyncScript,
        keys: list[bytes],
        args: list[str],
        done: asyncio.Future[Any],
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.done = done


class _LoopClient:
    """
    One event loop's client, the calls queued for it, and the lanes that
    send them.
    """

    __slots__ = ("client", "lanes", "plain", "queue", "tasks", "waiting")

    def __init__(self, client: Any, *, plain: bool) -> None:
        self.client = client
        # One Redis (not a cluster): batches go out on a pooled connection
        # as commands packed by hiredis, past redis-py's per-argument
        # encoding and pipeline bookkeeping.
        self.plain = plain and _pack is not None
        self.queue: list[_Call] = []
        # A sender is on its way to take the queue.
        self.waiting = False
        self.lanes = asyncio.Semaphore(_LANES)
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, call: _Call) -> None:
        """Queue *call*; start a sender unless one is on its way."""
        self.queue.append(call)
        if not self.waiting:
            self.waiting = True
            task = asyncio.get_running_loop().create_task(self._send())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self) -> None:
        # Wait for a lane, then send everything queued meanwhile.
        async with self.lanes:
            batch, self.queue = self.queue, []
            self.waiting = False
            try:
                if self.plain:
                    answers = await self._packed(batch)
                elif len(batch) == 1:
                    answers = [await self._one(batch[0])]
                else:
                    answers = await self._pipeline(batch)
            except BaseException as exc:  # the connection failed: every call did
                for call in batch:
                    if not call.done.done():
                        call.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
        for call, answer in zip(batch, answers, strict=True):
            if call.done.done():
                continue  # its caller was cancelled
            if isinstance(answer, BaseException):
                call.done.set_exception(answer)
            else:
                call.done.set_result(answer)

    async def _one(self, call: _Call) -> Any:
        client = self.client
        keys = call.keys
        try:
            return await client.evalsha(call.script.sha, len(keys), *keys, *call.args)
        except redis.exceptions.NoScriptError:
            return await client.eval(call.script.text, len(keys), *keys, *call.args)
        except redis.exceptions.ResponseError as exc:
            return exc  # this call's own failure (a script error)

    async def _packed(self, batch: list[_Call]) -> list[Any]:
        assert _pack is not None
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(
                b"".join(
                    [
                        _pack(
                            (
                                b"EVALSHA",
                                call.script.sha,
                                len(call.keys),
                                *call.keys,
                                *call.args,
                            )
                        )
                        for call in batch
                    ]
                ),
                check_health=False,
            )
            if _one_timeout is None:  # pragma: no cover - Python 3.10
                answers = [await _answer(connection, None) for _ in batch]
            else:
                # One timer for the whole batch rather than one per answer.
                async with _one_timeout(connection.socket_timeout):
                    answers = [await _answer(connection, math.inf) for _ in batch]
        except BaseException:
            # Answers may still be on their way: the connection is not reused.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        for index, answer in enumerate(answers):
            if isinstance(answer, redis.exceptions.NoScriptError):
                answers[index] = await self._one(batch[index])
        return answers

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        for index, answer in enumerate(answers):
            if isinstance(answer, redis.exceptions.NoScriptError):
                # A server that lost its scripts (restarted): EVAL loads it.
                answers[index] = await self._one(batch[index])
        return answers

    def fail_queued(self, exc: BaseException) -> None:
        """Fail every call still queued with *exc*."""
        batch, self.queue = self.queue, []
        for call in batch:
            if not call.done.done():
                call.done.set_exception(exc)


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
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopClient
        ] = weakref.WeakKeyDictionary()
        reset_in_child(self)

    @classmethod
    def from_url(
        cls, url: str, options: dict[str, Any], location: str
    ) -> AsyncRedisConnection:
        """
        The asyncio twin of a `RedisConnection` opened from the same *url*
        and *options* (``cluster``, ``socket_timeout``, ``connect_timeout``,
        already checked there), *location* naming it in messages; lazily:
        nothing is sent until the first command.
        """
        return cls(
            url,
            cluster=bool(options.get("cluster", False)),
            timeouts={
                "socket_timeout": float(options.get("socket_timeout", 1.0)),
                "socket_connect_timeout": float(options.get("connect_timeout", 1.0)),
            },
            location=location,
            secret=urlsplit(url).password,
        )

    def _forked(self) -> None:
        # The parent's clients hold the parent's sockets: never use them,
        # and never let them be collected either: closing one here would
        # unregister the parent's socket from the epoll both share.
        _INHERITED.extend(self._clients.values())
        self._lock = threading.Lock()
        self._clients = weakref.WeakKeyDictionary()

    def _loop_client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        state = self._clients.get(loop)
        if state is None:
            with self._lock:
                state = self._clients.get(loop)
                if state is None:
                    state = self._clients[loop] = _LoopClient(
                        self._new_client(), plain=not self._cluster
                    )
        return state

    def _client(self) -> Any:
        # The calling loop's redis.asyncio client.
        return self._loop_client().client

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
            state = self._loop_client()
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            state.submit(_Call(script, keys, args, done))
            return await done
        except (redis.exceptions.RedisError, *_UNAVAILABLE) as exc:
            raise self.error(what, exc) from exc

    async def aclose(self) -> None:
        """
        Close the calling loop's client; later calls on this loop make a new one.
        """
        state = self._clients.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await self._shut(state)

    async def _shut(self, state: _LoopClient) -> None:
        # Fail the calls still queued, then close the client.
        state.fail_queued(
            StoreError(f"the Redis connection to {self.location} is closed")
        )
        await state.client.aclose()

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
        try:
            # uvloop's loops have no _thread_id: ask which loop runs here.
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, state in clients:
            if loop.is_closed():
                continue
            if not loop.is_running():
                loop.run_until_complete(self._shut(state))
            elif loop is here:
                # Called on the loop's own thread: it closes once we return.
                task = loop.create_task(self._shut(state))
                _CLOSING.add(task)
                task.add_done_callback(_CLOSING.discard)
            else:
                done = asyncio.run_coroutine_threadsafe(self._shut(state), loop)
                with contextlib.suppress(Exception):
                    done.result(_CLOSE_WAIT)

    def __repr__(self) -> str:
        return f"AsyncRedisConnection({self.location!r})"

"""
One pooled HTTP/1.1 client to one upstream origin, on aiohttp.

`UpstreamClient` sends a request to one origin (``scheme://host:port``) over
a keep-alive connection pool of its own and hands back the response to
stream; it knows nothing of ASGI, tenants or paths, so a proxy (or a pool of
replicas, one client each) sits on top of it. aiohttp was chosen by
measurement: through one uvicorn worker, a pass-through on it serves about
ten times the requests per second of the same pass-through on httpx at 32
connections (``benchmarks/bench_proxy.py``).

Failures are classified by `upstream_error_status`: 502, 503 or 504, with
an OpenAI error ``code``.

See ``docs/proxy.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterable
from typing import Final

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._upstream_options import UpstreamOptions

with needs_extra("proxy", "the upstream proxy"):
    import aiohttp
    import yarl
    from aiohttp.connector import Connection

__all__ = [
    "UPSTREAM_ERRORS",
    "UPSTREAM_ERROR_STATUS",
    "UpstreamBusyError",
    "UpstreamClient",
    "UpstreamWriteTimeoutError",
    "upstream_error_status",
]


class UpstreamBusyError(Exception):
    """
    Every connection to the upstream stayed in use for the pool timeout.

    .. versionadded:: 0.1.0
    """


class UpstreamWriteTimeoutError(TimeoutError):
    """
    A chunk of a streamed request body was not sent within the write timeout.

    .. versionadded:: 0.1.0
    """


#: HTTP status and OpenAI error ``code`` for each upstream failure class,
#: looked up along ``type(exc).__mro__`` (the most specific class wins).
UPSTREAM_ERROR_STATUS: Final[dict[type[BaseException], tuple[int, str]]] = {
    UpstreamBusyError: (503, "upstream_busy"),
    TimeoutError: (504, "upstream_timeout"),
    asyncio.TimeoutError: (504, "upstream_timeout"),
    aiohttp.ServerTimeoutError: (504, "upstream_timeout"),
    aiohttp.ClientPayloadError: (502, "upstream_invalid_response"),
    aiohttp.ClientResponseError: (502, "upstream_invalid_response"),
    aiohttp.ServerDisconnectedError: (502, "upstream_invalid_response"),
    aiohttp.ClientConnectionError: (502, "upstream_unavailable"),
    aiohttp.ClientError: (502, "upstream_invalid_response"),
}

#: The exceptions that mean the upstream failed (caught by the proxy).
UPSTREAM_ERRORS: Final = (
    aiohttp.ClientError,
    TimeoutError,
    asyncio.TimeoutError,
    UpstreamBusyError,
)


def upstream_error_status(exc: BaseException) -> tuple[int, str]:
    """
    The HTTP status and OpenAI error code for the upstream failure *exc*.

    Args:
        exc: An exception raised while talking to the upstream.

    Returns:
        ``(status, code)`` from `UPSTREAM_ERROR_STATUS`; anything else is
        ``(502, "upstream_invalid_response")``.

    .. versionadded:: 0.1.0
    """
    for cls in type(exc).__mro__:
        found = UPSTREAM_ERROR_STATUS.get(cls)
        if found is not None:
            return found
    return 502, "upstream_invalid_response"


#: Headers aiohttp would add on its own; the proxy sends only the client's.
_SKIP_AUTO_HEADERS: Final = ("User-Agent", "Content-Type")


class UpstreamClient:
    """
    A keep-alive connection pool to one upstream *origin*, and how to use it.

    *options* bound each step (`UpstreamOptions`): at most
    ``max_connections`` requests run at once; another waits up to
    ``pool_timeout`` seconds for a free one, then `send` raises
    `UpstreamBusyError`. Opening a connection may take ``connect_timeout``
    seconds, each read of the response ``read_timeout`` seconds, and each
    chunk of a streamed request body ``write_timeout`` seconds
    (`UpstreamWriteTimeoutError`). An idle connection is closed after
    ``keepalive_timeout`` seconds. Redirects are not followed, cookies never
    kept, bodies never decoded, and nothing is read from the environment
    (proxies, ``.netrc``).

    The pool opens on `open` or the first `send` and closes on `aclose`; a
    later `send` opens a new one. A *session* passed in is used as is (its
    connector's limits included) and never closed here.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        origin: str,
        options: UpstreamOptions,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.origin = origin
        self.options = options
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None,
            sock_connect=options.connect_timeout,
            sock_read=options.read_timeout,
        )
        self._session = session
        self._owns_session = session is None
        self._slots: asyncio.Semaphore | None = None

    @property
    def is_open(self) -> bool:
        """
        Whether a pool is open (or a session was passed in).

        .. versionadded:: 0.1.0
        """
        return self._session is not None

    def open(self) -> None:
        """
        Open the connection pool, if it is not open yet (in a running loop).

        .. versionadded:: 0.1.0
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.options.max_connections,
                    keepalive_timeout=self.options.keepalive_timeout,
                ),
                timeout=self._timeout,
                # One pool serves every tenant: it must never keep cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                request_class=_WatchedRequest,
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                trust_env=False,
                max_field_size=64 * 1024,
                max_line_size=64 * 1024,
            )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.options.max_connections)

    async def aclose(self) -> None:
        """
        Close the pool the client opened; a session passed in is left open.

        .. versionadded:: 0.1.0
        """
        self._slots = None
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @contextlib.asynccontextmanager
    async def send(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | AsyncIterator[bytes],
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """
        Send one request and yield its response, its body not yet read.

        Args:
            method: The HTTP method.
            target: The path and query, percent-encoded as they are to be
                sent, starting with ``/``.
            headers: The request headers, exactly those to send (``Host``
                and the body's framing are added).
            body: The body, whole or as a stream of chunks.

        Raises:
            UpstreamBusyError: No connection was free within the pool timeout.
            aiohttp.ClientError: The upstream failed (see
                `upstream_error_status`).
            TimeoutError: The upstream did not answer in time.

        .. versionadded:: 0.1.0
        """
        self.open()
        slots = self._slots
        session = self._session
        assert slots is not None
        assert session is not None
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), self.options.pool_timeout)
            except asyncio.TimeoutError as exc:
                raise UpstreamBusyError from exc
        else:
            await slots.acquire()
        stall = None
        if not isinstance(body, bytes):
            stall = _StallWatch(self.options.write_timeout)
            body = stall.watch(body)
        token = _STALL_WATCH.set(stall)
        try:
            response = await session.request(
                method,
                yarl.URL(self.origin + target, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout,
            )
            try:
                yield response
            finally:
                # Releasing an unfinished response closes its connection.
                response.release()
        except UPSTREAM_ERRORS as exc:
            if stall is not None and stall.stalled:
                raise UpstreamWriteTimeoutError from exc
            raise
        finally:
            _STALL_WATCH.reset(token)
            if stall is not None:
                stall.stop()
            slots.release()


class _StallWatch:
    """
    Aborts the connection that sends a streamed body when one chunk of it
    takes longer than *timeout* to be written (closing it would wait for the
    stalled bytes to drain).
    """

    __slots__ = ("_handle", "_timeout", "connection", "stalled")

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None
        self.connection: Connection | None = None
        self.stalled = False

    async def watch(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """*body*, each chunk timed from when it is handed on until the next is asked for."""
        loop = asyncio.get_running_loop()
        async for chunk in body:
            self._handle = loop.call_later(self._timeout, self._fire)
            yield chunk
            self._handle.cancel()

    def _fire(self) -> None:
        transport = None if self.connection is None else self.connection.transport
        if transport is not None:
            self.stalled = True
            transport.abort()

    def stop(self) -> None:
        """Stop timing (the exchange is over)."""
        if self._handle is not None:
            self._handle.cancel()


#: The stall watch of the streamed body being sent in this context, if any.
_STALL_WATCH: contextvars.ContextVar[_StallWatch | None] = contextvars.ContextVar(
    "zerfoo_cloud_stall_watch", default=None
)


class _WatchedRequest(aiohttp.ClientRequest):
    """
    A request that shows its connection to the stall watch of its body.
    """

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        watch = _STALL_WATCH.get()
        if watch is not None:
            watch.connection = conn
        return await super().send(conn)

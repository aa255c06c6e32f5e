"""
A streaming reverse proxy to a remote OpenAI-compatible server.

`UpstreamProxy` is a pure ASGI app that forwards every HTTP request to an
upstream server (vLLM, llama.cpp server, Ollama, TGI, ...) over a pooled
`zerfoo_cloud.http._upstream_client.UpstreamClient` (aiohttp), so
zerfoo-cloud can sit in front of a model server it does not import. Request and response bodies stream through one chunk at a
time and are never buffered, so server-sent events reach the client as the
upstream writes them.

URL rule: the request path is appended to the base URL's origin, unless the
base URL has a path prefix that the request path does not start with, in which
case the prefix is put in front. With ``http://h:8000/v1`` a request for
``/v1/chat/completions`` goes to ``http://h:8000/v1/chat/completions`` (not
``/v1/v1/...``) and one for ``/chat/completions`` goes to the same place; with
``http://gw/ollama`` a request for ``/v1/models`` goes to
``http://gw/ollama/v1/models``. The query string is kept as sent.

See ``docs/proxy.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._openai_error import openai_error_body
from zerfoo_cloud._upstream_options import UpstreamKeywords, UpstreamOptions
from zerfoo_cloud.errors import InvalidConfigError, UpstreamError
from zerfoo_cloud.http._accounting import REQUEST_ID_KEY
from zerfoo_cloud.http._proxy_exchange import (
    ClientGoneError,
    Exchange,
    take_back_cancel,
)
from zerfoo_cloud.http._proxy_rules import (
    HOP_BY_HOP_HEADERS,
    PATH_SAFE,
    REQUEST_ONLY_HEADERS,
    RESPONSE_ONLY_HEADERS,
    parse_base_url,
    safe_path,
    strip_headers,
)
from zerfoo_cloud.http._proxy_types import Receive, Scope, Send
from zerfoo_cloud.http._upstream_client import (
    UPSTREAM_ERROR_STATUS,
    UPSTREAM_ERRORS,
    UpstreamClient,
    upstream_error_status,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

with needs_extra("proxy", "the upstream proxy"):
    import aiohttp

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "UPSTREAM_ERROR_STATUS",
    "ProxyStats",
    "UpstreamProxy",
    "upstream_error_status",
]

_logger = logging.getLogger(__name__)

_MESSAGES: Final = {
    "upstream_busy": "Every connection to the upstream server is in use; retry shortly.",
    "upstream_timeout": "The upstream server did not answer in time.",
    "upstream_unavailable": "The upstream server could not be reached.",
    "upstream_invalid_response": "The upstream server sent an invalid response.",
    "invalid_path": (
        "The request path may not contain '.' or '..' segments, a backslash or a ';'."
    ),
}


@attrs.frozen
class ProxyStats:
    """
    Counters of one `UpstreamProxy` since it was built.

    The four ``upstream_*`` counters count every upstream failure by its error
    code, before or after the response started; *mid_stream_failures* counts
    those that cut a started response short. *client_disconnects* counts
    clients that left before their response was complete.

    .. versionadded:: 0.1.0
    """

    requests: int = 0
    upstream_unavailable: int = 0
    upstream_timeout: int = 0
    upstream_busy: int = 0
    upstream_invalid_response: int = 0
    mid_stream_failures: int = 0
    client_disconnects: int = 0


class UpstreamProxy:
    """
    An ASGI app that forwards every HTTP request to *base_url*.

    Bodies stream both ways without buffering; status and headers pass
    through, less the hop-by-hop headers (`HOP_BY_HOP_HEADERS`), ``Host``,
    and, towards the upstream, the client's ``Authorization``, ``x-api-key``,
    ``api-key`` and ``Cookie`` (and, on the way back, ``Set-Cookie``,
    ``Date`` and ``Server``, which the server in front sets itself). When
    *api_key* is set, every upstream request carries
    ``Authorization: Bearer <api_key>``; the key never appears in a log or a
    repr. The path rule is in this module's docstring.

    Failures before the response starts become OpenAI-shaped JSON errors
    (``{"error": {"message", "type", "param", "code"}}``, see
    `UPSTREAM_ERROR_STATUS`): 502 ``upstream_unavailable`` when the upstream
    cannot be reached, 504 ``upstream_timeout`` when it does not connect,
    answer or take the request body in time, 503 ``upstream_busy`` when
    every pooled connection stays busy for *pool_timeout*, 502
    ``upstream_invalid_response`` when it answers with something that is not
    HTTP. A failure after the response started is logged, counted and raised
    as `zerfoo_cloud.UpstreamError`, so the server closes the connection: the
    client gets the chunks sent so far and then an error (never a response
    that looks complete), and a middleware around the proxy sees the
    exception after the body it already metered.

    When the client disconnects, the upstream request is closed at once.

    The connection pool (an `UpstreamClient` on aiohttp, asyncio only) is
    created on ASGI lifespan startup or on first use and closed on lifespan
    shutdown or by `aclose`. A *client* session passed in is used as is (its
    connector's limits included) and is never closed by the proxy; the
    timeouts given here still apply to each request.

    Args:
        base_url: The upstream, ``http`` or ``https``, with an optional path
            prefix and no credentials, query or fragment.
        api_key: The upstream's own API key, or ``None``.
        options: The connection pool's timeouts and size, each
            (``connect_timeout``, ``read_timeout``, ``write_timeout``,
            ``pool_timeout``, ``max_connections``, ``keepalive_timeout``) as
            `zerfoo_cloud._upstream_options.UpstreamOptions` takes and
            defaults it.
        health_path: The path `health` requests.
        client: An `aiohttp.ClientSession` to use instead of the proxy's own.

    Raises:
        InvalidConfigError: A bad URL, key, timeout or connection limit.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        health_path: str = "/v1/models",
        client: aiohttp.ClientSession | None = None,
        **options: Unpack[UpstreamKeywords],
    ) -> None:
        self._origin, self._prefix = parse_base_url(base_url)
        self._options = UpstreamOptions(**options)
        if not health_path.startswith("/"):
            msg = f"health_path must start with '/', not {health_path!r}"
            raise InvalidConfigError(msg, field="health_path")
        self._auth: tuple[str, str] | None = None
        if api_key is not None:
            if not api_key or not api_key.isascii() or not api_key.isprintable():
                # The key itself is never put in the message.
                msg = "api_key must be a non-empty string of printable ASCII"
                raise InvalidConfigError(msg, field="api_key")
            self._auth = ("authorization", "Bearer " + api_key)
        self._health_path = health_path
        self._session = client
        self._client: UpstreamClient | None = None
        self._counts = dict.fromkeys(attrs.fields_dict(ProxyStats), 0)

    def __repr__(self) -> str:
        key = "<hidden>" if self._auth else None
        return f"UpstreamProxy({self.base_url!r}, api_key={key})"

    @property
    def base_url(self) -> str:
        """
        The upstream's origin and path prefix, without a trailing slash.

        .. versionadded:: 0.1.0
        """
        return self._origin + self._prefix

    def target_url(self, path: str, query: str = "") -> str:
        """
        The upstream URL a request for *path* and *query* is sent to.

        Args:
            path: The request path as sent (percent-encoded), starting with
                ``/``.
            query: The query string, without ``?``.

        Returns:
            The origin, then the base URL's path prefix unless *path* already
            starts with it (as a whole segment), then *path* and the query.

        .. versionadded:: 0.1.0
        """
        return self._origin + self._target(path, query)

    def _target(self, path: str, query: str) -> str:
        prefix = self._prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            path = prefix + path
        return f"{path}?{query}" if query else path

    def stats(self) -> ProxyStats:
        """
        A snapshot of the proxy's counters.

        .. versionadded:: 0.1.0
        """
        return ProxyStats(**self._counts)

    async def health(self) -> bool:
        """
        Whether the upstream answers ``GET`` *health_path* with a 2xx status.

        Upstream failures give ``False`` (and a log line), never an exception,
        so the result can feed a readiness probe directly.

        .. versionadded:: 0.1.0
        """
        headers = [self._auth] if self._auth else []
        target = self._target(self._health_path, "")
        try:
            async with self._upstream().send("GET", target, headers, b"") as response:
                return 200 <= response.status < 300  # noqa: PLR2004 - 2xx
        except UPSTREAM_ERRORS as exc:
            _logger.info(
                "upstream %s health check failed: %s", self.base_url, type(exc).__name__
            )
            return False

    async def aclose(self) -> None:
        """
        Close the proxy's own connection pool; a later request opens a new one.

        A client passed to the constructor is left open.

        .. versionadded:: 0.1.0
        """
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI connection: HTTP is proxied, lifespan manages the pool.

        .. versionadded:: 0.1.0
        """
        kind = scope["type"]
        if kind == "http":
            await self._proxy(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            # WebSockets are not proxied: closing before accepting refuses
            # the handshake (the server answers 403).
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    def _upstream(self) -> UpstreamClient:
        if self._client is None:
            self._client = UpstreamClient(
                self._origin, self._options, session=self._session
            )
        return self._client

    async def _open(self) -> None:
        """Open the connection pool (on lifespan startup)."""
        self._upstream().open()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._counts["requests"] += 1
        path: str = scope["path"]
        request_id = _request_id_of(scope)
        if not safe_path(path):
            await _send_error(
                send, 400, "invalid_request_error", "invalid_path", request_id
            )
            return
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else ""
        if (unquote(raw_path) if "%" in raw_path else raw_path) != path:
            # Mounted under a prefix, or no raw path: rebuild it from path.
            raw_path = quote(path, safe=PATH_SAFE)
        path_query = (raw_path, scope.get("query_string", b"").decode("latin-1"))
        exchange = Exchange(receive, send, request_id)
        try:
            content = await exchange.request_content()
        except ClientGoneError:
            self._client_left()
            return
        headers = self._request_headers(scope["headers"])
        watcher = asyncio.get_running_loop().create_task(exchange.watch_disconnect())
        try:
            await self._dispatch(scope, path_query, headers, content, exchange)
        except asyncio.CancelledError:
            if not exchange.client_gone:
                raise
            take_back_cancel()
        finally:
            exchange.finished = True
            watcher.cancel()
        if exchange.client_gone:
            self._client_left()

    async def _dispatch(
        self,
        scope: Scope,
        path_query: tuple[str, str],
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes],
        exchange: Exchange,
    ) -> None:
        """Send the request on: *path_query* is the raw path and the query."""
        await self._forward(
            scope["method"], self._target(*path_query), headers, content, exchange
        )

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes],
        exchange: Exchange,
    ) -> None:
        try:
            async with self._upstream().send(
                method, target, headers, content
            ) as response:
                await pass_on(response, exchange)
        except UPSTREAM_ERRORS as exc:
            if exchange.client_gone:
                return
            await self._failed(exc, exchange, started=exchange.started)

    async def _failed(
        self,
        exc: BaseException,
        exchange: Exchange,
        *,
        started: bool,
        upstream: str | None = None,
    ) -> None:
        status, code = upstream_error_status(exc)
        self._counts[code] += 1
        if not started:
            _logger.warning(
                "upstream %s failed before responding (%s): %s",
                upstream or self.base_url,
                code,
                type(exc).__name__,
            )
            await _send_error(
                exchange.send, status, "server_error", code, exchange.request_id
            )
            return
        self._counts["mid_stream_failures"] += 1
        _logger.warning(
            "upstream %s failed after %d response bytes (%s): %s",
            upstream or self.base_url,
            exchange.bytes_sent,
            code,
            type(exc).__name__,
        )
        raise UpstreamError(code, exchange.bytes_sent) from exc

    def _request_headers(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[str, str]]:
        out = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in strip_headers(headers, REQUEST_ONLY_HEADERS)
        ]
        out.append(("accept-encoding", "identity"))
        if self._auth:
            out.append(self._auth)
        return out

    def _client_left(self) -> None:
        self._counts["client_disconnects"] += 1
        _logger.debug("client left before its response from %s ended", self.base_url)


async def pass_on(response: aiohttp.ClientResponse, exchange: Exchange) -> None:
    """
    Send *response* on to the client: its status and headers (less those
    the proxy drops), then its body as it arrives.
    """
    await exchange.send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": strip_headers(response.raw_headers, RESPONSE_ONLY_HEADERS),
        }
    )
    exchange.started = True
    await _relay(response.content, exchange)


async def _relay(content: aiohttp.StreamReader, exchange: Exchange) -> None:
    """
    Send the response body on as it arrives; the chunk that ends it goes
    with ``more_body: False`` (one message less than an empty last one).
    """
    while True:
        chunk = await content.readany()
        last = content.at_eof()
        if chunk or last:
            await exchange.send(
                {"type": "http.response.body", "body": chunk, "more_body": not last}
            )
            exchange.bytes_sent += len(chunk)
        if last:
            return


def _request_id_of(scope: Scope) -> str | None:
    """The request id a `zerfoo_cloud.CloudServer` around the proxy gave."""
    state = scope.get("state")
    found = state.get(REQUEST_ID_KEY) if isinstance(state, dict) else None
    return found if isinstance(found, str) else None


async def _send_error(
    send: Send, status: int, kind: str, code: str, request_id: str | None = None
) -> None:
    body = openai_error_body(_MESSAGES[code], kind, code, request_id=request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 503:  # noqa: PLR2004 - the one status a client should retry
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""
A streaming reverse proxy to a remote OpenAI-compatible server.

`UpstreamProxy` is a pure ASGI app that forwards every HTTP request to an
upstream server (vLLM, llama.cpp server, Ollama, TGI, ...) over a pooled
`httpx.AsyncClient`, so zerfoo-cloud can sit in front of a model server it
does not import. Request and response bodies stream through one chunk at a
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

import http.cookiejar
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Final
from urllib.parse import quote, unquote

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._openai_error import openai_error_body
from zerfoo_cloud.errors import InvalidConfigError, UpstreamError
from zerfoo_cloud.http._accounting import REQUEST_ID_KEY
from zerfoo_cloud.http._proxy_types import Message, Receive, Scope, Send

with needs_extra("proxy", "the upstream proxy"):
    import anyio
    import httpx

__all__ = [
    "HOP_BY_HOP_HEADERS",
    "UPSTREAM_ERROR_STATUS",
    "ProxyStats",
    "UpstreamProxy",
    "upstream_error_status",
]

_logger = logging.getLogger(__name__)

#: Headers that describe one connection, not the message (RFC 9110, 7.6.1).
#: They are dropped both ways, with every ``proxy-*`` header and every header
#: that a ``Connection`` header names.
HOP_BY_HOP_HEADERS: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# The client's credentials stay here; Host and Accept-Encoding are set by the
# proxy itself (identity, so a middleware around the proxy can read the body
# to meter it); Expect is answered by the server in front.
_REQUEST_ONLY_HEADERS: Final = frozenset(
    {
        b"host",
        b"authorization",
        b"x-api-key",
        b"api-key",
        b"cookie",
        b"accept-encoding",
        b"expect",
    }
)
# An upstream must not set cookies on the proxy's origin. Date and Server are
# the front server's to send (it always does), as nginx's proxy_pass hides
# them: sent twice, Date would be invalid.
_RESPONSE_ONLY_HEADERS: Final = frozenset({b"set-cookie", b"date", b"server"})

#: HTTP status and OpenAI error ``code`` for each httpx exception class,
#: looked up along ``type(exc).__mro__`` (the most specific class wins).
UPSTREAM_ERROR_STATUS: Final[dict[type[Exception], tuple[int, str]]] = {
    httpx.PoolTimeout: (503, "upstream_busy"),
    httpx.TimeoutException: (504, "upstream_timeout"),
    httpx.NetworkError: (502, "upstream_unavailable"),
    httpx.ProtocolError: (502, "upstream_invalid_response"),
    httpx.TransportError: (502, "upstream_unavailable"),
    httpx.HTTPError: (502, "upstream_invalid_response"),
}

_MESSAGES: Final = {
    "upstream_busy": "Every connection to the upstream server is in use; retry shortly.",
    "upstream_timeout": "The upstream server did not answer in time.",
    "upstream_unavailable": "The upstream server could not be reached.",
    "upstream_invalid_response": "The upstream server sent an invalid response.",
    "invalid_path": (
        "The request path may not contain '.' or '..' segments, a backslash or a ';'."
    ),
}
_MAX_PORT: Final = 65535
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"


def upstream_error_status(exc: Exception) -> tuple[int, str]:
    """
    The HTTP status and OpenAI error code for the upstream failure *exc*.

    Args:
        exc: An httpx exception raised while talking to the upstream.

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


class _ClientGoneError(Exception):
    """
    The client disconnected while its request body was being forwarded.
    """


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
    cannot be reached, 504 ``upstream_timeout`` when it does not connect or
    answer in time, 503 ``upstream_busy`` when every pooled connection stays
    busy for *pool_timeout*, 502 ``upstream_invalid_response`` when it answers
    with something that is not HTTP. A failure after the response started is
    logged, counted and raised as `zerfoo_cloud.UpstreamError`, so the server
    closes the connection: the client gets the chunks sent so far and then an
    error (never a response that looks complete), and a middleware around the
    proxy sees the exception after the body it already metered.

    When the client disconnects, the upstream request is closed at once.

    The connection pool is created on ASGI lifespan startup or on first use
    and closed on lifespan shutdown or by `aclose`. A *client* passed in is
    used as is (its limits and cookie jar included) and is never closed by
    the proxy; the timeouts given here still apply to each request.

    Args:
        base_url: The upstream, ``http`` or ``https``, with an optional path
            prefix and no credentials, query or fragment.
        api_key: The upstream's own API key, or ``None``.
        connect_timeout: Seconds to open a connection.
        read_timeout: Seconds to wait for the next bytes of the response
            (the whole wait for a non-streamed answer, the gap between two
            chunks of a streamed one).
        write_timeout: Seconds to send the next bytes of the request.
        pool_timeout: Seconds to wait for a free pooled connection.
        max_connections: Connections open to the upstream at most.
        health_path: The path `health` requests.
        client: An `httpx.AsyncClient` to use instead of the proxy's own.

    Raises:
        InvalidConfigError: A bad URL, key, timeout or connection limit.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        write_timeout: float = 60.0,
        pool_timeout: float = 30.0,
        max_connections: int = 100,
        health_path: str = "/v1/models",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._origin, self._prefix = _parse_base_url(base_url)
        for field, value in (
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("write_timeout", write_timeout),
            ("pool_timeout", pool_timeout),
        ):
            if not value > 0:
                msg = f"{field} must be a positive number of seconds, not {value!r}"
                raise InvalidConfigError(msg, field=field)
        if max_connections < 1:
            msg = f"max_connections must be at least 1, not {max_connections!r}"
            raise InvalidConfigError(msg, field="max_connections")
        if not health_path.startswith("/"):
            msg = f"health_path must start with '/', not {health_path!r}"
            raise InvalidConfigError(msg, field="health_path")
        self._auth: tuple[bytes, bytes] | None = None
        if api_key is not None:
            if not api_key or not api_key.isascii() or not api_key.isprintable():
                # The key itself is never put in the message.
                msg = "api_key must be a non-empty string of printable ASCII"
                raise InvalidConfigError(msg, field="api_key")
            self._auth = (b"authorization", b"Bearer " + api_key.encode("ascii"))
        self._timeout = httpx.Timeout(
            connect=connect_timeout,
            read=read_timeout,
            write=write_timeout,
            pool=pool_timeout,
        )
        self._max_connections = max_connections
        self._health_path = health_path
        self._client = client
        self._owns_client = client is None
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
        prefix = self._prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            path = prefix + path
        url = self._origin + path
        return f"{url}?{query}" if query else url

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
        request = httpx.Request(
            "GET",
            self.target_url(self._health_path),
            headers=headers,
            extensions={"timeout": self._timeout.as_dict()},
        )
        try:
            response = await self._http().send(request)
        except httpx.HTTPError as exc:
            _logger.info(
                "upstream %s health check failed: %s", self.base_url, type(exc).__name__
            )
            return False
        return response.is_success

    async def aclose(self) -> None:
        """
        Close the proxy's own connection pool; a later request opens a new one.

        A client passed to the constructor is left open.

        .. versionadded:: 0.1.0
        """
        if self._owns_client and self._client is not None:
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

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
                # One pool serves every tenant: it must never keep cookies.
                cookies=http.cookiejar.CookieJar(
                    policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
                ),
                follow_redirects=False,
                # No proxy or .netrc credentials picked up from the environment.
                trust_env=False,
            )
        return self._client

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._http()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._counts["requests"] += 1
        path: str = scope["path"]
        request_id = _request_id_of(scope)
        if not _safe_path(path):
            await _send_error(
                send, 400, "invalid_request_error", "invalid_path", request_id
            )
            return
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else ""
        if unquote(raw_path) != path:
            # Mounted under a prefix, or no raw path: rebuild it from path.
            raw_path = quote(path, safe=_PATH_SAFE)
        url = self.target_url(
            raw_path, scope.get("query_string", b"").decode("latin-1")
        )
        exchange = _Exchange(receive, send)
        try:
            content = await exchange.request_content()
        except _ClientGoneError:
            self._client_left()
            return
        request = httpx.Request(
            scope["method"],
            url,
            headers=self._request_headers(scope["headers"]),
            content=content,
            extensions={"timeout": self._timeout.as_dict()},
        )
        exchange.request_id = request_id
        error = await self._watched(request, exchange)
        if exchange.client_gone:
            self._client_left()
        if error is not None:
            # Raised here, outside the task group, so that it is not wrapped
            # in an exception group.
            raise error

    async def _watched(
        self, request: httpx.Request, exchange: _Exchange
    ) -> Exception | None:
        """
        Forward *request* while watching for the client to leave; return the
        exception that ended it, if any.
        """
        async with anyio.create_task_group() as group:
            group.start_soon(exchange.watch_disconnect, group.cancel_scope)
            try:
                await self._forward(request, exchange)
            except Exception as exc:  # noqa: BLE001 - the caller raises it
                return exc
            finally:
                exchange.finished = True
                group.cancel_scope.cancel()
        return None

    async def _forward(self, request: httpx.Request, exchange: _Exchange) -> None:
        try:
            response = await self._http().send(
                request, stream=True, follow_redirects=False
            )
        except _ClientGoneError:
            exchange.client_gone = True
            return
        except httpx.HTTPError as exc:
            status, code = upstream_error_status(exc)
            self._counts[code] += 1
            _logger.warning(
                "upstream %s failed before responding (%s): %s",
                self.base_url,
                code,
                type(exc).__name__,
            )
            await _send_error(
                exchange.send, status, "server_error", code, exchange.request_id
            )
            return
        try:
            await exchange.send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _strip_headers(
                        response.headers.raw, _RESPONSE_ONLY_HEADERS
                    ),
                }
            )
            async for chunk in response.aiter_raw():
                await exchange.send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                exchange.bytes_sent += len(chunk)
            await exchange.send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:
            _, code = upstream_error_status(exc)
            self._counts[code] += 1
            self._counts["mid_stream_failures"] += 1
            _logger.warning(
                "upstream %s failed after %d response bytes (%s): %s",
                self.base_url,
                exchange.bytes_sent,
                code,
                type(exc).__name__,
            )
            raise UpstreamError(code, exchange.bytes_sent) from exc
        finally:
            # Closing must finish even when the client's departure cancelled
            # the exchange, or the pooled connection would leak.
            with anyio.CancelScope(shield=True):
                await response.aclose()

    def _request_headers(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        out = _strip_headers(headers, _REQUEST_ONLY_HEADERS)
        out.append((b"accept-encoding", b"identity"))
        if self._auth:
            out.append(self._auth)
        return out

    def _client_left(self) -> None:
        self._counts["client_disconnects"] += 1
        _logger.debug("client left before its response from %s ended", self.base_url)


class _Exchange:
    """
    The state of one request passing through; never shared between requests.
    """

    __slots__ = (
        "body_done",
        "bytes_sent",
        "client_gone",
        "finished",
        "receive",
        "request_id",
        "send",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send
        self.body_done = anyio.Event()
        self.bytes_sent = 0
        self.client_gone = False
        self.finished = False
        self.request_id: str | None = None

    async def request_content(self) -> bytes | AsyncIterator[bytes]:
        """
        The request body: bytes when it came in one message, else a stream.
        """
        message = await self.receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        first: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            self.body_done.set()
            return first
        return self._stream(first)

    async def _stream(self, first: bytes) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break
        self.body_done.set()

    async def watch_disconnect(self, scope: anyio.CancelScope) -> None:
        """
        Once the body is read, wait for the client to leave and cancel *scope*.
        """
        await self.body_done.wait()
        message: Message = await self.receive()
        while message["type"] != "http.disconnect":
            message = await self.receive()
        # A server also reports a disconnect once the response is complete;
        # only one that comes while the exchange runs is the client leaving.
        if not self.finished:
            self.client_gone = True
            scope.cancel()


def _parse_base_url(base_url: str) -> tuple[str, str]:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        msg = f"base_url {base_url!r} is not a URL: {exc}"
        raise InvalidConfigError(msg, field="base_url") from exc
    port_ok = url.port is None or 0 < url.port <= _MAX_PORT
    if url.scheme not in {"http", "https"} or not url.host or not port_ok:
        msg = f"base_url must be an http:// or https:// URL with a host and a valid port, not {base_url!r}"
        raise InvalidConfigError(msg, field="base_url")
    if url.userinfo:
        # Not echoed: the URL holds a credential.
        msg = "base_url must not hold credentials; pass the upstream key as api_key"
        raise InvalidConfigError(msg, field="base_url")
    if url.query or url.fragment:
        msg = f"base_url must not have a query or fragment, not {base_url!r}"
        raise InvalidConfigError(msg, field="base_url")
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    return origin, url.raw_path.decode("ascii").rstrip("/")


def _strip_headers(
    headers: Iterable[tuple[bytes, bytes]], also: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    pairs = [(name.lower(), value) for name, value in headers]
    named = {
        token.strip().lower()
        for name, value in pairs
        if name == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in pairs
        if name not in HOP_BY_HOP_HEADERS
        and name not in also
        and name not in named
        and not name.startswith(b"proxy-")
    ]


def _safe_path(path: str) -> bool:
    """
    Whether the decoded request path may be forwarded: it starts with
    ``/`` and holds no ``.`` or ``..`` segment (``%2e%2e`` decodes to one),
    no backslash (``%5c``: some servers read it as ``/``) and no ``;``
    (path parameters, which some servers strip before routing).
    """
    if not path.startswith("/") or "\\" in path or ";" in path:
        return False
    return not any(part in {".", ".."} for part in path.split("/"))


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

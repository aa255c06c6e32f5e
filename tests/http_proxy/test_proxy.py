"""
The reverse proxy against a real upstream server, both served by uvicorn on
127.0.0.1, driven by real clients (httpx and the official openai package).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import anyio
import httpx
import openai
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.errors import InvalidConfigError, UpstreamError
from zerfoo_cloud.http._proxy_types import ASGIApp, Message, Receive, Scope, Send
from zerfoo_cloud.http._upstream_client import (
    UpstreamBusyError,
    UpstreamWriteTimeoutError,
)
from zerfoo_cloud.http.proxy import (
    UPSTREAM_ERROR_STATUS,
    ProxyStats,
    UpstreamProxy,
    upstream_error_status,
)

pytestmark = pytest.mark.slow

UPSTREAM_KEY = "sk-upstream-secret"
CLIENT_KEY = "sk-client-secret"
WAIT = 5.0  # the bound on every wait in this module, in seconds
SLOW = 1.2  # how long the slow upstream routes take; past SHORT_READ
SHORT_READ = 0.3  # the read timeout of the short proxy


# --- the upstream: a tiny OpenAI-like app that records what it saw --------


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _chunk(delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class Upstream:
    """
    An OpenAI-compatible upstream that records the headers of each request.

    Streams wait on a gate (a `threading.Event` the test sets) between their
    first and second chunk, and record whether the second was sent.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[tuple[bytes, bytes]]]] = []
        self.gates: dict[str, threading.Event] = {}
        self.sent_second: dict[str, bool] = {}
        self.left = threading.Event()

    def gate(self, name: str) -> threading.Event:
        self.gates[name] = threading.Event()
        self.sent_second[name] = False
        return self.gates[name]

    def headers_of(self, path: str) -> dict[bytes, list[bytes]]:
        for seen_path, headers in reversed(self.seen):
            if seen_path == path:
                out: dict[bytes, list[bytes]] = {}
                for name, value in headers:
                    out.setdefault(name.lower(), []).append(value)
                return out
        raise AssertionError(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.seen.append((scope["path"], list(scope["headers"])))
        routes: dict[str, Callable[[Scope, Receive, Send], Any]] = {
            "/v1/models": self.models,
            "/v1/chat/completions": self.chat,
            "/v1/echo": self.echo,
            "/v1/slow": self.slow,
            "/v1/die": self.die,
            "/v1/stall": self.stall,
            "/v1/hop": self.hop,
            "/v1/broken": self.broken,
            "/v1/wait-disconnect": self.wait_disconnect,
        }
        route = routes.get(scope["path"])
        if route is None:
            await _json(send, 404, {"error": {"message": "no such route"}})
            return
        await route(scope, receive, send)

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(send, 200, {"object": "list", "data": [{"id": "m"}]})

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.loads(await _read_body(receive))
        headers = dict(scope["headers"])
        if delay := headers.get(b"x-delay"):
            await asyncio.sleep(float(delay))
        if not body.get("stream"):
            await _json(send, 200, COMPLETION)
            return
        name = headers.get(b"x-test-id", b"").decode()
        await _start_sse(send)
        await _body(send, _sse(_chunk({"role": "assistant", "content": ""})))
        if headers.get(b"x-die"):
            msg = "upstream crashed mid-stream"
            raise RuntimeError(msg)
        gate = self.gates.get(name)
        if gate is not None:
            await anyio.to_thread.run_sync(gate.wait, WAIT)
            self.sent_second[name] = True
        await _body(send, _sse(_chunk({"content": "hello"})))
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        await _body(send, _sse({**_chunk({}, finish="stop"), "usage": usage}))
        await _body(send, _sse("[DONE]"), more=False)

    async def echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        digest = hashlib.sha256()
        size = messages = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            size += len(chunk)
            messages += 1
            more = message.get("more_body", False)
        result = {
            "bytes": size,
            "sha256": digest.hexdigest(),
            "messages": messages,
            "query": scope["query_string"].decode(),
            "raw_path": scope["raw_path"].decode(),
        }
        await _json(send, 200, result)

    async def slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(SLOW)
        await _json(send, 200, {"late": True})

    async def die(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _start_sse(send)
        await _body(send, _sse(_chunk({"content": "partial"})))
        # The server closes the connection mid-response, as a crash would.
        msg = "upstream crashed mid-stream"
        raise RuntimeError(msg)

    async def stall(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _start_sse(send)
        await _body(send, _sse(_chunk({"content": "partial"})))
        await asyncio.sleep(SLOW)
        await _body(send, _sse("[DONE]"), more=False)

    async def hop(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/plain"),
            (b"x-kept", b"1"),
            (b"x-hop", b"1"),
            (b"connection", b"x-hop"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-authenticate", b"Basic"),
            (b"set-cookie", b"session=upstream"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await _body(send, b"ok", more=False)

    async def broken(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(send, 500, {"error": {"message": "broken"}})

    async def wait_disconnect(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _start_sse(send)
        await _body(send, _sse(_chunk({"content": "partial"})))
        with anyio.move_on_after(WAIT):
            while (await receive())["type"] != "http.disconnect":
                pass
            self.left.set()


async def _read_body(receive: Receive) -> bytes:
    parts = []
    more = True
    while more:
        message = await receive()
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(parts)


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await _body(send, body, more=False)


async def _start_sse(send: Send) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _body(send: Send, body: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


# --- real servers ---------------------------------------------------------


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """
    Serve *app* with uvicorn in a thread on a free port of 127.0.0.1.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        lifespan="on",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def free_port() -> int:
    """
    A port of 127.0.0.1 that nothing listens on.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Accounting:
    """
    A middleware like the billing one: it counts the body bytes it passes on
    and records them, and the exception if any, when the app ends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.records: list[tuple[int, BaseException | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = 0
        error: BaseException | None = None

        async def counting_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception as exc:
            error = exc
            raise
        finally:
            self.records.append((sent, error))


@pytest.fixture(scope="module")
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture(scope="module")
def upstream_url(upstream: Upstream) -> Iterator[str]:
    with serve(upstream) as url:
        yield url


@pytest.fixture(scope="module")
def proxied(upstream_url: str) -> Iterator[tuple[UpstreamProxy, Accounting, str]]:
    proxy = UpstreamProxy(f"{upstream_url}/v1", api_key=UPSTREAM_KEY, read_timeout=WAIT)
    accounting = Accounting(proxy)
    with serve(accounting) as url:
        yield proxy, accounting, url
    # Lifespan shutdown closed the pool.
    assert proxy._client is None


@pytest.fixture
def proxy(proxied: tuple[UpstreamProxy, Accounting, str]) -> UpstreamProxy:
    return proxied[0]


@pytest.fixture
def proxy_url(proxied: tuple[UpstreamProxy, Accounting, str]) -> str:
    return proxied[2]


@pytest.fixture(scope="module")
def short(upstream_url: str) -> Iterator[tuple[UpstreamProxy, str]]:
    proxy = UpstreamProxy(upstream_url, read_timeout=SHORT_READ)
    with serve(proxy) as url:
        yield proxy, url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT) as client:
        yield client


def _openai(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=WAIT
    )


def _wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _read_until_error(response: httpx.Response) -> tuple[bytes, Exception | None]:
    received = b""
    try:
        for piece in response.iter_raw():
            received += piece
    except httpx.HTTPError as exc:
        return received, exc
    return received, None


MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _gated_stream(
    client: httpx.Client, url: str, name: str
) -> contextlib.AbstractContextManager[httpx.Response]:
    """
    A streamed completion whose upstream waits on the gate *name* after its first chunk.
    """
    request = {"model": "m", "messages": MESSAGES, "stream": True}
    return client.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json=request,
        headers={"x-test-id": name},
    )


# --- pass-through ---------------------------------------------------------


def echo_scope(
    *,
    raw_path: bytes | None = b"/v1/echo",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    """The ASGI scope of a ``POST /v1/echo`` request sent to a proxy directly."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/echo",
        "raw_path": raw_path,
        "query_string": b"",
        "headers": headers or [],
    }


def test_json_passes_through_identically(
    client: httpx.Client, upstream_url: str, proxy_url: str
) -> None:
    """A non-streamed completion arrives through the proxy byte for byte as sent."""
    request = {"model": "m", "messages": MESSAGES}
    direct = client.post(f"{upstream_url}/v1/chat/completions", json=request)
    proxied = client.post(f"{proxy_url}/v1/chat/completions", json=request)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["content-type"] == "application/json"
    assert proxied.headers["content-length"] == str(len(direct.content))
    assert len(proxied.headers.get_list("date")) == 1
    assert proxied.headers.get_list("server") == ["uvicorn"]


def test_openai_client_through_the_proxy(upstream: Upstream, proxy_url: str) -> None:
    """The official client gets the completion, and the path is not doubled."""
    with _openai(proxy_url) as client:
        completion = client.chat.completions.create(model="m", messages=MESSAGES)
        models = client.models.list()
    assert completion.choices[0].message.content == "hello"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 4
    assert [model.id for model in models] == ["m"]
    assert upstream.seen[-1][0] == "/v1/models"
    assert upstream.headers_of("/v1/chat/completions")


def test_sse_arrives_chunk_by_chunk(upstream: Upstream, proxy_url: str) -> None:
    """The first streamed chunk reaches the openai client before the upstream sends the second."""
    gate = upstream.gate("openai-stream")
    with _openai(proxy_url) as client:
        stream = client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-test-id": "openai-stream"},
        )
        with stream:
            chunks = iter(stream)
            first = next(chunks)
            assert not upstream.sent_second["openai-stream"]
            gate.set()
            rest = list(chunks)
    assert first.choices[0].delta.role == "assistant"
    assert rest[0].choices[0].delta.content == "hello"
    assert rest[-1].usage is not None
    assert rest[-1].usage.total_tokens == 4


def test_raw_sse_bytes_are_not_held_back(
    client: httpx.Client, upstream: Upstream, proxy_url: str
) -> None:
    """Raw SSE bytes arrive as the upstream writes them, exactly, with the event-stream type."""
    gate = upstream.gate("raw-stream")
    with _gated_stream(client, proxy_url, "raw-stream") as response:
        assert response.headers["content-type"] == "text/event-stream"
        pieces = response.iter_raw()
        first = next(pieces)
        assert first == _sse(_chunk({"role": "assistant", "content": ""}))
        assert not upstream.sent_second["raw-stream"]
        gate.set()
        rest = b"".join(pieces)
    assert rest.endswith(b"data: [DONE]\n\n")
    assert b'"content": "hello"' in rest


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_request_body_streams_through(
    client: httpx.Client, proxy_url: str, chunked: bool
) -> None:
    """An 8 MB request body reaches the upstream intact, in many messages, with the query kept."""
    body = os.urandom(8 * 1024 * 1024)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    content: bytes | Iterator[bytes] = pieces() if chunked else body
    response = client.post(f"{proxy_url}/v1/echo?a=1&b=%20", content=content)
    assert response.status_code == 200
    seen = response.json()
    assert seen["bytes"] == len(body)
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()
    assert seen["messages"] > 1
    assert seen["query"] == "a=1&b=%20"


def test_percent_encoding_of_the_path_is_kept(
    client: httpx.Client, proxy_url: str
) -> None:
    """The path reaches the upstream as the client encoded it."""
    response = client.post(f"{proxy_url}/v1/echo", content=b"x")
    assert response.json()["raw_path"] == "/v1/echo"
    response = client.get(f"{proxy_url}/v1/a%2Fb")
    assert response.status_code == 404


def test_dot_segments_are_refused(client: httpx.Client, proxy_url: str) -> None:
    """A path with an encoded '..' segment is refused with 400 instead of escaping the prefix."""
    response = client.get(f"{proxy_url}/v1/%2e%2e/admin")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_path"


# --- headers --------------------------------------------------------------


def _seen_upstream(
    client: httpx.Client, upstream: Upstream, url: str, headers: dict[str, str]
) -> dict[bytes, list[bytes]]:
    client.post(f"{url}/v1/echo", content=b"{}", headers=headers)
    return upstream.headers_of("/v1/echo")


def test_client_credentials_never_reach_upstream(
    client: httpx.Client, upstream: Upstream, proxy_url: str
) -> None:
    """The client's Authorization, x-api-key, api-key and cookies stay here; the upstream key goes."""
    headers = {
        "Authorization": f"Bearer {CLIENT_KEY}",
        "x-api-key": CLIENT_KEY,
        "api-key": CLIENT_KEY,
        "Cookie": f"session={CLIENT_KEY}",
        "x-custom": "kept",
    }
    seen = _seen_upstream(client, upstream, proxy_url, headers)
    assert seen[b"authorization"] == [f"Bearer {UPSTREAM_KEY}".encode()]
    assert seen[b"x-custom"] == [b"kept"]
    assert seen[b"accept-encoding"] == [b"identity"]
    assert b"x-api-key" not in seen
    assert b"api-key" not in seen
    assert b"cookie" not in seen
    everything = b"".join(value for values in seen.values() for value in values)
    assert CLIENT_KEY.encode() not in everything


def test_no_upstream_key_sends_no_authorization(
    client: httpx.Client, upstream: Upstream, short: tuple[UpstreamProxy, str]
) -> None:
    """Without an upstream key, no Authorization header reaches the upstream at all."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    assert b"authorization" not in _seen_upstream(client, upstream, short[1], headers)


def test_hop_by_hop_request_headers_are_dropped(
    client: httpx.Client, upstream: Upstream, upstream_url: str, proxy_url: str
) -> None:
    """Connection, Keep-Alive, TE, Proxy-*, the headers Connection names and Host do not go upstream."""
    headers = {
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "1",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "Upgrade": "h2c",
        "X-Kept": "1",
    }
    seen = _seen_upstream(client, upstream, proxy_url, headers)
    dropped = (b"x-drop-me", b"keep-alive", b"te", b"proxy-authorization", b"upgrade")
    for name in dropped:
        assert name not in seen, name
    assert seen.get(b"connection", [b""]) != [b"keep-alive, X-Drop-Me"]
    assert seen[b"x-kept"] == [b"1"]
    assert seen[b"host"] == [upstream_url.removeprefix("http://").encode()]


def test_hop_by_hop_response_headers_are_dropped(
    client: httpx.Client, proxy_url: str
) -> None:
    """The upstream's hop-by-hop headers, the ones its Connection names, and Set-Cookie stay there."""
    response = client.get(f"{proxy_url}/v1/hop")
    assert response.text == "ok"
    assert response.headers["x-kept"] == "1"
    for name in ("x-hop", "keep-alive", "proxy-authenticate", "set-cookie"):
        assert name not in response.headers, name


# --- upstream failures ----------------------------------------------------


def test_upstream_down_is_502_in_openai_shape(client: httpx.Client) -> None:
    """With nothing listening upstream, clients get 502 upstream_unavailable in OpenAI's shape."""
    proxy = UpstreamProxy(f"http://127.0.0.1:{free_port()}", connect_timeout=WAIT)
    with serve(proxy) as url:
        response = client.get(f"{url}/v1/models")
        with _openai(url) as oai, pytest.raises(openai.InternalServerError) as raised:
            oai.chat.completions.create(model="m", messages=MESSAGES)
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "message": "The upstream server could not be reached.",
            "type": "server_error",
            "param": None,
            "code": "upstream_unavailable",
        }
    }
    assert raised.value.status_code == 502
    assert raised.value.code == "upstream_unavailable"
    assert proxy.stats().upstream_unavailable == 2
    assert proxy.stats().client_disconnects == 0


def test_slow_upstream_is_504_after_the_read_timeout(
    client: httpx.Client, short: tuple[UpstreamProxy, str]
) -> None:
    """An upstream slower than the read timeout gives 504 upstream_timeout, to openai too."""
    proxy, url = short
    before = proxy.stats().upstream_timeout
    started = time.monotonic()
    response = client.get(f"{url}/v1/slow")
    assert time.monotonic() - started < SLOW
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    with _openai(url) as oai, pytest.raises(openai.APIStatusError) as raised:
        oai.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-delay": str(SLOW)}
        )
    assert raised.value.status_code == 504
    assert isinstance(raised.value, openai.InternalServerError)
    assert proxy.stats().upstream_timeout == before + 2


def test_upstream_error_status_passes_through(
    client: httpx.Client, proxy_url: str
) -> None:
    """An upstream's own error response is relayed as is, not rewritten."""
    response = client.get(f"{proxy_url}/v1/broken")
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "broken"}}


def test_not_http_is_502_invalid_response(client: httpx.Client) -> None:
    """An upstream that answers with something other than HTTP gives 502 upstream_invalid_response."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(WAIT)

    def garbage() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

    thread = threading.Thread(target=garbage)
    thread.start()
    port = listener.getsockname()[1]
    proxy = UpstreamProxy(f"http://127.0.0.1:{port}")
    try:
        with serve(proxy) as url:
            response = client.get(f"{url}/v1/models")
    finally:
        thread.join(timeout=WAIT)
        listener.close()
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_invalid_response"
    assert proxy.stats().upstream_invalid_response == 1


@pytest.mark.parametrize(
    ("route", "code", "proxy_fixture"),
    [
        ("/v1/die", "upstream_invalid_response", "proxied"),
        ("/v1/stall", "upstream_timeout", "short"),
    ],
    ids=["dies", "stalls"],
)
def test_mid_stream_failure_ends_with_an_error(
    request: pytest.FixtureRequest,
    client: httpx.Client,
    route: str,
    code: str,
    proxy_fixture: str,
) -> None:
    """When the upstream fails mid-stream the client gets what was sent, then an error, not a hang."""
    fixture = request.getfixturevalue(proxy_fixture)
    proxy: UpstreamProxy = fixture[0]
    url: str = fixture[-1]
    before = proxy.stats()
    started = time.monotonic()
    with client.stream("GET", f"{url}{route}") as response:
        assert response.status_code == 200
        received, error = _read_until_error(response)
    assert time.monotonic() - started < WAIT
    assert isinstance(error, httpx.RemoteProtocolError)
    assert received == _sse(_chunk({"content": "partial"}))
    after = proxy.stats()
    assert after.mid_stream_failures == before.mid_stream_failures + 1
    assert getattr(after, code) == getattr(before, code) + 1


def test_mid_stream_failure_reaches_a_wrapping_middleware(
    client: httpx.Client, proxied: tuple[UpstreamProxy, Accounting, str]
) -> None:
    """A middleware around the proxy sees UpstreamError after metering exactly the bytes sent."""
    _, accounting, url = proxied
    with client.stream("GET", f"{url}/v1/die") as response:
        _, failure = _read_until_error(response)
    assert isinstance(failure, httpx.RemoteProtocolError)
    assert _wait_until(lambda: bool(accounting.records))
    sent, error = accounting.records[-1]
    assert sent == len(_sse(_chunk({"content": "partial"})))
    assert isinstance(error, UpstreamError)
    assert error.code == "upstream_invalid_response"
    assert error.bytes_sent == sent
    assert isinstance(error.__cause__, aiohttp.ClientPayloadError)


def test_openai_stream_that_dies_raises(proxy_url: str) -> None:
    """The openai client's stream raises instead of hanging when the upstream dies mid-stream."""
    got: list[Any] = []
    with _openai(proxy_url) as oai:
        stream = oai.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers={"x-die": "1"}
        )
        with stream, pytest.raises((openai.APIError, httpx.HTTPError)):
            got.extend(stream)
    assert len(got) == 1
    assert got[0].choices[0].delta.role == "assistant"


def test_client_disconnect_closes_the_upstream_stream(
    client: httpx.Client, upstream: Upstream, proxy: UpstreamProxy, proxy_url: str
) -> None:
    """A client that leaves mid-stream makes the proxy close its upstream request at once."""
    upstream.left.clear()
    before = proxy.stats().client_disconnects
    with client.stream("GET", f"{proxy_url}/v1/wait-disconnect") as response:
        first = next(response.iter_raw())
    assert first == _sse(_chunk({"content": "partial"}))
    assert upstream.left.wait(WAIT)
    assert _wait_until(lambda: proxy.stats().client_disconnects == before + 1)


def test_pool_limit(
    client: httpx.Client, upstream: Upstream, upstream_url: str
) -> None:
    """With max_connections=1 one request runs, and a second waiting past pool_timeout gets 503."""
    proxy = UpstreamProxy(upstream_url, max_connections=1, pool_timeout=0.2)
    gate = upstream.gate("pool")
    with serve(proxy) as url:
        with _gated_stream(client, url, "pool") as held:
            pieces = held.iter_raw()
            next(pieces)
            with httpx.Client(timeout=WAIT) as other:
                busy = other.get(f"{url}/v1/models")
            gate.set()
            assert b"".join(pieces).endswith(b"data: [DONE]\n\n")
        after = client.get(f"{url}/v1/models")
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "upstream_busy"
    assert after.status_code == 200
    assert proxy.stats().upstream_busy == 1


# --- health, lifecycle ----------------------------------------------------


def test_health(upstream_url: str) -> None:
    """health() is True for a 2xx answer and False for an error status or no upstream."""

    async def check() -> tuple[bool, bool, bool]:
        up = UpstreamProxy(f"{upstream_url}/v1", api_key=UPSTREAM_KEY)
        broken = UpstreamProxy(upstream_url, health_path="/v1/broken")
        down = UpstreamProxy(f"http://127.0.0.1:{free_port()}")
        try:
            return await up.health(), await broken.health(), await down.health()
        finally:
            for proxy in (up, broken, down):
                await proxy.aclose()

    assert anyio.run(check) == (True, False, False)


def test_a_client_passed_in_is_used_and_left_open(upstream_url: str) -> None:
    """A caller's aiohttp session serves the requests and stays open after aclose()."""

    async def check() -> tuple[bool, bool]:
        async with aiohttp.ClientSession() as own:
            proxy = UpstreamProxy(upstream_url, client=own)
            healthy = await proxy.health()
            await proxy.aclose()
            return healthy, own.closed

    assert anyio.run(check) == (True, False)


def test_aclose_then_reuse_opens_a_new_pool(upstream_url: str) -> None:
    """After aclose() the next request opens a fresh pool instead of failing."""

    async def check() -> tuple[bool, bool]:
        proxy = UpstreamProxy(upstream_url)
        first = await proxy.health()
        await proxy.aclose()
        second = await proxy.health()
        await proxy.aclose()
        await proxy.aclose()
        return first, second

    assert anyio.run(check) == (True, True)


def test_websocket_is_refused() -> None:
    """A WebSocket handshake is refused by closing before accepting."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    proxy = UpstreamProxy("http://127.0.0.1:1")
    anyio.run(proxy, {"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_client_leaving_during_the_request_body(upstream_url: str) -> None:
    """A client that disconnects while its body is forwarded ends the exchange, with nothing sent."""
    sent: list[Message] = []
    messages: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    async def run(first: list[Message]) -> ProxyStats:
        messages[:] = first
        proxy = UpstreamProxy(upstream_url)
        scope = echo_scope(raw_path=None, headers=[(b"content-length", b"10")])
        await proxy(scope, receive, send)
        await proxy.aclose()
        return proxy.stats()

    part: Message = {"type": "http.request", "body": b"{", "more_body": True}
    gone: Message = {"type": "http.disconnect"}
    mid_body = anyio.run(run, [part, gone])
    at_once = anyio.run(run, [gone])
    assert mid_body.client_disconnects == at_once.client_disconnects == 1
    assert sent == []


def test_an_error_from_send_is_raised_as_is(upstream_url: str) -> None:
    """An exception from the server's send (a client gone, say) propagates unwrapped."""
    sent: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"{}", "more_body": False},
        # Servers may repeat a message; only a disconnect ends the watch.
        {"type": "http.request", "body": b"", "more_body": False},
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            msg = "the client went away"
            raise OSError(msg)

    async def run() -> None:
        proxy = UpstreamProxy(upstream_url)
        scope = echo_scope()
        try:
            with anyio.fail_after(WAIT):
                await proxy(scope, receive, send)
        finally:
            await proxy.aclose()

    with pytest.raises(OSError, match="the client went away"):
        anyio.run(run)
    assert sent[0]["status"] == 200
    assert messages == []


# --- configuration --------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://h/",
        "http://",
        "not a url",
        "http://h:8000/v1?x=1",
        "http://h:8000/v1#frag",
        "http://h:65536/",
        "http://h:0/",
        "http://h:abc/",
    ],
)
def test_bad_base_urls_are_refused(base_url: str) -> None:
    """A base URL that is not plain http(s) with a host is refused up front."""
    with pytest.raises(InvalidConfigError) as raised:
        UpstreamProxy(base_url)
    assert raised.value.field == "base_url"


def test_highest_port_is_accepted() -> None:
    """Port 65535 is the highest a base URL may name."""
    assert UpstreamProxy("http://h:65535/v1").base_url == "http://h:65535/v1"


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    """A password in the base URL is refused, and the message does not repeat it."""
    with pytest.raises(InvalidConfigError) as raised:
        UpstreamProxy("http://user:hunter2@h:8000/v1")
    assert "hunter2" not in str(raised.value)
    assert "api_key" in str(raised.value)


@pytest.mark.parametrize(
    "option",
    ["connect_timeout", "read_timeout", "write_timeout", "pool_timeout"],
)
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_timeouts_must_be_positive(option: str, value: float) -> None:
    """A timeout of zero, below zero or NaN is refused; the smallest positive one is accepted."""
    bad: dict[str, Any] = {option: value}
    with pytest.raises(InvalidConfigError) as raised:
        UpstreamProxy("http://h", **bad)
    assert raised.value.field == option
    smallest: dict[str, Any] = {option: 1e-9}
    UpstreamProxy("http://h", **smallest)


def test_max_connections_limit() -> None:
    """max_connections=1 is accepted and 0 is refused."""
    UpstreamProxy("http://h", max_connections=1)
    with pytest.raises(InvalidConfigError):
        UpstreamProxy("http://h", max_connections=0)


def test_health_path_must_be_absolute() -> None:
    """A health path without a leading slash is refused."""
    with pytest.raises(InvalidConfigError):
        UpstreamProxy("http://h", health_path="v1/models")


@pytest.mark.parametrize("key", ["", "sk-a\r\nx-evil: 1", "sk-é"])
def test_bad_api_keys_are_refused_without_echoing_them(key: str) -> None:
    """An empty, multi-line or non-ASCII upstream key is refused and not repeated."""
    with pytest.raises(InvalidConfigError) as raised:
        UpstreamProxy("http://h", api_key=key)
    assert raised.value.field == "api_key"
    if key:
        assert key not in str(raised.value)


def test_repr_hides_the_key() -> None:
    """The repr names the upstream but never shows its key."""
    proxy = UpstreamProxy("http://h:8000/v1/", api_key=UPSTREAM_KEY)
    assert UPSTREAM_KEY not in repr(proxy)
    assert repr(proxy) == "UpstreamProxy('http://h:8000/v1', api_key=<hidden>)"
    assert "None" in repr(UpstreamProxy("http://h"))


# --- the URL rule and the error map ---------------------------------------


@pytest.mark.parametrize(
    ("base_url", "path", "query", "expected"),
    [
        (
            "http://h:8000/v1",
            "/v1/chat/completions",
            "",
            "http://h:8000/v1/chat/completions",
        ),
        (
            "http://h:8000/v1/",
            "/chat/completions",
            "",
            "http://h:8000/v1/chat/completions",
        ),
        ("http://h:8000", "/v1/models", "a=1", "http://h:8000/v1/models?a=1"),
        ("http://h:8000/", "/v1/models", "", "http://h:8000/v1/models"),
        ("http://gw/ollama", "/v1/models", "", "http://gw/ollama/v1/models"),
        ("http://h/v1", "/v10/models", "", "http://h/v1/v10/models"),
        ("http://h/v1", "/v1", "", "http://h/v1"),
        ("https://h/v1", "/", "", "https://h/v1/"),
    ],
)
def test_target_url(base_url: str, path: str, query: str, expected: str) -> None:
    """Request paths join the base URL without doubling its prefix."""
    assert UpstreamProxy(base_url).target_url(path, query) == expected


_segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6
)


@given(
    prefix=st.lists(_segment, max_size=3),
    path=st.lists(_segment, min_size=1, max_size=4),
    with_prefix=st.booleans(),
)
def test_target_url_property(
    prefix: list[str], path: list[str], with_prefix: bool
) -> None:
    """The target lies under the prefix, never doubles it, and ends with the request path."""
    base_path = "".join(f"/{part}" for part in prefix)
    request_path = "".join(
        f"/{part}" for part in (prefix if with_prefix else []) + path
    )
    target = UpstreamProxy(f"http://h{base_path}").target_url(request_path)
    under = f"http://h{base_path}"
    assert target == under or target.startswith(f"{under}/")
    assert target.endswith(request_path)
    if with_prefix or not base_path:
        assert target == f"http://h{request_path}"
    elif not (request_path + "/").startswith(base_path + "/"):
        assert target == f"http://h{base_path}{request_path}"


def test_every_aiohttp_error_is_mapped() -> None:
    """Each aiohttp client exception maps to a 5xx status with an upstream_* code."""
    classes = [
        value
        for value in vars(aiohttp).values()
        if isinstance(value, type) and issubclass(value, aiohttp.ClientError)
    ]
    assert len(classes) > 10
    for cls in classes:
        status, code = UPSTREAM_ERROR_STATUS[
            next(base for base in cls.__mro__ if base in UPSTREAM_ERROR_STATUS)
        ]
        assert status in {502, 503, 504}
        assert code.startswith("upstream_")


_KEY = aiohttp.client_reqrep.ConnectionKey("h", 80, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "x")),
            (502, "upstream_unavailable"),
        ),
        (aiohttp.ClientOSError(104, "reset"), (502, "upstream_unavailable")),
        (aiohttp.ConnectionTimeoutError("x"), (504, "upstream_timeout")),
        (aiohttp.SocketTimeoutError("x"), (504, "upstream_timeout")),
        (UpstreamWriteTimeoutError(), (504, "upstream_timeout")),
        (UpstreamBusyError(), (503, "upstream_busy")),
        (aiohttp.ClientPayloadError("x"), (502, "upstream_invalid_response")),
        (aiohttp.ServerDisconnectedError(), (502, "upstream_invalid_response")),
        (ValueError("x"), (502, "upstream_invalid_response")),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_upstream_error_status(exc: Exception, expected: tuple[int, str]) -> None:
    """The most specific class in the map decides the status and code."""
    assert upstream_error_status(exc) == expected

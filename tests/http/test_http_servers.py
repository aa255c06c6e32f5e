"""
End to end: real uvicorn and waitress servers on 127.0.0.1, httpx and the
official openai client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai
import pytest
from toy_openai_app import count_tokens, make_app

from tests.http._support import (
    KEY,
    Stack,
    asgi_sse_app,
    serve_asgi,
    serve_wsgi,
    sse_events,
    wait_until,
)
from zerfoo_cloud.http import CloudMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.slow

PROMPT = "tell me about the weather"
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A memory stack with tenant acme (generous limits, allow list toy-1)."""
    s = Stack()
    s.tenant(
        rate_limit=1000,
        token_budget=1_000_000,
        max_concurrent_requests=4,
        model_allow_list=("toy-1",),
    )
    yield s
    s.close()


def _openai(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=10)


def _exercise_openai(base: str) -> list[tuple[str, int, int]]:
    """Chat (plain and streamed, with and without usage) and embeddings; return seen usages."""
    with _openai(base) as client:
        seen = []
        reply = client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=7
        )
        assert reply.usage is not None
        assert reply.choices[0].message.content
        seen.append(("acme", reply.usage.prompt_tokens, reply.usage.completion_tokens))
        stream = client.chat.completions.create(
            model="toy-1",
            messages=MESSAGES,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        usage = chunks[-1].usage
        assert usage is not None
        assert chunks[-1].choices == []
        seen.append(("acme", usage.prompt_tokens, usage.completion_tokens))
        plain = client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=4, stream=True
        )
        pieces = list(plain)
        assert all(p.usage is None for p in pieces)
        text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
        assert count_tokens(text) == 4
        seen.append(("acme", count_tokens(PROMPT), 4))
        emb = client.embeddings.create(model="toy-1", input=["a b c", "d e"])
        assert len(emb.data) == 2
        seen.append(("acme", emb.usage.prompt_tokens, 0))
        assert [m.id for m in client.models.list()] == ["toy-1"]
        seen.append(("acme", 0, 0))
        return seen


def _exercise_errors(base: str, stack: Stack) -> None:
    with (
        _openai(base, "wrong-key") as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with _openai(base) as client, pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="toy-2", messages=MESSAGES)
    stack.tenant("tiny", "tiny-key-000000000", rate_limit=1)
    with _openai(base, "tiny-key-000000000") as tiny:
        tiny.models.list()
        with pytest.raises(openai.RateLimitError) as info:
            tiny.models.list()
    assert info.value.response.headers["retry-after"] == "60"
    assert info.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_uvicorn_with_the_openai_client(stack: Stack) -> None:
    """Through uvicorn the openai client streams, embeds and sees usages equal to billing."""
    server = stack.server(make_app())
    with serve_asgi(server.handler()) as base:
        seen = _exercise_openai(base)
        _exercise_errors(base, stack)
    assert stack.records(server)[: len(seen)] == seen
    assert stack.tenants.get("acme").in_flight() == 0


def test_waitress_with_the_openai_client(stack: Stack) -> None:
    """Through waitress the Flask example serves the openai client, billed exactly."""
    from flask_app import create_server

    server = create_server(stack.tenants, stack.meter, audit=stack.audit)
    with serve_wsgi(server.handler()) as base, _openai(base) as client:
        reply = client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=6
        )
        assert reply.usage is not None
        stream = client.chat.completions.create(
            model="toy-1", messages=MESSAGES, max_tokens=3, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        emb = client.embeddings.create(model="toy-1", input="a b c d")
        _exercise_errors(base, stack)
    assert count_tokens(text) == 3
    prompt = count_tokens(PROMPT)
    assert stack.records(server)[:3] == [
        ("acme", reply.usage.prompt_tokens, reply.usage.completion_tokens),
        ("acme", prompt, 3),
        ("acme", emb.usage.prompt_tokens, 0),
    ]
    assert stack.tenants.get("acme").in_flight() == 0


def _raw_request(port: int, body: dict[str, Any], *, rcvbuf: int = 0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    payload = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def test_uvicorn_disconnect_mid_stream_bills_what_was_generated(stack: Stack) -> None:
    """A client leaving mid-stream frees its slot and is billed for the tokens generated."""
    server = stack.server(make_app(report=True, token_delay=0.01))
    tenant = stack.tenants.get("acme")
    with serve_asgi(server.handler()) as base:
        port = int(base.rsplit(":", 1)[1])
        body = {
            "model": "toy-1",
            "messages": MESSAGES,
            "max_tokens": 500,
            "stream": True,
        }
        sock = _raw_request(port, body)
        received = b""
        while received.count(b"data:") < 3:
            received += sock.recv(4096)
        sock.close()
        assert wait_until(lambda: tenant.in_flight() == 0, 10)
        records = stack.records(server)
    assert len(records) == 1
    _, prompt, completion = records[0]
    assert prompt == count_tokens(PROMPT)
    assert 3 <= completion < 500


def test_uvicorn_slow_client_gets_everything_and_frees_its_slot(stack: Stack) -> None:
    """A client reading slowly through a small window still gets the whole stream, billed once."""
    server = stack.server(make_app())
    tenant = stack.tenants.get("acme")
    with serve_asgi(server.handler()) as base:
        port = int(base.rsplit(":", 1)[1])
        body = {
            "model": "toy-1",
            "messages": MESSAGES,
            "max_tokens": 400,
            "stream": True,
        }
        sock = _raw_request(port, body, rcvbuf=8192)
        received = b""
        deadline = time.monotonic() + 20
        while not received.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
            assert time.monotonic() < deadline
            time.sleep(0.002)
            received += sock.recv(2048)
        sock.close()
        assert wait_until(lambda: tenant.in_flight() == 0, 10)
        records = stack.records(server)
    assert received.count(b"data:") == 400 + 3
    assert b'"usage": {' not in received
    assert records == [("acme", count_tokens(PROMPT), 400)]


def test_uvicorn_app_exceptions_free_the_slot(stack: Stack) -> None:
    """Apps crashing before or during the response leave no slot taken; one record each."""

    async def crash(scope: Any, receive: Any, send: Any) -> None:
        msg = "boom"
        raise RuntimeError(msg)

    tenant = stack.tenants.get("acme")
    before = stack.server(crash)
    during = stack.server(asgi_sse_app(sse_events(6, (2, 6)), fail_after=3))
    headers = {"x-api-key": KEY}
    with serve_asgi(before.handler()) as base:
        r = httpx.post(
            f"{base}/v1/chat/completions", json={"model": "toy-1"}, headers=headers
        )
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "server_error"
        assert wait_until(lambda: tenant.in_flight() == 0)
    with serve_asgi(during.handler()) as base:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(
                f"{base}/v1/chat/completions", json={"model": "toy-1"}, headers=headers
            )
        assert wait_until(lambda: tenant.in_flight() == 0)
    assert before.close(5)
    # The crash before the response bills nothing; the one during it, 3 events.
    assert stack.records(during) == [("acme", 0, 0), ("acme", 0, 3)]


def test_concurrent_requests_never_over_admit(tmp_path: Path, clock: Any) -> None:
    """Many concurrent requests against a small token budget: exactly budget/reservation pass."""
    stack = Stack(lmdb=tmp_path / "db", clock=clock)
    stack.tenant(token_budget=1000)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        entered.release()
        release.wait(10)
        start_response("200 OK", [("content-type", "application/json")])
        return [b"{}"]

    server = stack.server(app)
    # Each request reserves 0 prompt + 300 completion tokens: 3 fit in 1000.
    body = {"model": "m", "max_tokens": 300}
    try:
        with serve_wsgi(server.handler(), threads=32) as base:

            def call(_: int) -> int:
                r = httpx.post(
                    f"{base}/v1/completions",
                    json=body,
                    headers={"x-api-key": KEY},
                    timeout=20,
                )
                return r.status_code

            with concurrent.futures.ThreadPoolExecutor(24) as pool:
                futures = [pool.submit(call, i) for i in range(24)]
                # Refusals answer at once; the admitted wait in the app.
                deadline = time.monotonic() + 15
                while sum(f.done() for f in futures) < 21:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                release.set()
                statuses = [f.result() for f in futures]
    finally:
        stack.close()
    assert sorted(statuses).count(200) == 3
    assert statuses.count(429) == 21
    assert all(entered.acquire(timeout=0) for _ in range(3))
    assert not entered.acquire(timeout=0)


def test_examples_fastapi_is_wrapped_in_three_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FastAPI example, wrapped by CloudServer, answers a tenant and bills it."""
    import importlib
    import sys

    from zerfoo_cloud import TenantConfig

    monkeypatch.setenv("ZERFOO_CLOUD_DB", str(tmp_path / "db"))
    sys.modules.pop("fastapi_app", None)
    module = importlib.import_module("fastapi_app")
    try:
        module.tenants.create(
            TenantConfig("acme", KEY, rate_limit=10, token_budget=1000)
        )

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(module.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.post(
                    "/v1/chat/completions",
                    json={"model": "toy-1", "messages": MESSAGES, "max_tokens": 3},
                    headers={"Authorization": f"Bearer {KEY}"},
                )

        r = asyncio.run(go())
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "9"
        assert isinstance(module.app, CloudMiddleware)
        meter = module.app.accounting.meter
        assert meter is not None
        meter.close()
        records = meter.query(
            "acme",
            datetime(2000, 1, 1, tzinfo=timezone.utc),
            datetime.now(timezone.utc),
        )
        assert [(r.input_tokens, r.output_tokens) for r in records] == [
            (count_tokens(PROMPT), 3)
        ]
    finally:
        module.audit.close()
        module.stores.close()

"""
A key's own limits through a real server: uvicorn on 127.0.0.1, an LMDB
store, the official openai client. Each limit at the limit and just past
it; the 429 names the key, the headers report the tighter quota.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import FakeClock
from tests.http._support import KEY, Stack, json_body, serve_asgi, wait_until
from zerfoo_cloud.http._types import Receive, Scope, Send

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path, clock: FakeClock) -> Iterator[Stack]:
    """acme on LMDB, its clock frozen: 10 requests and 1000 tokens a minute, 4 in flight."""
    s = Stack(lmdb=tmp_path / "db", clock=clock)
    s.tenant(rate_limit=10, token_budget=1000, max_concurrent_requests=4)
    yield s
    s.close()


def _client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=10)


def _completion(client: openai.OpenAI, max_tokens: int) -> Any:
    # One completion with an empty prompt: it reserves *max_tokens* tokens.
    return client.completions.with_raw_response.create(
        model="m", prompt="", max_tokens=max_tokens
    )


def _app(gate: threading.Event | None = None) -> Any:
    # An ASGI app answering every request with a completion that used all
    # its max_tokens, after *gate* is set (when given).

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        used = json.loads(raw or b"{}").get("max_tokens") or 0
        body = json_body(
            {"prompt_tokens": 0, "completion_tokens": used, "total_tokens": used},
            object="text_completion",
        )
        if gate is not None:
            await asyncio.to_thread(gate.wait, 10)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def test_key_requests_per_minute_at_the_limit_and_past(stack: Stack) -> None:
    """A key of 3 requests a minute: 3 pass with the key's headers, the 4th is a 429 naming the key; the tenant's first key still passes."""
    secret, key = stack.tenants.create_key("acme", name="ci", rate_limit=3)
    server = stack.server(_app())
    with serve_asgi(server.handler()) as base, _client(base, secret) as client:
        passed = [_completion(client, 0) for _ in range(3)]
        assert [r.headers["x-ratelimit-limit-requests"] for r in passed] == ["3"] * 3
        assert [r.headers["x-ratelimit-remaining-requests"] for r in passed] == [
            "2",
            "1",
            "0",
        ]
        with pytest.raises(openai.RateLimitError) as info:
            _completion(client, 0)
        error = info.value.response.json()["error"]
        assert error["type"] == "requests"
        assert error["code"] == "rate_limit_exceeded"
        assert f"the limit of API key {key.id}" in error["message"]
        assert "limit 3," in error["message"]
        assert info.value.response.headers["retry-after"] == "20"
        assert info.value.response.headers["x-ratelimit-limit-requests"] == "3"
        with _client(base, KEY) as first:
            other = _completion(first, 0)
        assert other.headers["x-ratelimit-limit-requests"] == "10"
        assert other.headers["x-ratelimit-remaining-requests"] == "6"
    assert len(stack.records(server)) == 4


def test_key_tokens_per_minute_at_the_limit_and_past(stack: Stack) -> None:
    """A key of 100 tokens a minute: 60 + 40 pass, one token more is a 429 naming the key; more than 100 at once is refused outright."""
    secret, key = stack.tenants.create_key("acme", name="ci", token_budget=100)
    server = stack.server(_app())
    with serve_asgi(server.handler()) as base, _client(base, secret) as client:
        first = _completion(client, 60)
        assert first.headers["x-ratelimit-limit-tokens"] == "100"
        assert first.headers["x-ratelimit-remaining-tokens"] == "40"
        _completion(client, 40)
        with pytest.raises(openai.RateLimitError) as info:
            _completion(client, 1)
        error = info.value.response.json()["error"]
        assert error["type"] == "tokens"
        assert f"the limit of API key {key.id}" in error["message"]
        # The tenant's budget holds what the key used.
        with _client(base, KEY) as first:
            other = _completion(first, 0)
        assert other.headers["x-ratelimit-remaining-tokens"] == "900"
        # More than the key's whole budget at once: refused outright.
        with pytest.raises(openai.RateLimitError) as info:
            _completion(client, 101)
        error = info.value.response.json()["error"]
        assert "retry-after" not in info.value.response.headers
        assert error["message"].startswith("Request too large for m on tokens per min")
        assert f"the limit of API key {key.id}" in error["message"]


def test_key_concurrency_at_the_limit_and_past(stack: Stack) -> None:
    """A key of 2 in flight (tenant 4): 2 pass, the 3rd is a 429 naming the key while the first key still gets in; all slots come back."""
    secret, key = stack.tenants.create_key("acme", name="ci", max_concurrent_requests=2)
    gate = threading.Event()
    server = stack.server(_app(gate))
    tenant = stack.tenants.get_by_api_key(secret)
    body = {"model": "m", "prompt": "", "max_tokens": 0}

    def call(api_key: str) -> httpx.Response:
        return httpx.post(
            f"{base}/v1/completions",
            json=body,
            headers={"authorization": f"Bearer {api_key}"},
            timeout=20,
        )

    with (
        serve_asgi(server.handler()) as base,
        concurrent.futures.ThreadPoolExecutor(4) as pool,
    ):
        held = [pool.submit(call, secret) for _ in range(2)]
        assert wait_until(lambda: tenant.in_flight() == 2, 10)
        refused = call(secret)
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["type"] == "concurrency"
        assert f"the limit of API key {key.id}" in error["message"]
        assert "the limit is 2 at once" in error["message"]
        other = pool.submit(call, KEY)
        assert wait_until(lambda: tenant.in_flight() == 3, 10)
        gate.set()
        assert [f.result().status_code for f in [*held, other]] == [200, 200, 200]
        assert wait_until(lambda: tenant.in_flight() == 0, 10)
        assert stack.tenants.limits.slots_in_use(f"acme\x00key\x00{key.id}\x00con") == 0
        assert call(secret).status_code == 200
    assert len(stack.records(server)) == 4  # refusals are audited, not billed

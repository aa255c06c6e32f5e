"""
Redis down during admission: every request is refused 503
``service_unavailable`` with ``Retry-After``, OpenAI-shaped, the app never
called, nothing taken, one audit entry each; on ASGI (uvicorn), WSGI
(waitress) and the upstream proxy. A Redis killed mid-run and restarted
(its append-only file kept) resumes the limits with nothing counted twice.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._redis_servers import start_redis, start_redis_anywhere
from tests.http._support import (
    AUTH,
    CHAT,
    KEY,
    Stack,
    chat,
    free_port,
    serve_asgi,
    serve_wsgi,
)
from zerfoo_cloud import CloudServer, TenantConfig, TenantManager
from zerfoo_cloud.http._proxy_types import Receive, Scope, Send
from zerfoo_cloud.http.proxy import UpstreamProxy
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.stores.redis import RedisLimiterStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

COMPLETION = b'{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'


class Counting:
    """An app (ASGI or WSGI) answering one completion, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": COMPLETION})

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        environ["wsgi.input"].read()
        start_response(
            "200 OK",
            [
                ("content-type", "application/json"),
                ("content-length", str(len(COMPLETION))),
            ],
        )
        return [COMPLETION]


def _stack(url: str, rate_limit: int) -> Stack:
    """A stack whose limits live in the Redis at *url*; tenant acme (key KEY)."""
    stack = Stack()
    store = MemoryTenantStore()
    # Created with memory limits: creating clears limit state, which a dead
    # Redis would refuse.
    TenantManager(store, limits=MemoryLimiterStore()).create(
        TenantConfig("acme", KEY, rate_limit=rate_limit, token_budget=0)
    )
    limits = RedisLimiterStore.from_url(
        url, prefix="zc-test-unavailable:", connect_timeout=0.2, socket_timeout=0.5
    )
    stack.tenants = TenantManager(store, limits=limits)
    return stack


@contextlib.contextmanager
def _serving(interface: str, stack: Stack, app: Counting) -> Iterator[CloudServer]:
    """
    `_served`, and the limiter store closed while the server still runs (its
    event loop's Redis client is closed on that loop).
    """
    with _served(interface, stack, app) as server:
        try:
            yield server
        finally:
            stack.tenants.limits.close()


@contextlib.contextmanager
def _served(interface: str, stack: Stack, app: Counting) -> Iterator[CloudServer]:
    """Serve *app* behind CloudServer on *interface*; yield the server (url in .url)."""
    if interface == "wsgi":
        server = stack.server(app.wsgi)
        with serve_wsgi(server.handler()) as url:
            server.url = url  # type: ignore[attr-defined]
            yield server
        return
    if interface == "asgi":
        server = stack.server(app.asgi)
        with serve_asgi(server.handler()) as url:
            server.url = url  # type: ignore[attr-defined]
            yield server
        return
    with serve_asgi(app.asgi) as upstream:
        server = stack.server(UpstreamProxy(upstream))
        with serve_asgi(server.handler(), lifespan=True) as url:
            server.url = url  # type: ignore[attr-defined]
            yield server


def _is_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["type"]
    assert "redis" in error["message"].lower()
    assert response.headers["x-request-id"] == error["request_id"]


@pytest.mark.parametrize("interface", ["asgi", "wsgi", "proxy"])
def test_a_dead_redis_refuses_503_with_retry_after(interface: str) -> None:
    """Limits on a Redis nobody listens on: 503 + Retry-After, app not called, one audit entry each."""
    stack = _stack(f"redis://:pw-s3cret@127.0.0.1:{free_port()}/0", rate_limit=5)
    app = Counting()
    with _serving(interface, stack, app) as server:
        url = server.url  # type: ignore[attr-defined]
        for _ in range(3):
            response = httpx.post(url + CHAT, json=chat(), headers=AUTH, timeout=10)
            _is_503(response)
            assert "pw-s3cret" not in response.text
    audits = stack.audits(server)
    assert [a.status_code for a in audits] == [503, 503, 503]
    assert {a.tenant_id for a in audits} == {"acme"}
    assert stack.billing.all() == []
    assert app.calls == 0


#: A Redis that keeps every write through a SIGKILL.
AOF = ("--appendonly", "yes", "--appendfsync", "always")


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_redis_killed_mid_run_and_restarted(tmp_path: Path, interface: str) -> None:
    """
    2 of 3 requests taken; Redis killed (SIGKILL): 503s that take nothing;
    restarted on its append-only file: exactly 1 more passes, then 429.
    """
    proc, port = start_redis_anywhere(tmp_path, *AOF)
    stack = _stack(f"redis://127.0.0.1:{port}/0", rate_limit=3)
    app = Counting()
    statuses = []
    try:
        with _serving(interface, stack, app) as server:
            url = server.url  # type: ignore[attr-defined]

            def ask() -> httpx.Response:
                response = httpx.post(url + CHAT, json=chat(), headers=AUTH, timeout=10)
                statuses.append(response.status_code)
                return response

            assert ask().status_code == 200
            assert ask().status_code == 200
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            for _ in range(4):
                _is_503(ask())
            proc = start_redis(tmp_path, port, *AOF)
            assert ask().status_code == 200
            refused = ask()
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        proc.kill()
        proc.wait(10)
    assert app.calls == 3
    audits = stack.audits(server)
    assert [a.status_code for a in audits] == statuses
    assert statuses == [200, 200, 503, 503, 503, 503, 200, 429]
    assert len(stack.billing.all()) == 3

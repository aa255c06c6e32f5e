"""
The ASGI adapter over a limiter store on the network (Redis): admissions and
settlements are awaited on the request's own coroutine, so the event loop
keeps serving while Redis is slow or silent, a Redis that cannot answer
makes a 503 with ``Retry-After`` within the timeout, and many concurrent
requests admit exactly the limit. Tenant stores that wait on the network
(``blocking_io``) are read in a worker thread on a cache miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests._loop_ticks import ticking
from zerfoo_cloud import CloudServer, TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.http import CloudMiddleware
from zerfoo_cloud.http._types import Receive, Scope, Send
from zerfoo_cloud.stores.memory import MemoryBillingStore, MemoryTenantStore
from zerfoo_cloud.stores.redis import RedisLimiterStore
from zerfoo_cloud.tenant_records import TenantRecord

pytestmark = pytest.mark.redis

KEY = "zc-asgi-redis-key-000001-abcdef"
CHAT = "/v1/chat/completions"
BODY = {
    "model": "toy-1",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 5,
}
USAGE = b'{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'


async def chat_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An app answering every request with usage 3 + 2, after a short wait."""
    while (await receive()).get("more_body"):
        pass
    await asyncio.sleep(0.01)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": USAGE})


def _server(
    tenants: TenantManager, billing: MemoryBillingStore | None = None
) -> tuple[CloudServer, CloudMiddleware]:
    billing = MemoryBillingStore() if billing is None else billing
    server = CloudServer(chat_app, tenants, TokenMeter(billing))
    handler = server.handler()
    assert isinstance(handler, CloudMiddleware)
    return server, handler


@contextlib.asynccontextmanager
async def client(handler: CloudMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(handler, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(100)
        yield sock.getsockname()[1]


def test_a_silent_redis_never_freezes_the_loop(silent_port: int) -> None:
    """While Redis does not answer, /healthz is served and the loop ticks; the request gets 503 + Retry-After."""
    store = RedisLimiterStore.from_url(
        f"redis://127.0.0.1:{silent_port}/0", socket_timeout=0.5, connect_timeout=0.5
    )
    records = MemoryTenantStore()
    # Created beside (creating clears the tenant's counters, in Redis here).
    TenantManager(records).create(
        TenantConfig("acme", KEY, rate_limit=100, token_budget=10_000)
    )
    server, handler = _server(TenantManager(records, limits=store))

    async def main() -> tuple[httpx.Response, float, float, int]:
        try:
            async with ticking() as ticks, client(handler) as c:
                started = time.monotonic()
                pending = asyncio.ensure_future(
                    c.post(CHAT, json=BODY, headers={"authorization": f"Bearer {KEY}"})
                )
                await asyncio.sleep(0.1)
                assert not pending.done()  # still waiting on Redis
                health = await c.get("/healthz")
                health_at = time.monotonic() - started
                assert health.status_code == 200
                response = await pending
                return response, health_at, time.monotonic() - started, ticks.count
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    response, health_at, took, ticks = asyncio.run(main())
    server.close(10)
    store.close()
    assert health_at < 0.4  # answered while the admission waited
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert f"127.0.0.1:{silent_port}" in error["message"]
    assert int(response.headers["retry-after"]) >= 1
    assert 0.4 < took < 2.5
    assert ticks >= 30  # the loop ran other work all along


def test_concurrent_requests_admit_exactly_the_limit(
    redis_url: str, redis_prefix: str
) -> None:
    """200 requests at once against a limit of 50 on Redis: 50 pass, 150 get 429; all settled."""
    store = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    tenants = TenantManager(limits=store)
    tenants.create(
        TenantConfig(
            "acme",
            KEY,
            rate_limit=50,
            token_budget=1_000_000,
            max_concurrent_requests=500,
        )
    )
    billing = MemoryBillingStore()
    server, handler = _server(tenants, billing)

    async def main() -> list[int]:
        try:
            async with client(handler) as c:
                answers = await asyncio.gather(
                    *[
                        c.post(
                            CHAT, json=BODY, headers={"authorization": f"Bearer {KEY}"}
                        )
                        for _ in range(200)
                    ]
                )
            return [a.status_code for a in answers]
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    try:
        statuses = asyncio.run(main())
        assert server.close(10)
        assert statuses.count(200) == 50
        assert statuses.count(429) == 150
        tenant = tenants.get("acme")
        assert tenant.in_flight() == 0  # every slot given back
        records = billing.all()
        assert [r.total_tokens for r in records] == [5] * 50
    finally:
        store.clear("")
        store.close()


class _SlowTenantStore(MemoryTenantStore):
    """A tenant store on the network: each key lookup takes 0.3 s."""

    blocking_io = True

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[str] = []

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        self.lookups.append(threading.current_thread().name)
        time.sleep(0.3)
        return super().get_by_key_hash(key_hash)


def test_a_blocking_tenant_store_is_read_off_the_loop() -> None:
    """A cache miss reads the store in a worker thread (the loop ticks); a hit reads nothing."""
    store = _SlowTenantStore()
    tenants = TenantManager(store)
    tenants.create(TenantConfig("acme", KEY, rate_limit=100, token_budget=0))
    server, handler = _server(tenants)
    loop_thread: list[str] = []

    async def main() -> tuple[list[int], int]:
        loop_thread.append(threading.current_thread().name)
        headers: dict[str, Any] = {"authorization": f"Bearer {KEY}"}
        async with ticking() as ticks, client(handler) as c:
            first = await c.post(CHAT, json=BODY, headers=headers)
            second = await c.post(CHAT, json=BODY, headers=headers)
        return [first.status_code, second.status_code], ticks.count

    statuses, ticks = asyncio.run(main())
    server.close(10)
    assert statuses == [200, 200]
    assert len(store.lookups) == 1  # the second was a cache hit
    assert store.lookups[0] != loop_thread[0]
    assert ticks >= 15


def test_a_request_cancelled_while_settling_is_settled_and_billed_once(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request's task is cancelled mid-settlement: the slot still comes back, one record is written."""
    settling = asyncio.Event()
    settle = RedisLimiterStore.settle_async

    async def slow_settle(self: RedisLimiterStore, *args: Any) -> list[float]:
        settling.set()
        await asyncio.sleep(0.3)  # Redis slow to answer
        return await settle(self, *args)

    monkeypatch.setattr(RedisLimiterStore, "settle_async", slow_settle)
    store = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    tenants = TenantManager(limits=store)
    tenants.create(
        TenantConfig(
            "acme", KEY, rate_limit=100, token_budget=10_000, max_concurrent_requests=1
        )
    )
    billing = MemoryBillingStore()
    server, handler = _server(tenants, billing)

    async def main() -> int:
        try:
            async with client(handler) as c:
                request = asyncio.ensure_future(
                    c.post(CHAT, json=BODY, headers={"authorization": f"Bearer {KEY}"})
                )
                await asyncio.wait_for(settling.wait(), 5)
                request.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await request
                await asyncio.sleep(0.6)  # the settlement runs on
                again = await c.post(
                    CHAT, json=BODY, headers={"authorization": f"Bearer {KEY}"}
                )
                return again.status_code
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    try:
        assert asyncio.run(main()) == 200  # the one slot was given back
        assert server.close(10)
        assert [r.total_tokens for r in billing.all()] == [5, 5]
        assert tenants.get("acme").in_flight() == 0
    finally:
        store.clear("")
        store.close()


def test_a_refusal_reads_its_quota_headers_off_the_loop(
    redis_url: str, redis_prefix: str
) -> None:
    """A 403 for a model outside the allow list carries the quota headers, read from Redis in a worker thread."""
    store = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    readers: list[int] = []
    get = store.get

    def spy(key: str) -> Any:
        readers.append(threading.get_ident())
        return get(key)

    store.get = spy  # type: ignore[method-assign]
    tenants = TenantManager(limits=store)
    tenants.create(
        TenantConfig(
            "acme",
            KEY,
            rate_limit=100,
            token_budget=10_000,
            model_allow_list=("other",),
        )
    )
    server, handler = _server(tenants)

    async def main() -> httpx.Response:
        try:
            async with client(handler) as c:
                return await c.post(
                    CHAT, json=BODY, headers={"authorization": f"Bearer {KEY}"}
                )
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    try:
        response = asyncio.run(main())
        assert server.close(10)
        assert response.status_code == 403
        assert response.headers["x-ratelimit-limit-requests"] == "100"
        assert response.headers["x-ratelimit-remaining-tokens"] == "10000"
        assert readers
        assert threading.get_ident() not in readers  # asyncio.run ran the loop here
    finally:
        store.clear("")
        store.close()

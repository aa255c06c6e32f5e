"""
The ASGI middleware against bare ASGI apps, driven by httpx.ASGITransport.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from toy_openai_app import make_app

from tests.http._support import (
    AUTH,
    CHAT,
    KEY,
    OTHER_KEY,
    OrderedMeter,
    Stack,
    asgi_json_app,
    asgi_sse_app,
    chat,
    json_body,
    send_json,
    sse_events,
)
from zerfoo_cloud import (
    AuditAction,
    AuditLogger,
    AuditResult,
    CloudServer,
    NDJSONRecorder,
    ResourceManager,
    TokenMeter,
    billing_middleware,
)
from zerfoo_cloud.http import BillingMiddleware, CloudMiddleware
from zerfoo_cloud.http._types import Message, Receive, Scope, Send
from zerfoo_cloud.metering import MAX_MODEL_LENGTH
from zerfoo_cloud.stores.memory import MemoryBillingStore

T = TypeVar("T")
#: A path that takes no model: any body passes to the app.
UPLOAD = "/v1/files"
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _handler(server: CloudServer) -> CloudMiddleware:
    handler = server.handler()
    assert isinstance(handler, CloudMiddleware)
    return handler


@contextlib.asynccontextmanager
async def client(server: CloudServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(_handler(server), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as c:
        yield c


def test_healthz_needs_no_key_and_reports_health(stack: Stack) -> None:
    """/healthz answers 200 ok, then 503 degraded, with no key and no records."""
    server = stack.server(asgi_json_app())

    async def go() -> None:
        async with client(server) as c:
            r = await c.get("/healthz")
            assert (r.status_code, r.json()) == (200, {"status": "ok"})
            server.set_healthy(False)
            assert not server.healthy
            r = await c.get("/healthz")
            assert (r.status_code, r.json()) == (503, {"status": "degraded"})

    run(go())
    assert stack.records(server) == []
    assert stack.audits(server) == []


def test_missing_and_unknown_keys_get_401_and_are_audited(stack: Stack) -> None:
    """No key or a wrong key gets 401 in OpenAI's shape and an auth audit entry."""
    stack.tenant()
    server = stack.server(asgi_json_app())

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat())
            assert r.status_code == 401
            assert r.json()["error"]["type"] == "invalid_request_error"
            r = await c.post(
                CHAT, json=chat(), headers={"authorization": "Bearer nope"}
            )
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_api_key"
            r = await c.post(CHAT, json=chat(), headers={"x-api-key": KEY})
            assert r.status_code == 200
            r = await c.get(
                "/anything/else?x=1", headers={"Authorization": f"bearer {KEY}"}
            )
            assert r.status_code == 200

    run(go())
    entries = stack.audits(server)
    assert [(e.action, e.result, e.status_code, e.tenant_id) for e in entries] == [
        (AuditAction.AUTH, AuditResult.UNAUTHORIZED, 401, ""),
        (AuditAction.AUTH, AuditResult.UNAUTHORIZED, 401, ""),
        (AuditAction.INFERENCE, AuditResult.SUCCESS, 200, "acme"),
        (AuditAction.INFERENCE, AuditResult.SUCCESS, 200, "acme"),
    ]
    assert entries[3].path == "/anything/else"
    assert len(stack.records(server)) == 2


def test_model_outside_the_allow_list_gets_403_and_spends_nothing(stack: Stack) -> None:
    """A model outside the allow list gets 403; no request or token quota is spent."""
    stack.tenant(rate_limit=5, token_budget=1000, model_allow_list=("toy-1",))
    server = stack.server(
        asgi_json_app(json_body({"prompt_tokens": 1, "completion_tokens": 1}))
    )

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json={**chat(), "model": "toy-2"}, headers=AUTH)
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "model_not_allowed"
            assert r.headers["x-ratelimit-remaining-requests"] == "5"
            assert r.headers["x-ratelimit-remaining-tokens"] == "1000"
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 200

    run(go())
    tenant = stack.tenants.get("acme")
    assert tenant.request_quota().remaining == 4
    assert stack.audits(server)[0].result is AuditResult.DENIED
    assert stack.records(server) == [("acme", 1, 1)]


@pytest.mark.parametrize(
    ("model", "billed"),
    [
        ("m" * MAX_MODEL_LENGTH, "m" * MAX_MODEL_LENGTH),
        ("m" * (MAX_MODEL_LENGTH + 1), "m" * MAX_MODEL_LENGTH),
    ],
)
def test_any_model_name_is_billed_and_audited(
    tmp_path: Path, model: str, billed: str
) -> None:
    """A model name at the length limit or past it is still billed and audited (LMDB); one with a lone surrogate is a 400 (test_http_bad_requests)."""
    stack = Stack(lmdb=tmp_path / "db")
    stack.meter = TokenMeter(stack.stores.billing)  # type: ignore[union-attr]
    stack.audit = AuditLogger(stack.stores.audit)  # type: ignore[union-attr]
    stack.tenant()
    server = stack.server(
        asgi_json_app(json_body({"prompt_tokens": 3, "completion_tokens": 4}))
    )

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(
                CHAT,
                content=json.dumps({**chat(), "model": model}).encode(),
                headers={**AUTH, "content-type": "application/json"},
            )
            assert r.status_code == 200

    try:
        run(go())
        assert server.close(10)
        (record,) = stack.meter.query("acme", *EVER)
        assert (record.model, record.input_tokens, record.output_tokens) == (
            billed,
            3,
            4,
        )
        (entry,) = stack.audit.query("acme", *EVER)
        assert entry.result is AuditResult.SUCCESS
        assert "\ud800" not in entry.resource
        assert stack.audit.verify().ok
    finally:
        stack.close()


def test_a_mangled_model_name_is_never_in_an_allow_list(stack: Stack) -> None:
    """A model name cut to the length limit gets 403 even when the cut name is allowed."""
    allowed = "m" * MAX_MODEL_LENGTH
    stack.tenant(model_allow_list=(allowed,))
    server = stack.server(asgi_json_app(json_body(None)))

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(
                CHAT, json={**chat(), "model": allowed + "x"}, headers=AUTH
            )
            assert r.status_code == 403
            r = await c.post(CHAT, json={**chat(), "model": allowed}, headers=AUTH)
            assert r.status_code == 200

    run(go())


def test_request_rate_at_the_limit_and_past_it(stack: Stack, clock: Any) -> None:
    """The last request within the rate passes; the next gets 429 with Retry-After from state."""
    stack.tenant(rate_limit=2)
    server = stack.server(asgi_json_app())

    async def go() -> None:
        async with client(server) as c:
            for left in ("1", "0"):
                r = await c.get("/v1/models", headers=AUTH)
                assert r.status_code == 200
                assert r.headers["x-ratelimit-remaining-requests"] == left
            r = await c.get("/v1/models", headers=AUTH)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "30"
            assert r.headers["x-ratelimit-reset-requests"] == "1m0s"
            assert r.json()["error"]["type"] == "requests"
            clock.advance(29.5)
            r = await c.get("/v1/models", headers=AUTH)
            assert (r.status_code, r.headers["retry-after"]) == (429, "1")
            clock.advance(0.5)
            r = await c.get("/v1/models", headers=AUTH)
            assert r.status_code == 200
            assert "x-ratelimit-limit-tokens" not in r.headers

    run(go())
    results = [e.result for e in stack.audits(server)]
    assert results.count(AuditResult.RATE_LIMITED) == 2
    assert len(stack.records(server)) == 3


def test_token_budget_refusal_keeps_the_request_quota(stack: Stack, clock: Any) -> None:
    """A request refused by the token budget keeps its request quota, and waits for refill."""
    stack.tenant(rate_limit=10, token_budget=60)
    app = asgi_json_app(json_body({"prompt_tokens": 30, "completion_tokens": 30}))
    server = stack.server(app)

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(max_tokens=40), headers=AUTH)
            assert r.status_code == 200
            # Reserved min(prompt 4 + 4 + 3, plus 40; 60) = 51, then charged 60.
            assert r.headers["x-ratelimit-remaining-tokens"] == "9"
            # 11 prompt tokens + 49: the whole budget, of which 9 are left.
            r = await c.post(CHAT, json=chat(max_tokens=49), headers=AUTH)
            assert r.status_code == 429
            assert r.json()["error"]["type"] == "tokens"
            # The limiter's wait for a reservation of the whole budget.
            assert r.headers["retry-after"] == "60"
            assert r.headers["x-ratelimit-remaining-tokens"] == "0"
            assert r.headers["x-ratelimit-remaining-requests"] == "9"
            clock.advance(60)
            r = await c.post(CHAT, json=chat(max_tokens=49), headers=AUTH)
            assert r.status_code == 200

    run(go())
    # Refilled to 10 by the minute that passed, then one spent.
    assert stack.tenants.get("acme").request_quota().remaining == 9
    assert stack.records(server) == [("acme", 30, 30), ("acme", 30, 30)]


def test_token_budget_at_the_limit_and_past_it(stack: Stack) -> None:
    """A reservation of exactly the tokens left passes; one token more gets 429."""
    stack.tenant(token_budget=100)
    app = asgi_json_app(json_body({"prompt_tokens": 20, "completion_tokens": 30}))
    server = stack.server(app)

    async def go() -> None:
        async with client(server) as c:
            # Each chat() reserves 11 prompt tokens plus max_tokens.
            r = await c.post(CHAT, json=chat(max_tokens=39), headers=AUTH)
            assert r.status_code == 200
            r = await c.post(CHAT, json=chat(max_tokens=40), headers=AUTH)
            assert r.status_code == 429
            assert r.headers["x-ratelimit-remaining-tokens"] == "50"
            r = await c.post(CHAT, json=chat(max_tokens=39), headers=AUTH)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining-tokens"] == "0"

    run(go())
    assert stack.records(server) == [("acme", 20, 30), ("acme", 20, 30)]


def test_remaining_tokens_fall_by_real_use(stack: Stack) -> None:
    """x-ratelimit-remaining-tokens reflects what earlier requests really used."""
    stack.tenant(token_budget=10_000)
    server = stack.server(make_app())

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(max_tokens=100), headers=AUTH)
            usage = r.json()["usage"]
            reserved = 11 + 100  # 13 chars -> 4, one message 4, reply 3; max_tokens 100
            assert r.headers["x-ratelimit-remaining-tokens"] == str(10_000 - reserved)
            r = await c.get("/v1/models", headers=AUTH)
            assert r.headers["x-ratelimit-remaining-tokens"] == str(
                10_000 - usage["total_tokens"]
            )
            assert (
                r.headers["x-ratelimit-reset-tokens"]
                == f"{usage['total_tokens'] * 6}ms"
            )

    run(go())


def test_usage_above_the_reservation_is_charged(stack: Stack) -> None:
    """Use beyond the reservation is deducted, putting the budget into debt."""
    stack.tenant(token_budget=100)
    app = asgi_json_app(json_body({"prompt_tokens": 150, "completion_tokens": 50}))
    server = stack.server(app)

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(max_tokens=5), headers=AUTH)
            assert r.status_code == 200
            r = await c.post(CHAT, json=chat(max_tokens=5), headers=AUTH)
            assert r.status_code == 429

    run(go())
    quota = stack.tenants.get("acme").token_quota()
    assert quota.remaining == 0
    assert quota.reset_after == pytest.approx(200 * 0.6)


def test_reported_usage_wins_over_the_body(stack: Stack) -> None:
    """Usage reported with report_usage is billed instead of the body's usage."""
    stack.tenant()
    body = json_body({"prompt_tokens": 1, "completion_tokens": 1})
    server = stack.server(asgi_json_app(body, report=(11, 22)))

    async def go() -> None:
        async with client(server) as c:
            assert (await c.post(CHAT, json=chat(), headers=AUTH)).status_code == 200

    run(go())
    assert stack.records(server) == [("acme", 11, 22)]


def test_concurrency_at_the_limit_and_past_it(stack: Stack) -> None:
    """With every slot busy a request gets 429 and spends neither requests nor tokens."""
    stack.tenant(rate_limit=10, token_budget=1000, max_concurrent_requests=1)
    gate = asyncio.Event()
    server = stack.server(asgi_sse_app(sse_events(2, (3, 2)), gate=gate))
    tenant = stack.tenants.get("acme")

    async def go() -> None:
        async with client(server) as c:
            first = asyncio.create_task(c.post(CHAT, json=chat(), headers=AUTH))
            for _ in range(1000):
                if tenant.in_flight():
                    break
                await asyncio.sleep(0.001)
            tokens_before = tenant.token_quota().remaining
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 429
            assert r.json()["error"]["type"] == "concurrency"
            assert r.headers["retry-after"] == "1"
            assert r.headers["x-ratelimit-remaining-requests"] == "9"
            assert tenant.token_quota().remaining == tokens_before
            gate.set()
            assert (await first).status_code == 200
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 200

    run(go())
    assert tenant.in_flight() == 0
    assert tenant.request_quota().remaining == 8
    assert stack.records(server) == [("acme", 3, 2), ("acme", 3, 2)]


def test_body_limit_at_the_limit_and_past_it(stack: Stack) -> None:
    """A body of exactly max_body_bytes passes; one byte more gets 413, announced or streamed."""
    stack.tenant(rate_limit=10)
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        seen.append(len(message["body"]))
        await send_json(send)

    server = stack.server(app, max_body_bytes=100)

    async def chunks(size: int) -> AsyncIterator[bytes]:
        yield b"x" * (size - 1)
        yield b"x"

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(UPLOAD, content=b"x" * 100, headers=AUTH)
            assert r.status_code == 200
            r = await c.post(UPLOAD, content=b"x" * 101, headers=AUTH)
            assert r.status_code == 413
            assert r.json()["error"]["code"] == "request_too_large"
            r = await c.post(UPLOAD, content=chunks(100), headers=AUTH)
            assert r.status_code == 200
            r = await c.post(UPLOAD, content=chunks(101), headers=AUTH)
            assert r.status_code == 413
            assert r.headers["x-ratelimit-remaining-requests"] == "8"

    run(go())
    assert seen == [100, 100]
    assert [e.result for e in stack.audits(server)].count(AuditResult.DENIED) == 2


def test_malformed_json_is_refused_before_the_app_and_bills_nothing(
    stack: Stack,
) -> None:
    """A body that is not JSON on a model endpoint gets 400, is audited, and never runs."""
    stack.tenant(token_budget=5000)
    seen: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((await receive())["body"])
        await send_json(send)

    server = stack.server(app, default_estimate=700)

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, content=b'{"model": "toy-1", oops', headers=AUTH)
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "invalid_json"
            r = await c.post(UPLOAD, content=b"--form\r\n", headers=AUTH)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining-tokens"] == "4300"

    run(go())
    assert seen == [b"--form\r\n"]
    assert stack.records(server) == [("acme", 0, 700)]
    assert [e.result for e in stack.audits(server)] == [
        AuditResult.ERROR,
        AuditResult.SUCCESS,
    ]


def test_app_errors_without_usage_bill_nothing(stack: Stack) -> None:
    """An error response without usage bills zero tokens and refunds the reservation."""
    stack.tenant(token_budget=5000)
    server = stack.server(asgi_json_app(b'{"error": {}}', status=400))

    async def go() -> None:
        async with client(server) as c:
            assert (await c.post(CHAT, json=chat(), headers=AUTH)).status_code == 400

    run(go())
    assert stack.records(server) == [("acme", 0, 0)]
    assert stack.tenants.get("acme").token_quota().remaining == 5000
    assert stack.audits(server)[0].result is AuditResult.ERROR


def test_streams_are_metered_and_the_injected_usage_chunk_hidden(stack: Stack) -> None:
    """A stream is billed from its usage chunk; the chunk reaches only clients that asked."""
    stack.tenant(token_budget=10_000)
    server = stack.server(make_app())

    async def go() -> list[str]:
        texts = []
        async with client(server) as c:
            for options in (None, {"include_usage": True}):
                body = chat(max_tokens=5, stream=True)
                if options:
                    body["stream_options"] = options
                r = await c.post(CHAT, json=body, headers=AUTH)
                assert r.headers["content-type"] == "text/event-stream"
                texts.append(r.text)
        return texts

    hidden, shown = run(go())
    assert '"usage": {' not in hidden
    assert hidden.endswith("data: [DONE]\n\n")
    assert '"usage": {"prompt_tokens": 3, "completion_tokens": 5' in shown
    assert stack.records(server) == [("acme", 3, 5), ("acme", 3, 5)]


def test_app_exception_before_the_response_gets_500_and_releases(stack: Stack) -> None:
    """An app that raises before responding gets an OpenAI 500; its slot and tokens come back."""
    stack.tenant(token_budget=1000, max_concurrent_requests=1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        msg = "secret stack detail"
        raise RuntimeError(msg)

    server = stack.server(app)

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 500
            assert r.json()["error"]["type"] == "server_error"
            assert "secret" not in r.text
            assert "x-ratelimit-remaining-tokens" in r.headers

    run(go())
    tenant = stack.tenants.get("acme")
    assert tenant.in_flight() == 0
    assert tenant.token_quota().remaining == 1000
    assert stack.records(server) == [("acme", 0, 0)]
    assert stack.audits(server)[0].result is AuditResult.ERROR


def test_app_exception_mid_stream_bills_what_was_sent(stack: Stack) -> None:
    """An app that raises mid-stream is billed one token per streamed event; the slot is freed."""
    stack.tenant(max_concurrent_requests=1)
    server = stack.server(asgi_sse_app(sse_events(5, (3, 5)), fail_after=3))

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 200

    run(go())
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 11, 3)]


def test_client_disconnect_mid_stream_releases_and_bills(stack: Stack) -> None:
    """A send that fails mid-stream (client gone) propagates, frees the slot, bills once."""
    stack.tenant(max_concurrent_requests=1)
    server = stack.server(asgi_sse_app(sse_events(10, (3, 10))))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": json.dumps(chat()).encode()}

    async def send(message: Message) -> None:
        if len(sent) == 4:
            raise OSError("connection reset")
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    with pytest.raises(OSError, match="reset"):
        run(_handler(server)(scope, receive, send))
    assert stack.tenants.get("acme").in_flight() == 0
    # Four events were generated; the fourth was lost with the connection.
    assert stack.records(server) == [("acme", 11, 4)]


def test_client_leaving_before_its_body_is_not_served(stack: Stack) -> None:
    """A client that disconnects before sending its body never reaches the app."""
    stack.tenant(rate_limit=3)
    called: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(True)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"x-api-key", KEY.encode())],
    }
    server = stack.server(app)
    run(_handler(server)(scope, receive, send))
    assert called == []
    assert stack.tenants.get("acme").request_quota().remaining == 3


def test_non_http_scopes_pass_through(stack: Stack) -> None:
    """lifespan and websocket scopes reach the app untouched."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    server = stack.server(app)

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        pass

    for kind in ("lifespan", "websocket"):
        run(_handler(server)({"type": kind}, nothing, ignore))
    assert seen == ["lifespan", "websocket"]


def test_app_that_never_responds_is_accounted_as_500(stack: Stack) -> None:
    """An app that returns without a response is billed nothing and audited as an error."""
    stack.tenant(max_concurrent_requests=1)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    server = stack.server(app)

    async def go() -> None:
        async with client(server) as c:
            with contextlib.suppress(Exception):
                await c.get("/v1/models", headers=AUTH)

    run(go())
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 0, 0)]
    assert stack.audits(server)[0].status_code == 500


class _SyncOrderedMeter(OrderedMeter):
    """A meter without aflush, as a meter written elsewhere may be."""

    aflush = None  # type: ignore[assignment]


class _AsyncOrderedMeter(OrderedMeter):
    async def aflush(self) -> None:
        self.log.append("aflush")
        await super().aflush()


@pytest.mark.parametrize("meter_class", [_SyncOrderedMeter, _AsyncOrderedMeter])
def test_durable_mode_sends_the_last_byte_after_the_flush(
    stack: Stack, meter_class: type[OrderedMeter]
) -> None:
    """In durable mode the final body message follows the meter's flush."""
    stack.tenant()
    log: list[str] = []
    meter = meter_class(log)
    server = CloudServer(
        asgi_sse_app(sse_events(3, (1, 3))), stack.tenants, meter, durable=True
    )

    async def receive() -> Message:
        return {"type": "http.request", "body": json.dumps(chat()).encode()}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            log.append("last" if not message.get("more_body") else "chunk")

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"x-api-key", KEY.encode())],
    }
    run(_handler(server)(scope, receive, send))
    flush = "aflush" if meter_class is _AsyncOrderedMeter else "flush"
    assert log[-2:] == [flush, "last"]
    assert log.count("chunk") == 5
    store = meter.store
    assert isinstance(store, MemoryBillingStore)
    assert [(r.input_tokens, r.output_tokens) for r in store.all()] == [(1, 3)]


class _Resources:
    """A stand-in resource manager: counts touches and pins."""

    def __init__(self) -> None:
        self.touched: list[str] = []
        self.pinned: dict[str, int] = {}

    def touch(self, model_id: str) -> None:
        if model_id == "missing":
            raise LookupError(model_id)
        self.touched.append(model_id)

    @contextlib.contextmanager
    def use(self, model_id: str) -> Iterator[None]:
        self.pinned[model_id] = self.pinned.get(model_id, 0) + 1
        try:
            yield
        finally:
            self.pinned[model_id] -= 1


def test_the_model_is_touched_and_pinned_while_the_request_runs(stack: Stack) -> None:
    """With resources the request's model is touched and pinned until the response ends."""
    stack.tenant()
    resources = _Resources()
    during: list[dict[str, int]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        during.append(dict(resources.pinned))
        await send_json(send)

    server = stack.server(app, resources=resources)

    async def go() -> None:
        async with client(server) as c:
            for model in ("toy-1", "missing"):
                r = await c.post(CHAT, json={**chat(), "model": model}, headers=AUTH)
                assert r.status_code == 200
            assert (await c.get("/v1/models", headers=AUTH)).status_code == 200

    run(go())
    assert during == [{"toy-1": 1}, {"toy-1": 0}, {"toy-1": 0}]
    assert resources.touched == ["toy-1"]


def test_a_real_resource_manager_pins_the_model_during_the_request(
    stack: Stack,
) -> None:
    """With a ResourceManager the model is in use while the request runs, then idle."""
    stack.tenant()
    resources = ResourceManager(1000)
    resources.load("toy-1", 100)
    during: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        during.extend(m.in_use for m in resources.loaded_models())
        await send_json(send)

    server = stack.server(app, resources=resources)

    async def go() -> None:
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(), headers=AUTH)
            assert r.status_code == 200

    run(go())
    assert during == [1]
    assert [m.in_use for m in resources.loaded_models()] == [0]


def test_billing_middleware_alone_and_inside_a_cloud_server(stack: Stack) -> None:
    """billing_middleware publishes one event per request, with the outer tenant id."""
    stack.tenant()
    stream = io.StringIO()
    wrap = billing_middleware(NDJSONRecorder(stream), tenant_id=lambda scope: "anon")
    metered = wrap(make_app())
    assert isinstance(metered, BillingMiddleware)
    server = stack.server(metered)

    async def go() -> None:
        transport = httpx.ASGITransport(metered)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(CHAT, json=chat(max_tokens=4, stream=True))
            assert '"usage": {' not in r.text
        async with client(server) as c:
            r = await c.post(CHAT, json=chat(max_tokens=2), headers=AUTH)
            assert r.status_code == 200

    run(go())
    assert server.close(5)
    assert metered.accounting.drain(5)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [
        (e["tenant_id"], e["prompt_tokens"], e["completion_tokens"]) for e in events
    ] == [
        ("anon", 3, 4),
        ("acme", 3, 2),
    ]
    assert stack.records(server) == [("acme", 3, 2)]


def test_server_recorder_gets_one_event_per_request(stack: Stack) -> None:
    """The server's recorder gets one usage event per admitted request, with the tenant id."""
    stack.tenant()
    stack.tenant("other", OTHER_KEY)
    stream = io.StringIO()
    server = stack.server(make_app(), recorder=NDJSONRecorder(stream))

    async def go() -> None:
        async with client(server) as c:
            await c.post(CHAT, json=chat(max_tokens=2), headers=AUTH)
            await c.post(
                CHAT, json=chat(max_tokens=3), headers={"x-api-key": OTHER_KEY}
            )
            await c.post(CHAT, json=chat(max_tokens=3), headers={"x-api-key": "bad"})

    run(go())
    assert server.close(5)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["tenant_id"], e["completion_tokens"]) for e in events] == [
        ("acme", 2),
        ("other", 3),
    ]
    assert all(KEY not in line for line in stream.getvalue().splitlines())


def test_store_failures_answer_503(tmp_path: Path) -> None:
    """A tenant store that fails answers 503 in OpenAI's shape."""
    stack = Stack(lmdb=tmp_path / "db")
    stack.tenant()
    server = stack.server(asgi_json_app())
    stack.close()

    async def go() -> None:
        async with client(server) as c:
            r = await c.get("/v1/models", headers=AUTH)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "service_unavailable"

    run(go())


class _BrokenStore(MemoryBillingStore):
    def add(self, records: Any) -> int:
        msg = "disk on fire"
        raise OSError(msg)


def test_accounting_failures_are_counted_not_raised(stack: Stack) -> None:
    """A billing store that fails is logged and counted; the client still gets its answer."""
    stack.tenant()

    def broken_recorder(event: object) -> None:
        raise RuntimeError

    class Recorder:
        def record(self, event: object) -> None:
            broken_recorder(event)

    server = CloudServer(
        asgi_json_app(),
        stack.tenants,
        TokenMeter(_BrokenStore()),
        recorder=Recorder(),
    )

    async def go() -> None:
        async with client(server) as c:
            assert (await c.get("/v1/models", headers=AUTH)).status_code == 200

    run(go())
    assert server.close(5)
    assert server.accounting_failures == 2


def test_a_model_list_that_cannot_be_read_is_a_502(stack: Stack) -> None:
    """An app's model list that is not JSON is not passed to a tenant with an
    allow list: the tenant gets 502, with the error ModelListError carries."""
    stack.tenant(model_allow_list=("m1",))
    server = stack.server(asgi_json_app(b"not json"))

    async def go() -> None:
        async with client(server) as c:
            r = await c.get("/v1/models", headers=AUTH)
            assert r.status_code == 502
            error = r.json()["error"]
            assert error["message"] == "The model list could not be read."
            assert (error["type"], error["code"]) == ("server_error", "internal_error")
            assert error["request_id"] == r.headers["x-request-id"]
            assert b"not json" not in r.content

    run(go())
    assert [e.status_code for e in stack.audits(server)] == [502]

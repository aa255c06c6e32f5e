"""
Durable by default: a response's last byte (a refusal: its first) leaves only
once its billing record and audit entry are committed; ``durable=False`` does
not wait.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http._durable_stack import DurableStack
from tests.http._support import CHAT, KEY, Stack, asgi_json_app, chat, wsgi_json_app
from tests.test_audit import FlakyChainStore
from tests.test_metering import FAIL_UNTIL_TOLD, GatedStore
from zerfoo_cloud import AuditLogger, CloudServer, TenantConfig, TokenMeter
from zerfoo_cloud.http._types import Message, Scope

Probe = Callable[[], object]


class _Durable(DurableStack):
    """Tenants, a meter and an audit logger on LMDB, with writer threads."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, rate_limit=1)

    def server(self, app: Any, **options: Any) -> CloudServer:
        return CloudServer(
            app, self.stack.tenants, self.meter, audit=self.audit, **options
        )

    def committed(self) -> tuple[int, int]:
        """Billing records and audit entries in the store, read past the writers."""
        return len(self.billed()), self.audited()


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[_Durable]:
    """LMDB stores with background writers, closed after the test."""
    stack = _Durable(tmp_path / "db")
    yield stack
    stack.close()


def _asgi(
    server: CloudServer, body: bytes, probe: Probe, key: str = KEY
) -> list[tuple[str, Any]]:
    """Serve one request in process; what was sent, each with *probe* then."""
    sent: list[tuple[str, Any]] = []
    handler = server.handler()

    async def receive() -> Message:
        return {"type": "http.request", "body": body}

    async def send(message: Message) -> None:
        more = message.get("more_body", False)
        kind = "start" if message["type"] == "http.response.start" else "body"
        if kind == "start" or not more:
            sent.append((kind, message.get("status")))
            sent.append(("probe", probe()))

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"authorization", f"Bearer {key}".encode())],
    }
    asyncio.run(handler(scope, receive, send))
    return sent


def test_asgi_answer_ends_only_once_billed_and_audited(durable: _Durable) -> None:
    """By default the final body message waits for both commits."""
    server = durable.server(asgi_json_app())
    sent = _asgi(server, json.dumps(chat()).encode(), durable.committed)
    assert sent == [
        ("start", 200),
        ("probe", (0, 0)),
        ("body", None),
        ("probe", (1, 1)),
    ]


def test_asgi_refusal_goes_out_only_once_audited(durable: _Durable) -> None:
    """A 401 and a 429 are sent once their audit entries are committed."""
    server = durable.server(asgi_json_app())
    body = json.dumps(chat()).encode()
    _asgi(server, body, durable.committed)
    refused = _asgi(server, body, durable.committed, key="zc-nobody-0123456789")
    assert refused[:2] == [("start", 401), ("probe", (1, 2))]
    limited = _asgi(server, body, durable.committed)
    assert limited[:2] == [("start", 429), ("probe", (1, 3))]


def _wsgi(
    server: CloudServer, body: bytes, probe: Probe, key: str = KEY
) -> list[tuple[str, Any]]:
    sent: list[tuple[str, Any]] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        sent.append(("start", int(status[:3])))
        sent.append(("probe", probe()))
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": CHAT,
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    result = server.handler()(environ, start_response)
    try:
        for _ in result:
            sent.append(("chunk", None))
            sent.append(("probe", probe()))
    finally:
        getattr(result, "close", lambda: None)()
    return sent


def test_wsgi_answer_and_refusal_wait_for_their_commits(durable: _Durable) -> None:
    """The WSGI twin: the last chunk after both commits, a refusal after its entry."""
    server = durable.server(wsgi_json_app())
    body = json.dumps(chat()).encode()
    answered = _wsgi(server, body, durable.committed)
    assert answered[-2:] == [("chunk", None), ("probe", (1, 1))]
    refused = _wsgi(server, body, durable.committed, key="zc-nobody-0123456789")
    assert refused[:2] == [("start", 401), ("probe", (1, 2))]


def test_opting_out_answers_without_waiting() -> None:
    """durable=False: the whole answer goes out while the commit is held up."""
    stack = Stack()
    stack.tenant()
    store = GatedStore()
    meter = TokenMeter(store)
    server = CloudServer(asgi_json_app(), stack.tenants, meter, durable=False)
    store.gate.clear()
    try:
        sent = _asgi(server, json.dumps(chat()).encode(), lambda: meter.pending)
        assert [kind for kind, _ in sent] == ["start", "probe", "body", "probe"]
        assert meter.pending == 1
    finally:
        store.gate.set()
        meter.close()
    assert store.batches == [1]


def test_a_failing_audit_store_does_not_hold_back_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The refusal still goes out; the entry is kept, retried, and the failure counted."""
    stack = Stack()
    stack.tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    store = FlakyChainStore()
    store.fail = FAIL_UNTIL_TOLD
    audit = AuditLogger(store, background=True, retry_interval=60)
    server = CloudServer(asgi_json_app(), stack.tenants, stack.meter, audit=audit)
    with caplog.at_level(logging.ERROR, "zerfoo_cloud"):
        sent = _asgi(server, b"{}", lambda: audit.pending, key="zc-nobody-0123456789")
    assert sent[:2] == [("start", 401), ("probe", 1)]
    assert server.accounting_failures == 1
    store.fail = 0
    audit.close()
    assert len(store.all()) == 1


def test_asgi_body_complete_by_content_length_waits_for_its_commits(
    durable: _Durable,
) -> None:
    """
    An app (a proxy, a WSGI bridge) that sends its whole Content-Length with
    ``more_body`` and an empty message after: the client has the answer once
    the full length is out, so that chunk already waits for both commits.
    """
    answer = json.dumps({"usage": {"prompt_tokens": 2, "completion_tokens": 3}})
    data = answer.encode()

    seen: list[tuple[int, tuple[int, int]]] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            seen.append((len(message.get("body", b"")), durable.committed()))

    _run_chat(durable.server(_sized_app(data, then="split")), send)
    assert seen[0] == (len(data), (1, 1))


def _run_chat(server: CloudServer, send: Any) -> None:
    """Serve one chat request in process, its messages sent to *send*."""

    async def receive() -> Message:
        return {"type": "http.request", "body": json.dumps(chat()).encode()}

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [(b"authorization", f"Bearer {KEY}".encode())],
    }
    asyncio.run(server.handler()(scope, receive, send))


def _sized_app(data: bytes, *, then: str = "body") -> Any:
    """An app that sends a start with Content-Length, then *then*."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if then == "raise":
            msg = "the app failed after its start"
            raise RuntimeError(msg)
        if then == "body":
            await send({"type": "http.response.body", "body": data})
        if then == "split":  # the whole length, then an empty last message
            await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def test_a_sized_answer_sends_its_head_with_its_body_once_committed(
    durable: _Durable,
) -> None:
    """
    With a Content-Length, the head goes out just before the body, after
    both commits: the server writes them in one go.
    """
    data = json.dumps({"usage": {"prompt_tokens": 2, "completion_tokens": 3}})
    server = durable.server(_sized_app(data.encode()))
    sent = _asgi(server, json.dumps(chat()).encode(), durable.committed)
    assert sent == [
        ("start", 200),
        ("probe", (1, 1)),
        ("body", None),
        ("probe", (1, 1)),
    ]


@pytest.mark.parametrize("then", ["raise", "return"])
def test_a_held_head_still_goes_out_when_the_app_sends_no_body(
    durable: _Durable, then: str
) -> None:
    """
    An app that fails, or returns, after its start and before its body
    still has its start sent, as the server would have sent it at once.
    """
    server = durable.server(_sized_app(b"{}", then=then))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    if then == "raise":
        with pytest.raises(RuntimeError, match="after its start"):
            _run_chat(server, send)
    else:
        _run_chat(server, send)
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 200)
    ]

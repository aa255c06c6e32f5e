"""
The WSGI middleware against bare WSGI apps, driven by httpx.WSGITransport.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.http._support import (
    AUTH,
    CHAT,
    KEY,
    OrderedMeter,
    Stack,
    chat,
    json_body,
    sse_events,
    wsgi_json_app,
)
from zerfoo_cloud import (
    AuditResult,
    CloudServer,
    NDJSONRecorder,
    billing_middleware,
    report_usage,
)
from zerfoo_cloud.http import WSGIBillingMiddleware, WSGICloudMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

WSGIApp = Callable[["WSGIEnvironment", "StartResponse"], Iterable[bytes]]
#: A path that takes no model: any body passes to the app.
UPLOAD = "/v1/files"


def _handler(server: CloudServer) -> WSGICloudMiddleware:
    handler = server.handler()
    assert isinstance(handler, WSGICloudMiddleware)
    return handler


def client(server: CloudServer) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(_handler(server)), base_url="http://testserver"
    )


class _Body:
    """A response iterable that records whether close() was called."""

    def __init__(self, chunks: list[bytes], *, fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                msg = "the model crashed"
                raise RuntimeError(msg)
            yield chunk

    def close(self) -> None:
        self.closed = True


def sse_app(body: _Body, *, seen: list[bytes] | None = None) -> WSGIApp:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = environ["wsgi.input"].read()
        if seen is not None:
            seen.append(request)
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return body

    return app


def test_healthz_and_auth(stack: Stack) -> None:
    """/healthz needs no key; other paths need one and get 401 without it."""
    stack.tenant()
    server = stack.server(wsgi_json_app())
    with client(server) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        server.set_healthy(False)
        assert c.get("/healthz").status_code == 503
        r = c.get("/v1/models")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert c.get("/v1/models", headers={"x-api-key": KEY}).status_code == 200
    results = [e.result for e in stack.audits(server)]
    assert results == [AuditResult.UNAUTHORIZED, AuditResult.SUCCESS]


def test_limits_and_headers(stack: Stack) -> None:
    """Rate headers are added; past the request rate a 429 carries Retry-After."""
    stack.tenant(rate_limit=1, token_budget=600)
    body = json_body({"prompt_tokens": 2, "completion_tokens": 3})
    server = stack.server(wsgi_json_app(body))
    with client(server) as c:
        r = c.post(CHAT, json=chat(), headers=AUTH)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert r.headers["x-ratelimit-remaining-tokens"] == str(600 - 21)
        r = c.post(CHAT, json=chat(), headers=AUTH)
        assert (r.status_code, r.headers["retry-after"]) == (429, "60")
        assert r.headers["x-ratelimit-remaining-tokens"] == str(600 - 5)
    assert stack.records(server) == [("acme", 2, 3)]


def test_body_limit_at_the_limit_and_past_it(stack: Stack) -> None:
    """A body of exactly max_body_bytes passes, one more byte gets 413; also unannounced."""
    stack.tenant()
    server = stack.server(wsgi_json_app(), max_body_bytes=64)
    with client(server) as c:
        assert c.post(UPLOAD, content=b"x" * 64, headers=AUTH).status_code == 200
        r = c.post(UPLOAD, content=b"x" * 65, headers=AUTH)
        assert r.status_code == 413
    handler = _handler(server)
    for size, status in ((64, "200 OK"), (65, "413 Request Entity Too Large")):
        statuses: list[str] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            statuses.append(status)  # noqa: B023 - used at once
            return lambda data: None

        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": UPLOAD,
            "HTTP_AUTHORIZATION": f"Bearer {KEY}",
            "wsgi.input": io.BytesIO(b"y" * size),
            "wsgi.input_terminated": True,
        }
        result = handler(environ, start_response)
        b"".join(result)
        getattr(result, "close", lambda: None)()
        assert statuses == [status]


def test_stream_is_billed_and_the_injected_chunk_hidden(stack: Stack) -> None:
    """A WSGI stream is billed from its usage chunk, which the client does not see."""
    stack.tenant(max_concurrent_requests=1)
    body = _Body(sse_events(4, (6, 4)))
    seen: list[bytes] = []
    server = stack.server(sse_app(body, seen=seen))
    with client(server) as c:
        r = c.post(CHAT, json=chat(stream=True), headers=AUTH)
        assert r.status_code == 200
        assert '"usage": {' not in r.text
        assert r.text.endswith("data: [DONE]\n\n")
    assert json.loads(seen[0])["stream_options"] == {"include_usage": True}
    assert body.closed
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 6, 4)]


@pytest.mark.parametrize(("durable", "billed"), [(False, 2), (True, 3)])
def test_close_is_forwarded_when_the_client_stops_early(
    stack: Stack, durable: bool, billed: int
) -> None:
    """
    A response abandoned after two chunks is closed, billed once, its slot
    freed. Durable, the app's third chunk was read (and is billed) but held
    back.
    """
    stack.tenant(max_concurrent_requests=1)
    body = _Body(sse_events(5, (3, 5)))
    server = stack.server(sse_app(body), durable=durable)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": CHAT,
        "HTTP_X_API_KEY": KEY,
        "CONTENT_LENGTH": "13",
        "wsgi.input": io.BytesIO(b'{"model":"m"}'),
    }
    result = _handler(server)(environ, lambda status, headers, exc_info=None: print)
    iterator = iter(result)
    next(iterator)
    next(iterator)
    assert stack.tenants.get("acme").in_flight() == 1
    getattr(result, "close")()  # noqa: B009 - the WSGI server's call
    getattr(result, "close")()  # noqa: B009 - a second close is harmless
    assert body.closed
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 0, billed)]


def test_exception_before_start_gets_an_openai_500(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """An app raising before start_response gets a logged, OpenAI-shaped 500 and frees its slot."""
    stack.tenant(max_concurrent_requests=1, token_budget=100)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        msg = "secret"
        raise RuntimeError(msg)

    server = stack.server(app)
    with caplog.at_level(logging.ERROR, "zerfoo_cloud.http"), client(server) as c:
        r = c.post(CHAT, json=chat(), headers=AUTH)
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error"
    assert "secret" not in r.text
    assert "x-ratelimit-remaining-tokens" in r.headers
    assert "the app raised" in caplog.text
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.tenants.get("acme").token_quota().remaining == 100
    assert stack.records(server) == [("acme", 0, 0)]


def test_exception_mid_stream_still_settles(stack: Stack) -> None:
    """An app raising while streaming propagates; close() settles and frees the slot."""
    stack.tenant(max_concurrent_requests=1)
    body = _Body(sse_events(5, (3, 5)), fail_after=2)
    server = stack.server(sse_app(body))
    with client(server) as c, pytest.raises(RuntimeError, match="crashed"):
        c.post(CHAT, json=chat(), headers=AUTH)
    assert body.closed
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 11, 2)]


def test_keyboard_interrupt_in_the_app_still_settles(stack: Stack) -> None:
    """A BaseException from the app propagates after the request is settled."""
    stack.tenant(max_concurrent_requests=1)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise KeyboardInterrupt

    server = stack.server(app)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/models",
        "HTTP_X_API_KEY": KEY,
    }
    with pytest.raises(KeyboardInterrupt):
        _handler(server)(environ, lambda status, headers, exc_info=None: print)
    assert stack.tenants.get("acme").in_flight() == 0
    assert stack.records(server) == [("acme", 0, 0)]


def test_report_usage_and_write_callable(stack: Stack) -> None:
    """Usage reported through the environ wins; bytes sent with write() are metered too."""
    stack.tenant()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/json")])
        write(json_body({"prompt_tokens": 1, "completion_tokens": 1}))
        if environ["PATH_INFO"] == "/report":
            report_usage(environ, 40, 2)
        return []

    server = stack.server(app)
    with client(server) as c:
        assert c.get("/report", headers=AUTH).status_code == 200
        assert c.get("/json", headers=AUTH).status_code == 200
    assert stack.records(server) == [("acme", 40, 2), ("acme", 1, 1)]


@pytest.mark.parametrize("announced", [True, False])
def test_durable_mode_sends_the_last_chunk_after_the_flush(
    stack: Stack, *, announced: bool
) -> None:
    """In durable mode the last chunk is released only after the billing flush."""
    stack.tenant()
    log: list[str] = []
    chunks = [b"a" * 3, b"b" * 3, b'{"usage": {"prompt_tokens": 1}}']
    length = sum(map(len, chunks))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = [("content-type", "text/plain")]
        if announced:
            headers.append(("content-length", str(length)))
        start_response("200 OK", headers)
        return iter(chunks)

    server = CloudServer(app, stack.tenants, OrderedMeter(log), durable=True)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/x", "HTTP_X_API_KEY": KEY}
    result = _handler(server)(environ, lambda status, headers, exc_info=None: print)
    received = []
    for chunk in result:
        received.append(chunk)
        log.append(f"chunk{len(received)}")
    getattr(result, "close")()  # noqa: B009 - the WSGI server's call
    assert b"".join(received) == b"".join(chunks)
    assert log.index("flush") < log.index(f"chunk{len(received)}")
    assert log.count("flush") == 1


def test_billing_middleware_for_wsgi(stack: Stack) -> None:
    """billing_middleware meters a WSGI app alone and inside a CloudServer."""
    stack.tenant()
    stream = io.StringIO()
    wrap = billing_middleware(NDJSONRecorder(stream))
    app = wsgi_json_app(json_body({"prompt_tokens": 4, "completion_tokens": 5}))
    metered = wrap(app)
    assert isinstance(metered, WSGIBillingMiddleware)
    with httpx.Client(transport=httpx.WSGITransport(metered), base_url="http://t") as c:
        assert c.post(CHAT, json=chat()).status_code == 200
    inner = wrap(app)
    server = stack.server(inner)
    with client(server) as c:
        assert c.post(CHAT, json=chat(), headers=AUTH).status_code == 200
    assert metered.accounting.drain(5)
    assert inner.accounting.drain(5)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [
        (e["tenant_id"], e["prompt_tokens"], e["completion_tokens"]) for e in events
    ] == [
        ("", 4, 5),
        ("acme", 4, 5),
    ]
    named = billing_middleware(NDJSONRecorder(stream), tenant_id=lambda env: "anon")(
        app
    )
    with httpx.Client(transport=httpx.WSGITransport(named), base_url="http://t") as c:
        c.post(CHAT, json=chat())
    assert named.accounting.drain(5)
    assert json.loads(stream.getvalue().splitlines()[-1])["tenant_id"] == "anon"


def test_a_model_list_that_cannot_be_read_is_a_502(stack: Stack) -> None:
    """An app's model list that is not JSON is not passed to a tenant with an
    allow list: the tenant gets 502, with the error ModelListError carries."""
    stack.tenant(model_allow_list=("m1",))
    server = stack.server(wsgi_json_app(b"not json"))
    with client(server) as c:
        r = c.get("/v1/models", headers=AUTH)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["message"] == "The model list could not be read."
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert error["request_id"] == r.headers["x-request-id"]
    assert [e.status_code for e in stack.audits(server)] == [502]

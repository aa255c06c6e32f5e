"""
Requests the policy cannot fully read, through real ASGI and WSGI servers:
refused before the app with an OpenAI-shaped 4xx, audited once, billed never,
logged without a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.http._support import (
    AUTH,
    CHAT,
    Stack,
    chat,
    json_body,
    send_json,
    serve_asgi,
    serve_wsgi,
)
from zerfoo_cloud import AuditResult

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from zerfoo_cloud.http._types import Receive, Scope, Send

_USAGE = json_body({"prompt_tokens": 2, "completion_tokens": 3})
_DEEP = b"[" * 5000 + b"1" + b"]" * 5000
_ECHO_DEEP = b"[" * 968 + b"1234567890123456789" + b"]" * 968

#: (body, status, error type, code, param)
_BAD: list[tuple[bytes, int, str, str, str | None]] = [
    (
        b'{"model": "toy-2", "x": ' + _DEEP + b"}",
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (
        b'{"model": ' + _ECHO_DEEP + b"}",
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (
        b'{"model": "toy-2", "stream": true, "messages": [{"role": "user", "content": "\\udc00"}]}',
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (
        b'{"model": "toy-2", "seed": ' + b"1" * 4301 + b"}",
        400,
        "invalid_request_error",
        "invalid_json",
        None,
    ),
    (b'{"messages": []}', 400, "invalid_request_error", "missing_model", "model"),
    (
        b'{"model": "secret-model", "model": "toy-2"}',
        400,
        "invalid_request_error",
        "duplicate_member",
        "model",
    ),
    (b'{"model": null}', 400, "invalid_request_error", "missing_model", "model"),
    (b'{"model": 7}', 400, "invalid_request_error", "invalid_model", "model"),
    (b'{"model": ["toy-2"]}', 400, "invalid_request_error", "invalid_model", "model"),
    (
        b'{"model": "toy-2", "max_tokens": 18446744073709551616}',
        400,
        "invalid_request_error",
        "integer_above_max_value",
        "max_tokens",
    ),
    (
        b'{"model": "toy-2", "max_tokens": -1}',
        400,
        "invalid_request_error",
        "integer_below_min_value",
        "max_tokens",
    ),
    (
        b'{"model": "toy-2", "max_tokens": 50000}',
        429,
        "tokens",
        "rate_limit_exceeded",
        None,
    ),
]


def _asgi_app(calls: list[bytes]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((await receive())["body"])
        await send_json(send, _USAGE)

    return app


def _wsgi_app(calls: list[bytes]) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(environ["wsgi.input"].read())
        start_response("200 OK", [("content-type", "application/json")])
        return [_USAGE]

    return app


_SERVERS: dict[
    str,
    tuple[Callable[[list[bytes]], Any], Callable[[Any], AbstractContextManager[str]]],
] = {
    "asgi": (_asgi_app, serve_asgi),
    "wsgi": (_wsgi_app, serve_wsgi),
}


@pytest.fixture(params=sorted(_SERVERS))
def served(
    request: pytest.FixtureRequest, stack: Stack
) -> Iterator[tuple[httpx.Client, list[bytes], Any]]:
    make_app, serve = _SERVERS[request.param]
    calls: list[bytes] = []
    server = stack.server(make_app(calls))
    with serve(server.handler()) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http, calls, server


@pytest.mark.parametrize("allow_list", [(), ("toy-2",)])
def test_unreadable_requests_never_reach_the_app(
    stack: Stack,
    served: tuple[httpx.Client, list[bytes], Any],
    caplog: pytest.LogCaptureFixture,
    allow_list: tuple[str, ...],
) -> None:
    """Every body of the issue is a 4xx before the app, one audit entry, no traceback."""
    stack.tenant(token_budget=1000, model_allow_list=allow_list)
    http, calls, server = served
    caplog.set_level(logging.DEBUG)
    for body, status, kind, code, param in _BAD:
        r = http.post(
            CHAT, content=body, headers={**AUTH, "content-type": "application/json"}
        )
        assert r.status_code == status, (body[:60], r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == {
            "error": {
                "message": r.json()["error"]["message"],
                "type": kind,
                "param": param,
                "code": code,
                "request_id": r.headers["x-request-id"],
            }
        }
        assert "retry-after" not in r.headers
    body = json.dumps(chat(model="toy-2", max_tokens=989)).encode()
    good = http.post(CHAT, content=body, headers=AUTH)
    assert good.status_code == 200  # 11 prompt tokens + 989: the whole budget
    assert calls == [body]  # the bytes checked, unchanged
    assert stack.records(server) == [("acme", 2, 3)]
    entries = stack.audits(server)
    assert len(entries) == len(_BAD) + 1
    assert [e.result for e in entries].count(AuditResult.SUCCESS) == 1
    assert [e.result for e in entries].count(AuditResult.RATE_LIMITED) == 1
    assert stack.tenants.get("acme").in_flight() == 0
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in caplog.text

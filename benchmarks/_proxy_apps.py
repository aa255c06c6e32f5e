"""
The ASGI apps `bench_proxy` serves with uvicorn: a bare OpenAI-like upstream
and minimal pass-throughs to it, each built by a ``--factory`` function that
reads the upstream's URL from ``ZC_BENCH_UPSTREAM``.
"""

from __future__ import annotations

import json
import os
from typing import Any

#: How many chunks a streamed answer of the bare upstream has.
CHUNKS = 100
USAGE = {"prompt_tokens": 5, "completion_tokens": CHUNKS, "total_tokens": 5 + CHUNKS}
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
).encode()


def _event(delta: dict[str, Any], **extra: Any) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        **extra,
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


#: The streamed answer: `CHUNKS` events, the last with usage, then [DONE].
EVENTS = [_event({"content": "x"}) for _ in range(CHUNKS - 1)] + [
    _event({}, usage=USAGE),
    b"data: [DONE]\n\n",
]
_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(COMPLETION)).encode()),
]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]


async def _read(receive: Any) -> bytes:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def upstream(scope: Any, receive: Any, send: Any) -> None:
    """The bare upstream: a completion in JSON, or `CHUNKS` events for ``"stream": true``."""
    if scope["type"] != "http":
        return
    body = await _read(receive)
    if b'"stream": true' not in body and b'"stream":true' not in body:
        await send(
            {"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS}
        )
        await send({"type": "http.response.body", "body": COMPLETION})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    for event in EVENTS:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


_DROPPED = frozenset({b"host", b"connection", b"transfer-encoding", b"keep-alive"})


def aiohttp_passthrough() -> Any:
    """The least a proxy on aiohttp does: forward method, path, headers and body."""
    import aiohttp

    base = os.environ["ZC_BENCH_UPSTREAM"]
    session: list[aiohttp.ClientSession] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not session:
            session.append(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=100),
                    auto_decompress=False,
                    skip_auto_headers=("User-Agent",),
                )
            )
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in _DROPPED
        ]
        async with session[0].request(
            scope["method"],
            base + scope["path"],
            headers=headers,
            data=await _read(receive),
        ) as response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k, v)
                        for k, v in response.raw_headers
                        if k.lower() not in _DROPPED
                    ],
                }
            )
            async for chunk in response.content.iter_any():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})

    return app


def httpx_passthrough() -> Any:
    """The same pass-through on httpx."""
    import httpx

    base = os.environ["ZC_BENCH_UPSTREAM"]
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _DROPPED]
        request = client.build_request(
            scope["method"],
            base + scope["path"],
            headers=headers,
            content=await _read(receive),
        )
        response = await client.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.lower() not in _DROPPED
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def bare_proxy() -> Any:
    """`zerfoo_cloud.http.proxy.UpstreamProxy` alone, with no policy around it."""
    from zerfoo_cloud.http.proxy import UpstreamProxy

    return UpstreamProxy(os.environ["ZC_BENCH_UPSTREAM"])

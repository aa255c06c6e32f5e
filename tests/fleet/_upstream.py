"""
The one inference server every host of the test fleet proxies to: it counts
the requests in flight (and the most seen at once) across all hosts, and
takes its time when asked.

``POST /v1/chat/completions``: the last message's content may start with
``sleep:SECONDS`` (answer after that long) or ``stream:CHUNKS`` (with
``"stream": true``: one chunk every 0.1 s). The answer has ``max_tokens``
completion tokens (16 by default) and an honest ``usage``.
``GET /stats`` gives ``{"in_flight": n, "max_in_flight": m, "served": s}``;
``POST /stats/reset`` sets the most seen back to what is in flight now
and the served count to 0. Run with uvicorn:
``uvicorn tests.fleet._upstream:app``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_stats = {"in_flight": 0, "max_in_flight": 0, "served": 0}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _completion(model: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fleet",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok " * completion},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


async def _stream(send: Send, model: str, chunks: int, prompt: int) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    for _ in range(chunks):
        chunk = {
            "id": "chatcmpl-fleet",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {"content": "ok "}}],
        }
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
        await asyncio.sleep(0.1)
    usage = {
        "id": "chatcmpl-fleet",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": chunks,
            "total_tokens": prompt + chunks,
        },
    }
    tail = f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode()
    await send({"type": "http.response.body", "body": tail})


async def _chat(receive: Receive, send: Send) -> None:
    request = json.loads(await _body(receive))
    model = str(request.get("model", "toy-1"))
    content = str(request["messages"][-1]["content"])
    prompt = len(content.split())
    completion = int(request.get("max_tokens") or 16)
    _stats["in_flight"] += 1
    _stats["max_in_flight"] = max(_stats["max_in_flight"], _stats["in_flight"])
    try:
        if content.startswith("sleep:"):
            await asyncio.sleep(
                float(content.split(maxsplit=1)[0].removeprefix("sleep:"))
            )
        if request.get("stream"):
            chunks = 3
            if content.startswith("stream:"):
                chunks = int(content.split(maxsplit=1)[0].removeprefix("stream:"))
            await _stream(send, model, chunks, prompt)
        else:
            await _json(send, 200, _completion(model, prompt, completion))
        _stats["served"] += 1
    finally:
        _stats["in_flight"] -= 1


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app."""
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/v1/chat/completions" and method == "POST":
        await _chat(receive, send)
    elif path == "/v1/models":
        models = [{"id": "toy-1", "object": "model", "owned_by": "fleet"}]
        await _json(send, 200, {"object": "list", "data": models})
    elif path == "/stats" and method == "GET":
        await _json(send, 200, _stats)
    elif path == "/stats/reset" and method == "POST":
        _stats.update(max_in_flight=_stats["in_flight"], served=0)
        await _json(send, 200, _stats)
    else:
        await _json(send, 404, {"error": {"message": "not found"}})

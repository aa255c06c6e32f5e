"""
An OpenAI-compatible inference server in pure ASGI (no framework), with a
tiny deterministic "model", wrapped by zerfoo-cloud.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` (streaming or not, with a ``usage`` chunk when
``stream_options.include_usage`` is set), ``POST /v1/embeddings``.

The toy model counts one token per whitespace-separated word and answers
with words picked deterministically from the prompt's hash, so the same
request always gets the same answer and honest ``usage``.

Run it::

    python examples/toy_openai_app.py          # prints a key, serves :8000

then, with that key::

    curl -s localhost:8000/v1/chat/completions -H "Authorization: Bearer $KEY" \\
        -d '{"model": "toy-1", "messages": [{"role": "user", "content": "hi"}]}'
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from zerfoo_cloud import report_usage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The models the toy server offers.
MODELS = ("toy-1", "toy-2")
#: Completion tokens generated when the request names no ``max_tokens``.
DEFAULT_MAX_TOKENS = 16
#: The words the toy model speaks.
VOCABULARY = (
    "the", "model", "answers", "every", "question", "with", "calm", "and",
    "plain", "words", "that", "cost", "one", "token", "each", "today",
)  # fmt: skip
#: Dimensions of the toy embeddings.
EMBEDDING_SIZE = 8


def count_tokens(text: str) -> int:
    """
    The toy tokenizer: one token per whitespace-separated word.
    """
    return len(text.split())


def generate(prompt: str, max_tokens: int) -> list[str]:
    """
    The toy model: *max_tokens* words chosen by the prompt's CRC-32.
    """
    seed = zlib.crc32(prompt.encode())
    return [
        VOCABULARY[(seed + i * 7) % len(VOCABULARY)] + " " for i in range(max_tokens)
    ]


def embed(text: str) -> list[float]:
    """
    The toy embedding: *EMBEDDING_SIZE* numbers derived from the text's CRC-32.
    """
    seed = zlib.crc32(text.encode())
    return [((seed >> (i * 4)) & 0xF) / 15.0 for i in range(EMBEDDING_SIZE)]


def _prompt_of(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
        return "\n".join(parts)
    prompt = request.get("prompt", "")
    if isinstance(prompt, list):
        return "\n".join(str(p) for p in prompt)
    return str(prompt)


def _max_tokens(request: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = request.get(name)
        if isinstance(value, int) and value >= 0:
            return value
    return DEFAULT_MAX_TOKENS


async def _read_json(receive: Receive) -> Any:
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return json.loads(body) if body else {}


async def _send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(message: str, code: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
    }


async def _read_request(
    scope: Scope, receive: Receive, send: Send
) -> dict[str, Any] | None:
    """Read a POST request's JSON object, or answer with an error."""
    if scope["method"] != "POST":
        await _send_json(send, 404, _error(f"no route {scope['path']}", "not_found"))
        return None
    try:
        request = await _read_json(receive)
    except ValueError:
        await _send_json(send, 400, _error("the body is not JSON", "invalid_json"))
        return None
    if not isinstance(request, dict):
        await _send_json(send, 400, _error("expected an object", "invalid_json"))
        return None
    return request


def make_app(*, report: bool = False, token_delay: float = 0.0) -> ASGIApp:
    """
    Build the toy server.

    Args:
        report: also report each request's usage with
            `zerfoo_cloud.report_usage` (exact even when a stream is cut
            short).
        token_delay: seconds to wait before each streamed token.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        if scope["method"] == "GET" and path == "/v1/models":
            await _send_json(
                send,
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "toy"}
                        for m in MODELS
                    ],
                },
            )
            return
        request = await _read_request(scope, receive, send)
        if request is None:
            return
        if path == "/v1/embeddings":
            await _embeddings(scope, send, request, report=report)
        elif path in ("/v1/chat/completions", "/v1/completions"):
            chat = path == "/v1/chat/completions"
            if request.get("stream") is True:
                await _stream(
                    scope,
                    receive,
                    send,
                    request,
                    chat=chat,
                    report=report,
                    token_delay=token_delay,
                )
            else:
                await _complete(scope, send, request, chat=chat, report=report)
        else:
            await _send_json(send, 404, _error(f"no route {path}", "not_found"))

    return app


async def _embeddings(
    scope: Scope, send: Send, request: dict[str, Any], *, report: bool
) -> None:
    inputs = request.get("input", "")
    texts = inputs if isinstance(inputs, list) else [inputs]
    tokens = sum(count_tokens(str(t)) for t in texts)
    if report:
        report_usage(scope, tokens, 0)
    await _send_json(
        send,
        200,
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": embed(str(t))}
                for i, t in enumerate(texts)
            ],
            "model": request.get("model", MODELS[0]),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


async def _complete(
    scope: Scope, send: Send, request: dict[str, Any], *, chat: bool, report: bool
) -> None:
    prompt = _prompt_of(request)
    limit = _max_tokens(request)
    words = generate(prompt, limit)
    usage = {
        "prompt_tokens": count_tokens(prompt),
        "completion_tokens": len(words),
        "total_tokens": count_tokens(prompt) + len(words),
    }
    if report:
        report_usage(scope, usage["prompt_tokens"], usage["completion_tokens"])
    text = "".join(words)
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    await _send_json(
        send,
        200,
        {
            "id": "cmpl-toy",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": request.get("model", MODELS[0]),
            "choices": [choice],
            "usage": usage,
        },
    )


async def _chunks(
    request: dict[str, Any], chat: bool, token_delay: float, sent: list[int]
) -> AsyncIterator[dict[str, Any]]:
    words = generate(_prompt_of(request), _max_tokens(request))
    base: dict[str, Any] = {
        "id": "cmpl-toy",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": request.get("model", MODELS[0]),
    }
    if chat:
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    for word in words:
        if token_delay:
            await asyncio.sleep(token_delay)
        sent[0] += 1
        if chat:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": word}}
        else:
            choice = {"index": 0, "text": word}
        yield {**base, "choices": [choice]}
    last: dict[str, Any] = {"index": 0, "finish_reason": "length"}
    if chat:
        last["delta"] = {}
    else:
        last["text"] = ""
    yield {**base, "choices": [last]}


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    request: dict[str, Any],
    *,
    chat: bool,
    report: bool,
    token_delay: float,
) -> None:
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    prompt_tokens = count_tokens(_prompt_of(request))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
            ],
        }
    )
    sent = [0]
    gone = asyncio.Event()

    async def watch() -> None:
        # Stop generating as soon as the client goes away.
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        async for chunk in _chunks(request, chat, token_delay, sent):
            if gone.is_set():
                return
            if include_usage:
                chunk["usage"] = None
            data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})
        if include_usage:
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": sent[0],
                "total_tokens": prompt_tokens + sent[0],
            }
            final = {
                "id": "cmpl-toy",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()),
                "model": request.get("model", MODELS[0]),
                "choices": [],
                "usage": usage,
            }
            data = b"data: " + json.dumps(final).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    finally:
        watcher.cancel()
        # Exact even when the client went away mid-stream.
        if report:
            report_usage(scope, prompt_tokens, sent[0])


#: The toy server, unwrapped.
app = make_app()


def main() -> None:
    """
    Serve the toy model behind zerfoo-cloud on port 8000 with one demo tenant.
    """
    import uvicorn

    from zerfoo_cloud import (
        CloudServer,
        TenantConfig,
        TenantManager,
        TokenMeter,
        generate_api_key,
    )
    from zerfoo_cloud.stores.memory import MemoryBillingStore

    tenants = TenantManager()
    key = os.environ.get("ZERFOO_DEMO_KEY") or generate_api_key()
    tenants.create(TenantConfig("demo", key, rate_limit=60, token_budget=100_000))
    server = CloudServer(app, tenants, TokenMeter(MemoryBillingStore()))
    print(f"API key of tenant 'demo': {key}")
    uvicorn.run(server.handler(), host="127.0.0.1", port=8000)


if __name__ == "__main__":
    main()

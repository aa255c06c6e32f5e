"""
A pure-ASGI OpenAI-like app that answers what an attacker asks it to, for
`tests.test_attack_serve`: served as the app of ``zerfoo-cloud serve`` and,
under uvicorn, as the upstream of ``serve --upstream``.

It echoes the request's ``model`` value (its JSON text, whatever its type)
and reports ``usage`` of `PROMPT_TOKENS` and `COMPLETION_TOKENS`. The content
of the last message picks a hostile answer:

- ``deep-response``: the answer's ``model`` is `DEPTH` nested arrays around
  a 19-digit number, and usage is `DEEP_COMPLETION_TOKENS` completion tokens;
- ``huge-usage``: ``prompt_tokens`` is 2**64.

With ``"stream": true`` it answers with SSE chunks and a last usage chunk.
Every call appends one line to ``$ATTACK_CALLS_FILE`` when that is set, so a
test can count how often the app was reached, across worker processes.
``GET /v1/models`` lists `MODELS`; ``/healthz`` answers ok.
"""

from __future__ import annotations

import json
import os
from typing import Any

#: The models ``/v1/models`` lists.
MODELS = ("toy-1", "toy-2", "secret-model")
#: Usage of an ordinary answer.
PROMPT_TOKENS = 3
COMPLETION_TOKENS = 2
#: The nesting of the ``deep-response`` answer (enough to exhaust a recursive parser).
DEPTH = 968
#: Completion tokens the ``deep-response`` answer reports.
DEEP_COMPLETION_TOKENS = 100_000
#: The ``model`` of the ``deep-response`` answer.
DEEP_MODEL = "[" * DEPTH + "1234567890123456789" + "]" * DEPTH


def _note_call(scope: dict[str, Any]) -> None:
    path = os.environ.get("ATTACK_CALLS_FILE")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{scope['method']} {scope['path']}\n".encode())
        finally:
            os.close(fd)


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def _request_of(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _command_of(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        content = messages[-1].get("content")
        if isinstance(content, str):
            return content
    return ""


def _answer(request: dict[str, Any], body: bytes) -> tuple[str, dict[str, int]]:
    """The raw JSON text of the answer's model, and its usage."""
    command = _command_of(request)
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}
    if command == "deep-response":
        return DEEP_MODEL, {
            "prompt_tokens": 1,
            "completion_tokens": DEEP_COMPLETION_TOKENS,
        }
    if command == "huge-usage":
        usage["prompt_tokens"] = 2**64
    if "model" in request:
        model = json.dumps(request["model"])
    else:
        # Echo the raw text when the body could not be read as JSON.
        model = json.dumps(body[:200].decode("utf-8", "replace"))
    return model, usage


async def _send_json(send: Any, status: int, text: str) -> None:
    data = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Any, model: str, usage: dict[str, int]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    chunk = (
        '{"id":"c1","object":"chat.completion.chunk","model":' + model + ","
        '"choices":[{"index":0,"delta":{"content":"hi "}}]}'
    )
    last = (
        '{"id":"c1","object":"chat.completion.chunk","model":' + model + ","
        '"choices":[],"usage":' + json.dumps(usage) + "}"
    )
    for data in (chunk, last, "[DONE]"):
        await send(
            {
                "type": "http.response.body",
                "body": f"data: {data}\n\n".encode(),
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b""})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await _read_body(receive)
    if scope["path"] == "/healthz":
        await _send_json(send, 200, '{"status":"ok"}')
        return
    _note_call(scope)
    if scope["method"] == "GET" and scope["path"].endswith("/models"):
        data = [{"id": m, "object": "model", "owned_by": "attack"} for m in MODELS]
        await _send_json(send, 200, json.dumps({"object": "list", "data": data}))
        return
    request = _request_of(body)
    model, usage = _answer(request, body)
    if request.get("stream") is True:
        await _stream(send, model, usage)
        return
    text = (
        '{"id":"r1","object":"chat.completion","model":' + model + ","
        '"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
        '"finish_reason":"stop"}],"usage":' + json.dumps(usage) + "}"
    )
    await _send_json(send, 200, text)

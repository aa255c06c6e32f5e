"""
A Flask (WSGI) OpenAI-compatible app, made multi-tenant by zerfoo-cloud.

The routes use the toy model of ``toy_openai_app.py``; they report exact
usage with `zerfoo_cloud.report_usage`, which also covers streams cut short.
Streamed chats end with a ``usage`` chunk when ``stream_options.include_usage``
is set, as OpenAI's do.

Run it (waitress serves it; any WSGI server will do)::

    python examples/flask_app.py
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from toy_openai_app import MODELS, count_tokens, embed, generate

from zerfoo_cloud import (
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
    generate_api_key,
    report_usage,
)
from zerfoo_cloud.stores.memory import MemoryBillingStore

app = Flask(__name__)


def _prompt(body: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", ""))
        for m in body.get("messages", [])
        if isinstance(m, dict)
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@app.get("/v1/models")
def models() -> Response:
    """List the toy models."""
    return jsonify(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "toy"}
                for m in MODELS
            ],
        }
    )


@app.post("/v1/embeddings")
def embeddings() -> Response:
    """Embed the input texts."""
    body = request.get_json(force=True)
    inputs = body.get("input", "")
    texts = inputs if isinstance(inputs, list) else [inputs]
    tokens = sum(count_tokens(str(t)) for t in texts)
    report_usage(request, tokens, 0)
    return jsonify(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": embed(str(t))}
                for i, t in enumerate(texts)
            ],
            "model": body.get("model", MODELS[0]),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@app.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Answer a chat, streamed or not."""
    body = request.get_json(force=True)
    prompt = _prompt(body)
    words = generate(prompt, int(body.get("max_tokens") or 16))
    prompt_tokens = count_tokens(prompt)
    base = {
        "id": "chat-toy",
        "created": int(time.time()),
        "model": body.get("model", MODELS[0]),
    }
    if not body.get("stream"):
        report_usage(request, prompt_tokens, len(words))
        usage = _usage(prompt_tokens, len(words))
        message = {"role": "assistant", "content": "".join(words)}
        choice = {"index": 0, "message": message, "finish_reason": "length"}
        return jsonify(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    environ = request.environ
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def events() -> Iterator[str]:
        chunk = {**base, "object": "chat.completion.chunk"}
        sent = 0
        try:
            for word in words:
                sent += 1
                delta = {"index": 0, "delta": {"content": word}}
                yield f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n"
            last = {"index": 0, "delta": {}, "finish_reason": "length"}
            yield f"data: {json.dumps({**chunk, 'choices': [last]})}\n\n"
            if include_usage:
                final = {**chunk, "choices": [], "usage": _usage(prompt_tokens, sent)}
                yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            report_usage(environ, prompt_tokens, sent)

    return Response(events(), mimetype="text/event-stream")


def create_server(
    tenants: TenantManager, meter: TokenMeter, **options: Any
) -> CloudServer:
    """Wrap the Flask app: the WSGI interface is detected."""
    return CloudServer(app, tenants, meter, **options)


def main() -> None:
    """Serve on port 8001 with one demo tenant."""
    import waitress

    tenants = TenantManager()
    key = os.environ.get("ZERFOO_DEMO_KEY") or generate_api_key()
    tenants.create(TenantConfig("demo", key, rate_limit=60, token_budget=100_000))
    server = create_server(tenants, TokenMeter(MemoryBillingStore()))
    print(f"API key of tenant 'demo': {key}")
    waitress.serve(server.handler(), host="127.0.0.1", port=8001)


if __name__ == "__main__":
    main()

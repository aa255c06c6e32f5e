"""
A FastAPI app made multi-tenant by zerfoo-cloud in four lines.

The app (`api`) knows nothing of tenants, keys or billing; the lines at the
bottom (open the stores, make the tenant manager, the meter and the audit
logger, wrap) add API keys, limits, billing, audit and ``/healthz``. Chat
completions are answered whole or streamed as server-sent events, with a
``usage`` chunk last when ``stream_options.include_usage`` is set.

It uses the stores that ``zerfoo-cloud serve`` and the ``zerfoo-cloud``
command use, named by ``ZERFOO_CLOUD_DB`` (a folder or a URL) and, when the
counters live elsewhere, ``ZERFOO_CLOUD_COUNTERS``, and stops if the first
is unset::

    export ZERFOO_CLOUD_DB=/tmp/zerfoo-cloud
    zerfoo-cloud tenant create acme --rate-limit 600 --token-budget 200000
    uvicorn --app-dir examples fastapi_app:app --workers 4

For ``/metrics`` and the admin API too, let the command wrap `api`:
``zerfoo-cloud serve fastapi_app:api`` (run from ``examples/``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from toy_openai_app import MODELS, count_tokens, generate

from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantManager,
    TokenMeter,
    report_usage,
)
from zerfoo_cloud.stores.open import RECORDS_ENV, stores_from_env

api = FastAPI(title="toy inference")


@api.get("/v1/models")
async def models() -> dict[str, Any]:
    """List the toy models."""
    return {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@api.post("/v1/chat/completions", response_model=None)
async def chat_completions(request: Request) -> dict[str, Any] | StreamingResponse:
    """Answer a chat, whole or streamed (``"stream": true``)."""
    body = await request.json()
    prompt = "\n".join(
        str(m.get("content", ""))
        for m in body.get("messages", [])
        if isinstance(m, dict)
    )
    words = generate(prompt, int(body.get("max_tokens") or 16))
    prompt_tokens = count_tokens(prompt)
    base = {
        "id": "chat-toy",
        "created": int(time.time()),
        "model": body.get("model", MODELS[0]),
    }
    if body.get("stream"):
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage")
        events = _events(request, base, words, prompt_tokens, bool(include_usage))
        return StreamingResponse(events, media_type="text/event-stream")
    report_usage(request, prompt_tokens, len(words))
    message = {"role": "assistant", "content": "".join(words)}
    return {
        **base,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
        "usage": _usage(prompt_tokens, len(words)),
    }


async def _events(
    request: Request,
    base: dict[str, Any],
    words: list[str],
    prompt_tokens: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The SSE chunks of a streamed chat; the usage is reported even if cut short."""
    chunk: dict[str, Any] = {**base, "object": "chat.completion.chunk"}
    sent = 0
    try:
        for word in words:
            sent += 1
            delta = {"index": 0, "delta": {"content": word}}
            yield f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n"
        last = {"index": 0, "delta": {}, "finish_reason": "length"}
        yield f"data: {json.dumps({**chunk, 'choices': [last]})}\n\n"
        if include_usage:
            usage = _usage(prompt_tokens, sent)
            final = {**chunk, "choices": [], "usage": usage}
            yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        report_usage(request, prompt_tokens, sent)


if not os.environ.get(RECORDS_ENV):
    sys.exit(f"set {RECORDS_ENV} to the store folder (the one zerfoo-cloud uses)")
stores = stores_from_env()
tenants = TenantManager(stores.tenants, limits=stores.limits)
meter, audit = TokenMeter(stores.billing), AuditLogger(stores.audit)
app = CloudServer(api, tenants, meter, audit=audit).handler()

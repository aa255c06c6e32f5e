"""
A FastAPI app made multi-tenant by zerfoo-cloud in three lines.

The app knows nothing of tenants, keys or billing; the three lines at the
bottom (open the stores, make the tenant manager, wrap) add all of it.
Limits and tenants live in an LMDB folder, so every worker process of the
host shares them::

    ZERFOO_DB=/tmp/zerfoo uvicorn --app-dir examples fastapi_app:app --workers 4

Create tenants with the ``zerfoo-cloud`` command or `TenantManager.create`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI, Request
from toy_openai_app import MODELS, count_tokens, generate

from zerfoo_cloud import CloudServer, TenantManager, TokenMeter, report_usage
from zerfoo_cloud.stores.lmdb import LMDBStores

api = FastAPI(title="toy inference")


@api.get("/v1/models")
async def models() -> dict[str, Any]:
    """List the toy models."""
    return {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]}


@api.post("/v1/chat/completions")
async def chat_completions(request: Request) -> dict[str, Any]:
    """Answer a chat (not streamed)."""
    body = await request.json()
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    words = generate(prompt, int(body.get("max_tokens") or 16))
    prompt_tokens = count_tokens(prompt)
    report_usage(request, prompt_tokens, len(words))
    return {
        "id": "chat-toy",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODELS[0]),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(words)},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        },
    }


stores = LMDBStores.open(os.environ.get("ZERFOO_DB", "/tmp/zerfoo-cloud"))
tenants = TenantManager(stores.tenants, limits=stores.limits)
app = CloudServer(api, tenants, TokenMeter(stores.billing)).handler()

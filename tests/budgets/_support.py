"""
Helpers of the budget tests: a price table with round numbers, an upstream
app that counts its calls and reports a chosen usage, and a settable clock.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from zerfoo_cloud.http._types import Receive, Scope, Send
from zerfoo_cloud.pricing import ModelPrice, PriceTable

KEY = "zc-budget-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = "/v1/chat/completions"
#: A chat request's prompt estimate (see `chat`).
PROMPT = 11
#: 10 micro-units per prompt token, 20 per completion token.
PRICES = PriceTable(
    "USD",
    {
        "toy-1": [
            ModelPrice(
                datetime(2020, 1, 1, tzinfo=timezone.utc),
                input=10_000_000,
                output=20_000_000,
                cached_input=10_000_000,
            )
        ]
    },
)


def worst(max_tokens: int) -> int:
    """The worst-case cost of `chat` (*max_tokens*) at `PRICES`."""
    return PROMPT * 10 + max_tokens * 20


def chat(max_tokens: int = 10) -> dict[str, Any]:
    """A chat completion request body (prompt estimate: 11 tokens)."""
    return {
        "model": "toy-1",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_tokens": max_tokens,
    }


class UsageApp:
    """
    A real ASGI app answering every request with a chat completion whose
    usage is (*prompt*, *completion*), after *delay* seconds; it counts the
    requests that reach it.
    """

    def __init__(
        self, prompt: int = PROMPT, completion: int = 10, delay: float = 0.0
    ) -> None:
        self.prompt = prompt
        self.completion = completion
        self.delay = delay
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.calls += 1
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if self.delay:
            await asyncio.sleep(self.delay)
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "toy-1",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": self.prompt,
                    "completion_tokens": self.completion,
                    "total_tokens": self.prompt + self.completion,
                },
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

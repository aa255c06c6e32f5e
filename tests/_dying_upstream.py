"""
An upstream OpenAI-like server whose stream dies after three chunks (for the proxy tests).
"""

from __future__ import annotations

import json
from typing import Any

from tests.http._support import start_event_stream

CHUNKS = 3


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """
    Stream CHUNKS content chunks of a chat completion, then fail mid-stream.
    """
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await start_event_stream(send)
    for i in range(CHUNKS):
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "toy-1",
            "choices": [{"index": 0, "delta": {"content": f"w{i} "}}],
        }
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    msg = "the model server crashed"
    raise RuntimeError(msg)

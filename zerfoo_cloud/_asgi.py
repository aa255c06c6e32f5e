"""
ASGI helpers shared by the library's small ASGI apps (admin API, metrics).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["acknowledge_lifespan"]

_Message = MutableMapping[str, Any]


async def acknowledge_lifespan(
    receive: Callable[[], Awaitable[_Message]],
    send: Callable[[_Message], Awaitable[None]],
) -> None:
    """
    Answer an ASGI lifespan scope for an app with nothing to start or stop.
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""
`ticking`: a coroutine counting event-loop turns, to show that the loop
kept running other work while something else waited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Ticks:
    """How many times the ticker woke up (every 10 ms while the loop is free)."""

    count = 0


@contextlib.asynccontextmanager
async def ticking(every: float = 0.01) -> AsyncIterator[Ticks]:
    """Run a ticker on the running loop while the block runs; yield its count."""
    ticks = Ticks()

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            ticks.count += 1

    ticker = asyncio.ensure_future(tick())
    try:
        yield ticks
    finally:
        ticker.cancel()

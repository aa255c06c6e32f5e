"""
Small timing helpers shared by the benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], *, seconds: float = 1.0, batch: int = 1000) -> float:
    """
    Return calls of *fn* per second, the best of three runs of about *seconds*.
    """
    best = 0.0
    for _ in range(3):
        calls = 0
        started = time.perf_counter()
        deadline = started + seconds / 3
        while True:
            for _ in range(batch):
                fn()
            calls += batch
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, calls / (now - started))
    return best


def row(name: str, per_second: float, baseline: float | None = None) -> str:
    """
    Format one result line, with the ratio to *baseline* when given.
    """
    text = f"   {name:<52} {per_second:>14,.0f} /s"
    if baseline:
        text += f"   x{per_second / baseline:.2f}"
    return text

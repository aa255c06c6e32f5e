"""
ResourceManager throughput with 1,000 models loaded.

Figures: ``touch`` calls per second (target: over 500,000) and load cycles
per second where each load evicts the least recently used model (callback
included), and explicit load + evict pairs. The baseline, measured side by
side, is the bare minimum an LRU needs: ``OrderedDict.move_to_end`` (and
``popitem`` plus insert) under a ``threading.Lock``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from zerfoo_cloud.resources import ResourceManager

MODELS = 1_000
TOUCHES = 1_000_000
CYCLES = 200_000


def _rate(n: int, fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return n / (time.perf_counter() - started)


def _best(n: int, fn: Callable[[], None], repeat: int = 3) -> float:
    return max(_rate(n, fn) for _ in range(repeat))


def bench_touch() -> tuple[float, float]:
    """Return (manager, baseline) touches per second."""
    rm = ResourceManager(MODELS)
    names = [f"model-{i}" for i in range(MODELS)]
    for name in names:
        rm.load(name, 1)
    order = names * (TOUCHES // MODELS)
    touch = rm.touch

    def run_manager() -> None:
        for name in order:
            touch(name)

    lru: OrderedDict[str, float] = OrderedDict((n, 0.0) for n in names)
    lock = threading.Lock()
    move = lru.move_to_end
    clock = time.time

    def run_baseline() -> None:
        for name in order:
            with lock:
                lru[name] = clock()
                move(name)

    return _best(len(order), run_manager), _best(len(order), run_baseline)


def bench_evicting_loads() -> tuple[float, float]:
    """Return (manager, baseline) loads per second that each evict the LRU model."""
    fresh = [f"new-{i}" for i in range(CYCLES)]

    def run_manager() -> None:
        rm = ResourceManager(MODELS)
        evicted = 0

        def on_evict(model_id: str) -> None:
            nonlocal evicted
            evicted += 1

        rm.set_evict_callback(on_evict)
        for i in range(MODELS):
            rm.load(f"model-{i}", 1)
        load = rm.load
        for name in fresh:
            load(name, 1)
        assert evicted == CYCLES

    def run_baseline() -> None:
        lru: OrderedDict[str, int] = OrderedDict(
            (f"model-{i}", 1) for i in range(MODELS)
        )
        lock = threading.Lock()
        evicted: list[str] = []
        for name in fresh:
            with lock:
                victim, _ = lru.popitem(last=False)
                lru[name] = 1
            evicted.append(victim)

    return _best(CYCLES, run_manager), _best(CYCLES, run_baseline)


def bench_load_evict_pairs() -> tuple[float, float]:
    """Return (manager, baseline) explicit load + evict pairs per second."""
    names = [f"extra-{i % 100}" for i in range(CYCLES)]
    rm = ResourceManager(MODELS + 1)
    for i in range(MODELS):
        rm.load(f"model-{i}", 1)
    load, evict = rm.load, rm.evict

    def run_manager() -> None:
        for name in names:
            load(name, 1)
            evict(name)

    lru: OrderedDict[str, int] = OrderedDict((f"model-{i}", 1) for i in range(MODELS))
    lock = threading.Lock()

    def run_baseline() -> None:
        for name in names:
            with lock:
                lru[name] = 1
            with lock:
                del lru[name]

    return _best(CYCLES, run_manager), _best(CYCLES, run_baseline)


def main() -> None:
    """
    Print each figure, its baseline and their ratio.
    """
    print(f"   {MODELS} models loaded; baseline: OrderedDict under a threading.Lock")
    for label, (ours, base) in (
        ("touch", bench_touch()),
        ("load evicting the LRU model", bench_evicting_loads()),
        ("load + evict pair", bench_load_evict_pairs()),
    ):
        print(
            f"   {label:<30} {ours:>12,.0f}/s   baseline {base:>12,.0f}/s   "
            f"ratio {ours / base:.2f}"
        )


if __name__ == "__main__":
    main()

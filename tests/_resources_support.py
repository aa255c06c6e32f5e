"""
Helpers shared by the ResourceManager tests: gates, threads and book checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from zerfoo_cloud.resources import ResourceManager, ResourceUsage

#: Bound on every wait for a helper thread, so a deadlock fails the test.
JOIN = 10.0


class Gate:
    """
    A step that blocks whoever calls it until the test opens it.

    Use it as an evict callback or inside a loader; `wait_entered` returns
    once a thread is blocked in it.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, *args: object) -> None:
        self.entered.set()
        self.opened.wait(JOIN)

    def wait_entered(self) -> None:
        assert self.entered.wait(JOIN), "nobody reached the gate"

    def open(self) -> None:
        self.opened.set()


def ids(rm: ResourceManager) -> list[str]:
    """The loaded model ids, most recently used first."""
    return [m.model_id for m in rm.loaded_models()]


def start(*targets: Callable[[], object]) -> list[threading.Thread]:
    """Start one daemon thread per target."""
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    """Join every thread, failing if one is stuck."""
    for t in threads:
        t.join(JOIN)
        assert not t.is_alive(), "a thread is stuck"


def settled(rm: ResourceManager) -> None:
    """Check the books of a manager nobody is using any more."""
    usage = rm.usage()
    models = rm.loaded_models()
    assert usage == ResourceUsage(
        rm.budget_bytes, sum(m.vram_bytes for m in models), 0, 0, 0
    )
    assert usage.used <= usage.budget
    assert all(m.in_use == 0 for m in models)
    assert rm._flights == {}
    assert rm._releases == {}

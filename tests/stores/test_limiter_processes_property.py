"""
Hypothesis over processes: admissions racing from three processes through
one shared limiter store (an LMDB folder, a Redis) never admit more than the
limits allow, and admit exactly that many, whatever the limits and costs.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import _workers

pytestmark = [pytest.mark.slow]

SPAWN = multiprocessing.get_context("spawn")
WORKERS = 3


class Racers:
    """
    Three worker processes, started once per test, that race one round per
    Hypothesis example.
    """

    def __init__(self, store_url: str, prefix: str) -> None:
        self.start = SPAWN.Barrier(WORKERS)
        self.results: multiprocessing.Queue[int] = SPAWN.Queue()
        self.commands: list[Any] = [SPAWN.Queue() for _ in range(WORKERS)]
        self.procs = [
            SPAWN.Process(
                target=_workers.admit_on_command,
                args=(store_url, prefix, queue, self.start, self.results),
            )
            for queue in self.commands
        ]
        for proc in self.procs:
            proc.start()

    def race(self, slot_limit: int, capacity: float, cost: int, attempts: int) -> int:
        key = uuid.uuid4().hex
        for queue in self.commands:
            queue.put((key, slot_limit, capacity, cost, attempts))
        return sum(self.results.get(timeout=120) for _ in self.procs)

    def stop(self) -> None:
        for queue in self.commands:
            queue.put(None)
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():  # pragma: no cover - a hung worker
                proc.kill()


@pytest.fixture(
    params=[
        pytest.param("lmdb", marks=pytest.mark.lmdb),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def racers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Racers]:
    if request.param == "lmdb":
        folder = tmp_path / "db"
        url = str(folder)
    else:
        url = request.getfixturevalue("redis_url")
    racers = Racers(url, f"zc-test:{uuid.uuid4().hex}:")
    yield racers
    racers.stop()
    assert [proc.exitcode for proc in racers.procs] == [0] * WORKERS


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    slot_limit=st.integers(0, 40),
    capacity=st.integers(0, 60).map(float),
    cost=st.integers(1, 7),
    attempts=st.integers(0, 25),
)
def test_racing_processes_admit_exactly_what_the_limits_allow(
    racers: Racers, slot_limit: int, capacity: float, cost: int, attempts: int
) -> None:
    passed = racers.race(slot_limit, capacity, cost, attempts)
    assert passed == min(slot_limit, int(capacity) // cost, WORKERS * attempts)

"""
The ResourceManager under threads and tasks: single flight, stress, and a
stateful property test against a reference model.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests._resources_support import JOIN, Gate, ids, join_all, settled, start
from tests.conftest import FakeClock
from zerfoo_cloud import (
    ModelInfo,
    ModelNotLoadedError,
    ModelTooLargeError,
    ResourceBusyError,
    ResourceManager,
)
from zerfoo_cloud.resources import ResourceUsage

# -- single flight -------------------------------------------------------------


def test_concurrent_callers_for_a_cold_model_run_one_loader() -> None:
    """Eight threads asking for the same cold model run its loader once and share its handle."""
    rm = ResourceManager(100)
    runs = Counter[str]()
    barrier = threading.Barrier(8)
    results: list[object] = []

    def loader() -> object:
        runs["m"] += 1
        time.sleep(0.05)  # let the others arrive while it runs
        assert rm.usage().loading == 60
        return object()

    def caller() -> None:
        barrier.wait(JOIN)
        results.append(rm.ensure_loaded("m", 60, loader))

    join_all(start(*[caller] * 8))
    assert runs["m"] == 1
    assert len(results) == 8
    assert all(r is results[0] for r in results)
    assert rm.stats() == (60, 100, 1)
    settled(rm)
    # Warm now: the handle comes back without a loader run.
    assert rm.ensure_loaded("m", 60, loader) is results[0]
    assert runs["m"] == 1


def test_a_failing_loader_is_shared_and_books_nothing() -> None:
    """Every waiting caller gets the loader's exception; nothing stays booked; the next call retries."""
    rm = ResourceManager(100)
    runs = 0
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def bad_loader() -> object:
        nonlocal runs
        runs += 1
        time.sleep(0.05)
        raise OSError("weights missing")

    def caller() -> None:
        barrier.wait(JOIN)
        try:
            rm.ensure_loaded("m", 60, bad_loader)
        except OSError as exc:
            errors.append(exc)

    join_all(start(*[caller] * 6))
    assert runs == 1
    assert len(errors) == 6
    assert all(e is errors[0] for e in errors)
    assert rm.stats() == (0, 100, 0)
    settled(rm)
    assert rm.ensure_loaded("m", 60, lambda: "ok") == "ok"
    assert rm.stats() == (60, 100, 1)


def test_ensure_loaded_evicts_before_the_loader_runs() -> None:
    """The evict callbacks have returned before the loader starts, so memory is free for it."""
    rm = ResourceManager(100)
    order: list[str] = []
    rm.set_evict_callback(lambda mid: order.append(f"evict {mid}"))
    rm.ensure_loaded("a", 70, lambda: order.append("load a"))
    rm.ensure_loaded("b", 70, lambda: order.append("load b"))
    assert order == ["load a", "evict a", "load b"]
    settled(rm)


def test_ensure_loaded_of_a_model_booked_by_load_runs_its_loader_once() -> None:
    """A model booked by load has no handle: the first ensure_loaded runs the loader, pinned meanwhile."""
    rm = ResourceManager(100)
    rm.load("m", 30)
    seen: list[ResourceUsage] = []

    def loader() -> str:
        seen.append(rm.usage())
        return "handle"

    assert rm.ensure_loaded("m", 40, loader) == "handle"
    assert seen == [ResourceUsage(100, 40, 40, 0, 0)]
    assert rm.ensure_loaded("m", 40, loader) == "handle"
    assert len(seen) == 1
    settled(rm)


def test_failed_loader_of_a_booked_model_keeps_the_booking() -> None:
    """When the loader of a model booked by load fails, the booking stays as it was resized, unpinned."""
    rm = ResourceManager(100)
    rm.load("m", 30)

    def bad() -> str:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        rm.ensure_loaded("m", 30, bad)
    assert rm.stats() == (30, 100, 1)
    settled(rm)


def test_ensure_loaded_too_large_or_busy_fails_before_the_loader() -> None:
    """ensure_loaded checks the budget first: too large or blocked by models in use, the loader never runs."""
    rm = ResourceManager(100)

    def never() -> object:  # pragma: no cover - must not run
        raise AssertionError

    with pytest.raises(ModelTooLargeError):
        rm.ensure_loaded("m", 101, never)
    rm.load("a", 80)
    with rm.use("a"), pytest.raises(ResourceBusyError):
        rm.ensure_loaded("m", 30, never)
    settled(rm)


def test_loader_loading_its_own_model_fails_instead_of_hanging() -> None:
    """A loader that asks for its own model, or a blocking call from the loop running it, gets ResourceBusyError."""
    rm = ResourceManager(100)

    def recursive() -> object:
        return rm.ensure_loaded("m", 10, recursive)

    with pytest.raises(ResourceBusyError, match="this same thread"):
        rm.ensure_loaded("m", 10, recursive)
    settled(rm)

    async def blocking_inside() -> str:
        with pytest.raises(ResourceBusyError, match="this same thread"):
            rm.ensure_loaded("n", 10, lambda: "sync")
        return "async"

    async def main() -> str:
        return await rm.ensure_loaded_async("n", 10, blocking_inside)

    assert asyncio.run(main()) == "async"
    assert rm.stats() == (10, 100, 1)
    settled(rm)


def test_loaded_pins_the_model_for_the_block() -> None:
    """rm.loaded loads a cold model and keeps it pinned for the with block."""
    rm = ResourceManager(100)
    with rm.loaded("a", 60, lambda: "A") as handle:
        assert handle == "A"
        assert rm.loaded_models()[0].in_use == 1
        with pytest.raises(ResourceBusyError):
            rm.load("b", 50)
        with rm.loaded("a", 60, lambda: "other") as again:
            assert again == "A"
            assert rm.loaded_models()[0].in_use == 2
    settled(rm)
    rm.load("b", 50)
    assert ids(rm) == ["b"]


def test_load_during_a_loader_run_merges_into_one_booking() -> None:
    """A plain load of a model whose loader is running ends as one booking, within budget."""
    rm = ResourceManager(100)
    gate = Gate()

    def loader() -> str:
        gate()
        return "h"

    worker = start(lambda: rm.ensure_loaded("m", 40, loader))
    gate.wait_entered()
    rm.load("m", 30)
    assert rm.usage() == ResourceUsage(100, 30, 0, 40, 0)
    gate.open()
    join_all(worker)
    assert rm.stats() == (40, 100, 1)
    settled(rm)


# -- async -----------------------------------------------------------------------


def test_async_callers_share_one_async_loader() -> None:
    """Twenty tasks asking for a cold model run its async loader once and share the handle."""
    rm = ResourceManager(100)
    runs = 0

    async def loader() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.02)
        return "handle"

    async def main() -> list[str]:
        return await asyncio.gather(
            *(rm.ensure_loaded_async("m", 50, loader) for _ in range(20))
        )

    assert asyncio.run(main()) == ["handle"] * 20
    assert runs == 1
    settled(rm)


def test_async_loader_runs_after_the_evict_callbacks() -> None:
    """ensure_loaded_async evicts in a worker thread and starts its loader only afterwards."""
    rm = ResourceManager(100)
    order: list[str] = []
    rm.set_evict_callback(lambda mid: order.append(f"evict {mid}"))

    def loader(name: str) -> Callable[[], Awaitable[str]]:
        async def load() -> str:
            order.append(f"load {name}")
            return name

        return load

    async def main() -> None:
        assert await rm.ensure_loaded_async("a", 70, loader("a")) == "a"
        assert await rm.ensure_loaded_async("b", 70, loader("b")) == "b"

    asyncio.run(main())
    assert order == ["load a", "evict a", "load b"]
    settled(rm)


def test_async_loader_waits_for_memory_in_use() -> None:
    """ensure_loaded_async waits (with a timeout) for a model in use, or fails at once without one."""
    rm = ResourceManager(100)
    rm.load("a", 80)

    async def loader() -> str:
        return "b"

    async def request(hold: float) -> None:
        async with rm.use_async("a"):
            await asyncio.sleep(hold)

    async def main() -> str:
        req = asyncio.create_task(request(0.03))
        await asyncio.sleep(0)
        with pytest.raises(ResourceBusyError):
            await rm.ensure_loaded_async("b", 50, loader)
        assert rm._flights == {}
        handle = await rm.ensure_loaded_async("b", 50, loader, timeout=JOIN)
        assert req.done()
        return handle

    assert asyncio.run(main()) == "b"
    assert ids(rm) == ["b"]
    settled(rm)


def test_async_failure_is_shared() -> None:
    """Tasks waiting on a failing async loader all get its exception."""
    rm = ResourceManager(100)

    async def loader() -> str:
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    async def main() -> list[object]:
        return await asyncio.gather(
            *(rm.ensure_loaded_async("m", 50, loader) for _ in range(5)),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert all(isinstance(r, LookupError) for r in results)
    assert rm.stats() == (0, 100, 0)
    settled(rm)


def test_cancelled_leader_lets_a_waiter_load() -> None:
    """If the task running the loader is cancelled, nothing stays booked and a waiting task loads."""
    rm = ResourceManager(100)
    calls: list[str] = []

    async def slow() -> str:
        calls.append("slow")
        await asyncio.sleep(JOIN)
        return "never"  # pragma: no cover

    async def fast() -> str:
        calls.append("fast")
        return "fast"

    async def main() -> str:
        leader = asyncio.create_task(rm.ensure_loaded_async("m", 60, slow))
        await asyncio.sleep(0.01)
        assert rm.usage().loading == 60
        follower = asyncio.create_task(rm.ensure_loaded_async("m", 60, fast))
        await asyncio.sleep(0.01)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await follower

    assert asyncio.run(main()) == "fast"
    assert calls == ["slow", "fast"]
    settled(rm)


def test_async_load_waits_without_blocking_the_loop() -> None:
    """load_async waiting for a model in use lets other tasks run, then evicts it via a worker thread."""
    rm = ResourceManager(100)
    callback_threads: list[int] = []
    rm.set_evict_callback(lambda mid: callback_threads.append(threading.get_ident()))
    rm.load("a", 80)
    ticks = 0

    async def request() -> None:
        nonlocal ticks
        async with rm.use_async("a") as info:
            assert info.in_use == 1
            for _ in range(5):
                ticks += 1
                await asyncio.sleep(0.01)

    async def main() -> bool:
        req = asyncio.create_task(request())
        await asyncio.sleep(0)
        new = await rm.load_async("b", 50, timeout=JOIN)
        await req
        return new

    assert asyncio.run(main()) is True
    assert ticks == 5
    assert callback_threads
    assert callback_threads[0] != threading.get_ident()
    assert ids(rm) == ["b"]
    settled(rm)


def test_async_load_times_out() -> None:
    """load_async gives up with ResourceBusyError when its timeout passes."""
    rm = ResourceManager(100)
    rm.load("a", 80)

    async def main() -> None:
        async with rm.use_async("a"):
            await rm.load_async("b", 50, timeout=0.03)

    with pytest.raises(ResourceBusyError, match="timed out"):
        asyncio.run(main())
    settled(rm)


def test_async_evict_and_loaded_async() -> None:
    """evict_async calls back in a worker thread; loaded_async pins the model for the block."""
    rm = ResourceManager(100)
    evicted: list[str] = []
    rm.set_evict_callback(evicted.append)

    async def loader() -> str:
        return "A"

    async def main() -> None:
        async with rm.loaded_async("a", 60, loader) as handle:
            assert handle == "A"
            assert rm.loaded_models()[0].in_use == 1
            with pytest.raises(ResourceBusyError):
                await rm.evict_async("a")
        await rm.evict_async("a")

    asyncio.run(main())
    assert evicted == ["a"]
    settled(rm)


def test_async_caller_waits_for_a_thread_loader() -> None:
    """An async caller waits on a loader run by a thread and gets its handle."""
    rm = ResourceManager(100)
    gate = Gate()

    def loader() -> str:
        gate()
        return "from-thread"

    async def never() -> str:  # pragma: no cover - the thread's run is shared
        raise AssertionError

    worker = start(lambda: rm.ensure_loaded("m", 40, loader))
    gate.wait_entered()

    async def main() -> str:
        task = asyncio.create_task(rm.ensure_loaded_async("m", 40, never))
        await asyncio.sleep(0.02)
        assert not task.done()
        gate.open()
        return await task

    assert asyncio.run(main()) == "from-thread"
    join_all(worker)
    settled(rm)


def test_async_waiter_on_a_pending_eviction() -> None:
    """load_async of memory being freed by an evict callback waits for the callback."""
    rm = ResourceManager(100)
    gate = Gate()
    rm.set_evict_callback(gate)
    rm.load("a", 100)
    evictor = start(lambda: rm.evict("a"))
    gate.wait_entered()

    async def main() -> bool:
        task = asyncio.create_task(rm.load_async("b", 100))
        await asyncio.sleep(0.02)
        assert not task.done()
        gate.open()
        return await task

    assert asyncio.run(main()) is True
    join_all(evictor)
    settled(rm)


# -- threads at once -------------------------------------------------------------


def _hammer(
    rm: ResourceManager, seed: int, booked: Counter[str], lock: threading.Lock
) -> None:
    """Make 400 random calls, counting the loads that booked a new model."""
    rng = random.Random(seed)
    for _ in range(400):
        name = f"m{rng.randrange(12)}"
        op = rng.random()
        try:
            if op < 0.4:
                timeout = rng.choice([None, 0.005])
                if rm.load(name, rng.randint(1, 300), timeout=timeout):
                    with lock:
                        booked[name] += 1
            elif op < 0.6:
                rm.touch(name)
            elif op < 0.85:
                with rm.use(name):
                    time.sleep(0)
            else:
                rm.evict(name)
        except (ModelNotLoadedError, ResourceBusyError):
            pass


def test_threads_loading_touching_pinning_and_evicting_lose_no_bytes() -> None:
    """Four threads hammering one manager leave books that add up and never overran the budget."""
    budget = 1000
    rm = ResourceManager(budget)
    lock = threading.Lock()
    booked = Counter[str]()  # new bookings per model
    evicted = Counter[str]()
    overruns: list[ResourceUsage] = []
    stop = threading.Event()

    def callback(model_id: str) -> None:
        with lock:
            evicted[model_id] += 1

    rm.set_evict_callback(callback)

    def monitor() -> None:
        while not stop.is_set():
            u = rm.usage()
            if u.used + u.loading + u.releasing > budget or u.in_use > u.used:
                overruns.append(u)

    watcher = start(monitor)
    join_all(start(*[lambda s=s: _hammer(rm, s, booked, lock) for s in range(4)]))
    stop.set()
    join_all(watcher)
    assert overruns == []
    settled(rm)
    loaded = Counter(m.model_id for m in rm.loaded_models())
    assert sum(booked.values()) > 50  # the run did real work
    for name in (f"m{i}" for i in range(12)):
        assert booked[name] == evicted[name] + loaded[name], name


def test_threads_with_single_flight_and_evictions_balance() -> None:
    """Threads using loaded() on more models than fit run each loader once per cold load."""
    rm = ResourceManager(300)
    lock = threading.Lock()
    loads = Counter[str]()
    evicted = Counter[str]()

    def callback(model_id: str) -> None:
        with lock:
            evicted[model_id] += 1

    rm.set_evict_callback(callback)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            name = f"m{rng.randrange(6)}"

            def loader(name: str = name) -> str:
                with lock:
                    loads[name] += 1
                return name

            try:
                with rm.loaded(name, 100, loader, timeout=0.01) as handle:
                    assert handle == name
            except ResourceBusyError:
                pass

    join_all(start(*[lambda s=s: worker(s) for s in range(4)]))
    settled(rm)
    loaded = Counter(m.model_id for m in rm.loaded_models())
    for name in (f"m{i}" for i in range(6)):
        assert loads[name] == evicted[name] + loaded[name], name


# -- stateful property test ------------------------------------------------------

BUDGET = 100
NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
# Mostly models that share the budget (so loads evict), sometimes ones that
# fill it or pass it by a byte or two.
SIZES = st.one_of(
    st.integers(min_value=0, max_value=BUDGET // 2),
    st.integers(min_value=BUDGET - 2, max_value=BUDGET + 2),
)


class Reference:
    """A plain-list model of what the manager must do."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.order: list[str] = []  # least recently used first
        self.size: dict[str, int] = {}
        self.pins: Counter[str] = Counter()

    @property
    def used(self) -> int:
        return sum(self.size.values())

    def use(self, name: str) -> None:
        self.order.remove(name)
        self.order.append(name)

    def load(self, name: str, size: int) -> list[str]:
        if size > self.budget:
            raise ModelTooLargeError(name, size, self.budget)
        need = size - self.size.get(name, 0)
        free = self.budget - self.used
        idle = [m for m in self.order if m != name and not self.pins[m]]
        if need > free + sum(self.size[m] for m in idle):
            raise ResourceBusyError(name, "busy")
        evicted = []
        for m in idle:
            if need <= free:
                break
            evicted.append(m)
            free += self.size.pop(m)
            self.order.remove(m)
        if name in self.size:
            self.order.remove(name)
        self.order.append(name)
        self.size[name] = size
        return evicted


class ManagerMachine(RuleBasedStateMachine):
    """Random loads, touches, evictions and uses, checked step by step against Reference."""

    @initialize()
    def start(self) -> None:
        self.clock = FakeClock()
        self.rm = ResourceManager(BUDGET, clock=self.clock)
        self.ref = Reference(BUDGET)
        self.evicted: list[str] = []
        self.rm.set_evict_callback(self.evicted.append)
        self.uses: list[tuple[str, AbstractContextManager[ModelInfo]]] = []

    def expect(self, error: type[Exception] | None, call: object) -> None:
        assert callable(call)
        if error is None:
            call()
        else:
            with pytest.raises(error):
                call()

    @rule(name=NAMES, size=SIZES)
    def load(self, name: str, size: int) -> None:
        self.clock.advance(1)
        self.evicted.clear()
        try:
            expected = self.ref.load(name, size)
        except (ModelTooLargeError, ResourceBusyError) as exc:
            with pytest.raises(type(exc)):
                self.rm.load(name, size)
            assert self.evicted == []
        else:
            self.rm.load(name, size)
            assert self.evicted == expected

    @rule(name=NAMES)
    def touch(self, name: str) -> None:
        self.clock.advance(1)
        if name in self.ref.size:
            self.rm.touch(name)
            self.ref.use(name)
        else:
            with pytest.raises(ModelNotLoadedError):
                self.rm.touch(name)

    @rule(name=NAMES)
    def evict(self, name: str) -> None:
        self.evicted.clear()
        if name not in self.ref.size:
            with pytest.raises(ModelNotLoadedError):
                self.rm.evict(name)
        elif self.ref.pins[name]:
            with pytest.raises(ResourceBusyError):
                self.rm.evict(name)
        else:
            self.rm.evict(name)
            del self.ref.size[name]
            self.ref.order.remove(name)
            assert self.evicted == [name]

    @rule(name=NAMES)
    def pin(self, name: str) -> None:
        self.clock.advance(1)
        use = self.rm.use(name)
        if name not in self.ref.size:
            with pytest.raises(ModelNotLoadedError):
                use.__enter__()
            return
        info = use.__enter__()
        self.ref.pins[name] += 1
        self.ref.use(name)
        assert info.in_use == self.ref.pins[name]
        self.uses.append((name, use))

    @precondition(lambda self: self.uses)
    @rule(data=st.data())
    def unpin(self, data: st.DataObject) -> None:
        self.clock.advance(1)
        index = data.draw(st.integers(0, len(self.uses) - 1))
        name, use = self.uses.pop(index)
        use.__exit__(None, None, None)
        self.ref.pins[name] -= 1
        self.ref.use(name)

    @invariant()
    def books_match(self) -> None:
        models = self.rm.loaded_models()
        assert [m.model_id for m in models] == self.ref.order[::-1]
        assert {m.model_id: m.vram_bytes for m in models} == self.ref.size
        assert {m.model_id: m.in_use for m in models} == {
            n: self.ref.pins[n] for n in self.ref.size
        }
        used, budget, loaded = self.rm.stats()
        assert (used, budget, loaded) == (self.ref.used, BUDGET, len(self.ref.size))
        assert used <= budget
        times = [m.last_used for m in models]
        assert times == sorted(times, reverse=True)
        assert self.rm.usage() == ResourceUsage(
            BUDGET,
            used,
            sum(self.ref.size[n] for n in self.ref.size if self.ref.pins[n]),
            0,
            0,
        )

    def teardown(self) -> None:
        for _, use in reversed(self.uses):
            use.__exit__(None, None, None)


ManagerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
TestManagerMachine = ManagerMachine.TestCase

"""
The ResourceManager's bookkeeping: budget, LRU order, pinning and evict callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs
import pytest

from tests._resources_support import JOIN, Gate, ids, join_all, start
from tests.conftest import FakeClock
from zerfoo_cloud import (
    CloudError,
    InvalidConfigError,
    ModelInfo,
    ModelNotLoadedError,
    ModelTooLargeError,
    ResourceBusyError,
    ResourceManager,
)
from zerfoo_cloud.resources import ResourceUsage


def evictions(rm: ResourceManager) -> list[str]:
    seen: list[str] = []
    rm.set_evict_callback(seen.append)
    return seen


# -- construction and validation ---------------------------------------------


@pytest.mark.parametrize("budget", [0, -1, True, 1.5, "10"])
def test_budget_must_be_a_positive_integer(budget: object) -> None:
    """A budget of 0, a negative one or a non-integer raises InvalidConfigError."""
    with pytest.raises(InvalidConfigError) as info:
        ResourceManager(budget)  # type: ignore[arg-type]
    assert info.value.field == "budget_bytes"


def test_budget_of_one_byte_is_accepted() -> None:
    """The smallest budget, one byte, holds a one-byte model."""
    rm = ResourceManager(1)
    assert rm.load("m", 1) is True
    assert rm.stats() == (1, 1, 1)
    assert rm.budget_bytes == 1


@pytest.mark.parametrize("model_id", ["", None, 3])
def test_model_id_must_be_a_non_empty_string(model_id: object) -> None:
    """Loading an empty or non-string model id raises InvalidConfigError."""
    rm = ResourceManager(10)
    with pytest.raises(InvalidConfigError):
        rm.load(model_id, 1)  # type: ignore[arg-type]
    assert rm.stats() == (0, 10, 0)


@pytest.mark.parametrize("size", [-1, True, 1.0])
def test_vram_bytes_must_be_a_count(size: object) -> None:
    """A negative or non-integer size raises InvalidConfigError and books nothing."""
    rm = ResourceManager(10)
    with pytest.raises(InvalidConfigError) as info:
        rm.load("m", size)  # type: ignore[arg-type]
    assert info.value.field == "vram_bytes"
    assert rm.stats() == (0, 10, 0)


def test_zero_byte_model_is_booked() -> None:
    """A model of 0 bytes (the limit) is booked and listed."""
    rm = ResourceManager(10)
    rm.load("remote", 0)
    assert rm.stats() == (0, 10, 1)
    assert "remote" in rm


def test_model_at_the_budget_fits_and_one_byte_more_does_not() -> None:
    """A model of exactly the budget loads; one byte more raises ModelTooLargeError."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("small", 10)
    with pytest.raises(ModelTooLargeError) as info:
        rm.load("big", 101)
    assert (info.value.model_id, info.value.vram_bytes, info.value.budget_bytes) == (
        "big",
        101,
        100,
    )
    assert ids(rm) == ["small"]
    assert seen == []
    rm.load("big", 100)
    assert ids(rm) == ["big"]
    assert seen == ["small"]
    assert rm.stats() == (100, 100, 1)


@pytest.mark.parametrize("timeout", [-1, -0.001, float("nan"), float("inf"), True])
def test_timeout_must_be_finite_and_not_negative(timeout: float) -> None:
    """A negative, NaN, infinite or boolean timeout raises InvalidConfigError."""
    rm = ResourceManager(10)
    with pytest.raises(InvalidConfigError) as info:
        rm.load("m", 1, timeout=timeout)
    assert info.value.field == "timeout"


# -- LRU bookkeeping -------------------------------------------------------------


def test_loaded_models_are_listed_most_recent_first(clock: FakeClock) -> None:
    """loaded_models lists the most recently loaded or touched model first, with times."""
    rm = ResourceManager(100, clock=clock)
    for name in ("a", "b", "c"):
        rm.load(name, 10)
        clock.advance(1)
    rm.touch("a")
    models = rm.loaded_models()
    assert [m.model_id for m in models] == ["a", "c", "b"]
    a = models[0]
    assert a == ModelInfo("a", 10, clock.now - 3, clock.now, 0)
    assert a.last_used > a.loaded_at


def test_model_info_is_frozen() -> None:
    """ModelInfo records cannot be changed."""
    info = ModelInfo("m", 1, 0.0, 0.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.vram_bytes = 2  # type: ignore[misc]


def test_least_recently_used_models_are_evicted_first() -> None:
    """A load that does not fit evicts the least recently used models, in that order."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    for name in ("a", "b", "c", "d"):
        rm.load(name, 25)
    rm.touch("a")
    rm.load("e", 50)
    assert seen == ["b", "c"]
    assert ids(rm) == ["e", "a", "d"]
    assert rm.stats() == (100, 100, 3)


def test_touch_unknown_model_raises() -> None:
    """Touching a model that is not loaded raises ModelNotLoadedError (a LookupError)."""
    rm = ResourceManager(10)
    with pytest.raises(ModelNotLoadedError) as info:
        rm.touch("nope")
    assert isinstance(info.value, LookupError)
    assert info.value.model_id == "nope"


def test_evict_frees_the_bytes_and_calls_back() -> None:
    """evict removes the model, frees its bytes and calls the callback once."""
    rm = ResourceManager(10)
    seen = evictions(rm)
    rm.load("a", 4)
    rm.load("b", 5)
    rm.evict("a")
    assert seen == ["a"]
    assert rm.stats() == (5, 10, 1)
    with pytest.raises(ModelNotLoadedError):
        rm.evict("a")


def test_reload_same_size_touches_without_rebooking(clock: FakeClock) -> None:
    """Loading a loaded model again touches it, returns False and books nothing more."""
    rm = ResourceManager(100, clock=clock)
    rm.load("a", 10)
    rm.load("b", 10)
    clock.advance(5)
    assert rm.load("a", 10) is False
    assert ids(rm) == ["a", "b"]
    assert rm.stats() == (20, 100, 2)
    a = rm.loaded_models()[0]
    assert a.last_used == a.loaded_at + 5


def test_reload_bigger_evicts_others_but_not_itself() -> None:
    """Re-booking a model larger evicts other idle models for the difference only."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("a", 40)
    rm.load("b", 30)
    rm.load("c", 30)
    rm.load("a", 60)  # needs 20 more: evicts b (LRU), not a
    assert seen == ["b"]
    assert ids(rm) == ["a", "c"]
    assert rm.stats() == (90, 100, 2)


def test_reload_smaller_frees_bytes() -> None:
    """Re-booking a model smaller frees the difference."""
    rm = ResourceManager(100)
    rm.load("a", 60)
    rm.load("a", 10)
    assert rm.stats() == (10, 100, 1)
    assert rm.loaded_models()[0].vram_bytes == 10


def test_reload_over_budget_keeps_the_old_booking() -> None:
    """Re-booking a loaded model over the whole budget fails and keeps the old size."""
    rm = ResourceManager(100)
    rm.load("a", 60)
    with pytest.raises(ModelTooLargeError):
        rm.load("a", 101)
    assert rm.stats() == (60, 100, 1)


def test_usage_reports_where_the_budget_goes() -> None:
    """usage() splits the budget into used, in use, loading, releasing and free."""
    rm = ResourceManager(100)
    rm.load("a", 30)
    rm.load("b", 20)
    with rm.use("a"):
        assert rm.usage() == ResourceUsage(100, 50, 30, 0, 0)
        assert rm.usage().free == 50
    assert rm.usage().in_use == 0
    assert repr(rm) == "<ResourceManager used=50 budget=100 loaded=2>"


# -- pinning -------------------------------------------------------------------


def test_pinned_model_is_never_evicted_by_a_load() -> None:
    """A load evicts the idle models around a model in use, never the model itself."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("a", 40)
    rm.load("b", 40)
    with rm.use("a") as info:
        assert info.in_use == 1
        rm.load("c", 60)
        assert seen == ["b"]
        assert ids(rm) == ["c", "a"]


def test_pinned_model_is_skipped_even_when_least_recently_used() -> None:
    """A model in use that became the least recently used is stepped over by eviction."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("a", 30)
    rm.load("b", 30)
    rm.load("c", 30)
    with rm.use("a"):
        rm.touch("b")
        rm.touch("c")  # a is now least recently used, but in use
        rm.load("d", 40)
        assert seen == ["b"]
        assert ids(rm) == ["d", "c", "a"]


def test_load_that_needs_pinned_memory_fails_and_changes_nothing() -> None:
    """A load that fits only by evicting a model in use raises ResourceBusyError, evicting nothing."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("a", 50)
    rm.load("b", 20)
    with rm.use("a"):
        with pytest.raises(ResourceBusyError) as info:
            rm.load("c", 60)
        assert isinstance(info.value, CloudError)
        assert info.value.busy_bytes == 50
        assert info.value.vram_bytes == 60
        assert "in use" in str(info.value)
        assert seen == []
        assert rm.stats() == (70, 100, 2)
        rm.load("c", 50)  # the limit: b is evicted, a stays
        assert seen == ["b"]
    assert rm.stats() == (100, 100, 2)


def test_explicit_evict_of_a_model_in_use_raises() -> None:
    """evict refuses a model in use with ResourceBusyError and keeps it loaded."""
    rm = ResourceManager(10)
    seen = evictions(rm)
    rm.load("a", 5)
    with rm.use("a"), pytest.raises(ResourceBusyError, match="in use by 1 request"):
        rm.evict("a")
    assert seen == []
    rm.evict("a")
    assert seen == ["a"]


def test_uses_nest_and_count() -> None:
    """A model used twice stays pinned until both uses end."""
    rm = ResourceManager(100)
    rm.load("a", 60)
    with rm.use("a"):
        with rm.use("a") as inner:
            assert inner.in_use == 2
        assert rm.loaded_models()[0].in_use == 1
        with pytest.raises(ResourceBusyError):
            rm.load("b", 50)
    assert rm.loaded_models()[0].in_use == 0
    rm.load("b", 50)
    assert ids(rm) == ["b"]


def test_use_of_an_unknown_model_raises() -> None:
    """Using a model that is not loaded raises ModelNotLoadedError."""
    rm = ResourceManager(10)
    with pytest.raises(ModelNotLoadedError), rm.use("ghost"):
        pass  # pragma: no cover - never entered


def test_use_touches_on_entry_and_exit(clock: FakeClock) -> None:
    """Entering and leaving a use both make the model the most recently used."""
    rm = ResourceManager(100, clock=clock)
    rm.load("a", 10)
    rm.load("b", 10)
    with rm.use("a"):
        assert ids(rm) == ["a", "b"]
        rm.touch("b")
        clock.advance(2)
    assert ids(rm) == ["a", "b"]
    assert rm.loaded_models()[0].last_used == clock.now


def test_use_ends_on_exception() -> None:
    """A use block left by an exception unpins the model."""
    rm = ResourceManager(10)
    rm.load("a", 10)
    with pytest.raises(RuntimeError), rm.use("a"):
        raise RuntimeError
    assert rm.usage().in_use == 0
    rm.load("b", 10)


def test_resize_of_a_pinned_model_keeps_the_pinned_bytes_right() -> None:
    """Re-booking a model in use updates the bytes counted as in use."""
    rm = ResourceManager(100)
    rm.load("a", 10)
    with rm.use("a"):
        rm.load("a", 30)
        assert rm.usage().in_use == 30
    assert rm.usage().in_use == 0
    assert rm.stats() == (30, 100, 1)


def test_load_waits_for_a_model_in_use_when_given_a_timeout() -> None:
    """With a timeout, a load blocked by a model in use waits until it is released."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    rm.load("a", 80)
    gate = Gate()

    def request() -> None:
        with rm.use("a"):
            gate()

    threads = start(request)
    gate.wait_entered()
    result: list[bool] = []
    threads += start(lambda: result.append(rm.load("b", 50, timeout=JOIN)))
    time.sleep(0.05)
    assert result == []  # still waiting
    assert seen == []
    gate.open()
    join_all(threads)
    assert result == [True]
    assert seen == ["a"]
    assert ids(rm) == ["b"]


def test_load_times_out_when_the_model_stays_in_use() -> None:
    """A load whose timeout passes while the memory stays in use raises ResourceBusyError."""
    rm = ResourceManager(100)
    rm.load("a", 80)
    with rm.use("a"):
        started = time.monotonic()
        with pytest.raises(ResourceBusyError, match="timed out"):
            rm.load("b", 50, timeout=0.05)
        assert time.monotonic() - started >= 0.05
        with pytest.raises(ResourceBusyError) as info:
            rm.load("b", 50, timeout=0)  # 0: no wait
        assert "timed out" not in str(info.value)
    assert ids(rm) == ["a"]


# -- evict callbacks -----------------------------------------------------------


def test_evict_callback_runs_outside_the_lock() -> None:
    """The evict callback can call every manager method (no deadlock: the lock is free)."""
    rm = ResourceManager(100)
    calls: list[object] = []

    def callback(model_id: str) -> None:
        assert not rm._lock.locked()
        calls.append((model_id, rm.stats(), model_id in rm))
        calls.append(ids(rm))
        if model_id == "a":
            rm.load("side", 5)  # fits in what is free: no wait

    rm.set_evict_callback(callback)
    rm.load("a", 50)
    rm.load("b", 40)
    join_all(start(lambda: rm.load("c", 50)))  # fails if the callback deadlocked
    # c already holds a's bytes: a load evicting for itself owns them.
    assert calls[0] == ("a", (90, 100, 2), False)
    assert calls[1] == ["c", "b"]
    assert sorted(ids(rm)) == ["b", "c", "side"]
    assert rm.stats() == (95, 100, 3)


def test_evict_callbacks_run_in_lru_order() -> None:
    """One load evicting several models calls back for each, least recently used first."""
    rm = ResourceManager(100)
    seen = evictions(rm)
    for name in "abcde":
        rm.load(name, 20)
    rm.touch("b")
    rm.touch("a")
    rm.load("z", 70)
    assert seen == ["c", "d", "e", "b"]


def test_failing_callback_is_logged_counted_and_books_stay_right(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising callback is logged and counted; later callbacks still run and bytes are freed."""
    rm = ResourceManager(100)
    seen: list[str] = []

    def callback(model_id: str) -> None:
        seen.append(model_id)
        if model_id == "a":
            raise RuntimeError("unload failed")

    rm.set_evict_callback(callback)
    rm.load("a", 40)
    rm.load("b", 40)
    with caplog.at_level(logging.ERROR, logger="zerfoo_cloud.resources"):
        rm.load("c", 100)
    assert seen == ["a", "b"]
    assert rm.callback_errors == 1
    assert rm.usage() == ResourceUsage(100, 100, 0, 0, 0)
    [record] = caplog.records
    assert "'a'" in record.getMessage()
    assert record.exc_info is not None


def test_base_exception_in_callback_still_releases_every_victim() -> None:
    """A callback interrupted by a BaseException releases its bytes and the rest's."""
    rm = ResourceManager(100)

    def callback(model_id: str) -> None:
        raise KeyboardInterrupt

    rm.set_evict_callback(callback)
    rm.load("a", 50)
    rm.load("b", 50)
    with pytest.raises(KeyboardInterrupt):
        rm.load("c", 100)
    assert rm.usage() == ResourceUsage(100, 100, 0, 0, 0)
    assert ids(rm) == ["c"]


def test_callback_can_be_removed() -> None:
    """set_evict_callback(None) stops the callbacks; eviction still frees the bytes."""
    rm = ResourceManager(10)
    seen = evictions(rm)
    rm.set_evict_callback(None)
    rm.load("a", 10)
    rm.load("b", 10)
    assert seen == []
    assert ids(rm) == ["b"]


def test_evicted_bytes_stay_booked_until_the_callback_returns() -> None:
    """A load needing memory still being freed by a callback waits for the callback."""
    rm = ResourceManager(100)
    gate = Gate()
    rm.set_evict_callback(gate)
    rm.load("a", 100)
    threads = start(lambda: rm.evict("a"))
    gate.wait_entered()
    assert rm.usage() == ResourceUsage(100, 0, 0, 0, 100)
    assert rm.stats() == (0, 100, 0)
    result: list[bool] = []
    threads += start(lambda: result.append(rm.load("b", 60)))
    time.sleep(0.05)
    assert result == []  # memory not free yet
    gate.open()
    join_all(threads)
    assert result == [True]
    assert rm.usage() == ResourceUsage(100, 60, 0, 0, 0)


@pytest.mark.parametrize(
    ("evict_a", "loaded_after"),
    [
        pytest.param(lambda rm: rm.evict("a"), ["a"], id="evict"),
        pytest.param(lambda rm: rm.load("c", 60), ["a", "c"], id="displaced-by-load"),
    ],
)
def test_reloading_a_model_being_evicted_waits_for_its_callback(
    evict_a: Callable[[ResourceManager], object], loaded_after: list[str]
) -> None:
    """Loading a model whose eviction is still running waits, so the callback cannot unload the new copy."""
    rm = ResourceManager(100)
    order: list[str] = []
    gate = Gate()

    def callback(model_id: str) -> None:
        gate()
        order.append(f"unloaded {model_id}")

    rm.set_evict_callback(callback)
    rm.load("a", 60)
    threads = start(lambda: evict_a(rm))
    gate.wait_entered()

    def reload() -> None:
        rm.load("a", 10)  # fits in what is free, yet waits
        order.append("reloaded a")

    threads += start(reload)
    time.sleep(0.05)
    assert order == []
    gate.open()
    join_all(threads)
    assert order == ["unloaded a", "reloaded a"]
    assert sorted(ids(rm)) == loaded_after


def test_load_from_inside_a_callback_does_not_wait_for_evictions() -> None:
    """A callback that loads a model needing not-yet-freed memory gets ResourceBusyError, not a deadlock."""
    rm = ResourceManager(100)
    errors: list[BaseException] = []

    def callback(model_id: str) -> None:
        try:
            rm.load("x", 50)
        except ResourceBusyError as exc:
            errors.append(exc)
        try:
            rm.load(model_id, 10)  # itself, still being evicted
        except ResourceBusyError as exc:
            errors.append(exc)

    rm.set_evict_callback(callback)
    rm.load("a", 100)
    join_all(start(lambda: rm.evict("a")))  # fails if the callback deadlocked
    assert len(errors) == 2
    assert "still being evicted" in str(errors[1])
    assert rm.usage() == ResourceUsage(100, 0, 0, 0, 0)

"""
The `LimiterStore` contract, run against every implementation.
"""

from __future__ import annotations

import re
import threading
from typing import Protocol, cast

import pytest

from zerfoo_cloud.limits import BucketState
from zerfoo_cloud.stores.protocols import AdmissionStore, BucketStore, LimiterStore


def test_is_a_limiter_store(limiter_store: LimiterStore) -> None:
    """Every implementation satisfies the runtime-checkable protocol."""
    assert isinstance(limiter_store, LimiterStore)


def test_unknown_key_reads_none(limiter_store: LimiterStore) -> None:
    """A never-written key reads as None, in get and in update."""
    assert limiter_store.get("k") is None
    seen = limiter_store.update(["k"], lambda states: (None, list(states)))
    assert seen == [None]
    assert limiter_store.get("k") is None


def test_update_writes_and_deletes(limiter_store: LimiterStore) -> None:
    """States returned by the change are stored; None deletes."""
    limiter_store.update(
        ["a", "b"], lambda s: ([BucketState(1.5, 10.0), BucketState(-2.0, 11.0)], 0)
    )
    assert limiter_store.get("a") == BucketState(1.5, 10.0)
    assert limiter_store.get("b") == BucketState(-2.0, 11.0)
    limiter_store.update(["a", "b"], lambda s: ([None, s[1]], 0))
    assert limiter_store.get("a") is None
    assert limiter_store.get("b") == BucketState(-2.0, 11.0)


def test_update_returns_result_and_sees_states(limiter_store: LimiterStore) -> None:
    """The change sees the current states in key order and its result is returned."""
    limiter_store.update(["x"], lambda s: ([BucketState(3.0, 1.0)], None))
    result = limiter_store.update(
        ["y", "x"], lambda s: (None, [st and st.level for st in s])
    )
    assert result == [None, 3.0]


def test_exception_in_change_writes_nothing(limiter_store: LimiterStore) -> None:
    """A change that raises leaves every state as it was."""
    limiter_store.update(["x"], lambda s: ([BucketState(3.0, 1.0)], None))

    def boom(states: list[BucketState | None]) -> tuple[list[BucketState | None], None]:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        limiter_store.update(["x"], boom)
    assert limiter_store.get("x") == BucketState(3.0, 1.0)


def test_update_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Concurrent read-modify-write updates never lose an increment."""

    def incr(states: list[BucketState | None]) -> tuple[list[BucketState | None], None]:
        level = 0.0 if states[0] is None else states[0].level
        return [BucketState(level + 1, 0.0)], None

    def work() -> None:
        for _ in range(250):
            limiter_store.update(["n"], incr)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert limiter_store.get("n") == BucketState(2000.0, 0.0)


def test_slots_at_and_past_limit(limiter_store: LimiterStore) -> None:
    """Exactly `limit` slots can be taken; the next is refused until one is released."""
    assert [limiter_store.acquire_slot("c", 3) for _ in range(4)] == [True] * 3 + [
        False
    ]
    assert limiter_store.slots_in_use("c") == 3
    limiter_store.release_slot("c")
    assert limiter_store.slots_in_use("c") == 2
    assert limiter_store.acquire_slot("c", 3)
    assert not limiter_store.acquire_slot("c", 3)


def test_release_never_goes_negative(limiter_store: LimiterStore) -> None:
    """Releasing more than taken leaves the count at zero."""
    limiter_store.release_slot("c")
    assert limiter_store.slots_in_use("c") == 0
    assert limiter_store.acquire_slot("c", 1)
    limiter_store.release_slot("c")
    limiter_store.release_slot("c")
    assert limiter_store.slots_in_use("c") == 0


def test_slots_are_per_key(limiter_store: LimiterStore) -> None:
    """Slots of one key do not count against another."""
    assert limiter_store.acquire_slot("a", 1)
    assert limiter_store.acquire_slot("b", 1)
    assert not limiter_store.acquire_slot("a", 1)


def test_slots_exact_under_threads(limiter_store: LimiterStore) -> None:
    """Threads racing for 5 slots get exactly 5."""
    got: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        for _ in range(5):
            ok = limiter_store.acquire_slot("race", 5)
            with lock:
                got.append(ok)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got.count(True) == 5
    assert limiter_store.slots_in_use("race") == 5


def test_clear_by_prefix(limiter_store: LimiterStore) -> None:
    """clear(prefix) drops matching states and slots and keeps the rest."""
    limiter_store.update(
        ["t1\x00req", "t1\x00tok", "t10\x00req", "t2\x00req"],
        lambda s: ([BucketState(1.0, 1.0)] * 4, None),
    )
    limiter_store.acquire_slot("t1\x00con", 5)
    limiter_store.acquire_slot("t2\x00con", 5)
    limiter_store.clear("t1\x00")
    assert limiter_store.get("t1\x00req") is None
    assert limiter_store.get("t1\x00tok") is None
    assert limiter_store.get("t10\x00req") is not None
    assert limiter_store.get("t2\x00req") is not None
    assert limiter_store.slots_in_use("t1\x00con") == 0
    assert limiter_store.slots_in_use("t2\x00con") == 1


def test_clear_of_absent_prefix_is_harmless(limiter_store: LimiterStore) -> None:
    """Clearing a prefix nothing has is a no-op."""
    limiter_store.clear("zzz")
    assert limiter_store.get("zzz") is None


def test_take_fast_path_matches_the_arithmetic(limiter_store: LimiterStore) -> None:
    """A store with `take` grants, refuses and refills exactly like `take_from`."""
    if not isinstance(limiter_store, BucketStore):
        pytest.skip("this store has no fast path")
    assert limiter_store.take("k", 10.0, 1.0, 10, 100.0) == (True, 0.0)
    assert limiter_store.take("k", 10.0, 1.0, 1, 100.0) == (False, 0.0)
    allowed, level = limiter_store.take("k", 10.0, 1.0, 3, 103.0)
    assert allowed
    assert level == pytest.approx(0.0)
    assert limiter_store.get("k") == BucketState(0.0, 103.0)
    # A clock behind the stored time neither refills nor moves the stamp back.
    assert limiter_store.take("k", 10.0, 1.0, 1, 50.0) == (False, 0.0)
    assert limiter_store.get("k") == BucketState(0.0, 103.0)


def test_take_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Threads taking from one bucket through the fast path get exactly its capacity."""
    if not isinstance(limiter_store, BucketStore):
        pytest.skip("this store has no fast path")
    store = limiter_store
    granted: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [store.take("k", 300.0, 0.0, 1, 1.0)[0] for _ in range(100)]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert granted.count(True) == 300


def _backend_methods() -> list[str]:
    # The method names listed in the AdmissionStore docstring, in order.
    doc = AdmissionStore.__doc__ or ""
    listed = doc[doc.index("implements these methods") : doc.index("is optional")]
    listed = listed[: listed.rindex("`BucketStore.take`")]
    return [
        name.rpartition(".")[2] for name in re.findall(r"(?<!`)`([\w.]+)`(?!`)", listed)
    ]


def test_backend_method_list_is_documented() -> None:
    """The admission protocol names every method a counter backend implements."""
    assert _backend_methods() == [
        "admit",
        "settle",
        "get",
        "slots_in_use",
        "update",
        "acquire_slot",
        "release_slot",
        "clear",
        "close",
    ]


def test_implements_every_documented_method(limiter_store: LimiterStore) -> None:
    """Every counter backend has the admission primitive and each listed method."""
    assert isinstance(limiter_store, AdmissionStore)
    for name in _backend_methods():
        assert callable(getattr(limiter_store, name, None)), name


class _FastLimiterStore(LimiterStore, AdmissionStore, Protocol):
    """A limiter store with the admission fast path."""


def _admission(store: LimiterStore) -> _FastLimiterStore:
    if not isinstance(store, AdmissionStore):
        pytest.skip("this store has no admission fast path")
    return cast("_FastLimiterStore", store)


def test_admit_takes_slot_and_every_bucket(limiter_store: LimiterStore) -> None:
    """An admitted request takes its slot and every cost; levels are what is left."""
    store = _admission(limiter_store)
    free, allowed, levels = store.admit(
        ("c", 2), [("r", 10.0, 1.0, 1), ("t", 100.0, 1.0, 40)], 100.0
    )
    assert (free, allowed, levels) == (True, True, [9.0, 60.0])
    assert store.get("r") == BucketState(9.0, 100.0)
    assert store.get("t") == BucketState(60.0, 100.0)
    assert store.slots_in_use("c") == 1


def test_admit_refused_by_a_bucket_takes_nothing(limiter_store: LimiterStore) -> None:
    """A bucket short of its cost refuses the whole request: no units, no slot."""
    store = _admission(limiter_store)
    store.admit(None, [("t", 100.0, 1.0, 90)], 100.0)
    free, allowed, levels = store.admit(
        ("c", 5), [("r", 10.0, 1.0, 1), ("t", 100.0, 1.0, 11)], 100.0
    )
    assert (free, allowed, levels) == (True, False, [10.0, 10.0])
    assert store.get("r") is None
    assert store.get("t") == BucketState(10.0, 100.0)
    assert store.slots_in_use("c") == 0
    # Exactly the level is still granted.
    assert store.admit(("c", 5), [("t", 100.0, 1.0, 10)], 100.0)[1]


def test_admit_at_and_past_the_slot_limit(limiter_store: LimiterStore) -> None:
    """The last free slot is granted; past it nothing changes and levels are reported."""
    store = _admission(limiter_store)
    assert store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 100.0)[:2] == (True, True)
    assert store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 100.0)[:2] == (True, True)
    free, allowed, levels = store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 101.0)
    assert (free, allowed) == (False, False)
    assert levels == [pytest.approx(9.0)]
    assert store.get("r") == BucketState(8.0, 100.0)
    assert store.slots_in_use("c") == 2


def test_admit_without_limits(limiter_store: LimiterStore) -> None:
    """No slot and no buckets is always admitted and changes nothing."""
    store = _admission(limiter_store)
    assert store.admit(None, [], 1.0) == (True, True, [])


def test_settle_refunds_charges_and_gives_the_slot_back(
    limiter_store: LimiterStore,
) -> None:
    """Settle refunds up to capacity, charges into debt, and frees one slot."""
    store = _admission(limiter_store)
    store.admit(("c", 3), [("t", 100.0, 1.0, 30)], 100.0)
    store.admit(("c", 3), [("t", 100.0, 1.0, 30)], 100.0)
    store.settle("c", ("t", 100.0, 1.0, 500), 100.0)
    assert store.get("t") == BucketState(100.0, 100.0)
    assert store.slots_in_use("c") == 1
    store.settle("c", ("t", 100.0, 1.0, -150), 100.0)
    assert store.get("t") == BucketState(-50.0, 100.0)
    assert store.slots_in_use("c") == 0
    store.settle("c", None, 100.0)
    store.settle(None, None, 100.0)
    assert store.slots_in_use("c") == 0


def test_admit_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Threads admitting at once get exactly the slots and the units there are."""
    store = _admission(limiter_store)
    granted: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [
            store.admit(("c", 250), [("r", 300.0, 0.0, 1)], 1.0)[1] for _ in range(100)
        ]
        with lock:
            granted.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert granted.count(True) == 250
    assert store.slots_in_use("c") == 250
    assert store.get("r") == BucketState(50.0, 1.0)

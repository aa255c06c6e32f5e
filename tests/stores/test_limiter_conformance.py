"""
The `LimiterStore` contract, run against every implementation: the one
primitive (`admit`, `settle`), the reads and the upkeep.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerfoo_cloud.buckets import BucketState, refill
from zerfoo_cloud.stores.protocols import LimiterStore


def test_is_a_limiter_store(limiter_store: LimiterStore) -> None:
    """Every implementation satisfies the runtime-checkable protocol."""
    assert isinstance(limiter_store, LimiterStore)


def _backend_methods() -> list[str]:
    # The method names listed in the LimiterStore docstring, in order.
    doc = LimiterStore.__doc__ or ""
    listed = doc[doc.index("implements exactly these") : doc.index("Inside its atomic")]
    return re.findall(r"(?<!`)`([\w.]+)`(?!`)", listed)


def test_backend_method_list_is_documented() -> None:
    """The protocol names every method a counter backend implements, and no other."""
    assert _backend_methods() == [
        "admit",
        "settle",
        "get",
        "slots_in_use",
        "clear",
        "close",
    ]
    declared = {
        name
        for name in vars(LimiterStore)
        if not name.startswith("_") and callable(getattr(LimiterStore, name))
    }
    assert declared == set(_backend_methods())


def test_implements_every_documented_method(limiter_store: LimiterStore) -> None:
    """Every counter backend has each listed method."""
    for name in _backend_methods():
        assert callable(getattr(limiter_store, name, None)), name


def test_unknown_key_reads_none(limiter_store: LimiterStore) -> None:
    """A never-written key reads as None; a refusal writes nothing."""
    assert limiter_store.get("k") is None
    assert limiter_store.admit(None, [("k", 10.0, 1.0, 11)], 1.0) == (
        True,
        False,
        [10.0],
    )
    assert limiter_store.get("k") is None


def test_admit_takes_slot_and_every_bucket(limiter_store: LimiterStore) -> None:
    """An admitted request takes its slot and every cost; levels are what is left."""
    store = limiter_store
    free, allowed, levels = store.admit(
        ("c", 2), [("r", 10.0, 1.0, 1), ("t", 100.0, 1.0, 40)], 100.0
    )
    assert (free, allowed, levels) == (True, True, [9.0, 60.0])
    assert store.get("r") == BucketState(9.0, 100.0)
    assert store.get("t") == BucketState(60.0, 100.0)
    assert store.slots_in_use("c") == 1


def test_admit_refused_by_a_bucket_takes_nothing(limiter_store: LimiterStore) -> None:
    """A bucket short of its cost refuses the whole request: no units, no slot."""
    store = limiter_store
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
    store = limiter_store
    assert store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 100.0)[:2] == (True, True)
    assert store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 100.0)[:2] == (True, True)
    free, allowed, levels = store.admit(("c", 2), [("r", 10.0, 1.0, 1)], 101.0)
    assert (free, allowed) == (False, False)
    assert levels == [pytest.approx(9.0)]
    assert store.get("r") == BucketState(8.0, 100.0)
    assert store.slots_in_use("c") == 2


def test_admit_without_limits(limiter_store: LimiterStore) -> None:
    """No slot and no buckets is always admitted and changes nothing."""
    assert limiter_store.admit(None, [], 1.0) == (True, True, [])


def test_one_bucket_grants_refuses_and_refills(limiter_store: LimiterStore) -> None:
    """One bucket without a slot (every `RateLimiter.acquire`) follows the arithmetic."""
    store = limiter_store
    assert store.admit(None, [("k", 10.0, 1.0, 10)], 100.0) == (True, True, [0.0])
    assert store.admit(None, [("k", 10.0, 1.0, 1)], 100.0) == (True, False, [0.0])
    free, allowed, levels = store.admit(None, [("k", 10.0, 1.0, 3)], 103.0)
    assert (free, allowed) == (True, True)
    assert levels == [pytest.approx(0.0)]
    assert store.get("k") == BucketState(0.0, 103.0)
    # A clock behind the stored time neither refills nor moves the stamp back.
    assert store.admit(None, [("k", 10.0, 1.0, 1)], 50.0) == (True, False, [0.0])
    assert store.get("k") == BucketState(0.0, 103.0)
    # A cost above the capacity is never granted, even to a full bucket.
    assert store.admit(None, [("full", 10.0, 1.0, 11)], 1.0)[1] is False


def test_slots_at_and_past_limit(limiter_store: LimiterStore) -> None:
    """Exactly `limit` slots can be taken; the next is refused until one is given back."""
    store = limiter_store
    assert [store.admit(("c", 3), [], 1.0)[0] for _ in range(4)] == [True] * 3 + [False]
    assert store.slots_in_use("c") == 3
    assert store.settle("c", [], 1.0) == []
    assert store.slots_in_use("c") == 2
    assert store.admit(("c", 3), [], 1.0)[0]
    assert not store.admit(("c", 3), [], 1.0)[0]


def test_settle_never_goes_below_zero_slots(limiter_store: LimiterStore) -> None:
    """Giving back more slots than were taken leaves the count at zero."""
    store = limiter_store
    store.settle("c", [], 1.0)
    assert store.slots_in_use("c") == 0
    assert store.admit(("c", 1), [], 1.0)[0]
    store.settle("c", [], 1.0)
    store.settle("c", [], 1.0)
    assert store.slots_in_use("c") == 0
    assert store.admit(("c", 1), [], 1.0)[0]
    assert not store.admit(("c", 1), [], 1.0)[0]


def test_slots_are_per_key(limiter_store: LimiterStore) -> None:
    """Slots of one key do not count against another."""
    store = limiter_store
    assert store.admit(("a", 1), [], 1.0)[0]
    assert store.admit(("b", 1), [], 1.0)[0]
    assert not store.admit(("a", 1), [], 1.0)[0]


def test_settle_refunds_charges_and_gives_the_slot_back(
    limiter_store: LimiterStore,
) -> None:
    """Settle refunds up to capacity, charges into debt, and frees one slot."""
    store = limiter_store
    store.admit(("c", 3), [("t", 100.0, 1.0, 30)], 100.0)
    store.admit(("c", 3), [("t", 100.0, 1.0, 30)], 100.0)
    assert store.settle("c", [("t", 100.0, 1.0, 500)], 100.0) == [100.0]
    assert store.get("t") == BucketState(100.0, 100.0)
    assert store.slots_in_use("c") == 1
    assert store.settle("c", [("t", 100.0, 1.0, -150)], 100.0) == [-50.0]
    assert store.get("t") == BucketState(-50.0, 100.0)
    assert store.slots_in_use("c") == 0
    assert store.settle("c", [], 100.0) == []
    assert store.settle(None, [], 100.0) == []
    assert store.slots_in_use("c") == 0


def test_debt_is_repaid_by_the_refill(limiter_store: LimiterStore) -> None:
    """A bucket in debt refuses until the refill has repaid it and refilled the cost."""
    store = limiter_store
    assert store.settle(None, [("t", 10.0, 1.0, -15)], 100.0) == [-5.0]
    assert store.admit(None, [("t", 10.0, 1.0, 1)], 105.5) == (True, False, [0.5])
    assert store.admit(None, [("t", 10.0, 1.0, 1)], 106.0)[1]
    # A refund of a full bucket stays at the capacity.
    assert store.settle(None, [("t", 10.0, 1.0, 3)], 200.0) == [10.0]


def test_settle_several_buckets_and_zero_deltas(limiter_store: LimiterStore) -> None:
    """Settle changes every bucket given; a zero delta reports the level and writes nothing."""
    store = limiter_store
    store.admit(None, [("a", 10.0, 1.0, 6), ("b", 10.0, 1.0, 2)], 100.0)
    levels = store.settle(None, [("a", 10.0, 1.0, 3), ("b", 10.0, 1.0, -4)], 101.0)
    assert levels == [pytest.approx(8.0), pytest.approx(5.0)]
    assert store.settle(None, [("a", 10.0, 1.0, 0)], 102.0) == [pytest.approx(9.0)]
    assert store.get("a") == BucketState(pytest.approx(8.0), 101.0)  # type: ignore[arg-type]
    assert store.settle(None, [("new", 10.0, 1.0, 0)], 102.0) == [10.0]
    assert store.get("new") is None


# -- buckets that never refill (per_second = 0: spend budgets) ---------------


def test_a_bucket_that_never_refills(limiter_store: LimiterStore) -> None:
    """A per_second=0 bucket grants to its capacity exactly, refuses past it, and never refills however long it waits."""
    store = limiter_store
    assert store.admit(None, [("m", 1000.0, 0.0, 600)], 100.0) == (True, True, [400.0])
    assert store.admit(None, [("m", 1000.0, 0.0, 400)], 101.0) == (True, True, [0.0])
    assert store.admit(None, [("m", 1000.0, 0.0, 1)], 10.0**9) == (True, False, [0.0])
    assert store.get("m") == BucketState(0.0, 101.0)
    # A cost of 0 passes an empty bucket, not one in debt.
    assert store.admit(None, [("m", 1000.0, 0.0, 0)], 10.0**9)[1]
    assert store.settle(None, [("m", 1000.0, 0.0, -5)], 10.0**9) == [-5.0]
    assert not store.admit(None, [("m", 1000.0, 0.0, 0)], 10.0**9)[1]


def test_a_never_refilling_bucket_settles_exactly(limiter_store: LimiterStore) -> None:
    """Refunds of a per_second=0 bucket stop at its capacity, charges go into debt, and large integer levels stay exact."""
    store = limiter_store
    big = float(2**53)
    assert store.admit(None, [("h", 500.0, 0.0, 300)], 1.0)[1]
    assert store.settle(None, [("h", 500.0, 0.0, 100), ("s", big, 0.0, -200)], 2.0) == [
        300.0,
        big - 200,
    ]
    assert store.settle(None, [("h", 500.0, 0.0, 1000)], 3.0) == [500.0]
    assert store.settle(None, [("h", 500.0, 0.0, -501)], 4.0) == [-1.0]
    assert store.settle(None, [("s", big, 0.0, -(2**52) - 1)], 5.0) == [
        big - 200 - 2**52 - 1
    ]
    assert store.get("s") == BucketState(float(2**53 - 200 - 2**52 - 1), 5.0)


def test_never_refilling_buckets_with_a_slot_all_or_nothing(
    limiter_store: LimiterStore,
) -> None:
    """A per_second=0 bucket short of its cost refuses the slot and the other buckets too."""
    store = limiter_store
    asks = [("r", 10.0, 1.0, 1), ("m", 100.0, 0.0, 60)]
    assert store.admit(("c", 5), asks, 1.0) == (True, True, [9.0, 40.0])
    assert store.admit(("c", 5), asks, 1.0) == (True, False, [9.0, 40.0])
    assert store.slots_in_use("c") == 1
    assert store.get("r") == BucketState(9.0, 1.0)


def _in_threads(work: Callable[[], None], count: int = 8) -> None:
    # Run *work* in *count* threads at once and wait for them.
    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def _granted_in_threads(attempts: Callable[[], list[bool]]) -> list[bool]:
    # What *attempts* got in each of 8 threads started together.
    granted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        mine = attempts()
        with lock:
            granted.extend(mine)

    _in_threads(work)
    return granted


def test_admit_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Threads admitting at once get exactly the slots and the units there are."""
    store = limiter_store

    def attempts() -> list[bool]:
        return [
            store.admit(("c", 250), [("r", 300.0, 0.0, 1)], 1.0)[1] for _ in range(100)
        ]

    granted = _granted_in_threads(attempts)
    assert granted.count(True) == 250
    assert store.slots_in_use("c") == 250
    assert store.get("r") == BucketState(50.0, 1.0)


def test_one_bucket_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Threads taking from one bucket without a slot get exactly its capacity."""
    store = limiter_store
    granted: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [store.admit(None, [("k", 300.0, 0.0, 1)], 1.0)[1] for _ in range(100)]
        with lock:
            granted.extend(mine)

    _in_threads(work)
    assert granted.count(True) == 300


def test_settle_is_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Concurrent charges and slot returns are never lost."""
    store = limiter_store
    for _ in range(2000):
        assert store.admit(("c", 2000), [], 1.0)[0]

    def work() -> None:
        for _ in range(250):
            store.settle("c", [("n", 10.0, 0.0, -1)], 1.0)

    _in_threads(work)
    assert store.get("n") == BucketState(-1990.0, 1.0)
    assert store.slots_in_use("c") == 0


def test_clear_by_prefix(limiter_store: LimiterStore) -> None:
    """clear(prefix) drops matching states and slots and keeps the rest."""
    store = limiter_store
    keys = ["t1\x00req", "t1\x00tok", "t10\x00req", "t2\x00req"]
    for k in keys:  # one group (the text before the NUL) per admit
        assert store.admit(None, [(k, 10.0, 1.0, 1)], 1.0)[1]
    store.admit(("t1\x00con", 5), [], 1.0)
    store.admit(("t2\x00con", 5), [], 1.0)
    store.clear("t1\x00")
    assert store.get("t1\x00req") is None
    assert store.get("t1\x00tok") is None
    assert store.get("t10\x00req") is not None
    assert store.get("t2\x00req") is not None
    assert store.slots_in_use("t1\x00con") == 0
    assert store.slots_in_use("t2\x00con") == 1


def test_clear_of_absent_prefix_is_harmless(limiter_store: LimiterStore) -> None:
    """Clearing a prefix nothing has is a no-op."""
    limiter_store.clear("zzz")
    assert limiter_store.get("zzz") is None


# -- the primitive against an exact reference ------------------------------

#: (key, capacity, per_second) of the two buckets the reference keeps.
_BUCKETS = (("r", 20, Fraction(2)), ("t", 60, Fraction(6)))
_SLOT_LIMIT = 3
_CLOSE = Fraction(1, 10**6)

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("settle"), st.integers(-40, 40), st.booleans()),
        st.tuples(st.just("wait"), st.integers(0, 4000), st.booleans()),
    ),
    max_size=40,
)


class _Reference:
    """
    The buckets and the slot count kept in fractions, refilled by hand.
    """

    def __init__(self) -> None:
        self.levels: dict[str, Fraction | None] = {"r": None, "t": None}
        self.stamp = Fraction(0)
        self.slots = 0

    def level(
        self, key: str, capacity: int, per_second: Fraction, now: Fraction
    ) -> Fraction:
        level = self.levels[key]
        if level is None:
            return Fraction(capacity)
        return min(Fraction(capacity), level + (now - self.stamp) * per_second)

    def sync(self, now: Fraction) -> list[Fraction]:
        """Refill every written bucket to *now*; return every level."""
        out = []
        for key, capacity, per_second in _BUCKETS:
            level = self.level(key, capacity, per_second, now)
            if self.levels[key] is not None:
                self.levels[key] = level
            out.append(level)
        self.stamp = now
        return out


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(ops=_ops)
def test_primitive_matches_an_exact_reference(
    limiter_store: LimiterStore, ops: list[tuple[str, int, bool]]
) -> None:
    """Any run of admits, settles and waits matches buckets kept in fractions."""
    store = limiter_store
    store.clear("")
    ref = _Reference()
    now = 1000.0
    asks = [(key, float(cap), float(rate)) for key, cap, rate in _BUCKETS]
    for op, amount, with_slot in ops:
        if op == "wait":
            now += amount / 1000
            continue
        exact = ref.sync(Fraction(now))
        slot_key = "c" if with_slot else None
        if op == "admit":
            costs = [1, amount]
            free, allowed, levels = store.admit(
                None if slot_key is None else (slot_key, _SLOT_LIMIT),
                [(k, c, r, n) for (k, c, r), n in zip(asks, costs, strict=True)],
                now,
            )
            assert free == (slot_key is None or ref.slots < _SLOT_LIMIT)
            spare = [level - n for level, n in zip(exact, costs, strict=True)]
            if free and all(abs(x) >= _CLOSE for x in spare):
                assert allowed == all(x > 0 for x in spare)
            if allowed:
                ref.levels = dict(zip(ref.levels, spare, strict=True))
                ref.slots += slot_key is not None
                exact = spare
        else:
            levels = store.settle(slot_key, [("t", 60.0, 6.0, amount)], now)
            if amount:
                new = exact[1] + amount
                ref.levels["t"] = min(new, Fraction(60)) if amount > 0 else new
            exact = ref.sync(Fraction(now))[1:]
            ref.slots = max(0, ref.slots - (slot_key is not None))
        assert levels == [pytest.approx(float(x), abs=1e-6) for x in exact]
        assert store.slots_in_use("c") == ref.slots
        now_levels = ref.sync(Fraction(now))
        for (key, capacity, rate), expected in zip(asks, now_levels, strict=True):
            state = store.get(key)
            assert (state is None) == (ref.levels[key] is None)
            assert refill(state, capacity, rate, now)[0] == pytest.approx(
                float(expected), abs=1e-6
            )


# -- several slots in one admission (a tenant's and its key's) -------------

TWO = [("t", 3), ("k", 1)]


def test_several_slots_are_taken_together(limiter_store: LimiterStore) -> None:
    """One slot of each key and every cost are taken; the counts follow the levels."""
    store = limiter_store
    assert store.admit(TWO, [("r", 10.0, 1.0, 1)], 100.0) == (True, True, [9.0, 1, 1])
    assert store.slots_in_use("t") == 1
    assert store.slots_in_use("k") == 1
    assert store.get("r") == BucketState(9.0, 100.0)


def test_several_slots_at_and_past_each_limit(limiter_store: LimiterStore) -> None:
    """The key's last slot is granted; past it, or past the tenant's, nothing is taken."""
    store = limiter_store
    bucket = [("r", 10.0, 0.0, 1)]
    assert store.admit(TWO, bucket, 1.0)[:2] == (True, True)
    # The key's one slot is taken: refused, its count says so; nothing changed.
    assert store.admit(TWO, bucket, 1.0) == (False, False, [9.0, 1, 1])
    assert store.slots_in_use("t") == 1
    assert store.get("r") == BucketState(9.0, 1.0)
    # Other keys of the tenant fill the tenant's three slots.
    assert store.admit([("t", 3), ("k2", 5)], bucket, 1.0) == (True, True, [8.0, 2, 1])
    assert store.admit([("t", 3), ("k3", 5)], bucket, 1.0) == (True, True, [7.0, 3, 1])
    # The tenant's slots are all taken: refused, though the key has room.
    assert store.admit([("t", 3), ("k4", 5)], bucket, 1.0) == (
        False,
        False,
        [7.0, 3, 0],
    )
    assert store.slots_in_use("k4") == 0
    # A key's slot given back with the tenant's makes room for both.
    assert store.settle(["t", "k"], [], 1.0) == []
    assert (store.slots_in_use("t"), store.slots_in_use("k")) == (2, 0)
    assert store.admit(TWO, bucket, 1.0) == (True, True, [6.0, 3, 1])


def test_several_slots_refused_by_a_bucket_take_no_slot(
    limiter_store: LimiterStore,
) -> None:
    """A bucket short of its cost refuses: no slot of any key is taken."""
    store = limiter_store
    free, allowed, levels = store.admit(TWO, [("r", 10.0, 1.0, 11)], 100.0)
    assert (free, allowed, levels) == (True, False, [10.0, 0, 0])
    assert (store.slots_in_use("t"), store.slots_in_use("k")) == (0, 0)


def test_one_slot_in_a_sequence_reports_its_count(limiter_store: LimiterStore) -> None:
    """A sequence of one slot is the one-slot admission, its count reported."""
    store = limiter_store
    assert store.admit([("c", 2)], [], 1.0) == (True, True, [1])
    assert store.admit([("c", 2)], [], 1.0) == (True, True, [2])
    assert store.admit([("c", 2)], [], 1.0) == (False, False, [2])
    assert store.admit([], [], 1.0)[:2] == (True, True)


def test_settle_several_slots_and_buckets(limiter_store: LimiterStore) -> None:
    """Settle gives back one slot of each key with its buckets; never below zero."""
    store = limiter_store
    store.admit(TWO, [("tok", 100.0, 0.0, 40), ("ktok", 50.0, 0.0, 40)], 1.0)
    levels = store.settle(
        ("t", "k"), [("tok", 100.0, 0.0, 30), ("ktok", 50.0, 0.0, 30)], 1.0
    )
    assert levels == [90.0, 40.0]
    assert (store.slots_in_use("t"), store.slots_in_use("k")) == (0, 0)
    store.settle(["t", "k"], [], 1.0)
    assert (store.slots_in_use("t"), store.slots_in_use("k")) == (0, 0)
    assert store.admit(TWO, [], 1.0)[:2] == (True, True)


def test_one_key_twice_in_an_admission_is_refused(limiter_store: LimiterStore) -> None:
    """Several slots must name distinct keys: ValueError, nothing taken."""
    with pytest.raises(ValueError, match="distinct keys"):
        limiter_store.admit([("t", 3), ("t", 3)], [("r", 10.0, 1.0, 1)], 1.0)
    assert limiter_store.slots_in_use("t") == 0
    assert limiter_store.get("r") is None


def test_several_slots_are_atomic_under_threads(limiter_store: LimiterStore) -> None:
    """Threads admitting with a tenant's and a key's slot never pass either limit."""
    store = limiter_store

    def attempts() -> list[bool]:
        return [
            store.admit([("t", 60), (key, 40)], [("r", 300.0, 0.0, 1)], 1.0)[1]
            for key in ["k"] * 10 + ["k2"] * 10
        ]

    granted = _granted_in_threads(attempts)
    assert granted.count(True) == 60
    assert store.slots_in_use("t") == 60
    assert store.slots_in_use("k") + store.slots_in_use("k2") == 60
    assert store.slots_in_use("k") <= 40
    assert store.get("r") == BucketState(240.0, 1.0)

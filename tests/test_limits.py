"""
Token-bucket limits: exact behaviour, properties, and a reference model.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.conftest import FakeClock
from zerfoo_cloud import InvalidConfigError
from zerfoo_cloud.limits import MAX_LIMIT, Rate, RateLimiter
from zerfoo_cloud.stores.memory import MemoryLimiterStore


def make(clock: FakeClock) -> RateLimiter:
    """
    A limiter over a fresh memory store driven by *clock*.
    """
    return RateLimiter(MemoryLimiterStore(), clock=clock)


def test_full_quota_is_available_as_a_burst(clock: FakeClock) -> None:
    """A fresh bucket grants its whole limit at once, then refuses."""
    limiter = make(clock)
    rate = Rate(10)
    assert all(limiter.acquire("k", rate).allowed for _ in range(10))
    refused = limiter.acquire("k", rate)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(6.0)
    assert refused.reset_after == pytest.approx(60.0)


def test_refill_is_continuous(clock: FakeClock) -> None:
    """After a burst, one unit comes back every period/limit seconds, not all at once."""
    limiter = make(clock)
    rate = Rate(60)
    assert limiter.acquire("k", rate, 60).allowed
    clock.advance(0.999)
    assert not limiter.acquire("k", rate).allowed
    clock.advance(0.001)
    assert limiter.acquire("k", rate).allowed
    assert not limiter.acquire("k", rate).allowed
    clock.advance(30)
    d = limiter.acquire("k", rate, 30)
    assert d.allowed
    assert d.remaining == 0


def test_retry_after_is_honest(clock: FakeClock) -> None:
    """Waiting exactly retry_after makes the refused request pass."""
    limiter = make(clock)
    rate = Rate(100, 60)
    limiter.acquire("k", rate, 95)
    refused = limiter.acquire("k", rate, 20)
    assert not refused.allowed
    assert refused.remaining == 5
    clock.advance(refused.retry_after)
    assert limiter.acquire("k", rate, 20).allowed


def test_cost_above_capacity_never_passes(clock: FakeClock) -> None:
    """Asking for more than the limit is refused with an infinite retry."""
    limiter = make(clock)
    d = limiter.acquire("k", Rate(10), 11)
    assert not d.allowed
    assert d.retry_after == math.inf
    assert limiter.acquire("k", Rate(10), 10).allowed


def test_cost_at_capacity_passes_once(clock: FakeClock) -> None:
    """A cost equal to the limit passes on a full bucket, and not again at once."""
    limiter = make(clock)
    assert limiter.acquire("k", Rate(10), 10).allowed
    assert not limiter.acquire("k", Rate(10), 10).allowed


def test_refund_caps_at_capacity(clock: FakeClock) -> None:
    """Refunds top the bucket up to its limit and never above."""
    limiter = make(clock)
    rate = Rate(10)
    limiter.acquire("k", rate, 4)
    assert limiter.refund("k", rate, 100).remaining == 10
    assert limiter.peek("k", rate).remaining == 10
    assert limiter.acquire("k", rate, 10).allowed
    assert not limiter.acquire("k", rate).allowed


def test_deduct_goes_into_debt(clock: FakeClock) -> None:
    """Deducting past zero makes later requests wait until the debt is repaid."""
    limiter = make(clock)
    rate = Rate(60)
    limiter.deduct("k", rate, 90)  # 30 in debt
    d = limiter.acquire("k", rate)
    assert not d.allowed
    assert d.remaining == 0
    assert d.retry_after == pytest.approx(31.0)
    clock.advance(30.5)
    assert not limiter.acquire("k", rate).allowed
    clock.advance(0.5)
    assert limiter.acquire("k", rate).allowed


def test_acquire_many_is_all_or_nothing(clock: FakeClock) -> None:
    """When one bucket refuses, no bucket is charged."""
    limiter = make(clock)
    req, tok = Rate(5), Rate(100)
    limiter.acquire("tok", tok, 90)
    ds = limiter.acquire_many([("req", req, 1), ("tok", tok, 20)])
    assert [d.allowed for d in ds] == [True, False]
    assert limiter.peek("req", req).remaining == 5
    assert limiter.peek("tok", tok).remaining == 10
    ds = limiter.acquire_many([("req", req, 1), ("tok", tok, 10)])
    assert all(d.allowed for d in ds)
    assert limiter.peek("req", req).remaining == 4


def test_clock_going_backwards_adds_nothing(clock: FakeClock) -> None:
    """A clock that steps back neither refills nor breaks the bucket."""
    limiter = make(clock)
    rate = Rate(10)
    limiter.acquire("k", rate, 10)
    clock.advance(-100)
    assert not limiter.acquire("k", rate).allowed
    clock.advance(100)
    assert not limiter.acquire("k", rate).allowed
    clock.advance(6)
    assert limiter.acquire("k", rate).allowed


def test_a_changed_rate_applies_at_once(clock: FakeClock) -> None:
    """A lower limit clamps the bucket on its next use."""
    limiter = make(clock)
    limiter.acquire("k", Rate(100), 1)
    assert limiter.peek("k", Rate(10)).remaining == 10


@pytest.mark.parametrize(
    ("limit", "period"),
    [
        (0, 60.0),
        (-1, 60.0),
        (MAX_LIMIT + 1, 60.0),
        (10, 0.0),
        (10, -1.0),
        (10, math.inf),
        (10, math.nan),
    ],
)
def test_bad_rates_rejected(limit: int, period: float) -> None:
    """Limits outside 1..MAX_LIMIT and non-positive or non-finite periods are refused."""
    with pytest.raises(InvalidConfigError):
        Rate(limit, period)


def test_rate_bounds_accepted() -> None:
    """The smallest and largest limits are accepted."""
    assert Rate(1).limit == 1
    assert Rate(MAX_LIMIT).limit == MAX_LIMIT


@pytest.mark.parametrize("bad", [True, 1.5, "3"])
def test_rate_limit_must_be_int(bad: object) -> None:
    """A non-integer limit is refused."""
    with pytest.raises(InvalidConfigError):
        Rate(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, True, 2.0])
def test_refund_and_deduct_reject_bad_units(clock: FakeClock, bad: object) -> None:
    """Negative or non-integer refunds and deductions are refused."""
    limiter = make(clock)
    with pytest.raises(InvalidConfigError):
        limiter.refund("k", Rate(10), bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        limiter.deduct("k", Rate(10), bad)  # type: ignore[arg-type]


def test_zero_refund_is_a_peek(clock: FakeClock) -> None:
    """Refunding or deducting zero changes nothing."""
    limiter = make(clock)
    limiter.acquire("k", Rate(10), 3)
    assert limiter.refund("k", Rate(10), 0).remaining == 7
    assert limiter.deduct("k", Rate(10), 0).remaining == 7


steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30, allow_nan=False),
        st.integers(min_value=1, max_value=12),
    ),
    max_size=80,
)


@given(limit=st.integers(1, 50), period=st.sampled_from([1.0, 7.5, 60.0]), plan=steps)
def test_no_interval_admits_more_than_burst_plus_rate(
    limit: int, period: float, plan: list[tuple[float, int]]
) -> None:
    """In every interval [a, b], admitted units <= limit + rate * (b - a)."""
    clock = FakeClock(0.0)
    limiter = make(clock)
    rate = Rate(limit, period)
    admitted: list[tuple[float, int]] = []
    for dt, cost in plan:
        clock.advance(dt)
        if limiter.acquire("k", rate, cost).allowed:
            admitted.append((clock.now, cost))
    for i, (a, _) in enumerate(admitted):
        total = 0
        for b, cost in admitted[i:]:
            total += cost
            assert total <= limit + rate.per_second * (b - a) + 1e-6


@given(
    limit=st.integers(1, 50),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "refund", "deduct"]),
            st.integers(0, 80),
            st.floats(min_value=0, max_value=10, allow_nan=False),
        ),
        max_size=60,
    ),
)
def test_balance_never_exceeds_capacity(
    limit: int, ops: list[tuple[str, int, float]]
) -> None:
    """No sequence of acquires, refunds, deductions and waits lifts the balance over the limit."""
    clock = FakeClock(0.0)
    limiter = make(clock)
    rate = Rate(limit)
    for op, n, dt in ops:
        clock.advance(dt)
        if op == "acquire":
            limiter.acquire("k", rate, max(n, 1))
        elif op == "refund":
            limiter.refund("k", rate, n)
        else:
            limiter.deduct("k", rate, n)
        assert limiter.peek("k", rate).remaining <= limit
        state = limiter.store.get("k")
        assert state is None or state.level <= limit + 1e-9


class BucketMachine(RuleBasedStateMachine):
    """
    The limiter against an exact reference bucket kept in fractions.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.limiter = make(self.clock)
        self.rate = Rate(20, 10.0)
        self.level = Fraction(20)
        self.time = Fraction(0)

    def _sync(self) -> None:
        now = Fraction(self.clock.now)
        self.level = min(
            Fraction(20), self.level + (now - self.time) * Fraction(20, 10)
        )
        self.time = now

    def _close(self, cost: int) -> bool:
        return abs(self.level - cost) < Fraction(1, 10**6)

    @rule(ms=st.integers(0, 5000))
    def wait(self, ms: int) -> None:
        """Time passes."""
        self.clock.advance(ms / 1000)

    @rule(cost=st.integers(1, 25))
    def acquire(self, cost: int) -> None:
        """The limiter grants exactly when the reference holds enough."""
        self._sync()
        d = self.limiter.acquire("k", self.rate, cost)
        note(f"level={float(self.level)} cost={cost} -> {d}")
        if not self._close(cost):
            assert d.allowed == (self.level >= cost)
        if d.allowed:
            self.level -= cost

    @rule(n=st.integers(0, 25))
    def refund(self, n: int) -> None:
        """Refunds fill the reference up to capacity."""
        self._sync()
        self.limiter.refund("k", self.rate, n)
        self.level = min(Fraction(20), self.level + n)

    @rule(n=st.integers(0, 25))
    def deduct(self, n: int) -> None:
        """Deductions may go into debt."""
        self._sync()
        self.limiter.deduct("k", self.rate, n)
        self.level -= n

    @precondition(lambda self: True)
    @invariant()
    def remaining_matches(self) -> None:
        """The reported remaining quota is the reference level, floored at zero."""
        self._sync()
        remaining = self.limiter.peek("k", self.rate).remaining
        expected = max(0, math.floor(self.level))
        assert abs(remaining - expected) <= 1


TestBucketMachine = BucketMachine.TestCase

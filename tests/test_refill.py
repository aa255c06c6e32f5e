"""
One refill function: every limiter path computes a bucket's level as the
arithmetic it replaced did.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zerfoo_cloud.buckets import EPSILON, refill_all
from zerfoo_cloud.limits import BucketState, adjust_bucket, refill, take_all, take_from

times = st.floats(min_value=0.0, max_value=2e9, allow_nan=False)
levels = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
capacities = st.integers(min_value=1, max_value=2**53).map(float)
speeds = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False)
costs = st.integers(min_value=0, max_value=2**53)
states = st.none() | st.builds(BucketState, levels, times)


def old_refill(
    state: BucketState | None, capacity: float, per_second: float, now: float
) -> tuple[float, float]:
    # What `take_from` and `take_all` wrote out: time gone by (never
    # backwards) adds units up to the capacity, and moves the stamp to *now*.
    if state is None:
        return capacity, now
    level, stamp = state
    gained = (now - stamp) * per_second if now > stamp else 0.0
    return min(capacity, level + gained), max(now, stamp)


@settings(max_examples=300, deadline=None)
@given(states, capacities, speeds, times)
def test_refill_matches_both_written_out_forms(
    state: BucketState | None, capacity: float, per_second: float, now: float
) -> None:
    """`refill` is what `take_from` and `take_all` computed by hand."""
    assert refill(state, capacity, per_second, now) == old_refill(
        state, capacity, per_second, now
    )


@settings(max_examples=300, deadline=None)
@given(states, capacities, speeds, costs, times)
def test_take_from_and_take_all_agree(
    state: BucketState | None,
    capacity: float,
    per_second: float,
    cost: int,
    now: float,
) -> None:
    """One bucket taken by `take_from` and by `take_all` ends the same."""
    level, stamp = old_refill(state, capacity, per_second, now)
    new, allowed, left = take_from(state, capacity, per_second, cost, now)
    assert allowed == (level + EPSILON >= cost)
    many, lefts = take_all([state], [(capacity, per_second, cost)], now)
    assert lefts == [left]
    if allowed:
        assert new == BucketState(level - cost, stamp)
        assert many == [(level - cost, stamp)]
    else:
        assert new is None
        assert many is None
        assert left == level


@settings(max_examples=300, deadline=None)
@given(states, capacities, speeds, st.integers(-(2**40), 2**40), times)
def test_adjust_bucket_refills_first(
    state: BucketState | None,
    capacity: float,
    per_second: float,
    delta: int,
    now: float,
) -> None:
    """A refund or charge lands on the refilled level; refunds stop at capacity."""
    level, stamp = old_refill(state, capacity, per_second, now)
    level += delta
    if delta > 0:
        level = min(level, capacity)
    assert adjust_bucket(state, capacity, per_second, delta, now) == BucketState(
        level, stamp
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(states, capacities, speeds, costs), max_size=4),
    times,
)
def test_refill_all_is_refill_per_bucket(
    buckets: list[tuple[BucketState | None, float, float, int]], now: float
) -> None:
    """`refill_all` is `refill` of each bucket, taking nothing."""
    olds = [state for state, _, _, _ in buckets]
    asks = [(capacity, rate, cost) for _, capacity, rate, cost in buckets]
    assert refill_all(olds, asks, now) == [
        refill(state, capacity, rate, now)[0] for state, capacity, rate, _ in buckets
    ]

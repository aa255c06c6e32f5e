"""
Token-bucket records and their arithmetic: what a bucket holds, how it
refills, gives and takes, and what asking it for units decided (`Decision`).

Pure functions of a bucket's stored state and the time, shared by the limits
service (`zerfoo_cloud.limits`) and every store backend, so the arithmetic
is the same everywhere. They touch no store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "BucketState",
    "Decision",
    "adjust_bucket",
    "refill",
    "refill_all",
    "take_all",
    "take_from",
]

#: Levels within this of a cost count as enough: waiting exactly
#: ``retry_after`` must pass even where Unix times in doubles round down.
EPSILON = 1e-6


class BucketState(NamedTuple):
    """
    The stored state of one bucket.

    *level* units were available at Unix time *updated*; a negative level is
    debt. The bucket refills from there.

    .. versionadded:: 0.1.0
    """

    level: float
    updated: float


class Decision(NamedTuple):
    """
    The outcome of asking one bucket for units.

    Attributes:
        allowed: whether the units were granted.
        limit: the bucket's capacity.
        remaining: whole units left after this decision (never negative).
        retry_after: seconds until the same request would be granted;
            ``0.0`` when granted, ``math.inf`` when it asks for more than the
            capacity and can never be granted.
        reset_after: seconds until the bucket is full again.

    .. versionadded:: 0.1.0
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


def refill(
    state: tuple[float, float] | None, capacity: float, per_second: float, now: float
) -> tuple[float, float]:
    """
    Return ``(level, stamp)``: the units in a bucket at time *now* (full if
    never used) and the time they are counted from.

    A clock that went backwards adds nothing and keeps the old stamp.
    """
    if state is None:
        return capacity, now
    level, stamp = state
    elapsed = now - stamp
    if elapsed > 0:
        level += elapsed * per_second
        stamp = now
    return (level if level < capacity else capacity), stamp  # noqa: FURB136 - not min(): a call less per decision


def refill_all(
    states: Sequence[tuple[float, float] | None],
    asks: Sequence[tuple[float, float, int]],
    now: float,
) -> list[float]:
    """
    Return the units in each of several buckets at time *now*, taking nothing.

    *states* and *asks* are as for `take_all` (the costs are not used): what
    `zerfoo_cloud.stores.protocols.LimiterStore.admit` reports when every
    concurrency slot is taken.
    """
    return [
        refill(state, capacity, per_second, now)[0]
        for state, (capacity, per_second, _) in zip(states, asks, strict=True)
    ]


def take_from(
    state: tuple[float, float] | None,
    capacity: float,
    per_second: float,
    cost: int,
    now: float,
) -> tuple[BucketState | None, bool, float]:
    """
    Take *cost* units from a bucket in *state* at time *now*, if it holds them.

    Returns ``(new_state, allowed, level)``: *new_state* is ``None`` when
    nothing changes, *level* the units left (or available, if refused): the
    one-bucket case of `take_all`, which a store may use for the commonest
    `zerfoo_cloud.stores.protocols.LimiterStore.admit` (one bucket, no slot).
    """
    level, stamp = refill(state, capacity, per_second, now)
    if level + EPSILON < cost:
        return None, False, level
    level -= cost
    return BucketState(level, stamp), True, level


def take_all(
    states: Sequence[tuple[float, float] | None],
    asks: Sequence[tuple[float, float, int]],
    now: float,
) -> tuple[list[tuple[float, float]] | None, list[float]]:
    """
    Take units from several buckets at time *now*: from all of them, or from none.

    *states* holds ``(level, stamp)`` per bucket (a `BucketState`, or
    ``None`` for a bucket never used), *asks* ``(capacity, per_second,
    cost)`` in the same order. Returns ``(new_states, levels)``:
    *new_states* (``(level, stamp)`` pairs) is ``None`` when a bucket lacks
    its cost (nothing is taken), *levels* the units left in each bucket (or
    available, when nothing was taken). The arithmetic of every
    `zerfoo_cloud.stores.protocols.LimiterStore.admit`.
    """
    if len(states) != len(asks):
        msg = "one ask per bucket state is needed"
        raise ValueError(msg)
    levels = []
    stamps = []
    enough = True
    for i, state in enumerate(states):
        capacity, per_second, cost = asks[i]
        level, stamp = refill(state, capacity, per_second, now)
        if level + EPSILON < cost:
            enough = False
        levels.append(level)
        stamps.append(stamp)
    if not enough:
        return None, levels
    new = []
    for i, level in enumerate(levels):
        left = level - asks[i][2]
        levels[i] = left
        new.append((left, stamps[i]))
    return new, levels


def adjust_bucket(
    state: tuple[float, float] | None,
    capacity: float,
    per_second: float,
    delta: int,
    now: float,
) -> BucketState:
    """
    Return the state of a bucket given *delta* units at time *now*: a refund
    (positive, never above *capacity*) or a charge (negative, into debt if
    need be).
    """
    level, stamp = refill(state, capacity, per_second, now)
    level += delta
    if delta > 0 and level > capacity:
        level = capacity
    return BucketState(level, stamp)

"""
Continuously refilling rate limits (token buckets) over a `LimiterStore`.

A limit of *limit* units per *period* seconds is a bucket that holds at most
*limit* units and refills at ``limit / period`` units per second, all the
time: there is no window that resets at once, so no more than
``limit + rate * t`` units ever pass in any interval of *t* seconds, and a
full period's quota may be spent as one burst.

Spending is all or nothing (`RateLimiter.acquire`), returning units only
tops the bucket up to its capacity (`RateLimiter.refund`), and charging after
the fact may drive a bucket into debt (`RateLimiter.deduct`): later requests
then wait until the debt is repaid by the refill.

Every decision says when it would next succeed (`Decision.retry_after`) and
when the bucket is full again (`Decision.reset_after`), which is what the
HTTP ``Retry-After`` and ``x-ratelimit-*`` headers report.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, cast

import attrs

from zerfoo_cloud.buckets import (
    EPSILON,
    BucketState,
    Decision,
    adjust_bucket,
    refill,
    refill_all,
    take_all,
    take_from,
)
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.slots import SlotKeys, Slots

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import LimiterStore

__all__ = [
    "Admitted",
    "BucketState",
    "Decision",
    "Rate",
    "RateLimiter",
    "adjust_bucket",
    "level_at",
    "refill",
    "refill_all",
    "take_all",
    "take_from",
]

#: `AsyncLimiterStore.admit_async` and `settle_async`, bound.
_AdmitAsync = Callable[
    [Slots, Sequence[tuple[str, float, float, int]], float],
    Awaitable[tuple[bool, bool, list[float]]],
]
_SettleAsync = Callable[
    [SlotKeys, Sequence[tuple[str, float, float, int]], float],
    Awaitable[list[float]],
]
#: What `RateLimiter.settle` gives back: ``(key, rate, delta)``, several of
#: them, or ``None``.
Settled = tuple[str, "Rate", int] | Sequence[tuple[str, "Rate", int]] | None

#: Limits are kept in doubles: integers up to this are exact.
MAX_LIMIT = 2**53


@attrs.frozen
class Rate:
    """
    *limit* units per *period* seconds; *limit* is also the largest burst.

    .. versionadded:: 0.1.0
    """

    limit: int
    period: float = 60.0
    #: Units refilled per second (derived).
    per_second: float = attrs.field(init=False, repr=False, eq=False)
    #: The limit as a float (derived).
    capacity: float = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            msg = f"a rate limit must be an integer, not {self.limit!r}"
            raise InvalidConfigError(msg, field="limit")
        if not 0 < self.limit <= MAX_LIMIT:
            msg = f"a rate limit must be between 1 and {MAX_LIMIT}, not {self.limit}"
            raise InvalidConfigError(msg, field="limit")
        if not (math.isfinite(self.period) and self.period > 0):
            msg = f"a rate period must be a positive number of seconds, not {self.period!r}"
            raise InvalidConfigError(msg, field="period")
        object.__setattr__(self, "per_second", self.limit / self.period)
        object.__setattr__(self, "capacity", float(self.limit))


def level_at(state: BucketState | None, rate: Rate, now: float) -> float:
    """
    Return the units in a bucket at time *now* (full if never used).

    A clock that went backwards (another host's, another process's) adds
    nothing and takes nothing.
    """
    return refill(state, rate.capacity, rate.per_second, now)[0]


def _granted(level: float, rate: Rate) -> Decision:
    # The decision of a granted request that left *level* units: at least
    # -EPSILON, so int() (rounding towards zero) is never negative.
    return Decision(
        True,
        rate.limit,
        int(level + EPSILON),
        0.0,
        (rate.capacity - level) / rate.per_second,
    )


def _decision(allowed: bool, level: float, rate: Rate, cost: int) -> Decision:
    per_second = rate.per_second
    if allowed:
        retry_after = 0.0
    elif cost > rate.limit:
        retry_after = math.inf
    else:
        retry_after = (cost - level) / per_second
    return Decision(
        allowed,
        rate.limit,
        max(0, math.floor(level + EPSILON)),
        retry_after,
        max(0.0, (rate.limit - level) / per_second),
    )


def _settled(bucket: Settled) -> Sequence[tuple[str, float, float, int]]:
    # The buckets of `LimiterStore.settle` for `RateLimiter.settle`'s
    # *bucket*: none, one ``(key, rate, delta)`` or several; zero deltas
    # dropped.
    if not bucket:
        return ()
    first = bucket[0]
    if type(first) is str:
        # One bucket (every request's settlement): no list to build.
        _, rate, delta = cast("tuple[str, Rate, int]", bucket)
        return ((first, rate.capacity, rate.per_second, delta),) if delta else ()
    several = cast(
        "Sequence[tuple[str, Rate, int]]",
        (bucket,) if isinstance(bucket[0], str) else bucket,
    )
    return [
        (key, rate.capacity, rate.per_second, delta)
        for key, rate, delta in several
        if delta
    ]


def _store_buckets(
    requests: Sequence[tuple[str, Rate, int]],
) -> list[tuple[str, float, float, int]]:
    # The buckets of `LimiterStore.admit` for ``(key, rate, cost)`` requests.
    return [(key, rate.capacity, rate.per_second, cost) for key, rate, cost in requests]


def _admission(
    free: bool,
    allowed: bool,
    levels: list[float],
    requests: Sequence[tuple[str, Rate, int]],
) -> tuple[bool, tuple[Decision, ...]]:
    # `RateLimiter.admit`'s answer for what the store's admit returned.
    if not free:
        return False, tuple(
            _decision(level + EPSILON >= 1, level, rate, 1)
            for level, (_, rate, _) in zip(levels, requests, strict=True)
        )
    if allowed:
        return True, tuple(
            [
                _granted(level, request[1])
                for level, request in zip(levels, requests, strict=True)
            ]
        )
    return True, tuple(
        [
            _decision(level + EPSILON >= cost, level, rate, cost)
            for level, (_, rate, cost) in zip(levels, requests, strict=True)
        ]
    )


class Admitted(NamedTuple):
    """
    The answer of `RateLimiter.admit_with`.

    Attributes:
        free: a concurrency slot of every key was free (always, without a
            slot).
        allowed: everything was taken (the slots, every bucket, every
            extra).
        decisions: one per rate-limited bucket, as `RateLimiter.admit`
            gives them (when refused, each says whether its own bucket had
            enough).
        extra_levels: the level of each extra bucket after the step (before
            it, when refused).
        counts: with a sequence of slots, how many slots of each key are
            taken after the step, in order (which says which limit
            refused); empty with one slot or none.

    .. versionadded:: 0.1.0
    """

    free: bool
    allowed: bool
    decisions: tuple[Decision, ...]
    extra_levels: list[float]
    counts: tuple[int, ...] = ()


def _admitted(
    answer: tuple[bool, bool, list[float]],
    requests: Sequence[tuple[str, Rate, int]],
    extras: int,
) -> Admitted:
    # `RateLimiter.admit_with`'s answer for what the store's admit returned:
    # the levels of the rate-limited buckets, of the *extras* raw ones, then
    # the slots' counts.
    free, allowed, levels = answer
    n = len(requests)
    m = n + extras
    _, decisions = _admission(free, allowed, levels[:n], requests)
    counts = tuple(int(count) for count in levels[m:])
    return Admitted(free, allowed, decisions, levels[n:m], counts)


class RateLimiter:
    """
    Token-bucket limits over a `LimiterStore`.

    Keys name buckets (``"tenant-a\\x00req"``); the *rate* of a bucket is given
    on each call, so a changed limit applies at once. Every method is built
    on the store's one primitive, `LimiterStore.admit` and
    `LimiterStore.settle`, and its reads.

    .. versionadded:: 0.1.0
    """

    def __init__(self, store: LimiterStore, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock
        # Bound once: the two calls of every request.
        self._admit = store.admit
        self._settle = store.settle
        # And their asyncio twins, on a store that has them.
        self._admit_async: _AdmitAsync | None = getattr(store, "admit_async", None)
        self._settle_async: _SettleAsync | None = getattr(store, "settle_async", None)

    def acquire(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """
        Take *cost* units from bucket *key* if it holds them all; else take none.
        """
        _, allowed, (level,) = self._admit(
            None, ((key, rate.capacity, rate.per_second, cost),), self.clock()
        )
        if allowed:
            return _granted(level, rate)
        return _decision(False, level, rate, cost)

    def acquire_many(
        self, requests: Sequence[tuple[str, Rate, int]]
    ) -> tuple[Decision, ...]:
        """
        Take units from several buckets at once: from all of them, or from none.

        Returns one decision per bucket; the request passed if every decision
        is allowed. When it did not, ``remaining`` shows the untouched levels.
        """
        return self.admit(None, requests)[1]

    def admit(
        self, slot: Slots, requests: Sequence[tuple[str, Rate, int]]
    ) -> tuple[bool, tuple[Decision, ...]]:
        """
        Take concurrency slots and units from several buckets: all, or nothing.

        *slot* is ``(key, limit)``, a sequence of them (one slot of each),
        or ``None`` for no concurrency limit;
        *requests* as for `acquire_many`. One atomic store step
        (`LimiterStore.admit`).

        Returns:
            ``(slot_free, decisions)``: *slot_free* is ``False`` when every
            slot (of one key) was taken (then nothing was taken, and the
            decisions report the buckets as `peek` does); otherwise one
            decision per bucket, as `acquire_many` returns them.
        """
        free, allowed, levels = self._admit(
            slot, _store_buckets(requests), self.clock()
        )
        if len(levels) > len(requests):  # several slots: their counts follow
            del levels[len(requests) :]
        return _admission(free, allowed, levels, requests)

    async def admit_async(
        self, slot: Slots, requests: Sequence[tuple[str, Rate, int]]
    ) -> tuple[bool, tuple[Decision, ...]]:
        """
        `admit`, awaited: on a store with ``admit_async``
        (`zerfoo_cloud.stores.protocols.AsyncLimiterStore`) the event loop
        runs other work while the store answers; on any other store it is
        the sync call (memory and LMDB never wait on the network).
        """
        buckets = _store_buckets(requests)
        admit = self._admit_async
        if admit is None:
            free, allowed, levels = self._admit(slot, buckets, self.clock())
        else:
            free, allowed, levels = await admit(slot, buckets, self.clock())
        if len(levels) > len(requests):  # several slots: their counts follow
            del levels[len(requests) :]
        return _admission(free, allowed, levels, requests)

    def admit_with(
        self,
        slot: Slots,
        requests: Sequence[tuple[str, Rate, int]],
        extra: Sequence[tuple[str, float, float, int]] = (),
    ) -> Admitted:
        """
        `admit`, with *extra* buckets taken in the same atomic step and the
        whole answer of the store: raw ``(key, capacity, per_second, cost)``
        buckets, which may never refill (``per_second = 0``: spend budgets),
        and, with a sequence of slots (a tenant's and its key's), how many
        of each are taken (`Admitted.counts`).
        """
        buckets = [*_store_buckets(requests), *extra]
        return _admitted(self._admit(slot, buckets, self.clock()), requests, len(extra))

    async def admit_with_async(
        self,
        slot: Slots,
        requests: Sequence[tuple[str, Rate, int]],
        extra: Sequence[tuple[str, float, float, int]] = (),
    ) -> Admitted:
        """
        `admit_with`, awaited, as `admit_async`.
        """
        buckets = [*_store_buckets(requests), *extra]
        admit = self._admit_async
        if admit is None:
            answer = self._admit(slot, buckets, self.clock())
        else:
            answer = await admit(slot, buckets, self.clock())
        return _admitted(answer, requests, len(extra))

    def settle(self, slot_key: SlotKeys, bucket: Settled) -> None:
        """
        Finish what `admit` took: give ``(key, rate, delta)`` units back to
        a bucket (*delta* positive: a refund, never above capacity) or charge
        them (negative: possibly into debt), or to each of a sequence of
        them, and give slot *slot_key* (or each of a sequence of slot keys)
        back.

        One atomic store step (`LimiterStore.settle`). When it fails, the
        slots are still given back in a step of their own, and the error
        raised.
        """
        self._finish(slot_key, _settled(bucket))

    def settle_with(
        self,
        slot_key: SlotKeys,
        bucket: Settled,
        extra: Sequence[tuple[str, float, float, int]],
    ) -> list[float]:
        """
        `settle` with *extra* raw buckets (as `admit_with`) moved in the
        same atomic step; returns their levels after it.
        """
        buckets = [*_settled(bucket), *extra]
        levels = self._finish(slot_key, buckets)
        return levels[len(levels) - len(extra) :] if extra else []

    def _finish(
        self, slot_key: SlotKeys, buckets: Sequence[tuple[str, float, float, int]]
    ) -> list[float]:
        # `settle`'s store step, the slots given back on their own if it
        # fails; the levels of *buckets* after it.
        if not buckets:
            if slot_key is not None:
                self._settle(slot_key, (), self.clock())
            return []
        now = self.clock()
        try:
            return self._settle(slot_key, buckets, now)
        except BaseException:
            # Nothing changed: still try to give the slots back.
            if slot_key is not None:
                with contextlib.suppress(Exception):
                    self._settle(slot_key, (), now)
            raise

    async def settle_async(self, slot_key: SlotKeys, bucket: Settled) -> None:
        """
        `settle`, awaited, as `admit_async`.
        """
        await self._finish_async(slot_key, _settled(bucket))

    async def settle_with_async(
        self,
        slot_key: SlotKeys,
        bucket: Settled,
        extra: Sequence[tuple[str, float, float, int]],
    ) -> list[float]:
        """
        `settle_with`, awaited, as `admit_async`.
        """
        buckets = [*_settled(bucket), *extra]
        levels = await self._finish_async(slot_key, buckets)
        return levels[len(levels) - len(extra) :] if extra else []

    async def _finish_async(
        self, slot_key: SlotKeys, buckets: Sequence[tuple[str, float, float, int]]
    ) -> list[float]:
        # `_finish`, awaited.
        settle = self._settle_async
        if settle is None:
            return self._finish(slot_key, buckets)
        if not buckets:
            if slot_key is not None:
                await settle(slot_key, (), self.clock())
            return []
        now = self.clock()
        try:
            return await settle(slot_key, buckets, now)
        except BaseException:
            # Nothing changed: still try to give the slots back.
            if slot_key is not None:
                with contextlib.suppress(Exception):
                    await settle(slot_key, (), now)
            raise

    def refund(self, key: str, rate: Rate, units: int) -> Decision:
        """
        Give *units* back to bucket *key*, never above its capacity.
        """
        return self._adjust(key, rate, units, refund=True)

    def deduct(self, key: str, rate: Rate, units: int) -> Decision:
        """
        Take *units* from bucket *key* unconditionally; it may go into debt.
        """
        return self._adjust(key, rate, units, refund=False)

    def peek(self, key: str, rate: Rate) -> Decision:
        """
        Report bucket *key* without changing it (as a request of one unit).
        """
        level = level_at(self.store.get(key), rate, self.clock())
        return _decision(level + EPSILON >= 1, level, rate, 1)

    def _adjust(self, key: str, rate: Rate, units: int, *, refund: bool) -> Decision:
        if isinstance(units, bool) or not isinstance(units, int):
            msg = f"units must be an integer, not {units!r}"
            raise InvalidConfigError(msg, field="units")
        if units < 0:
            msg = f"units must not be negative, not {units}"
            raise InvalidConfigError(msg, field="units")
        if units == 0:
            return self.peek(key, rate)
        delta = units if refund else -units
        (level,) = self._settle(
            None, ((key, rate.capacity, rate.per_second, delta),), self.clock()
        )
        return _decision(level + EPSILON >= 1, level, rate, 1)

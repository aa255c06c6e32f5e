"""
Fail open on a per-host limiter store while the shared one cannot be
reached: `FailoverLimiterStore`, and `failover_limits`, which builds it the
way ``serve --counters-fail-open`` does.

By default a limiter store that cannot be reached fails closed: every
request is refused 503 ``service_unavailable`` with ``Retry-After``
(`zerfoo_cloud.errors.StoreUnavailableError`). Failing open keeps serving,
each host enforcing the limits on its own counters meanwhile, so a fleet of
*n* hosts admits up to *n* times a tenant's limits during an outage.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from zerfoo_cloud.errors import InvalidConfigError, StoreUnavailableError
from zerfoo_cloud.slots import SlotKeys, Slots, slot_key_list, slot_list
from zerfoo_cloud.stores._seconds import check_seconds
from zerfoo_cloud.stores.memory import MemoryLimiterStore

if TYPE_CHECKING:
    from zerfoo_cloud.buckets import BucketState
    from zerfoo_cloud.stores.protocols import LimiterStore

__all__ = ["FailoverLimiterStore", "OnFailover", "failover_limits"]

_log = logging.getLogger("zerfoo_cloud.stores")

T = TypeVar("T")

#: ``on_failover(to, error)``: *to* is ``"fallback"`` (with the error that
#: caused the switch) or ``"primary"`` (with ``None``).
OnFailover = Callable[[str, StoreUnavailableError | None], None]

#: At most this many tenants' "where was the latest request admitted" are
#: remembered (the least recently admitted are forgotten first).
_MAX_GROUPS = 100_000


async def _awaited(store: LimiterStore, name: str, *args: Any) -> Any:
    # ``store.<name>_async(*args)`` when the store has it, else the sync call.
    method = getattr(store, name + "_async", None)
    if method is not None:
        return await method(*args)
    return getattr(store, name)(*args)


def _keys_of(slot_key: SlotKeys, keys: list[str]) -> SlotKeys:
    # *keys* in the form *slot_key* had: one key as a string, else a list.
    if not keys:
        return None
    return keys[0] if isinstance(slot_key, str) else keys


def _group(key: str) -> str:
    cut = key.find("\x00")
    return "" if cut < 0 else key[:cut]


class FailoverLimiterStore:
    """
    A `zerfoo_cloud.stores.protocols.LimiterStore` that uses *primary* (a
    shared store: `zerfoo_cloud.stores.redis.RedisLimiterStore`) and, while
    it raises `zerfoo_cloud.errors.StoreUnavailableError`, *fallback* (this
    host's own: a `zerfoo_cloud.stores.memory.MemoryLimiterStore` or the
    host's LMDB limits).

    **Switching.** The first call that finds the primary unreachable
    switches to the fallback and is served there. While on the fallback,
    one call at a time probes the primary, first *probe_min* seconds after
    the switch, the wait doubling up to *probe_max* after each probe that
    fails; the first that succeeds switches back. Each switch is logged
    once, counted in `switches`, and reported to *on_failover* once, never
    once per request. Other errors of the primary (a script error, a
    corrupt record) are raised as they are and switch nothing.

    **Settling where it was admitted.** A concurrency slot taken on the
    fallback is given back on the fallback, even after the switch back (the
    store counts, per slot key, the slots it holds there); of several slots
    settled together, each goes back where its key's slots are held. A settle without
    a slot goes where the tenant's (the key group's) latest request was
    admitted; for requests in flight across a switch a refund or a charge
    may then land on the other store. A settle due on the primary while it
    is unreachable raises; its lease expires there.

    **What failing open costs.** Counters on the fallback start full and
    are this host's alone: until the switch back every host enforces each
    limit separately, and the primary does not see what was taken on the
    fallback. After the switch back, the slots still held on the fallback
    count against the limit on the primary until given back. Reads
    (`get`, `slots_in_use`) follow the same switch;
    `slots_in_use` on the primary adds the slots still held on the
    fallback. `clear` clears both (and raises if the primary cannot be
    reached); `close` closes both.

    Raises:
        InvalidConfigError: *probe_min* or *probe_max* is not a positive
            number of seconds, or *probe_max* is below *probe_min*.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        primary: LimiterStore,
        fallback: LimiterStore,
        *,
        on_failover: OnFailover | None = None,
        probe_min: float = 0.5,
        probe_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        probe_min = check_seconds("probe_min", probe_min)
        probe_max = check_seconds("probe_max", probe_max)
        if probe_max < probe_min:
            msg = (
                f"probe_max ({probe_max!r}) must not be below probe_min ({probe_min!r})"
            )
            raise InvalidConfigError(msg, field="probe_max")
        self.primary = primary
        self.fallback = fallback
        self._on_failover = on_failover
        self._probe_min = probe_min
        self._probe_max = probe_max
        self._clock = clock
        self._lock = threading.Lock()
        self._probing = threading.Lock()
        self._on_fallback = False
        self._delay = self._probe_min
        self._next_probe = 0.0
        #: How many times it switched (to the fallback or back).
        self.switches = 0
        # Slot key -> slots held on the fallback.
        self._fallback_slots: dict[str, int] = {}
        # Group -> whether its latest admission was on the fallback.
        self._latest: collections.OrderedDict[str, bool] = collections.OrderedDict()

    @property
    def on_fallback(self) -> bool:
        """
        Whether calls go to the fallback now.
        """
        return self._on_fallback

    # -- switching ---------------------------------------------------------

    def _switch(self, to_fallback: bool, error: StoreUnavailableError | None) -> None:
        with self._lock:
            if self._on_fallback == to_fallback:
                return
            self._on_fallback = to_fallback
            self.switches += 1
            self._delay = self._probe_min
            self._next_probe = self._clock() + self._delay
        if to_fallback:
            _log.warning(
                "the limiter store cannot be reached (%s); failing open: "
                "limits are enforced by this host alone until it answers again",
                error,
            )
        else:
            _log.warning("the limiter store answers again; limits are shared again")
        if self._on_failover is not None:
            try:
                self._on_failover("fallback" if to_fallback else "primary", error)
            except Exception:  # noqa: BLE001 - a reporting bug must not fail requests
                _log.exception("on_failover failed; ignored")

    def _probe_due(self) -> bool:
        # On the fallback: whether this call should try the primary (one
        # caller at a time; it then holds _probing until _probed).
        if self._clock() < self._next_probe:
            return False
        return self._probing.acquire(blocking=False)

    def _probed(self, answered: bool) -> None:
        if not answered:
            with self._lock:
                self._delay = min(self._delay * 2, self._probe_max)
                self._next_probe = self._clock() + self._delay
        self._probing.release()

    def _choose(self) -> tuple[bool, bool]:
        # (try the primary, as a probe): the primary unless on the fallback
        # with no probe due.
        if not self._on_fallback:
            return True, False
        if self._probe_due():
            return True, True
        return False, False

    def _failed(self, probing: bool, exc: StoreUnavailableError) -> None:
        # The primary could not be reached: back off, or fall over.
        if probing:
            self._probed(answered=False)
        else:
            self._switch(to_fallback=True, error=exc)

    def _answered(self, probing: bool) -> None:
        # The primary answered (even with an error): a probe switches back.
        if probing:
            self._probed(answered=True)
            self._switch(to_fallback=False, error=None)

    def _route(
        self, on_primary: Callable[[], T], on_fallback: Callable[[], T]
    ) -> tuple[T, bool]:
        # Run on the primary unless on the fallback (and no probe is due);
        # fall over when it cannot be reached. Returns (result, on fallback).
        primary, probing = self._choose()
        if not primary:
            return on_fallback(), True
        try:
            result = on_primary()
        except StoreUnavailableError as exc:
            self._failed(probing, exc)
            return on_fallback(), True
        except BaseException:
            self._answered(probing)
            raise
        self._answered(probing)
        return result, False

    async def _route_async(
        self,
        on_primary: Callable[[], Awaitable[T]],
        on_fallback: Callable[[], Awaitable[T]],
    ) -> tuple[T, bool]:
        # `_route` on the event loop: the primary awaited.
        primary, probing = self._choose()
        if not primary:
            return await on_fallback(), True
        try:
            result = await on_primary()
        except StoreUnavailableError as exc:
            self._failed(probing, exc)
            return await on_fallback(), True
        except BaseException:
            self._answered(probing)
            raise
        self._answered(probing)
        return result, False

    def _remember(self, group: str, on_fallback: bool) -> None:
        with self._lock:
            latest = self._latest
            latest[group] = on_fallback
            latest.move_to_end(group)
            if len(latest) > _MAX_GROUPS:
                latest.popitem(last=False)

    # -- the protocol -------------------------------------------------------

    def _admitted(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        result: tuple[bool, bool, list[float]],
        on_fallback: bool,
    ) -> tuple[bool, bool, list[float]]:
        # Remember where an allowed admission was taken; a primary's slot
        # counts (several slots) include the slots held on the fallback.
        slots = slot_list(slot)
        if not on_fallback and slots and not isinstance(slot[0], str):  # type: ignore[index]
            levels = result[2]
            first = len(levels) - len(slots)
            with self._lock:
                for i, (key, _) in enumerate(slots):
                    levels[first + i] += self._fallback_slots.get(key, 0)
        if result[1]:
            keys = [key for key, _, _, _ in buckets]
            keys += [key for key, _ in slots]
            if on_fallback and slots:
                with self._lock:
                    held = self._fallback_slots
                    for key, _ in slots:
                        held[key] = held.get(key, 0) + 1
            if keys:
                self._remember(_group(keys[0]), on_fallback)
        return result

    def _on_primary(self, slot: Slots) -> Slots:
        # The slots asked of the primary: each limit less the slots still
        # held on the fallback, which the primary does not see.
        if not slot:
            return slot
        with self._lock:
            held = self._fallback_slots
            if not held:
                return slot
            slots = [
                (key, max(0, limit - held.get(key, 0)))
                for key, limit in slot_list(slot)
            ]
        return slots[0] if isinstance(slot[0], str) else slots

    def _settle_plan(
        self, slot_key: SlotKeys, buckets: Sequence[tuple[str, float, float, int]]
    ) -> tuple[list[str], list[str], bool]:
        # Where a settle goes: ``(slot keys given back on the fallback, on
        # the primary, whether the buckets go to the fallback)``, taking the
        # slots off the fallback's count. Slots held on the fallback go back
        # there; the buckets follow them, or (no slot) the group's latest
        # admission.
        back: list[str] = []
        ahead: list[str] = []
        with self._lock:
            for key in slot_key_list(slot_key):
                held = self._fallback_slots.get(key, 0)
                if not held:
                    ahead.append(key)
                    continue
                back.append(key)
                if held == 1:
                    del self._fallback_slots[key]
                else:
                    self._fallback_slots[key] = held - 1
            if back or ahead:
                return back, ahead, bool(back)
            if buckets:
                return back, ahead, self._latest.get(_group(buckets[0][0]), False)
            return back, ahead, False

    def _settle_route(
        self, slot_key: SlotKeys, buckets: Sequence[tuple[str, float, float, int]]
    ) -> tuple[LimiterStore, SlotKeys, LimiterStore, list[str]]:
        # ``(store, its slot keys, other store, its slot keys)`` of a
        # settle: the buckets go to the first with its slots, the second
        # gets only the slots held there.
        back, ahead, buckets_back = self._settle_plan(slot_key, buckets)
        if buckets_back:
            return self.fallback, _keys_of(slot_key, back), self.primary, ahead
        return self.primary, _keys_of(slot_key, ahead), self.fallback, back

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        `LimiterStore.admit` on the primary, or on the fallback while the
        primary cannot be reached.
        """
        result, on_fallback = self._route(
            lambda: self.primary.admit(self._on_primary(slot), buckets, now),
            lambda: self.fallback.admit(slot, buckets, now),
        )
        return self._admitted(slot, buckets, result, on_fallback)

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        `LimiterStore.settle` on the store that admitted: the fallback for
        slots held there (or, without a slot, for a tenant whose latest
        request it admitted), else the primary. Of several slots, those
        held on the fallback go back there and the others to the primary.
        """
        main, mine, other, others = self._settle_route(slot_key, buckets)
        levels = main.settle(mine, buckets, now)
        if others:
            other.settle(others, (), now)
        return levels

    async def admit_async(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        `admit`, awaited: the primary's ``admit_async`` when it has one
        (`zerfoo_cloud.stores.protocols.AsyncLimiterStore`: Redis), so the
        event loop never waits on the network; the fallback (in memory or
        LMDB, nothing to wait for) is called directly.
        """
        result, on_fallback = await self._route_async(
            lambda: _awaited(
                self.primary, "admit", self._on_primary(slot), buckets, now
            ),
            lambda: _awaited(self.fallback, "admit", slot, buckets, now),
        )
        return self._admitted(slot, buckets, result, on_fallback)

    async def settle_async(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        `settle`, awaited, as `admit_async`.
        """
        main, mine, other, others = self._settle_route(slot_key, buckets)
        result: list[float] = await _awaited(main, "settle", mine, buckets, now)
        if others:
            await _awaited(other, "settle", others, (), now)
        return result

    def get(self, key: str) -> BucketState | None:
        """
        The bucket's state on the store in use now.
        """
        return self._route(
            lambda: self.primary.get(key), lambda: self.fallback.get(key)
        )[0]

    def slots_in_use(self, key: str) -> int:
        """
        Slots of *key* taken on the store in use now; on the primary, plus
        those still held on the fallback.
        """
        with self._lock:
            held = self._fallback_slots.get(key, 0)
        count, on_fallback = self._route(
            lambda: self.primary.slots_in_use(key),
            lambda: self.fallback.slots_in_use(key),
        )
        return count if on_fallback else count + held

    def clear(self, prefix: str) -> None:
        """
        Clear *prefix* on both stores (the fallback first).

        Raises:
            StoreUnavailableError: the primary cannot be reached.
        """
        self.fallback.clear(prefix)
        with self._lock:
            for key in [k for k in self._fallback_slots if k.startswith(prefix)]:
                del self._fallback_slots[key]
        self.primary.clear(prefix)

    def close(self) -> None:
        """
        Close both stores. Calling it twice is harmless.
        """
        try:
            self.primary.close()
        finally:
            self.fallback.close()

    def __repr__(self) -> str:
        where = "fallback" if self._on_fallback else "primary"
        return f"FailoverLimiterStore({self.primary!r}, {self.fallback!r}, on {where})"


def failover_limits(
    primary: LimiterStore,
    *,
    fallback: LimiterStore | None = None,
    on_failover: OnFailover | None = None,
) -> FailoverLimiterStore:
    """
    Fail open: the limiter store ``serve --counters-fail-open`` uses.

    *primary* (the shared store) is used while it can be reached, *fallback*
    (default: a new `zerfoo_cloud.stores.memory.MemoryLimiterStore`, this
    process's own counters) while it cannot; *on_failover* hears each switch
    (write it to the audit log, count it in a metric). Without this the
    shared store fails closed: 503 ``service_unavailable`` with
    ``Retry-After``.
    """
    return FailoverLimiterStore(
        primary,
        MemoryLimiterStore() if fallback is None else fallback,
        on_failover=on_failover,
    )

"""
The Redis limiter store: token buckets and concurrency leases shared by
every host that points at one Redis or Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from zerfoo_cloud.buckets import BucketState
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.slots import SlotKeys, Slots, slot_key_list, slot_list
from zerfoo_cloud.stores.redis._async_connection import (
    AsyncRedisConnection,
    AsyncScript,
)
from zerfoo_cloud.stores.redis._connection import RedisConnection
from zerfoo_cloud.stores.redis._keys import BUCKET, SLOTS, KeySpace
from zerfoo_cloud.stores.redis._leases import HeldLeases, LeaseRenewer
from zerfoo_cloud.stores.redis._scripts import ADMIT, RENEW, SETTLE, SLOTS_IN_USE

__all__ = ["RedisLimiterStore"]

#: The shapes of `admit` and `settle` (see `LimiterStore`).
_Buckets = Sequence[tuple[str, float, float, int]]
_Admitted = tuple[bool, bool, list[float]]

#: The scripts `admit_async` and `settle_async` run.
_ADMIT_ASYNC = AsyncScript(ADMIT)
_SETTLE_ASYNC = AsyncScript(SETTLE)

#: Leases longer than this (seconds, about 31 years) are refused.
_MAX_LEASE = 1e9


def _number(value: float) -> str:
    # Exact: repr() is the shortest text that reads back as the same double.
    return repr(float(value))


class RedisLimiterStore:
    """
    A `zerfoo_cloud.stores.protocols.LimiterStore` in Redis: limits hold
    across every process of every host sharing the Redis (or Redis Cluster).

    `admit` and `settle` are one Lua script each, one round trip: the
    arithmetic of `zerfoo_cloud.buckets` (the same doubles, ``EPSILON``
    and refill cap), all buckets and the slot together or nothing.

    **Clock.** The scripts read Redis's ``TIME``; the *now* the caller
    passes is ignored. Every host then measures refills on one clock, so
    hosts whose clocks disagree still agree on every limit (a host whose
    clock runs ahead would otherwise refill buckets early for everyone).
    Bucket stamps are Redis times. Built with ``trust_caller_clock=True``
    (for tests and replays only, never in production) the scripts use *now*
    instead, and keys get no expiry.

    **Slots are leases.** A taken slot is a member of the slot key's sorted
    set, scored by its expiry (*lease_seconds* ahead); `admit` purges
    expired members before counting. The store remembers the lease ids it
    took; `settle` gives back one of them per slot key (so the store that
    admitted must settle: the protocol's signature is unchanged). Several
    slots of one admission share one lease id, each in its own key's set; a settle that fails
    keeps it, so its retry gives back that lease. A lease whose admission
    failed after Redis ran it (a timeout) is not known here and is never
    renewed: it expires. While the process
    lives a daemon thread renews every held lease each *renew_every*
    seconds (default a third of the lease), so long streams keep their
    slots; a host that dies stops renewing, and its slots come back within
    *lease_seconds*. `renew` does the same step on demand.

    **Keys.** Every key is ``prefix{g<group>}<kind><key>``, the group being
    the text before the key's first NUL (a tenant's id): a tenant's buckets
    and slots share one hash tag, so every script touches one slot of a
    Redis Cluster. The keys of one `admit` or `settle` must share a group
    (`zerfoo_cloud.Tenant`'s always do). Buckets expire when they would
    be full again, lease sets a second after their last lease.

    Failures (Redis unreachable, a timeout) raise
    `zerfoo_cloud.errors.StoreError`, whose message names the host, never
    the password.

    **Asyncio.** `admit_async` and `settle_async`
    (`zerfoo_cloud.stores.protocols.AsyncLimiterStore`) run the same two
    scripts on ``redis.asyncio`` clients, one per event loop, so an ASGI
    server's loop never waits on Redis: each request waits on its own
    coroutine, and an unreachable or silent Redis raises
    `zerfoo_cloud.errors.StoreUnavailableError` after *socket_timeout*.
    Both paths share the lease bookkeeping: a lease taken by either is
    given back by either. The asyncio connection is *async_connection*, or
    the twin of a *connection* opened by `RedisConnection.from_url`; a
    store with neither runs the sync calls in a worker thread instead.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
        async_connection: AsyncRedisConnection | None = None,
        prefix: str = "zc:",
        lease_seconds: float = 60.0,
        renew_every: float | None = None,
        trust_caller_clock: bool = False,
    ) -> None:
        if not 0 < lease_seconds < _MAX_LEASE:
            msg = f"lease_seconds must be positive, not {lease_seconds!r}"
            raise InvalidConfigError(msg, field="lease_seconds")
        if renew_every is None:
            renew_every = lease_seconds / 3
        if not 0 < renew_every < lease_seconds:
            msg = f"renew_every must be positive and below lease_seconds, not {renew_every!r}"
            raise InvalidConfigError(msg, field="renew_every")
        self.connection = connection
        if async_connection is None and connection.open_async is not None:
            async_connection = connection.open_async()
        self.async_connection = async_connection
        self._async_run: (
            Callable[[str, AsyncScript, list[bytes], list[str]], Awaitable[Any]] | None
        ) = None if async_connection is None else async_connection.run
        self._keys = KeySpace(prefix)
        self._lease = _number(lease_seconds)
        self._caller_clock = trust_caller_clock
        self._expire = "0" if trust_caller_clock else "1"
        self._last_now = float("-inf")
        self._held = HeldLeases()
        self._renewer = LeaseRenewer(self.renew, renew_every)
        client = connection.client
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)
        self._renew = client.register_script(RENEW)
        self._slots = client.register_script(SLOTS_IN_USE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisLimiterStore:
        """
        Open the store on the Redis at *url* (``redis://[:password@]host:port/db``,
        ``rediss://`` for TLS); with ``cluster=True``, on the Redis Cluster
        that *url* names a node of.

        *options* are ``cluster``, ``socket_timeout`` (bounding each
        command) and ``connect_timeout`` (each connection attempt), in
        seconds, 1.0 by default (see
        `zerfoo_cloud.stores.redis.RedisConnection.from_url`), and the
        constructor's (``prefix``, ``lease_seconds``, ``renew_every``).
        """
        connection, rest = RedisConnection.from_url(url, options)
        return cls(connection, **rest)

    def _clock(self, now: float) -> str:
        # ARGV[1] of every script: "" (Redis TIME) unless built for tests.
        if not self._caller_clock:
            return ""
        self._last_now = max(self._last_now, now)
        return _number(now)

    def _admit_call(
        self, slot: Slots, buckets: _Buckets, now: float
    ) -> tuple[list[bytes], list[str], str, list[tuple[str, int]]] | None:
        # The keys, arguments, lease id and slots of one admission (None:
        # nothing to do).
        slots = slot_list(slot)
        names = [key for key, _, _, _ in buckets]
        names += [name for name, _ in slots]
        self._keys.one_group(names)
        if not names:
            return None
        key = self._keys.key
        keys = [key(BUCKET, name) for name, _, _, _ in buckets]
        keys += [key(SLOTS, name) for name, _ in slots]
        lease_id = self._held.new_id() if slots else ""
        args = [self._clock(now), self._expire, str(len(buckets)), str(len(slots))]
        args += [self._lease, lease_id]
        args += [str(int(limit)) for _, limit in slots]
        for _, capacity, rate, cost in buckets:
            args += [_number(capacity), _number(rate), str(int(cost))]
        return keys, args, lease_id, slots

    def _admitted(
        self,
        slot: Slots,
        call: tuple[list[bytes], list[str], str, list[tuple[str, int]]],
        result: list[Any],
    ) -> _Admitted:
        # What the admission script answered, its leases remembered if taken;
        # the slot counts after the levels only for a sequence of slots.
        _, _, lease_id, slots = call
        free, allowed, *levels = result
        if allowed and slots:
            for name, _ in slots:
                self._held.add(name, lease_id)
            self._renewer.start()
        if slots and isinstance(slot[0], str):  # type: ignore[index]
            del levels[-1]
        return bool(free), bool(allowed), [float(level) for level in levels]

    def admit(self, slot: Slots, buckets: _Buckets, now: float) -> _Admitted:
        """
        Take slot leases and units from *buckets* in one script: all, or nothing.
        """
        call = self._admit_call(slot, buckets, now)
        if call is None:
            return True, True, []
        keys, args, _, _ = call
        with self.connection.guard("admitting a request"):
            result = self._admit(keys=keys, args=args)
        return self._admitted(slot, call, result)

    async def admit_async(
        self, slot: Slots, buckets: _Buckets, now: float
    ) -> _Admitted:
        """
        `admit` on the running event loop: one ``EVALSHA`` of the same script
        on the loop's asyncio client, the loop free while Redis answers.
        Raises `zerfoo_cloud.errors.StoreUnavailableError` when Redis cannot
        be reached or does not answer within *socket_timeout*.
        """
        call = self._admit_call(slot, buckets, now)
        if call is None:
            return True, True, []
        keys, args, _, _ = call
        run = self._async_run
        if run is None:
            return await asyncio.to_thread(self.admit, slot, buckets, now)
        result = await run("admitting a request", _ADMIT_ASYNC, keys, args)
        return self._admitted(slot, call, result)

    def _settle_call(
        self, slot_key: SlotKeys, buckets: _Buckets, now: float
    ) -> tuple[list[bytes], list[str], list[tuple[str, str]]] | None:
        # The keys, arguments and leases of one settlement (None: nothing to
        # do); the leases are taken from those held, `_unsettled` puts them
        # back.
        names = [key for key, _, _, _ in buckets]
        leases = []
        for name in slot_key_list(slot_key):
            lease_id = self._held.pop(name)
            if lease_id is not None:
                leases.append((name, lease_id))
                names.append(name)
        if not names:
            return None
        try:
            self._keys.one_group(names)
        except BaseException:
            self._unsettled(leases)
            raise
        key = self._keys.key
        keys = [key(BUCKET, name) for name, _, _, _ in buckets]
        keys += [key(SLOTS, name) for name, _ in leases]
        args = [self._clock(now), self._expire, str(len(buckets)), str(len(leases))]
        args += [lease_id for _, lease_id in leases]
        for _, capacity, rate, delta in buckets:
            args += [_number(capacity), _number(rate), str(int(delta))]
        return keys, args, leases

    def _unsettled(self, leases: list[tuple[str, str]]) -> None:
        # A settlement failed: its leases are still held, so a retry gives
        # back these leases, not another request's (and renewal forgets
        # them if they were in fact freed).
        for name, lease_id in leases:
            self._held.add(name, lease_id)

    def settle(self, slot_key: SlotKeys, buckets: _Buckets, now: float) -> list[float]:
        """
        Give units to *buckets* and one held lease of each *slot_key* back,
        in one script.
        """
        call = self._settle_call(slot_key, buckets, now)
        if call is None:
            return []
        keys, args, leases = call
        try:
            with self.connection.guard("settling a request"):
                levels = self._settle(keys=keys, args=args)
        except BaseException:
            self._unsettled(leases)
            raise
        return [float(level) for level in levels]

    async def settle_async(
        self, slot_key: SlotKeys, buckets: _Buckets, now: float
    ) -> list[float]:
        """
        `settle` on the running event loop: one ``EVALSHA``, as `admit_async`.
        """
        call = self._settle_call(slot_key, buckets, now)
        if call is None:
            return []
        keys, args, leases = call
        try:
            run = self._async_run
            if run is None:
                levels = await asyncio.to_thread(self._settle_sync, keys, args)
            else:
                levels = await run("settling a request", _SETTLE_ASYNC, keys, args)
        except BaseException:
            self._unsettled(leases)
            raise
        return [float(level) for level in levels]

    def _settle_sync(self, keys: list[bytes], args: list[str]) -> list[Any]:
        with self.connection.guard("settling a request"):
            levels: list[Any] = self._settle(keys=keys, args=args)
        return levels

    def renew(self, slot_key: str | None = None) -> int:
        """
        Push the expiry of every lease this store holds (of *slot_key*, or
        of every key) *lease_seconds* ahead; one round trip per slot key.

        Returns how many leases were renewed. Leases that had already
        expired are forgotten: their slots were given back.
        """
        renewed = 0
        for key, ids in self._held.snapshot().items():
            if slot_key is not None and key != slot_key:
                continue
            args = [self._clock(self._last_now), self._expire, self._lease, *ids]
            with self.connection.guard("renewing concurrency leases"):
                gone = self._renew(keys=[self._keys.key(SLOTS, key)], args=args)
            if gone:
                self._held.forget(key, [g.decode() for g in gone])
            renewed += len(ids) - len(gone)
        return renewed

    def get(self, key: str) -> BucketState | None:
        """
        Return the state of bucket *key* (its stamp a Redis time), or ``None``.
        """
        with self.connection.guard("reading a bucket"):
            raw = self.connection.client.get(self._keys.key(BUCKET, key))
        if raw is None:
            return None
        level, _, stamp = raw.partition(b" ")
        return BucketState(float(level), float(stamp))

    def slots_in_use(self, key: str) -> int:
        """
        Return how many leases of *key* have not expired, on every host.
        """
        args = [self._clock(self._last_now), self._expire]
        with self.connection.guard("counting concurrency slots"):
            return int(self._slots(keys=[self._keys.key(SLOTS, key)], args=args))

    def clear(self, prefix: str) -> None:
        """
        Drop every bucket and lease whose key starts with *prefix*.
        """
        keys = self._keys
        wanted = prefix.encode("utf-8", "surrogatepass")
        client = self.connection.client
        with self.connection.guard("clearing counters"):
            found = []
            for redis_key in client.scan_iter(
                match=keys.scan_pattern(prefix), count=1000
            ):
                name = keys.limiter_key(redis_key)
                if name is not None and name.startswith(wanted):
                    found.append(redis_key)
            for redis_key in found:
                client.delete(redis_key)
        self._held.forget_prefix(prefix)

    def close(self) -> None:
        """
        Stop renewing leases and close the connections. Calling it twice is
        harmless. Leases still held expire within *lease_seconds*.
        """
        self._renewer.stop()
        self.connection.close()
        if self.async_connection is not None:
            self.async_connection.close()

    def __repr__(self) -> str:
        return f"RedisLimiterStore({self.connection.location!r}, prefix={self._keys.prefix!r})"

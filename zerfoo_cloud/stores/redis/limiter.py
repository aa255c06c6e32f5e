"""
The Redis limiter store: token buckets and concurrency leases shared by
every host that points at one Redis or Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zerfoo_cloud.buckets import BucketState
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.stores.redis._connection import RedisConnection
from zerfoo_cloud.stores.redis._keys import BUCKET, SLOTS, KeySpace
from zerfoo_cloud.stores.redis._leases import HeldLeases, LeaseRenewer
from zerfoo_cloud.stores.redis._scripts import ADMIT, RENEW, SETTLE, SLOTS_IN_USE

__all__ = ["RedisLimiterStore"]

#: The shapes of `admit` and `settle` (see `LimiterStore`).
_Slot = tuple[str, int] | None
_Buckets = Sequence[tuple[str, float, float, int]]
_Admitted = tuple[bool, bool, list[float]]

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
    took; `settle` gives back one of them (so the store that admitted must
    settle: the protocol's signature is unchanged); a settle that fails
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

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        connection: RedisConnection,
        *,
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

    def admit(self, slot: _Slot, buckets: _Buckets, now: float) -> _Admitted:
        """
        Take a slot lease and units from *buckets* in one script: all, or nothing.
        """
        names = [key for key, _, _, _ in buckets]
        if slot is not None:
            names.append(slot[0])
        self._keys.one_group(names)
        if not names:
            return True, True, []
        key = self._keys.key
        keys = [key(BUCKET, name) for name, _, _, _ in buckets]
        lease_id = ""
        limit = "-1"
        if slot is not None:
            keys.append(key(SLOTS, slot[0]))
            lease_id = self._held.new_id()
            limit = str(int(slot[1]))
        args = [self._clock(now), self._expire, str(len(buckets)), limit]
        args += [self._lease, lease_id]
        for _, capacity, rate, cost in buckets:
            args += [_number(capacity), _number(rate), str(int(cost))]
        with self.connection.guard("admitting a request"):
            free, allowed, *levels = self._admit(keys=keys, args=args)
        if allowed and slot is not None:
            self._held.add(slot[0], lease_id)
            self._renewer.start()
        return bool(free), bool(allowed), [float(level) for level in levels]

    def settle(
        self, slot_key: str | None, buckets: _Buckets, now: float
    ) -> list[float]:
        """
        Give units to *buckets* and one held lease of *slot_key* back, in
        one script.
        """
        names = [key for key, _, _, _ in buckets]
        lease_id = None if slot_key is None else self._held.pop(slot_key)
        if lease_id is not None and slot_key is not None:
            names.append(slot_key)
        if not names:
            return []
        self._keys.one_group(names)
        key = self._keys.key
        keys = [key(BUCKET, name) for name, _, _, _ in buckets]
        if lease_id is not None and slot_key is not None:
            keys.append(key(SLOTS, slot_key))
        args = [self._clock(now), self._expire, str(len(buckets)), lease_id or ""]
        for _, capacity, rate, delta in buckets:
            args += [_number(capacity), _number(rate), str(int(delta))]
        try:
            with self.connection.guard("settling a request"):
                levels = self._settle(keys=keys, args=args)
        except BaseException:
            if lease_id is not None and slot_key is not None:
                # Still held: a retry gives back this lease, not another
                # request's (and renewal forgets it if it was in fact freed).
                self._held.add(slot_key, lease_id)
            raise
        return [float(level) for level in levels]

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

    def __repr__(self) -> str:
        return f"RedisLimiterStore({self.connection.location!r}, prefix={self._keys.prefix!r})"

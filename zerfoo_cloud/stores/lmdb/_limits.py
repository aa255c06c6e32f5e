"""
The LMDB limiter store.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from zerfoo_cloud._fork import on_fork
from zerfoo_cloud.buckets import (
    BucketState,
    adjust_bucket,
    refill,
    take_all,
    take_from,
)
from zerfoo_cloud.errors import CorruptRecordError

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBLimiterStore"]

T = TypeVar("T")

_BUCKET = struct.Struct("<dd")
_BUCKET_UNPACK = _BUCKET.unpack
_COUNT = struct.Struct("<q")
_PID = struct.Struct(">q")
#: At most this many encoded keys are remembered (then the memo starts over).
_MAX_CACHED_KEYS = 4096


class _Pid:
    """
    This process's id and its packed form, refreshed after ``fork()``:
    ``os.getpid()`` is a system call, and slots are keyed by it on every
    request.
    """

    __slots__ = ("packed", "pid")

    def __init__(self) -> None:
        self.pid = 0
        self.packed = b""
        self.refresh()

    def refresh(self) -> None:
        self.pid = os.getpid()
        self.packed = _PID.pack(self.pid)


_OWN = _Pid()
on_fork(_OWN.refresh)


def _states(
    get: Callable[..., bytes | None], db: Any, keys: list[bytes]
) -> list[tuple[float, float] | None]:
    # The bucket states of *keys*, as (level, stamp) pairs.
    return [_unpack(key, get(key, db=db)) for key in keys]


def _unpack(key: bytes, raw: bytes | None) -> tuple[float, float] | None:
    # A stored bucket state as (level, stamp); None if there is none.
    if raw is None:
        return None
    if len(raw) != _BUCKET.size:
        raise _corrupt(key, raw)
    return _BUCKET_UNPACK(raw)


def _corrupt(key: bytes, raw: bytes) -> CorruptRecordError:
    return CorruptRecordError(
        "lmdb:buckets",
        key.decode("utf-8", "backslashreplace"),
        f"{len(raw)} bytes instead of {_BUCKET.size}",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


class LMDBLimiterStore:
    """
    A `zerfoo_cloud.stores.protocols.LimiterStore` in LMDB: limits hold across
    every process of the host. Get it from `zerfoo_cloud.stores.lmdb.LMDBStores`.

    Bucket states are two little-endian doubles. Concurrency slots are
    counted per process (key, NUL, big-endian pid); slots of processes that
    no longer exist are dropped when slots are next counted, so a killed
    worker never leaks them.

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._dbs = env.dbs
        self._raw_keys: dict[str, bytes] = {}

    @property
    def _db(self) -> Any:
        return self._dbs["buckets"]

    @property
    def _slots(self) -> Any:
        return self._dbs["slots"]

    def _decode(self, key: bytes, raw: bytes | None) -> BucketState | None:
        state = _unpack(key, raw)
        return None if state is None else BucketState(*state)

    def update(
        self,
        keys: Sequence[str],
        change: Callable[
            [list[BucketState | None]], tuple[list[BucketState | None] | None, T]
        ],
    ) -> T:
        """
        Atomically read, change and write the states of *keys*.
        """
        raw_keys = [self._raw(k) for k in keys]
        decode = self._decode

        def write(txn: Any) -> T:
            db = self._db
            new, result = change([decode(k, txn.get(k, db=db)) for k in raw_keys])
            if new is not None:
                for key, state in zip(raw_keys, new, strict=True):
                    if state is None:
                        txn.delete(key, db=db)
                    else:
                        txn.put(key, _BUCKET.pack(*state), db=db)
            return result

        return self._env.write(write)

    def take(
        self, key: str, capacity: float, per_second: float, cost: int, now: float
    ) -> tuple[bool, float]:
        """
        Take *cost* units from bucket *key* if it holds them (the fast path).
        """
        raw_key = self._raw(key)

        def write(txn: Any) -> tuple[bool, float]:
            db = self._db
            state, allowed, level = take_from(
                self._decode(raw_key, txn.get(raw_key, db=db)),
                capacity,
                per_second,
                cost,
                now,
            )
            if state is not None:
                txn.put(raw_key, _BUCKET.pack(*state), db=db)
            return allowed, level

        return self._env.write(write)

    def _raw(self, key: str) -> bytes:
        # Keys repeat on every request (one tenant, three buckets): encode
        # each once.
        raw = self._raw_keys.get(key)
        if raw is None:
            if len(self._raw_keys) >= _MAX_CACHED_KEYS:
                self._raw_keys.clear()
            raw = self._raw_keys[key] = key.encode("utf-8", "surrogatepass")
        return raw

    def admit(
        self,
        slot: tuple[str, int] | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        Take a slot and units from *buckets* in one transaction: all, or nothing.
        """
        raw = self._raw
        raw_keys = [raw(key) for key, _, _, _ in buckets]
        asks = [(capacity, rate, cost) for _, capacity, rate, cost in buckets]
        prefix = own = b""
        limit = 0
        if slot is not None:
            prefix = raw(slot[0]) + b"\x00"
            own = prefix + _OWN.packed
            limit = slot[1]
        pack = _BUCKET.pack
        dbs = self._dbs

        def write(txn: Any) -> tuple[bool, bool, list[float]]:
            db = dbs["buckets"]
            states = _states(txn.get, db, raw_keys)
            mine = 0
            if slot is not None:
                taken = self._taken_by_me(txn, prefix, limit)
                if taken is None:
                    levels = [
                        refill(state, capacity, rate, now)[0]
                        for state, (capacity, rate, _) in zip(states, asks, strict=True)
                    ]
                    return False, False, levels
                mine = taken
            new, levels = take_all(states, asks, now)
            if new is None:
                return True, False, levels
            put = txn.put
            for key, state in zip(raw_keys, new, strict=True):
                put(key, pack(*state), db=db)
            if slot is not None:
                put(own, _COUNT.pack(mine + 1), db=dbs["slots"])
            return True, True, levels

        return self._env.write(write)

    def settle(
        self,
        slot_key: str | None,
        bucket: tuple[str, float, float, int] | None,
        now: float,
    ) -> None:
        """
        Give *delta* units to a bucket and a slot back, in one transaction.
        """
        change = None
        if bucket is not None and bucket[3]:
            key, capacity, rate, delta = bucket
            change = (self._raw(key), capacity, rate, delta)
        own = None
        if slot_key is not None:
            own = self._raw(slot_key) + b"\x00" + _OWN.packed
        if change is None and own is None:
            return
        dbs = self._dbs

        def write(txn: Any) -> None:
            if change is not None:
                db = dbs["buckets"]
                raw_key, capacity, rate, delta = change
                state = adjust_bucket(
                    self._decode(raw_key, txn.get(raw_key, db=db)),
                    capacity,
                    rate,
                    delta,
                    now,
                )
                txn.put(raw_key, _BUCKET.pack(*state), db=db)
            if own is not None:
                self._give_back(txn, own)

        self._env.write(write)

    def get(self, key: str) -> BucketState | None:
        """
        Return the state of *key*, or ``None``.
        """
        raw_key = self._raw(key)
        return self._env.read(
            lambda txn: self._decode(raw_key, txn.get(raw_key, db=self._db))
        )

    def _taken_by_me(self, txn: Any, prefix: bytes, limit: int) -> int | None:
        """
        Return how many slots of *prefix* this process holds, or ``None``
        when live processes hold *limit* or more.
        """
        # Slots of dead processes only matter when they fill the limit: only
        # then are the holders checked (one signal 0 per other process).
        total, mine = self._count(txn, prefix, prune=False)
        if total >= limit:
            total, mine = self._count(txn, prefix, prune=True)
            if total >= limit:
                return None
        return mine

    def _count(self, txn: Any, prefix: bytes, *, prune: bool) -> tuple[int, int]:
        # (slots held by every process, slots held by this one)
        total = mine = 0
        own = _OWN.pid
        dead = []
        with txn.cursor(db=self._slots) as cursor:
            if cursor.set_range(prefix):
                for k, v in cursor:
                    if not k.startswith(prefix):
                        break
                    pid = _PID.unpack(k[len(prefix) :])[0]
                    if prune and pid != own and not _alive(pid):
                        dead.append(k)
                        continue
                    count = _COUNT.unpack(v)[0]
                    total += count
                    if pid == own:
                        mine = count
        for k in dead:
            txn.delete(k, db=self._slots)
        return total, mine

    def acquire_slot(self, key: str, limit: int) -> bool:
        """
        Take a slot of *key* if fewer than *limit* are taken by live processes.
        """
        prefix = self._raw(key) + b"\x00"
        own = prefix + _OWN.packed

        def write(txn: Any) -> bool:
            mine = self._taken_by_me(txn, prefix, limit)
            if mine is None:
                return False
            txn.put(own, _COUNT.pack(mine + 1), db=self._slots)
            return True

        return self._env.write(write)

    def release_slot(self, key: str) -> None:
        """
        Give back a slot of *key* taken by this process.
        """
        own = self._raw(key) + b"\x00" + _OWN.packed
        self._env.write(lambda txn: self._give_back(txn, own))

    def _give_back(self, txn: Any, own: bytes) -> None:
        slots = self._slots
        raw = txn.get(own, db=slots)
        mine = 0 if raw is None else _COUNT.unpack(raw)[0]
        if mine <= 1:
            txn.delete(own, db=slots)
        else:
            txn.put(own, _COUNT.pack(mine - 1), db=slots)

    def slots_in_use(self, key: str) -> int:
        """
        Return how many slots of *key* live processes hold.
        """
        prefix = self._raw(key) + b"\x00"
        return self._env.write(lambda txn: self._count(txn, prefix, prune=True)[0])

    def clear(self, prefix: str) -> None:
        """
        Drop every state and slot whose key starts with *prefix*.
        """
        raw = prefix.encode("utf-8", "surrogatepass")

        def write(txn: Any) -> None:
            for db in (self._db, self._slots):
                with txn.cursor(db=db) as cursor:
                    if not cursor.set_range(raw):
                        continue
                    while cursor.key().startswith(raw):
                        if not cursor.delete():
                            break

        self._env.write(write)

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """

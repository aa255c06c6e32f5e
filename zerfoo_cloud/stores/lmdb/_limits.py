"""
The LMDB limiter store.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._fork import on_fork
from zerfoo_cloud.buckets import (
    BucketState,
    adjust_bucket,
    refill,
    refill_all,
    take_all,
    take_from,
)
from zerfoo_cloud.errors import CorruptRecordError
from zerfoo_cloud.slots import SlotKeys, Slots, slot_key_list, slot_list

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBLimiterStore"]

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
        self._raw_keys: dict[str, bytes] = {}

    @property
    def _db(self) -> Any:
        return self._env.handles()["buckets"]

    @property
    def _slots(self) -> Any:
        return self._env.handles()["slots"]

    def _decode(self, key: bytes, raw: bytes | None) -> BucketState | None:
        state = _unpack(key, raw)
        return None if state is None else BucketState(*state)

    def _raw(self, key: str) -> bytes:
        # Keys repeat on every request (one tenant, three buckets): encode
        # each once.
        raw = self._raw_keys.get(key)
        if raw is None:
            if len(self._raw_keys) >= _MAX_CACHED_KEYS:
                self._raw_keys.clear()
            raw = self._raw_keys[key] = key.encode("utf-8", "surrogatepass")
        return raw

    def _asks(
        self, buckets: Sequence[tuple[str, float, float, int]]
    ) -> tuple[list[bytes], list[tuple[float, float, int]]]:
        # The encoded keys of *buckets*, and what is asked of each.
        raw = self._raw
        return (
            [raw(key) for key, _, _, _ in buckets],
            [(capacity, rate, cost) for _, capacity, rate, cost in buckets],
        )

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        Take slots and units from *buckets* in one transaction: all, or nothing.
        """
        if slot is None:
            if len(buckets) == 1:
                ((key, capacity, rate, cost),) = buckets
                return self._take_one(key, capacity, rate, cost, now)
        elif not slot or not isinstance(slot[0], str):
            return self._admit_several(slot_list(slot), buckets, now)
        return self._admit_one(slot, buckets, now)  # type: ignore[arg-type]

    def _admit_one(
        self,
        slot: tuple[str, int] | None,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        # `admit` with one slot, or none.
        raw = self._raw
        raw_keys, asks = self._asks(buckets)
        prefix = own = b""
        limit = 0
        if slot is not None:
            prefix = raw(slot[0]) + b"\x00"
            own = prefix + _OWN.packed
            limit = slot[1]
        pack = _BUCKET.pack
        dbs = self._env.handles()

        def write(txn: Any) -> tuple[bool, bool, list[float]]:
            db = dbs["buckets"]
            states = _states(txn.get, db, raw_keys)
            mine = 0
            if slot is not None:
                taken = self._taken_by_me(txn, prefix, limit)
                if taken is None:
                    return False, False, refill_all(states, asks, now)
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

    def _admit_several(
        self,
        slots: list[tuple[str, int]],
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        # `admit` with a sequence of slots: each count reported after levels.
        raw = self._raw
        raw_keys, asks = self._asks(buckets)
        prefixes = [(raw(key) + b"\x00", limit) for key, limit in slots]
        pack = _BUCKET.pack
        dbs = self._env.handles()

        def write(txn: Any) -> tuple[bool, bool, list[float]]:
            db = dbs["buckets"]
            states = _states(txn.get, db, raw_keys)
            held = [self._held(txn, prefix, limit) for prefix, limit in prefixes]
            counts: list[float] = [total for total, _ in held]
            if any(
                total >= limit
                for total, (_, limit) in zip(counts, prefixes, strict=True)
            ):
                return False, False, refill_all(states, asks, now) + counts
            new, levels = take_all(states, asks, now)
            if new is None:
                return True, False, levels + counts
            put = txn.put
            for key, state in zip(raw_keys, new, strict=True):
                put(key, pack(*state), db=db)
            for (prefix, _), (_, mine) in zip(prefixes, held, strict=True):
                put(prefix + _OWN.packed, _COUNT.pack(mine + 1), db=dbs["slots"])
            return True, True, levels + [n + 1 for n in counts]

        return self._env.write(write)

    def _take_one(
        self, key: str, capacity: float, per_second: float, cost: int, now: float
    ) -> tuple[bool, bool, list[float]]:
        # One bucket and no slot (every `RateLimiter.acquire`): the cheapest
        # transaction.
        raw_key = self._raw(key)

        def write(txn: Any) -> tuple[bool, bool, list[float]]:
            db = self._db
            state, allowed, level = take_from(
                _unpack(raw_key, txn.get(raw_key, db=db)),
                capacity,
                per_second,
                cost,
                now,
            )
            if state is not None:
                txn.put(raw_key, _BUCKET.pack(*state), db=db)
            return True, allowed, [level]

        return self._env.write(write)

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        Give units to *buckets* and a slot back, in one transaction.
        """
        raw = self._raw
        changes = [
            (raw(key), capacity, rate, delta) for key, capacity, rate, delta in buckets
        ]
        if type(slot_key) is str:  # one slot: every request's settlement
            owns = [raw(slot_key) + b"\x00" + _OWN.packed]
        else:
            owns = [raw(key) + b"\x00" + _OWN.packed for key in slot_key_list(slot_key)]
        if not changes and not owns:
            return []
        dbs = self._env.handles()

        def write(txn: Any) -> list[float]:
            db = dbs["buckets"]
            levels = []
            for raw_key, capacity, rate, delta in changes:
                state = _unpack(raw_key, txn.get(raw_key, db=db))
                if delta:
                    new = adjust_bucket(state, capacity, rate, delta, now)
                    txn.put(raw_key, _BUCKET.pack(*new), db=db)
                    levels.append(new.level)
                else:
                    levels.append(refill(state, capacity, rate, now)[0])
            for own in owns:
                self._give_back(txn, own)
            return levels

        return self._env.write(write)

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
        total, mine = self._held(txn, prefix, limit)
        return None if total >= limit else mine

    def _held(self, txn: Any, prefix: bytes, limit: int) -> tuple[int, int]:
        """
        Return ``(total, mine)``: the slots of *prefix* live processes hold
        (exact when they fill *limit*) and those this process holds.
        """
        # Slots of dead processes only matter when they fill the limit: only
        # then are the holders checked (one signal 0 per other process).
        total, mine = self._count(txn, prefix, prune=False)
        if total >= limit:
            total, mine = self._count(txn, prefix, prune=True)
        return total, mine

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

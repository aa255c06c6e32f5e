"""
In-memory stores: for tests, development and single-process servers.

They hold within one process only and are lost when it exits; use
`zerfoo_cloud.stores.lmdb.LMDBStores` to share state between worker
processes or keep it across restarts. Every store is safe for many threads.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from zerfoo_cloud.audit_records.chain import GENESIS, ChainLink, link_entry
from zerfoo_cloud.buckets import (
    BucketState,
    adjust_bucket,
    refill,
    refill_all,
    take_all,
    take_from,
)
from zerfoo_cloud.errors import (
    InvalidConfigError,
    PriceTableChangedError,
    StoreError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.pricing.stored import NO_PRICES, StoredPrices
from zerfoo_cloud.slots import SlotKeys, Slots, slot_list
from zerfoo_cloud.stores._subscribers import Subscribers, call

if TYPE_CHECKING:
    from datetime import datetime

    from zerfoo_cloud.audit_records.entry import AuditEntry
    from zerfoo_cloud.billing_records import BillingRecord
    from zerfoo_cloud.pricing.table import PriceTable
    from zerfoo_cloud.stores.protocols import Subscription
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = [
    "MemoryAuditStore",
    "MemoryBillingStore",
    "MemoryKeyRevocations",
    "MemoryLimiterStore",
    "MemoryPriceStore",
    "MemoryReplayCache",
    "MemoryTenantStore",
]

T = TypeVar("T")


class MemoryTenantStore:
    """
    A `zerfoo_cloud.stores.protocols.TenantStore` in a dict.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, TenantRecord] = {}
        self._by_hash: dict[str, str] = {}

    def create(self, record: TenantRecord) -> None:
        """
        Store a new record (see the protocol).
        """
        with self._lock:
            if record.id in self._by_id:
                raise TenantExistsError(record.id)
            hashes = record.key_hashes()
            if any(h in self._by_hash for h in hashes):
                raise TenantExistsError(record.id, field="api_key")
            self._by_id[record.id] = record
            for digest in hashes:
                self._by_hash[digest] = record.id

    def get(self, tenant_id: str) -> TenantRecord | None:
        """
        Return the record with this id, or ``None``.
        """
        return self._by_id.get(tenant_id)

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        """
        Return the record with this key hash, or ``None``.
        """
        with self._lock:
            tenant_id = self._by_hash.get(key_hash)
            return None if tenant_id is None else self._by_id.get(tenant_id)

    def update(
        self, tenant_id: str, change: Callable[[TenantRecord], TenantRecord]
    ) -> TenantRecord:
        """
        Atomically replace a record by ``change(old)`` (see the protocol).
        """
        with self._lock:
            old = self._by_id.get(tenant_id)
            if old is None:
                raise TenantNotFoundError(tenant_id)
            new = change(old)
            if new.id != old.id:
                msg = "a tenant's id cannot change"
                raise InvalidConfigError(msg, field="id")
            before, after = old.key_hashes(), new.key_hashes()
            if any(h in self._by_hash for h in after - before):
                raise TenantExistsError(tenant_id, field="api_key")
            for digest in before - after:
                del self._by_hash[digest]
            for digest in after - before:
                self._by_hash[digest] = tenant_id
            self._by_id[tenant_id] = new
            return new

    def delete(self, tenant_id: str) -> None:
        """
        Remove a record and its key (see the protocol).
        """
        with self._lock:
            old = self._by_id.pop(tenant_id, None)
            if old is None:
                raise TenantNotFoundError(tenant_id)
            for digest in old.key_hashes():
                self._by_hash.pop(digest, None)

    def list(self) -> list[TenantRecord]:
        """
        Return every record, ordered by id.
        """
        with self._lock:
            return [self._by_id[k] for k in sorted(self._by_id)]

    def all(self) -> builtins.list[TenantRecord]:
        """
        Return a copy of everything stored (same as `list`).
        """
        return self.list()

    def close(self) -> None:
        """
        Nothing to release.
        """


class MemoryLimiterStore:
    """
    A `zerfoo_cloud.stores.protocols.LimiterStore` in a dict: limits hold
    within this process.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, BucketState] = {}
        self._slots: dict[str, int] = {}

    def get(self, key: str) -> BucketState | None:
        """
        Return the state of *key*, or ``None``.
        """
        return self._buckets.get(key)

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        Take slots and units from *buckets* at once: all, or nothing.
        """
        table = self._buckets
        if slot is not None and (not slot or not isinstance(slot[0], str)):
            return self._admit_several(slot_list(slot), buckets, now)
        if slot is None and len(buckets) == 1:
            # One bucket and no slot: every `RateLimiter.acquire`.
            ((key, capacity, rate, cost),) = buckets
            with self._lock:
                state, allowed, level = take_from(
                    table.get(key), capacity, rate, cost, now
                )
                if state is not None:
                    table[key] = state
            return True, allowed, [level]
        with self._lock:
            states = [table.get(key) for key, _, _, _ in buckets]
            asks = [(capacity, rate, cost) for _, capacity, rate, cost in buckets]
            if slot is not None and self._slots.get(slot[0], 0) >= slot[1]:  # type: ignore[arg-type,operator]
                return False, False, refill_all(states, asks, now)
            new, levels = take_all(states, asks, now)
            if new is None:
                return True, False, levels
            for (key, _, _, _), (level, stamp) in zip(buckets, new, strict=True):
                table[key] = BucketState(level, stamp)
            if slot is not None:
                self._slots[slot[0]] = self._slots.get(slot[0], 0) + 1  # type: ignore[arg-type,index]
            return True, True, levels

    def _admit_several(
        self,
        slots: list[tuple[str, int]],
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        # `admit` with a sequence of slots: each count reported after levels.
        table = self._buckets
        taken = self._slots
        with self._lock:
            states = [table.get(key) for key, _, _, _ in buckets]
            asks = [(capacity, rate, cost) for _, capacity, rate, cost in buckets]
            counts = [taken.get(key, 0) for key, _ in slots]
            if any(n >= limit for n, (_, limit) in zip(counts, slots, strict=True)):
                return False, False, refill_all(states, asks, now) + counts
            new, levels = take_all(states, asks, now)
            if new is None:
                return True, False, levels + counts
            for (key, _, _, _), (level, stamp) in zip(buckets, new, strict=True):
                table[key] = BucketState(level, stamp)
            for key, _ in slots:
                taken[key] = taken.get(key, 0) + 1
            return True, True, levels + [n + 1 for n in counts]

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        Give units to *buckets* and a slot back, at once.
        """
        table = self._buckets
        levels = []
        with self._lock:
            for key, capacity, rate, delta in buckets:
                if delta:
                    state = table[key] = adjust_bucket(
                        table.get(key), capacity, rate, delta, now
                    )
                    levels.append(state.level)
                else:
                    levels.append(refill(table.get(key), capacity, rate, now)[0])
            if slot_key is not None:
                slots = self._slots
                keys = (slot_key,) if type(slot_key) is str else slot_key
                for key in keys:
                    taken = slots.get(key, 0)
                    if taken <= 1:
                        slots.pop(key, None)
                    else:
                        slots[key] = taken - 1
        return levels

    def slots_in_use(self, key: str) -> int:
        """
        Return how many slots of *key* are taken.
        """
        return self._slots.get(key, 0)

    def clear(self, prefix: str) -> None:
        """
        Drop every state and slot whose key starts with *prefix*.
        """
        with self._lock:
            for table in (self._buckets, self._slots):
                for key in [k for k in table if k.startswith(prefix)]:
                    del table[key]

    def close(self) -> None:
        """
        Nothing to release.
        """


class MemoryBillingStore:
    """
    A `zerfoo_cloud.stores.protocols.BillingStore` in a list.

    .. versionadded:: 0.1.0
    """

    #: `zerfoo_cloud.TokenMeter` stores into it from the caller's thread.
    in_memory: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[BillingRecord] = []
        self._ids: set[str] = set()

    def add(self, records: Sequence[BillingRecord]) -> int:
        """
        Store the records whose request id is new; return how many.
        """
        added = 0
        with self._lock:
            for record in records:
                if record.request_id in self._ids:
                    continue
                self._ids.add(record.request_id)
                self._records.append(record)
                added += 1
        return added

    def store(self, record: BillingRecord) -> None:
        """
        Store one record (the seed's name for `add`).
        """
        self.add([record])

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> builtins.list[BillingRecord]:
        """
        Return the tenant's records in ``[start, end]``, oldest first (ties by
        request id).
        """
        with self._lock:
            found = [
                r
                for r in self._records
                if r.tenant_id == tenant_id and start <= r.timestamp <= end
            ]
        return sorted(found, key=lambda r: (r.timestamp, r.request_id))

    def all(self) -> builtins.list[BillingRecord]:
        """
        Return a copy of everything stored, in insertion order.
        """
        with self._lock:
            return list(self._records)

    def tenant_ids(self) -> builtins.list[str]:
        """
        Return the id of every tenant with at least one record, sorted.
        """
        with self._lock:
            return sorted({r.tenant_id for r in self._records})

    def close(self) -> None:
        """
        Nothing to release.
        """


class MemoryAuditStore:
    """
    A `zerfoo_cloud.stores.protocols.ChainedAuditStore` in a list.

    .. versionadded:: 0.1.0
    """

    #: `zerfoo_cloud.AuditLogger` stores into it from the caller's thread.
    in_memory: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[AuditEntry] = []
        self._anchor = GENESIS
        self._head = GENESIS

    def append(self, entry: AuditEntry) -> AuditEntry:
        """
        Store *entry*, chained with unkeyed SHA-256, and return what was stored.
        """
        return self.append_linked([entry], link_entry)[0]

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
    ) -> builtins.list[AuditEntry]:
        """
        Atomically append *entries*, each linked after the one before.
        """
        with self._lock:
            prev = self._head
            stored = []
            for entry in entries:
                linked = link(prev, entry)
                stored.append(linked)
                prev = ChainLink(linked.seq, linked.hash)
            self._entries.extend(stored)
            self._head = prev
        return stored

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """
        Call ``visit(anchor, head, entries)`` with the store locked.
        """
        with self._lock:
            return visit(self._anchor, self._head, ((e.seq, e) for e in self._entries))

    def purge(self, before: datetime) -> int:
        """
        Drop the oldest entries while they are older than *before*.
        """
        with self._lock:
            entries = self._entries
            count = 0
            for entry in entries:
                if entry.timestamp is not None and entry.timestamp >= before:
                    break
                count += 1
            if count:
                last = entries[count - 1]
                self._anchor = ChainLink(last.seq, last.hash)
                del entries[:count]
        return count

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> builtins.list[AuditEntry]:
        """
        Return the tenant's entries in ``[start, end]``, oldest first.
        """
        with self._lock:
            found = [
                e
                for e in self._entries
                if e.tenant_id == tenant_id
                and e.timestamp is not None
                and start <= e.timestamp <= end
            ]
        return sorted(found, key=lambda e: (e.timestamp or start, e.seq))

    def all(self) -> builtins.list[AuditEntry]:
        """
        Return a copy of everything stored, in insertion order.
        """
        with self._lock:
            return list(self._entries)

    def close(self) -> None:
        """
        Nothing to release.
        """


class MemoryReplayCache:
    """
    A `zerfoo_cloud.stores.protocols.ReplayCache` in a dict: replays are
    caught within this process.

    Expired entries are purged as the cache is used (a full sweep at most
    once every *purge_interval* calls of `add`), so its size stays bounded by
    the ids seen within their lifetimes.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *, purge_interval: int = 1024) -> None:
        if purge_interval < 1:
            msg = f"purge_interval must be at least 1, not {purge_interval}"
            raise InvalidConfigError(msg, field="purge_interval")
        self._lock = threading.Lock()
        self._entries: dict[str, float] = {}
        self._purge_interval = purge_interval
        self._adds = 0

    def add(self, key: str, expires_at: float, now: float) -> bool:
        """
        Record *key* until *expires_at*; ``False`` if it is already recorded.
        """
        with self._lock:
            self._adds += 1
            if self._adds >= self._purge_interval:
                self._adds = 0
                self._purge(now)
            current = self._entries.get(key)
            if current is not None and current > now:
                return False
            self._entries[key] = expires_at
            return True

    def _purge(self, now: float) -> None:
        for key in [k for k, at in self._entries.items() if at <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        """
        Return how many entries are held (expired ones not yet purged included).
        """
        return len(self._entries)

    def all(self) -> dict[str, float]:
        """
        Return a copy of every entry: key to expiry time.
        """
        with self._lock:
            return dict(self._entries)

    def close(self) -> None:
        """
        Nothing to release.
        """


class MemoryKeyRevocations:
    """
    A `zerfoo_cloud.stores.protocols.KeyRevocations` within one process:
    `publish` calls every subscriber at once, in the publisher's thread.

    Share one between the `zerfoo_cloud.TenantManager` s of a process (or
    use `zerfoo_cloud.stores.redis.RedisKeyRevocations` between hosts). A
    subscriber is called with ``None`` when it subscribes: the subscription
    is live at once and never disconnects.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._subscribers = Subscribers()
        self._closed = False

    def publish(self, tenant_id: str) -> None:
        """
        Call every subscriber with *tenant_id* now.

        Raises:
            StoreError: it is closed.
        """
        if self._closed:
            msg = "the key revocations are closed"
            raise StoreError(msg)
        self._subscribers.deliver(tenant_id)

    def subscribe(self, callback: Callable[[str | None], None]) -> Subscription:
        """
        Call *callback* with ``None`` now, then with every id published.

        Raises:
            StoreError: it is closed.
        """
        if self._closed:
            msg = "the key revocations are closed"
            raise StoreError(msg)
        subscription = self._subscribers.add(callback)
        call(callback, None)
        return subscription

    def close(self) -> None:
        """
        Drop every subscriber. Calling it twice is harmless.
        """
        self._closed = True
        self._subscribers.clear()


class MemoryPriceStore:
    """
    A `zerfoo_cloud.stores.protocols.PriceStore` in memory: one table and
    its version, under a lock.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored = NO_PRICES

    def read(self) -> StoredPrices:
        """
        Return the table and its version (see the protocol).
        """
        return self._stored

    def version(self) -> int:
        """
        Return the version (see the protocol).
        """
        return self._stored.version

    def replace(self, table: PriceTable, expected_version: int) -> int:
        """
        Store *table* if the version is still *expected_version* (see the
        protocol).
        """
        with self._lock:
            found = self._stored.version
            if found != expected_version:
                raise PriceTableChangedError(expected_version, found)
            self._stored = StoredPrices(table, found + 1)
            return found + 1

    def close(self) -> None:
        """
        Nothing to release.
        """

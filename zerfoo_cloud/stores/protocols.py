"""
The contracts every store implements.

A store written outside zerfoo-cloud needs no base class: it only has to
provide these methods. The conformance suite in ``tests/stores`` runs the same
tests against every implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import asyncio
    from datetime import datetime

    from zerfoo_cloud.audit_records.chain import ChainLink
    from zerfoo_cloud.audit_records.entry import AuditEntry
    from zerfoo_cloud.billing_records import BillingRecord, UsageSummary
    from zerfoo_cloud.buckets import BucketState
    from zerfoo_cloud.errors import StoreError
    from zerfoo_cloud.pricing import PriceTable, StoredPrices
    from zerfoo_cloud.slots import SlotKeys, Slots
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = [
    "AsyncLimiterStore",
    "AuditStore",
    "BatchCommitter",
    "BillingStore",
    "ChainedAuditStore",
    "CommitExchange",
    "CommittingAuditStore",
    "CommittingBillingStore",
    "KeyRevocations",
    "KeyedAuditStore",
    "LimiterStore",
    "LinkAdoptingAuditStore",
    "LoopCommitter",
    "PriceStore",
    "ReplayCache",
    "Subscription",
    "SummarizingBillingStore",
    "TenantListingBillingStore",
    "TenantStore",
]

T = TypeVar("T")


@runtime_checkable
class TenantStore(Protocol):
    """
    **Protocol**: Where `zerfoo_cloud.TenantManager` keeps tenant records.

    Records hold the SHA-256 hash of the API key, never the key. Lookups by
    id and by key hash are O(1) (or O(log n)); every method sees writes made
    by other users of the same store (other threads, and for shared backends
    other processes) as soon as they return.

    A store that waits on the network (PostgreSQL) says so with a
    ``blocking_io = True`` attribute (absent means no: memory, LMDB): the
    ASGI adapter then looks keys up that the tenant cache does not hold in
    a worker thread, never on the event loop.

    .. versionadded:: 0.1.0
    """

    def create(self, record: TenantRecord) -> None:
        """
        Store a new record.

        Raises:
            TenantExistsError: the id, or one of its keys' hashes
                (`TenantRecord.key_hashes`), is already stored (``field``
                says which). Nothing is written.
        """

    def get(self, tenant_id: str) -> TenantRecord | None:
        """
        Return the record with id *tenant_id*, or ``None``.
        """

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        """
        Return the record one of whose keys (`TenantRecord.keys`: live,
        expiring or revoked) has the hash *key_hash*, or ``None``. Key
        hashes are unique across all tenants.
        """

    def update(
        self, tenant_id: str, change: Callable[[TenantRecord], TenantRecord]
    ) -> TenantRecord:
        """
        Atomically replace a record by ``change(old)`` and return the new one.

        *change* must not alter the id. The key index follows the record's
        keys in the same step: hashes of keys removed leave it (those keys
        stop being found at once), hashes of keys added enter it.

        Raises:
            TenantNotFoundError: no record has id *tenant_id*.
            TenantExistsError: a new key hash belongs to another tenant;
                nothing is changed.
        """

    def delete(self, tenant_id: str) -> None:
        """
        Remove a record and its key index entries, even a corrupt one.

        Raises:
            TenantNotFoundError: no record has id *tenant_id*.
        """

    def list(self) -> list[TenantRecord]:
        """
        Return every record, ordered by id.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class PriceStore(Protocol):
    """
    **Protocol**: Where the service's price table lives, shared by every
    host using the store.

    The store holds one `zerfoo_cloud.pricing.PriceTable` (or none yet) and
    a version number: 0 before the first table, one more after each
    change. A change names the version it was based on and is made only if
    that is still the stored one (compare-and-set), so two admins changing
    prices at once never silently overwrite each other: the second is
    refused and reads again. Checking that a change keeps the past
    (`zerfoo_cloud.pricing.check_change`) is the caller's job; the store
    only keeps tables and versions.

    Like `TenantStore`, a store that waits on the network says so with
    ``blocking_io = True``.

    .. versionadded:: 0.1.0
    """

    def read(self) -> StoredPrices:
        """
        Return the stored table and its version
        (`zerfoo_cloud.pricing.NO_PRICES` before the first).

        Raises:
            CorruptRecordError: the stored table cannot be decoded.
        """

    def version(self) -> int:
        """
        Return the stored version alone (cheap: hosts poll it).
        """

    def replace(self, table: PriceTable, expected_version: int) -> int:
        """
        Store *table* if the stored version is *expected_version*, in one
        atomic step; return the new version (*expected_version* + 1).

        Raises:
            PriceTableChangedError: the stored version is another one;
                nothing was written.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class LimiterStore(Protocol):
    """
    **Protocol**: The counters behind rate limits and concurrency limits.

    A limiter store keeps token buckets (a `zerfoo_cloud.buckets.BucketState`
    per key) and concurrency slots (a count per key), and changes them through
    one primitive: `admit` takes a concurrency slot and units from several
    buckets, all or nothing, and `settle` gives units and a slot back. Every
    limit method of `zerfoo_cloud.RateLimiter` and `zerfoo_cloud.Tenant` is
    built on that pair; the limit algorithm lives in `zerfoo_cloud.limits`.
    With a store shared between processes, limits hold across all of them.

    A new counter backend (Redis, PostgreSQL) implements exactly these
    methods, and the conformance suite in ``tests/stores`` checks each one:

    - `admit`, `settle`: the primitive, each one atomic step (one
      transaction, one server-side script);
    - `get`, `slots_in_use`: the reads behind quotas, rate-limit headers
      and ``in_flight``;
    - `clear`, `close`: upkeep.

    Inside its atomic step a backend computes with
    `zerfoo_cloud.buckets.take_all` (taking), `zerfoo_cloud.buckets.refill`
    and `zerfoo_cloud.buckets.refill_all` (levels now, taking nothing) and
    `zerfoo_cloud.buckets.adjust_bucket` (giving back or charging), or their equivalent in the backend's own
    language, so the arithmetic is the same everywhere.

    The keys of one `admit` or `settle` call share a *group*: the text
    before their first NUL (``"acme\\x00req"`` and ``"acme\\x00con"`` are
    in group ``acme``, a tenant's). A backend that spreads keys over
    several servers (`zerfoo_cloud.stores.redis.RedisLimiterStore` on a
    Redis Cluster) keeps one group together, so each call stays one atomic
    step; `zerfoo_cloud.Tenant` and `zerfoo_cloud.RateLimiter` callers
    naming their keys ``group\\x00name`` never mix groups in a call.

    .. versionadded:: 0.1.0
    """

    def admit(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        Atomically take concurrency slots and units from *buckets*: all or nothing.

        *slot* is ``(key, limit)``: one of *limit* slots of *key*; a
        sequence of such pairs (distinct keys): one slot of each, all or
        none (a tenant's and its API key's); or ``None`` for no slot.
        *buckets* holds ``(key, capacity, per_second, cost)``, *now* is the
        caller's Unix time. A bucket never written is full. Slots held by a
        process that died are given back by stores shared between
        processes.

        Returns:
            ``(slot_free, allowed, levels)``, *levels* one per bucket. When
            all *limit* slots of a key are taken: ``(False, False, levels)``
            with the units each bucket holds; nothing changed. When a
            bucket lacks its cost: ``(True, False, levels)`` with the units
            available; nothing changed, no slot taken. Otherwise ``(True,
            True, levels)``: the slots and every cost were taken, *levels*
            are what is left. When *slot* is a sequence, *levels* go on
            with one count per slot, in order: the slots of that key taken
            (after this call), which says which limit refused.
        """

    def settle(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        Atomically give units to *buckets* and a slot of each *slot_key* back.

        *buckets* holds ``(key, capacity, per_second, delta)``: a positive
        delta is a refund (never above *capacity*), a negative one a charge
        (into debt if need be), zero changes nothing. *slot_key*, when
        given (a key, or a sequence of keys: those of one `admit`), loses
        one taken slot of each key; never below zero.

        Returns:
            the level of each bucket after the change.
        """

    def get(self, key: str) -> BucketState | None:
        """
        Return the state of bucket *key*, or ``None`` if it was never written.
        """

    def slots_in_use(self, key: str) -> int:
        """
        Return how many slots of *key* are taken.
        """

    def clear(self, prefix: str) -> None:
        """
        Drop every bucket and slot whose key starts with *prefix*.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class AsyncLimiterStore(LimiterStore, Protocol):
    """
    **Protocol**: A `LimiterStore` whose primitive also runs on an asyncio
    event loop without blocking it (a store on the network: Redis).

    `admit_async` and `settle_async` take and return what `admit` and
    `settle` do, in the same one atomic step; the loop runs other work
    while the store answers. `zerfoo_cloud.RateLimiter` and
    `zerfoo_cloud.Tenant` use them from their ``*_async`` methods, which
    the ASGI adapter calls; a store without them (memory, LMDB: nothing to
    wait for) is called synchronously there, with no thread hop. Failures
    raise as the sync calls do; a store that cannot be reached raises
    `zerfoo_cloud.errors.StoreUnavailableError`.

    .. versionadded:: 0.1.0
    """

    async def admit_async(
        self,
        slot: Slots,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> tuple[bool, bool, list[float]]:
        """
        `LimiterStore.admit`, awaited.
        """

    async def settle_async(
        self,
        slot_key: SlotKeys,
        buckets: Sequence[tuple[str, float, float, int]],
        now: float,
    ) -> list[float]:
        """
        `LimiterStore.settle`, awaited.
        """


@runtime_checkable
class Subscription(Protocol):
    """
    **Protocol**: One callback subscribed to `KeyRevocations`.

    .. versionadded:: 0.1.0
    """

    def close(self) -> None:
        """
        Stop calling the callback; it may still be running one call when
        this returns. Calling it twice is harmless.
        """


@runtime_checkable
class KeyRevocations(Protocol):
    """
    **Protocol**: Messages saying that a tenant changed, to every host.

    `zerfoo_cloud.TenantManager` keeps tenants found by key for a short
    time (*cache_ttl*). Given revocations, it publishes a tenant's id
    (`publish`) after every change that can make a kept tenant stale (a new key, new
    limits or allow list, a deletion, a creation) has been written to the
    tenant store, and drops the tenant's keys when a message naming it
    arrives; so a key revoked on one host is refused on every host as soon
    as the message arrives, not after the time to live.

    Delivery is best effort: a message may be lost (a subscriber that was
    disconnected when it was sent). To bound what a loss costs, a
    subscriber is called with ``None``, meaning "anything may have
    changed", each time its subscription becomes live: once it is ready,
    and again after every reconnection. A cache dropping everything on
    ``None`` then serves a stale tenant at most until its time to live
    runs out, and only while the subscriber cannot hear messages.

    .. versionadded:: 0.1.0
    """

    def publish(self, tenant_id: str) -> None:
        """
        Tell every subscriber, on every host, that tenant *tenant_id* changed.

        Raises:
            StoreError: the message could not be sent
                (`zerfoo_cloud.errors.StoreUnavailableError` when the
                backend cannot be reached); subscribers then fall back to
                their time to live.
        """

    def subscribe(self, callback: Callable[[str | None], None]) -> Subscription:
        """
        Call ``callback(tenant_id)`` for every message published from now
        on (by any host, this one included), and ``callback(None)`` each
        time the subscription becomes live (see the class docstring).

        *callback* runs in a thread of the implementation (or, for one in
        memory, in the publisher's); it must be quick and must not raise
        (an exception it raises is logged and ignored).
        """

    def close(self) -> None:
        """
        Stop every subscription and release resources. Calling it twice is
        harmless.
        """


@runtime_checkable
class ReplayCache(Protocol):
    """
    **Protocol**: A set of seen ids, each kept until it expires.

    `zerfoo_cloud.SAMLProvider` records each accepted assertion id here so
    that the same assertion cannot be used twice, in any process sharing the
    cache.

    .. versionadded:: 0.1.0
    """

    def add(self, key: str, expires_at: float, now: float) -> bool:
        """
        Record *key* until *expires_at* (Unix seconds); *now* is the caller's clock.

        Entries whose *expires_at* is at or before *now* count as gone and may
        be purged.

        Returns:
            ``True`` if *key* was new (or had expired), ``False`` if it is
            already recorded: a replay. Check and insert are one atomic step.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class BillingStore(Protocol):
    """
    **Protocol**: Where `zerfoo_cloud.TokenMeter` keeps billing records.

    `zerfoo_cloud.TokenMeter` calls `add` from one writer thread per meter,
    with batches of records; `query` may run at the same time in other
    threads. A store is told whether it lives in memory by an ``in_memory``
    attribute (absent means no): the meter then calls it from the caller's
    thread, which must never block.

    .. versionadded:: 0.1.0
    """

    def add(self, records: Sequence[BillingRecord]) -> int:
        """
        Store *records* in one atomic step; return how many were new.

        A record whose ``request_id`` is already stored (or comes earlier in
        *records*) is skipped, so a retried write never charges twice. When
        it returns, the records are durable (for a durable store); when it
        raises, none of them was stored.
        """

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        Return the tenant's records with ``start <= timestamp <= end``,
        oldest first; records with the same timestamp by request id.

        *start* and *end* are aware datetimes.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class SummarizingBillingStore(BillingStore, Protocol):
    """
    **Protocol**: A `BillingStore` that totals records itself (faster than
    `zerfoo_cloud.TokenMeter.summary` totalling what `query` returns).

    .. versionadded:: 0.1.0
    """

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> list[UsageSummary]:
        """
        Total the tenant's records in ``[start, end]``, grouped by *by*.

        *by* holds ``"model"`` and/or ``"day"`` (checked by the caller). The
        result must equal ``zerfoo_cloud.metering.summarize(query(...), by)``.
        """


@runtime_checkable
class TenantListingBillingStore(BillingStore, Protocol):
    """
    **Protocol**: A `BillingStore` that names every tenant it holds records
    of, so reports can include tenants deleted since they were billed.

    .. versionadded:: 0.1.0
    """

    def tenant_ids(self) -> list[str]:
        """
        Return the id of every tenant with at least one record, sorted.
        """


@runtime_checkable
class AuditStore(Protocol):
    """
    **Protocol**: Where `zerfoo_cloud.AuditLogger` keeps audit entries.

    .. versionadded:: 0.1.0
    """

    def append(self, entry: AuditEntry) -> AuditEntry:
        """
        Store *entry* (its timestamp is set) and return what was stored.
        """

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries with ``start <= timestamp <= end``,
        oldest first.
        """

    def close(self) -> None:
        """
        Release resources. Calling it twice is harmless.
        """


@runtime_checkable
class ChainedAuditStore(AuditStore, Protocol):
    """
    **Protocol**: An `AuditStore` that keeps its entries in a hash chain.

    The store numbers entries 1, 2, 3, ... (*seq*) and remembers its *head*
    (the last entry's seq and hash) and its *anchor* (the last purged
    entry's, `zerfoo_cloud.audit.GENESIS` before any purge). It links
    entries inside its own write transaction, so writers in several threads
    or processes still form one chain. Plain `append` links with unkeyed
    SHA-256 (`zerfoo_cloud.audit.link_entry`).

    .. versionadded:: 0.1.0
    """

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
    ) -> list[AuditEntry]:
        """
        Atomically append *entries*, each as ``link(previous_link, entry)``.

        The first previous link is the head (the anchor if the log is empty,
        `zerfoo_cloud.audit.GENESIS` if it never held anything); then each
        stored entry's own. *link* is pure and may be called again if the
        store retries. Returns what was stored; on error nothing was.
        """

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """
        Call ``visit(anchor, head, entries)`` on one consistent snapshot.

        *entries* yields ``(seq, entry)`` in seq order, *seq* being where
        the entry is stored and *entry* ``None`` if it cannot be decoded.
        """

    def purge(self, before: datetime) -> int:
        """
        Drop entries in seq order while their timestamp is before *before*.

        The last one dropped becomes the anchor. Returns how many were dropped.
        """


@runtime_checkable
class KeyedAuditStore(ChainedAuditStore, Protocol):
    """
    **Protocol**: A `ChainedAuditStore` that recognises a batch sent again.

    Its `append_linked` takes a *batch_key*: a batch appended with a key
    the store has committed before stores nothing and returns ``[]``, in
    the same transaction that would have appended it. A caller unsure
    whether a batch was committed (the connection broke before the answer,
    or the process died) sends it again with the same key, so it is stored
    exactly once. `zerfoo_cloud.stores.outbox.OutboxAuditStore` detects the
    keyword (`zerfoo_cloud.stores.outbox.takes_batch_key`) and drains
    exactly once over such a store, at least once over any other.
    (``isinstance`` checks method names only, so it cannot tell such a
    store from a `ChainedAuditStore`: ask ``takes_batch_key``.)

    .. versionadded:: 0.1.0
    """

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
        *,
        batch_key: str | None = None,
    ) -> list[AuditEntry]:
        """
        As `ChainedAuditStore.append_linked`; with *batch_key*, nothing is
        stored (and ``[]`` returned) if a batch with that key was.
        """


@runtime_checkable
class LinkAdoptingAuditStore(ChainedAuditStore, Protocol):
    """
    **Protocol**: A `ChainedAuditStore` that links some entries after its
    `append_linked` returned (a local outbox drains them later), so it
    needs the link of the logger that uses it before any entry is logged.

    `zerfoo_cloud.AuditLogger` hands its link (keyed with its secret) to
    such a store when it is made.

    .. versionadded:: 0.1.0
    """

    def adopt_link(self, link: Callable[[ChainLink, AuditEntry], AuditEntry]) -> None:
        """
        Link the entries it links later with *link*, until another is given.
        """


@runtime_checkable
class BatchCommitter(Protocol):
    """
    **Protocol**: Commits the batches of one meter's or logger's writer on a
    store's behalf (the LMDB stores do it from a writer process).

    It is called from the writer's thread with the queued items, oldest
    first, as ``BatchWriter`` calls a commit: it makes them durable, or
    raises `zerfoo_cloud.errors.StoreError` having removed from the front
    of the list the items it did make durable.

    .. versionadded:: 0.1.0
    """

    #: The writer's default linger in seconds (``linger=None``).
    linger: float
    #: Whether it also takes checked fields as tuples, in the record's
    #: positional order (`zerfoo_cloud.metering.TokenMeter.record_request`,
    #: `zerfoo_cloud.audit.AuditLogger.log_request` then queue those).
    takes_fields: bool

    def __call__(self, batch: list[Any]) -> object:
        """
        Make *batch* durable, or raise as the class docstring says.
        """

    def close(self, timeout: float | None = None) -> None:
        """
        Release what it runs (a process); the next call starts it again.
        """


@runtime_checkable
class CommitExchange(Protocol):
    """
    **Protocol**: One commit an event loop has under way
    (`LoopCommitter.start_in_loop`).

    .. versionadded:: 0.1.0
    """

    @property
    def stalled(self) -> bool:
        """
        Whether only the calling thread can finish it: it runs the loop that
        started it, or that loop stopped.
        """

    def finish_blocking(self) -> None:
        """
        Finish it (and any started after it) in this thread, blocking.
        """


@runtime_checkable
class LoopCommitter(BatchCommitter, Protocol):
    """
    **Protocol**: A `BatchCommitter` that an event loop can drive itself, so
    that a durable response waits for its commit with no thread hand-off.

    .. versionadded:: 0.1.0
    """

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> CommitExchange | None:
        """
        Start committing *batch* as a call would, driven by the running
        event loop *loop*, which then calls ``done(None)``, or
        ``done(error)`` with what is left of *batch* kept (as a call raising
        *error* would leave it). Returns ``None``, having done nothing, when
        only a call can do it now (one would block).
        """


@runtime_checkable
class CommittingBillingStore(BillingStore, Protocol):
    """
    **Protocol**: A `BillingStore` that may commit a meter's batches itself.

    .. versionadded:: 0.1.0
    """

    def committer(self) -> BatchCommitter | None:
        """
        A new committer for one `zerfoo_cloud.TokenMeter`, or ``None``: the
        meter then calls `add` from its writer thread.
        """


@runtime_checkable
class CommittingAuditStore(AuditStore, Protocol):
    """
    **Protocol**: An `AuditStore` that may commit a logger's batches itself.

    .. versionadded:: 0.1.0
    """

    def committer(self, secret: bytes | None) -> BatchCommitter | None:
        """
        A new committer for one `zerfoo_cloud.AuditLogger` chaining with
        *secret*, or ``None``: the logger then calls the store's own append
        from its writer thread.
        """

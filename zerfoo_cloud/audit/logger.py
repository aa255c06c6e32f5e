"""
The audit logger (`AuditLogger`): entries queued to a store, queried,
verified and purged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from zerfoo_cloud._clock import wire_stamp
from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud._queued_writing import QueuedWriting, WriterTuning
from zerfoo_cloud._writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PENDING,
    DEFAULT_RETRY_INTERVAL,
    BatchWriter,
)
from zerfoo_cloud.audit.verify import verify_chain
from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult
from zerfoo_cloud.audit_records.chain import _Linker
from zerfoo_cloud.audit_records.cleaning import _optional_utc
from zerfoo_cloud.audit_records.entry import (
    _MAX_STATUS,
    AuditEntry,
    _with_chain,
    make_entry,
)
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.stores.protocols import (
    ChainedAuditStore,
    CommittingAuditStore,
    LinkAdoptingAuditStore,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit.verify import AuditVerification
    from zerfoo_cloud.audit_records.chain import ChainLink
    from zerfoo_cloud.stores.protocols import AuditStore

__all__ = ["MIN_SECRET_BYTES", "AuditLogger"]

#: A chain secret has at least this many bytes.
MIN_SECRET_BYTES = 16

_log = logging.getLogger("zerfoo_cloud.audit")


def _secret_key(secret: str | bytes | None) -> bytes | None:
    if secret is None:
        return None
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        msg = f"the audit chain secret must have at least {MIN_SECRET_BYTES} bytes"
        raise InvalidConfigError(msg, field="secret")
    return key


class AuditLogger(QueuedWriting):
    """
    Records audit entries in an `AuditStore`, queries, verifies and purges them.

    **Guarantees.** `log` never waits for a disk: with a store that is not in
    memory it checks and stamps the entry and queues it; a background thread
    appends the queue in batches (with LMDB, one fsynced transaction per
    batch, the hash chain extended inside it). `flush` (or ``await
    aflush()``) returns once every entry logged before it is durable; `close`
    flushes. A failing store loses nothing: entries stay queued and are
    retried, and `flush` raises `StoreError` until they are written. With an
    in-memory store (``in_memory`` true) entries are stored at once.

    With a store that keeps a chain (`ChainedAuditStore`: memory and LMDB)
    every entry is chained to the one before (HMAC-SHA256 keyed with
    *secret* when given, else SHA-256), `verify` checks the chain and `purge`
    drops old entries. Other stores keep entries unchained.

    A store may append the batches itself
    (`zerfoo_cloud.stores.protocols.CommittingAuditStore`): an LMDB store
    set opened with ``writer_process=True`` appends them from a writer
    process, which gets the secret over a pipe, never on its command line
    or in its environment; a batch sent again after the process died is
    recognised by the store, so no entry is stored twice; `query`, `verify`
    and `purge` still run in this process, and `close` stops the process.

    A store that links some entries later
    (`zerfoo_cloud.stores.protocols.LinkAdoptingAuditStore`: a local outbox
    in front of a shared database) is handed this logger's link when the
    logger is made, so that what it drains is chained with this secret.

    Args:
        store: where entries go.
        secret: the chain key, at least `MIN_SECRET_BYTES` bytes; keep it
            outside the store. It is never logged or shown in a repr.
        clock: the time source, Unix seconds.
        background: queue entries for a writer thread (``True``) or store
            them in the caller's thread (``False``); ``None`` picks by store.
        max_batch: at most this many entries per transaction.
        max_pending: at most this many entries queued; past it `log` raises.
        retry_interval: seconds between retries after a store failure.
        linger: seconds the writer thread lets entries gather before it
            appends a batch, as `zerfoo_cloud.metering.TokenMeter`'s
            *linger*: by default 0.005, or the store's committer's (0.05
            with the LMDB writer process).

    Raises:
        InvalidConfigError: a bad option (a short secret).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        secret: str | bytes | None = None,
        clock: Clock = time.time,
        background: bool | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        linger: float | None = None,
    ) -> None:
        self.store: AuditStore = store
        self.clock = clock
        self._key = _secret_key(secret)
        self._linker = _Linker(self._key)
        self._chained = store if isinstance(store, ChainedAuditStore) else None
        if isinstance(store, LinkAdoptingAuditStore):
            # Entries it links later (from a local outbox) use our secret.
            store.adopt_link(self._linker)
        self._committer = (
            store.committer(self._key)
            if isinstance(store, CommittingAuditStore)
            else None
        )
        tuning = WriterTuning(
            background, max_batch, max_pending, retry_interval, linger
        )
        self._writer: BatchWriter[AuditEntry] = self._open_writer(
            ("audit logger", "audit entries"),
            self._append_chained if self._chained is not None else self._append_each,
            tuning,
            _log,
        )

    def __repr__(self) -> str:
        keyed = "keyed" if self._key is not None else "unkeyed"
        return f"<AuditLogger {type(self.store).__name__} {keyed}>"

    def _append_chained(self, batch: list[AuditEntry]) -> None:
        assert self._chained is not None
        self._chained.append_linked(batch, self._linker)

    def _append_each(self, batch: list[AuditEntry]) -> None:
        # A plain store appends one at a time: drop each from the batch as
        # it is stored, so a failure retries only the rest.
        while batch:
            self.store.append(batch[0])
            del batch[0]

    def log(self, entry: AuditEntry) -> AuditEntry:
        """
        Queue *entry* (stamped with the clock if it has no timestamp).

        Returns:
            The entry as it will be stored, without its chain fields (the
            store sets them; `query` returns them).

        Raises:
            InvalidConfigError: *entry* is not an `AuditEntry`, or its
                tenant id is longer than `MAX_TENANT_ID_BYTES`.
            StoreError: nothing was logged: the logger is closed, or
                *max_pending* entries already wait for a failing store.
        """
        if not isinstance(entry, AuditEntry):
            msg = f"log() takes an AuditEntry, not {type(entry).__name__}"
            raise InvalidConfigError(msg, field="entry")
        tenant_id = entry.tenant_id
        if (
            len(tenant_id) * 4 > MAX_TENANT_ID_BYTES
            and len(tenant_id.encode("utf-8", "surrogatepass")) > MAX_TENANT_ID_BYTES
        ):
            msg = f"tenant_id is longer than {MAX_TENANT_ID_BYTES} bytes of UTF-8"
            raise InvalidConfigError(msg, field="tenant_id")
        if entry.timestamp is None or entry.seq or entry.prev_hash or entry.hash:
            stamp = entry.timestamp or datetime.fromtimestamp(
                self.clock(), timezone.utc
            )
            entry = _with_chain(entry, 0, "", "", stamp)
        self._writer.submit(entry)
        return entry

    def log_request(
        self,
        tenant_id: str,
        action: AuditAction,
        result: AuditResult,
        *,
        resource: str,
        status_code: int,
        method: str,
        path: str,
        remote_addr: str,
    ) -> None:
        """
        Queue the entry of one HTTP request, stamped with the clock now.

        The same as ``log(AuditEntry(None, tenant_id, action, result,
        resource, status_code, method, path, remote_addr))`` (the keyword
        arguments are those fields), cleaning included: the entry is made
        once, with `make_entry`; with a store whose committer takes fields
        (the LMDB writer process) the fields are checked here and the entry
        made by the committer. The HTTP
        layer calls it once per request.

        Raises:
            InvalidConfigError: a field has the wrong type or range, or the
                tenant id is longer than `MAX_TENANT_ID_BYTES`.
            ValueError: *action* or *result* is not one of its values.
            StoreError: as `log`.
        """
        now = self.clock()
        if (
            self._fields
            and type(action) is AuditAction
            and type(result) is AuditResult
            and type(tenant_id) is str
            and len(tenant_id) * 4 <= MAX_TENANT_ID_BYTES
            and type(status_code) is int
            and 0 <= status_code <= _MAX_STATUS
            and type(resource) is str
            and type(method) is str
            and type(path) is str
            and type(remote_addr) is str
        ):
            # Fields that make a valid entry: `make_entry` runs in the
            # writer process (the fields in AuditEntry's order).
            self._writer.submit(
                (  # type: ignore[arg-type] # the writer process takes fields too
                    wire_stamp(now),
                    tenant_id,
                    action._value_,
                    result._value_,
                    resource,
                    status_code,
                    method,
                    path,
                    remote_addr,
                )
            )
            return
        entry = make_entry(
            datetime.fromtimestamp(now, timezone.utc),
            tenant_id,
            action,
            result,
            resource,
            status_code,
            method,
            path,
            remote_addr,
        )
        if len(tenant_id) * 4 > MAX_TENANT_ID_BYTES:
            self.log(entry)  # checks the length in bytes
            return
        self._writer.submit(entry)

    def _chain_store(self, what: str) -> ChainedAuditStore:
        if self._chained is None:
            msg = (
                f"{type(self.store).__name__} keeps no hash chain, so it cannot "
                f"{what}; use a memory or LMDB audit store"
            )
            raise InvalidConfigError(msg, field="store")
        return self._chained

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries with ``start <= timestamp <= end``, oldest first.

        First waits until this logger's queued entries are written.

        Raises:
            InvalidConfigError: *start* or *end* is not an aware datetime.
        """
        start, end = _aware(start), _aware(end)
        self._settle()
        return self.store.query(tenant_id, start, end)

    def verify(self) -> AuditVerification:
        """
        Walk the whole log and check its hash chain.

        Returns:
            An `AuditVerification`: ``ok``, or the first position where an
            entry was altered, removed, inserted or moved (call its
            ``check()`` to raise `AuditChainError` instead). Entries logged
            with another secret (or none) show as altered.

        Raises:
            InvalidConfigError: the store keeps no chain.
            StoreError: the store cannot be read.
        """
        store = self._chain_store("be verified")
        self._settle()
        key = self._key

        def visit(
            anchor: ChainLink,
            head: ChainLink,
            entries: Iterator[tuple[int, AuditEntry | None]],
        ) -> AuditVerification:
            return verify_chain(anchor, head, entries, key)

        return store.walk(visit)

    def purge(self, before: datetime) -> int:
        """
        Drop the oldest entries, in chain order, while they are older than *before*.

        Stops at the first entry at or after *before*, so what is left is an
        unbroken tail of the chain; its anchor (the last entry dropped) keeps
        it verifiable.

        Returns:
            How many entries were dropped.

        Raises:
            InvalidConfigError: *before* is not an aware datetime, or the
                store keeps no chain.
            StoreError: the store failed.
        """
        before = _aware(before)
        store = self._chain_store("purge")
        self._settle()
        return store.purge(before)


def _aware(ts: datetime) -> datetime:
    stamp = _optional_utc(ts)
    if stamp is None:
        msg = "a datetime is required"
        raise InvalidConfigError(msg, field="timestamp")
    return stamp

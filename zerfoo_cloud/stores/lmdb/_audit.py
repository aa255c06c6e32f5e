"""
The LMDB audit store.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from zerfoo_cloud.audit_records.chain import GENESIS, ChainLink, entry_json, link_entry
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError
from zerfoo_cloud.stores.lmdb._commits import AuditCommit
from zerfoo_cloud.stores.lmdb._keys import TIME, micros, scan, tenant_prefix, time_key

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._channel import WriterProcess
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBAuditStore"]

T = TypeVar("T")

_HEAD = b"head"
_ANCHOR = b"anchor"
#: Batch markers: this prefix and a writer's id map to the number of its last
#: committed batch and when it was written (Unix seconds).
_BATCH = b"batch/"
_MARKER = struct.Struct(">QQ")
#: A writer's batch marker not written for this many seconds is dropped.
MARKER_TTL = 86_400
#: Entries purged per transaction, so a large purge never holds the write
#: lock for long.
PURGE_CHUNK = 10_000


def _link_json(
    link: Callable[[ChainLink, AuditEntry], AuditEntry],
) -> Callable[[ChainLink, AuditEntry], tuple[AuditEntry, bytes]]:
    def link_json(prev: ChainLink, entry: AuditEntry) -> tuple[AuditEntry, bytes]:
        linked = link(prev, entry)
        return linked, entry_json(linked)

    return link_json


def _decode(seq: int, raw: bytes) -> AuditEntry:
    try:
        return AuditEntry.from_dict(json.loads(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptRecordError("lmdb:audit", f"entry {seq}", str(exc)) from exc


def _seq(key: bytes) -> int:
    return int.from_bytes(key, "big")


def _seen(txn: Any, meta: Any, writer: bytes, number: int) -> bool:
    # Whether *writer*'s batch *number* was committed already; if not, record
    # it, and drop the markers of writers silent for `MARKER_TTL`.
    key = _BATCH + writer
    raw = txn.get(key, db=meta)
    if (
        raw is not None
        and len(raw) == _MARKER.size
        and _MARKER.unpack(raw)[0] >= number
    ):
        return True
    now = int(time.time())
    with txn.cursor(db=meta) as cursor:
        found = cursor.set_range(_BATCH)
        while found and cursor.key().startswith(_BATCH):
            raw = cursor.value()
            if len(raw) == _MARKER.size and _MARKER.unpack(raw)[1] + MARKER_TTL < now:
                found = cursor.delete()
            else:
                found = cursor.next()
    txn.put(key, _MARKER.pack(number, now), db=meta)
    return False


def _encode_link(link: ChainLink) -> bytes:
    return TIME.pack(link.seq) + link.hash.encode()


def _read_link(txn: Any, db: Any, name: bytes) -> ChainLink | None:
    raw = txn.get(name, db=db)
    if raw is None:
        return None
    try:
        return ChainLink(TIME.unpack_from(raw)[0], raw[TIME.size :].decode("ascii"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptRecordError("lmdb:audit_meta", name.decode(), str(exc)) from exc


class LMDBAuditStore:
    """
    A `zerfoo_cloud.stores.protocols.ChainedAuditStore` in LMDB, durable and
    shared by every process of the host. Get it from
    `zerfoo_cloud.stores.lmdb.LMDBStores`.

    Three databases, changed together in one transaction: ``audit`` maps the
    sequence number (eight bytes, big-endian) to the entry as JSON;
    ``audit_time`` indexes (tenant, time, seq) for time-range queries; and
    ``audit_meta`` holds the chain's head and anchor, and the batch markers
    of `append_linked`. Appends read the head and write the new entries
    inside one write transaction, which LMDB serialises across processes:
    concurrent writers still form one chain.

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env

    # Looked up per call: in a forked child the environment reopens with
    # handles of its own.
    @property
    def _db(self) -> Any:
        return self._env.handles()["audit"]

    @property
    def _index(self) -> Any:
        return self._env.handles()["audit_time"]

    @property
    def _meta(self) -> Any:
        return self._env.handles()["audit_meta"]

    #: The store set's writer process (`LMDBStores.open` with
    #: ``writer_process=True``), or ``None``.
    writer_process: WriterProcess | None = None

    def committer(self, secret: bytes | None) -> AuditCommit | None:
        """
        How a `zerfoo_cloud.audit.AuditLogger` chaining with *secret* commits
        its batches: through the store set's writer process if it has one,
        shared with the billing store's committers; else ``None`` (the
        logger calls `append_linked` from its writer thread).
        """
        process = self.writer_process
        return None if process is None else AuditCommit(process, secret)

    def append(self, entry: AuditEntry) -> AuditEntry:
        """
        Store *entry*, chained with unkeyed SHA-256, and return what was stored.
        """
        return self.append_linked([entry], link_entry)[0]

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
        *,
        batch: tuple[bytes, int] | None = None,
    ) -> list[AuditEntry]:
        """
        Atomically append *entries* after the head, in one fsynced transaction.

        Args:
            entries: what to append, in order.
            link: chains an entry after a link (`link_entry` or a keyed one).
            batch: ``(writer_id, number)`` makes a resent batch harmless:
                inside the same transaction, the entries are skipped (and
                ``[]`` returned) if that writer's last committed batch number
                is *number* or more, and otherwise *number* is recorded as
                its last. A writer numbers its batches upwards and sends a
                batch it is unsure about again with the same number. Markers
                of writers silent for `MARKER_TTL` seconds are dropped.

        Raises:
            InvalidConfigError: an entry has no timestamp, or a tenant id
                longer than 256 bytes; nothing was stored.
            CorruptRecordError: an entry past the head already exists.
        """
        if not entries:
            return []
        return self._env.write(self.append_write(entries, link, batch=batch))

    def append_write(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
        *,
        batch: tuple[bytes, int] | None = None,
    ) -> Callable[[Any], list[AuditEntry]]:
        """
        The body of the write transaction of `append_linked` (same
        arguments): to append *entries* in one transaction with other
        writes (`Environment.write`). It returns what was stored.

        Raises:
            InvalidConfigError: as `append_linked`, before any transaction.
        """
        places = []
        for entry in entries:
            prefix = tenant_prefix(entry.tenant_id)
            if entry.timestamp is None or prefix is None:
                msg = "audit entries need a timestamp and a tenant id of at most 256 bytes"
                raise InvalidConfigError(msg, field="entry")
            places.append(time_key(prefix, micros(entry.timestamp)))
        db, index, meta = self._db, self._index, self._meta

        # The logger's linker also hands out the stored form, made from the
        # same pieces as the hash.
        link_json: Callable[[ChainLink, AuditEntry], tuple[AuditEntry, bytes]] = (
            getattr(link, "link_json", None) or _link_json(link)
        )

        def write(txn: Any) -> list[AuditEntry]:
            if batch is not None and _seen(txn, meta, *batch):
                return []
            prev = _read_link(txn, meta, _HEAD) or GENESIS
            stored = []
            for entry, place in zip(entries, places, strict=True):
                linked, raw = link_json(prev, entry)
                key = TIME.pack(linked.seq)
                if not txn.put(key, raw, db=db, overwrite=False):
                    raise CorruptRecordError(
                        "lmdb:audit", f"entry {linked.seq}", "exists past the head"
                    )
                txn.put(place + key, b"", db=index)
                stored.append(linked)
                prev = ChainLink(linked.seq, linked.hash)
            txn.put(_HEAD, _encode_link(prev), db=meta)
            return stored

        return write

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries in ``[start, end]``, oldest first (ties by
        seq): one range scan of the time index.

        Raises:
            InvalidConfigError: *start* or *end* is not aware.
            CorruptRecordError: an entry in the range cannot be decoded, or
                the index points to a missing entry.
        """
        first, last = micros(start), micros(end)
        prefix = tenant_prefix(tenant_id)
        if prefix is None:
            return []
        db, index = self._db, self._index

        def read(txn: Any) -> list[AuditEntry]:
            found = []
            for key, _ in scan(txn, index, prefix, first, last):
                seq_key = key[-TIME.size :]
                raw = txn.get(seq_key, db=db)
                if raw is None:
                    raise CorruptRecordError(
                        "lmdb:audit_time",
                        f"{tenant_id}/{_seq(seq_key)}",
                        "points to a missing entry",
                    )
                found.append(_decode(_seq(seq_key), raw))
            return found

        return self._env.read(read)

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """
        Call ``visit(anchor, head, entries)`` inside one read transaction.
        """
        db, meta = self._db, self._meta

        def read(txn: Any) -> T:
            anchor = _read_link(txn, meta, _ANCHOR) or GENESIS
            head = _read_link(txn, meta, _HEAD) or anchor

            def entries() -> Iterator[tuple[int, AuditEntry | None]]:
                with txn.cursor(db=db) as cursor:
                    for key, raw in cursor:
                        seq = _seq(key)
                        try:
                            yield seq, _decode(seq, raw)
                        except CorruptRecordError:
                            yield seq, None

            return visit(anchor, head, entries())

        return self._env.read(read)

    def purge(self, before: datetime) -> int:
        """
        Drop the oldest entries, in seq order, while they are older than
        *before*; the last dropped becomes the anchor.

        Works in transactions of `PURGE_CHUNK` entries, each one atomic.

        Raises:
            InvalidConfigError: *before* is not aware.
            CorruptRecordError: an entry to inspect cannot be decoded.
        """
        limit = micros(before)
        db, index, meta = self._db, self._index, self._meta

        def write(txn: Any) -> int:
            count = 0
            last: AuditEntry | None = None
            with txn.cursor(db=db) as cursor:
                found = cursor.first()
                while found and count < PURGE_CHUNK:
                    key = cursor.key()
                    entry = _decode(_seq(key), cursor.value())
                    assert entry.timestamp is not None
                    if micros(entry.timestamp) >= limit:
                        break
                    prefix = tenant_prefix(entry.tenant_id) or b""
                    txn.delete(
                        time_key(prefix, micros(entry.timestamp)) + key, db=index
                    )
                    found = cursor.delete()
                    found = found and bool(cursor.key())
                    last = entry
                    count += 1
            if last is not None:
                txn.put(_ANCHOR, _encode_link(ChainLink(last.seq, last.hash)), db=meta)
            return count

        total = 0
        while True:
            count = self._env.write(write)
            total += count
            if count < PURGE_CHUNK:
                return total

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """

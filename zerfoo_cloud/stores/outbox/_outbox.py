"""
`Outbox`: a durable local queue, in its own LMDB environment, of the billing
records and audit entries that the records database did not take, and the
drain rounds that hand them to it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import (
    CorruptRecordError,
    InvalidConfigError,
    StoreError,
    StoreFullError,
)
from zerfoo_cloud.stores.lmdb._env import (
    DEFAULT_MAP_SIZE,
    DEFAULT_MAX_MAP_SIZE,
    Environment,
)
from zerfoo_cloud.stores.lmdb._folders import FolderRegistry
from zerfoo_cloud.stores.lmdb._host_lock import HostLock
from zerfoo_cloud.stores.outbox._codec import item_count
from zerfoo_cloud.stores.outbox._drainer import (
    FIRST_RETRY,
    MAX_RETRY,
    Backoff,
    Drainer,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "KINDS",
    "Outbox",
    "OutboxDepth",
    "OutboxSink",
    "OutboxWatcher",
    "QuarantinedBatch",
]

T = TypeVar("T")

#: What an outbox holds: billing record batches and audit entry batches.
KINDS = ("billing", "audit")
_DBS = (*KINDS, "quarantine", "meta")
_NUMBER = struct.Struct(">Q")
_REASON = struct.Struct(">H")
#: Room kept past *max_map_size* so that a full outbox can still delete
#: what it drained (an LMDB delete writes pages too): an eighth of the
#: limit, at least this many bytes.
MIN_RESERVE = 1 << 16

_log = logging.getLogger("zerfoo_cloud.outbox")


class OutboxDepth(NamedTuple):
    """
    How many items an outbox holds, not yet in the records database.
    """

    #: Billing records.
    billing: int
    #: Audit entries.
    audit: int


class QuarantinedBatch(NamedTuple):
    """
    A stored batch the outbox could not read back: set aside, never
    delivered and never deleted by the outbox.
    """

    #: ``"billing"`` or ``"audit"``.
    kind: str
    #: Its place in the outbox (the ``N`` of ``batch N``).
    number: int
    #: Why it could not be read.
    reason: str
    #: What was stored.
    raw: bytes


class OutboxSink(Protocol):
    """
    A store that drains one kind of an outbox's batches into its primary
    (`OutboxBillingStore`, `OutboxAuditStore`).
    """

    #: Which kind of batch it drains (one of `KINDS`).
    kind: str

    def drain_once(self) -> int:
        """
        Deliver the oldest batches to the primary and delete them from the
        outbox; return how many items were delivered (0: none waits, or
        none can go yet). Raises whatever the primary raised: the batches
        stay.
        """
        ...


class OutboxWatcher(Protocol):
    """
    Told of an outbox's depth and drain trouble
    (`zerfoo_cloud.metrics.OutboxMetrics`).
    """

    def depth_changed(self, depth: OutboxDepth) -> None:
        """
        The depth this process last saw.
        """
        ...

    def drain_failed(self, kind: str) -> None:
        """
        A drain round of *kind* failed; the batches are kept.
        """
        ...

    def quarantined(self, kind: str) -> None:
        """
        A corrupt batch of *kind* was set aside.
        """
        ...


def _key(number: int) -> bytes:
    return _NUMBER.pack(number)


class Outbox(ClosedOnExit):
    """
    A durable local queue of billing record batches and audit entry
    batches, in arrival order, and the thread that drains it.

    Open it with `Outbox.open`; `OutboxBillingStore` and `OutboxAuditStore`
    put into it what their primary store cannot take now and attach
    themselves as its sinks. Every `put` is one fsynced LMDB transaction:
    when it returns, the batch survives a ``SIGKILL`` or a power loss.

    **Draining.** One background thread per outbox (started by the first
    `put`, or by attaching a sink while batches wait) hands the oldest
    batches to their sink, which commits them to its primary; a batch is
    deleted only after that commit returned. Failed rounds are retried
    after a jittered backoff from *first_retry* to *max_retry* seconds and
    counted (`drain_failures`). Processes of one host may share an outbox
    folder: a lock file (``drain.lock``, released by the kernel when its
    holder dies) lets one of them drain at a time. `close` stops the
    thread; a forked child starts its own on first use.

    **Corrupt batches.** A batch that cannot be read back raises
    `CorruptRecordError` naming it (``outbox:billing``, ``batch N``); the
    drain round logs that error, moves the batch to the ``quarantine``
    database (`quarantined`, counted in `OutboxWatcher.quarantined`) and
    drains the rest. Nothing is deleted without being delivered or set
    aside.

    **Disk full.** A `put` that does not fit raises
    `zerfoo_cloud.errors.StoreFullError`; nothing of it was kept (a
    `zerfoo_cloud.metering.TokenMeter` keeps the batch queued, as for any
    failing store).

    The folder holds only the outbox (an LMDB environment, mode 0600, and
    the lock file); never open an `zerfoo_cloud.stores.lmdb.LMDBStores`
    there.
    """

    def __init__(
        self,
        path: Path,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
    ) -> None:
        if not 0 < first_retry <= max_retry:
            msg = (
                "first_retry and max_retry must be positive, first_retry not "
                f"above max_retry, not {first_retry!r} and {max_retry!r}"
            )
            raise InvalidConfigError(msg, field="first_retry")
        self.path = path
        self.max_map_size = max_map_size
        self._env = Environment(
            str(path),
            _DBS,
            durable=True,
            map_size=map_size,
            max_map_size=max_map_size + max(max_map_size // 8, MIN_RESERVE),
        )
        self._dbs = self._env.dbs
        self._page = int(
            self._env.read(lambda txn: txn.stat(self._dbs["meta"])["psize"])
        )
        self._sinks: dict[str, OutboxSink] = {}
        self._watchers: list[OutboxWatcher] = []
        self._failures = dict.fromkeys(KINDS, 0)
        self._failing = dict.fromkeys(KINDS, False)
        self._drainer = Drainer(
            f"zerfoo-cloud outbox drainer {path}",
            self._drain_round,
            self._has_work,
            Backoff(first_retry, max_retry),
        )
        self._host_lock = HostLock(path / "drain.lock")
        self._reset()
        reset_in_child(self)

    def _reset(self) -> None:
        self._round_lock = threading.Lock()
        self._changed = threading.Condition(threading.Lock())

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # The inherited descriptor shares the parent's lock: close it (which
        # leaves the parent's lock alone) and take a descriptor of our own.
        self._host_lock.forked()
        self._reset()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
    ) -> Outbox:
        """
        Open (creating if needed, mode 0700) the outbox folder *path*.

        Args:
            path: a folder of its own on a local disk.
            map_size: initial size of the LMDB map in bytes; it doubles
                when full.
            max_map_size: the batches waiting never take more than this
                many bytes; a `put` past it raises
                `zerfoo_cloud.errors.StoreFullError`. The map may grow an
                eighth further (at least `MIN_RESERVE` bytes), so that a
                full outbox can still delete what it drains.
            first_retry: seconds before the drainer retries a failed round
                (the wait doubles, with jitter, on every failure).
            max_retry: the longest wait between retries.

        Returns:
            The outbox. Opening a folder this process has open returns the
            same object (its `close` is reference counted): LMDB must not
            be opened twice in one process.

        Raises:
            StoreError: the folder cannot be created or opened.
            InvalidConfigError: bad retry times.
        """
        return _OPEN.open(
            path,
            lambda folder: cls(
                folder,
                map_size=map_size,
                max_map_size=max_map_size,
                first_retry=first_retry,
                max_retry=max_retry,
            ),
        )

    # -- storing ----------------------------------------------------------

    def put(self, kind: str, count: int, raw: bytes) -> int:
        """
        Append one stored batch of *count* items of *kind* (its form made
        by the sink) in one fsynced transaction; return its number.

        Raises:
            StoreFullError: the disk or *max_map_size* is full; nothing was
                kept.
            StoreError: the outbox cannot be written.
        """
        dbs = self._handles(kind)
        page = self._page
        # The pages the batch takes, and those its tree path may add.
        need = (len(raw) // page + 4) * page

        def write(txn: Any) -> int:
            db, meta = dbs[kind], dbs["meta"]
            used = page * sum(_pages(txn.stat(self._dbs[name])) for name in _DBS)
            if used + need > self.max_map_size:
                msg = (
                    f"the outbox at {str(self.path)!r} is full ({used} bytes wait, "
                    f"its limit is {self.max_map_size}); raise its max_map_size or "
                    "bring the records database back: nothing was written"
                )
                raise StoreFullError(msg)
            number = _read_number(txn, meta, b"next/" + kind.encode()) or 1
            txn.put(b"next/" + kind.encode(), _key(number + 1), db=meta)
            txn.put(_key(number), raw, db=db)
            _add_count(txn, meta, kind, count)
            return number

        number = self._env.write(write)
        self._after_change()
        self._drainer.wake()
        return number

    def pending(self, kind: str) -> int:
        """
        How many items of *kind* wait in the outbox.
        """
        dbs = self._handles(kind)
        return self._env.read(
            lambda txn: _read_number(txn, dbs["meta"], b"count/" + kind.encode())
        )

    def depth(self) -> OutboxDepth:
        """
        How many billing records and audit entries wait, read from the
        outbox now (batches put by other processes sharing it included).
        """
        dbs = self._dbs

        def read(txn: Any) -> OutboxDepth:
            meta = dbs["meta"]
            return OutboxDepth(
                *(_read_number(txn, meta, b"count/" + k.encode()) for k in KINDS)
            )

        return self._env.read(read)

    def oldest(
        self, kind: str, max_items: int, decode: Callable[[int, bytes], T]
    ) -> list[tuple[int, T]]:
        """
        The oldest batches of *kind*, decoded, as ``(number, batch)``: at
        least one if any waits, then more while they hold at most
        *max_items* items in all.

        A batch *decode* refuses with `CorruptRecordError` is logged and
        moved to the quarantine (see the class docstring), and the rest
        are read on.
        """
        dbs = self._handles(kind)

        def read(txn: Any) -> list[tuple[int, bytes]]:
            db = dbs[kind]
            found: list[tuple[int, bytes]] = []
            total = 0
            with txn.cursor(db=db) as cursor:
                for key, raw in cursor:
                    count = item_count(raw) or 0
                    if found and total + count > max_items:
                        break
                    found.append((_NUMBER.unpack(key)[0], raw))
                    total += count
            return found

        while True:
            decoded = []
            for number, raw in self._env.read(read):
                try:
                    decoded.append((number, decode(number, raw)))
                except CorruptRecordError as exc:  # noqa: PERF203 - rare
                    self._quarantine(kind, number, raw, exc)
                    break
            else:
                return decoded

    def remove(self, kind: str, numbers: Sequence[int]) -> None:
        """
        Delete the delivered batches *numbers* of *kind* in one fsynced
        transaction (those already gone are skipped).
        """
        dbs = self._handles(kind)

        def write(txn: Any) -> None:
            db, meta = dbs[kind], dbs["meta"]
            gone = 0
            for number in numbers:
                raw = txn.pop(_key(number), db=db)
                if raw is not None:
                    gone += item_count(raw) or 0
            _add_count(txn, meta, kind, -gone)

        self._env.write(write)
        self._after_change()

    def _quarantine(
        self, kind: str, number: int, raw: bytes, error: CorruptRecordError
    ) -> None:
        _log.error("%s; it is moved to the outbox quarantine", error)
        dbs = self._handles(kind)
        reason = error.reason.encode()[:60_000]

        def write(txn: Any) -> None:
            db, meta, quarantine = dbs[kind], dbs["meta"], dbs["quarantine"]
            if txn.pop(_key(number), db=db) is None:
                return
            txn.put(
                kind.encode() + b"/" + _key(number),
                _REASON.pack(len(reason)) + reason + raw,
                db=quarantine,
            )
            # What the batch held may be unreadable too: count what is left.
            left = sum(item_count(value) or 0 for _, value in txn.cursor(db=db))
            txn.put(b"count/" + kind.encode(), _key(left), db=meta)

        self._env.write(write)
        for watcher in self._watchers:
            watcher.quarantined(kind)
        self._after_change()

    def quarantined(self) -> list[QuarantinedBatch]:
        """
        Every batch set aside as corrupt, by kind and number; an operator
        reads them here (the outbox never deletes them).
        """
        dbs = self._dbs

        def read(txn: Any) -> list[QuarantinedBatch]:
            quarantine = dbs["quarantine"]
            found = []
            for key, value in txn.cursor(db=quarantine):
                kind, _, number = key.partition(b"/")
                (size,) = _REASON.unpack_from(value)
                found.append(
                    QuarantinedBatch(
                        kind.decode(),
                        _NUMBER.unpack(number)[0],
                        value[_REASON.size : _REASON.size + size].decode(
                            errors="replace"
                        ),
                        value[_REASON.size + size :],
                    )
                )
            return found

        return self._env.read(read)

    def _handles(self, kind: str) -> dict[str, Any]:
        # The database handles, looked up inside each transaction: a forked
        # child's environment replaces them when it reopens.
        if kind not in KINDS:
            msg = f"an outbox holds {' or '.join(KINDS)} batches, not {kind!r}"
            raise InvalidConfigError(msg, field="kind")
        return self._dbs

    def _after_change(self) -> None:
        with self._changed:
            self._changed.notify_all()
        if self._watchers:
            depth = self.depth()
            for watcher in self._watchers:
                watcher.depth_changed(depth)

    # -- draining ---------------------------------------------------------

    def attach(self, sink: OutboxSink) -> None:
        """
        Make *sink* the drain of its kind, and start draining if batches wait.

        Raises:
            InvalidConfigError: another sink drains that kind.
        """
        self._handles(sink.kind)
        with self._round_lock:
            current = self._sinks.get(sink.kind)
            if current is not None and current is not sink:
                msg = f"the outbox at {str(self.path)!r} already drains {sink.kind} into another store"
                raise InvalidConfigError(msg, field="outbox")
            self._sinks[sink.kind] = sink
        if self.pending(sink.kind):
            self._drainer.wake()

    def detach(self, sink: OutboxSink) -> None:
        """
        Stop draining into *sink* (what waits stays in the outbox).
        """
        with self._round_lock:
            if self._sinks.get(sink.kind) is sink:
                del self._sinks[sink.kind]

    def wake(self) -> None:
        """
        Have the drainer look at the outbox now (unless it is backing off).
        """
        self._drainer.wake()

    def watch(self, watcher: OutboxWatcher) -> None:
        """
        Tell *watcher* of every change of depth, drain failure and
        quarantined batch from now on, starting with the depth now.
        """
        self._watchers.append(watcher)
        watcher.depth_changed(self.depth())

    @property
    def drain_failures(self) -> dict[str, int]:
        """
        How many drain rounds failed in this process, by kind.
        """
        return dict(self._failures)

    def _has_work(self) -> bool:
        depth = self.depth()
        return any(getattr(depth, kind) for kind in self._sinks)

    def _drain_round(self, *, wait: bool = False) -> int:
        # One pass over every attached kind, under the process's and the
        # host's drain locks; raises the first failure, having tried each.
        with self._round_lock:
            if not self._host_lock.acquire(wait=wait):
                return 0
            try:
                delivered = 0
                failure: BaseException | None = None
                for kind, sink in list(self._sinks.items()):
                    try:
                        delivered += sink.drain_once()
                    except Exception as exc:  # noqa: BLE001, PERF203 - counted, kept, raised below
                        self._drain_failed(kind, exc)
                        failure = failure or exc
                    else:
                        self._drain_worked(kind)
                if failure is not None:
                    raise failure
                return delivered
            finally:
                self._host_lock.release()

    def _drain_failed(self, kind: str, exc: BaseException) -> None:
        self._failures[kind] += 1
        for watcher in self._watchers:
            watcher.drain_failed(kind)
        if not self._failing[kind]:
            self._failing[kind] = True
            # A foreign store's message may hold a password: ours only.
            detail = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
            _log.warning(
                "the outbox could not drain %s batches (%s); they are kept and retried",
                kind,
                detail,
            )

    def _drain_worked(self, kind: str) -> None:
        if self._failing[kind]:
            self._failing[kind] = False
            _log.warning("the outbox drains %s batches again", kind)

    def drain_now(self) -> int:
        """
        Drain what can go now, in the calling thread (waiting for another
        process's round to end first); return how many items were
        delivered.

        Raises:
            Exception: what a primary raised; those batches are kept.
        """
        total = 0
        while self._has_work():
            delivered = self._drain_round(wait=True)
            if not delivered:
                break
            total += delivered
        return total

    def wait_empty(self, timeout: float, kinds: Sequence[str] = KINDS) -> bool:
        """
        Wait up to *timeout* seconds until no item of *kinds* waits;
        return whether none does.
        """
        deadline = time.monotonic() + timeout
        while True:
            depth = self.depth()
            if not any(getattr(depth, kind) for kind in kinds):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                # Changes made by other processes are seen by polling.
                self._changed.wait(min(left, 0.05))

    # -- lifecycle --------------------------------------------------------

    def close(self, timeout: float | None = 10.0) -> None:
        """
        Release this reference; the last one stops the drainer (waiting up
        to *timeout* seconds for a round under way) and closes the
        environment. What waits stays for the next process.
        """
        if not _OPEN.release(self):
            return
        self._drainer.stop(timeout)
        with self._round_lock:
            self._host_lock.close()
        self._env.close()

    @property
    def closed(self) -> bool:
        """
        Whether every reference was closed.
        """
        return not _OPEN.holds(self)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]


def _read_number(txn: Any, meta: Any, name: bytes) -> int:
    raw = txn.get(name, db=meta)
    if raw is None:
        return 0
    if len(raw) != _NUMBER.size:
        raise CorruptRecordError("outbox:meta", name.decode(), "not a number")
    return int(_NUMBER.unpack(raw)[0])


def _add_count(txn: Any, meta: Any, kind: str, delta: int) -> None:
    name = b"count/" + kind.encode()
    txn.put(name, _key(max(0, _read_number(txn, meta, name) + delta)), db=meta)


#: The outboxes open in this process, one per folder.
_OPEN: FolderRegistry[Outbox] = FolderRegistry("outbox")

"""
A background writer that commits queued items in batches (group commit).

`TokenMeter`, `AuditLogger` and the usage events (`UsageEvents`) hand every
item to a `BatchWriter`, the package's one kind of background writer. Its
thread takes everything queued so far (up to *max_batch*) and commits it in
one call, typically one fsynced store transaction; while that runs, new
records queue up and go into the next batch. The caller never waits for the
disk: `BatchWriter.submit` only takes a lock and appends to a queue.

Failures lose nothing. A batch whose commit raised goes back to the front of
the queue and is retried every *retry_interval* seconds and on every
`BatchWriter.flush`; the flush waiters get a `StoreError` meanwhile. Only a
full queue (*max_pending*) refuses new items, with a `StoreError` the caller
sees.

A store may commit the batches itself (a
`zerfoo_cloud.stores.protocols.BatchCommitter`, such as the LMDB stores'
writer process); one that an event loop can drive
(`zerfoo_cloud.stores.protocols.LoopCommitter`) lets a durable response wait
for its commit with no thread hand-off.

After ``fork()`` a child starts with an empty queue (what the parent queued
is the parent's to write) and starts its own thread on first use
(`zerfoo_cloud._fork`). At interpreter exit every writer is closed, so
queued records are written.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreFullError
from zerfoo_cloud.stores.protocols import LoopCommitter

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import BatchCommitter, CommitExchange

__all__ = [
    "BatchWriter",
    "choose_linger",
    "in_background",
]

T = TypeVar("T")


#: ``start_in_loop(batch, loop, done)`` of a
#: `zerfoo_cloud.stores.protocols.LoopCommitter`.
_LoopStart = Callable[
    [list[T], asyncio.AbstractEventLoop, Callable[[StoreError | None], None]],
    "CommitExchange | None",
]

#: Default largest batch committed in one call.
DEFAULT_MAX_BATCH = 10_000
#: Default largest queue; past it `BatchWriter.submit` refuses new items.
DEFAULT_MAX_PENDING = 100_000
#: Default seconds between retries of a failed commit.
DEFAULT_RETRY_INTERVAL = 1.0
#: Default seconds the thread lets items gather before it commits them,
#: unless a flush waits: fewer, larger commits cost less CPU per item. A
#: store's committer may choose another (`BatchCommitter.linger`).
DEFAULT_LINGER = 0.005
#: The longest linger.
MAX_LINGER = 1.0
#: How long the exit hook waits for each writer to drain.
_EXIT_TIMEOUT = 10.0

_WRITERS: weakref.WeakSet[BatchWriter[Any]] = weakref.WeakSet()


def in_background(store: object, background: bool | None) -> bool:
    """
    Whether to write to *store* from a writer thread: *background* if given,
    else unless the store says it lives in memory (``in_memory``).
    """
    if background is None:
        return not getattr(store, "in_memory", False)
    return background


def choose_linger(linger: float | None, committer: BatchCommitter | None) -> float:
    """
    *linger* if given, else the default: the *committer*'s if the store
    gave one, `DEFAULT_LINGER` otherwise.
    """
    if linger is not None:
        return linger
    return DEFAULT_LINGER if committer is None else committer.linger


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive integer, not {value!r}"
        raise InvalidConfigError(msg, field=name)
    return value


class BatchWriter(Generic[T]):
    """
    Queue items and commit them in batches from one background thread.

    Args:
        commit: called with a list of queued items, oldest first; it makes
            them durable, or raises. If it made some of them durable before
            raising, it removes those from the front of the list first; what
            is left in the list is kept and retried.
        name: what the writer serves, for messages (``"token meter"``).
        noun: what the items are, for messages (``"billing records"``).
        background: ``False`` commits each item in `submit`, in the caller's
            thread (for in-memory stores, which never block); a failure then
            raises from `submit` and the item is not kept.
        max_batch: at most this many items per commit.
        max_pending: at most this many items not yet durable (queued or
            being committed); `submit` refuses more.
        retry_interval: seconds between retries of a failed commit.
        linger: seconds the thread waits, once woken by a new item, for
            more to gather before it commits (0: commit at once). A flush or
            close ends the wait at once.
        logger: where failures and recoveries are logged.
    """

    def __init__(
        self,
        commit: Callable[[list[T]], object],
        *,
        name: str,
        noun: str,
        background: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        linger: float = DEFAULT_LINGER,
        logger: logging.Logger | None = None,
    ) -> None:
        self._commit = commit
        self.name = name
        self.noun = noun
        self.background = background
        self.max_batch = _positive_int("max_batch", max_batch)
        self.max_pending = _positive_int("max_pending", max_pending)
        if not retry_interval > 0:
            msg = f"retry_interval must be positive, not {retry_interval!r}"
            raise InvalidConfigError(msg, field="retry_interval")
        self.retry_interval = float(retry_interval)
        if not 0 <= linger <= MAX_LINGER:
            msg = f"linger must be 0 to {MAX_LINGER} seconds, not {linger!r}"
            raise InvalidConfigError(msg, field="linger")
        self.linger = float(linger)
        self._log = logger or logging.getLogger("zerfoo_cloud")
        # A store's committer can also be driven by an event loop that waits
        # for it: no thread hand-off on that path.
        self._start_in_loop: _LoopStart[T] | None = (
            commit.start_in_loop
            if background and isinstance(commit, LoopCommitter)
            else None
        )
        self._reset()
        _WRITERS.add(self)
        reset_in_child(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: collections.deque[T] = collections.deque()
        self._submitted = 0  # items accepted, ever
        self._done = 0  # items made durable, ever
        self._waiters: list[tuple[int, concurrent.futures.Future[None]]] = []
        # The one future of every flush asked for since the last batch was
        # taken: the next batch holds all their items, so one completion
        # (one wake-up of each waiting event loop) answers them all.
        self._shared: concurrent.futures.Future[None] | None = None
        self._error: StoreError | None = None
        self._retry_at = 0.0
        self._retry_now = False
        self._idle = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # A batch is being committed (by the thread or by an event loop);
        # the loop that commits one, and its exchange with the writer process.
        self._busy = False
        self._in_loop: asyncio.AbstractEventLoop | None = None
        self._exchange: CommitExchange | None = None
        # The thread waits for the loop's commit to end.
        self._parked = False
        # When a loop's commit last ended (monotonic seconds).
        self._loop_ended_at = -MAX_LINGER

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        self._reset()

    # -- the caller's side -------------------------------------------------

    def submit(self, item: T) -> None:
        """
        Queue *item* (background mode) or commit it now.

        Raises:
            StoreError: the writer is closed, or *max_pending* items are
                waiting (the store has been failing): *item* was not kept.
                In foreground mode, the commit failed.
        """
        if not self.background:
            self._commit_now(item)
            return
        # The bare lock, not the condition: entering a Condition costs a
        # Python-level call, and this runs once per request.
        with self._lock:
            if self._closed:
                msg = f"the {self.name} is closed; nothing was recorded"
                raise StoreError(msg)
            if self._submitted - self._done >= self.max_pending:
                raise self._backlogged()
            self._pending.append(item)
            self._submitted += 1
            if self._thread is None:
                self._start()
            elif self._idle:
                self._cond.notify()

    def _commit_now(self, item: T) -> None:
        with self._cond:
            if self._closed:
                msg = f"the {self.name} is closed; nothing was recorded"
                raise StoreError(msg)
            try:
                self._commit([item])
            except Exception as exc:
                raise self._as_store_error(exc, 1, kept=False) from exc
            self._submitted += 1
            self._done += 1

    def _backlogged(self) -> StoreError:
        reason = f": {self._error}" if self._error is not None else ""
        return StoreError(
            f"the {self.name} already has {self.pending} {self.noun} "
            f"waiting to be written, its limit{reason}; this one was not "
            "recorded"
        )

    def _start(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"zerfoo-cloud {self.name} writer", daemon=True
        )
        self._thread = thread
        thread.start()

    @property
    def pending(self) -> int:
        """
        How many submitted items are not durable yet.
        """
        return self._submitted - self._done

    @property
    def error(self) -> StoreError | None:
        """
        The failure of the last commit, or ``None`` if it succeeded.
        """
        return self._error

    def flush_future(self) -> concurrent.futures.Future[None]:
        """
        Return a future that completes once every item submitted so far is durable.

        It fails with `StoreError` (or `StoreFullError`) if a commit fails
        before then; the items stay queued. The call also asks the thread to
        retry a failed commit at once.

        Called on an event loop, with a `LoopCommitter` that is idle and not
        failing, the loop commits the queued items itself (with the LMDB
        writer process: it writes them to the process now and reads the
        answer when it comes), and the items queued meanwhile go in its next
        batch. No thread is woken on that path.
        """
        cond = self._cond
        loop = None
        if self._start_in_loop is not None:
            loop = asyncio._get_running_loop()  # noqa: SLF001 - the cheap probe
        batch = None
        with cond:
            if self._done >= self._submitted:
                future: concurrent.futures.Future[None] = concurrent.futures.Future()
                future.set_result(None)
                return future
            if self._pending:
                shared = self._shared
                if shared is None:
                    shared = self._shared = concurrent.futures.Future()
                if loop is not None and not self._busy and self._error is None:
                    batch = self._take()
                    self._in_loop = loop
            else:
                # All of it is in the batch being committed: no later batch
                # would hold it.
                shared = concurrent.futures.Future()
                self._waiters.append((self._submitted, shared))
            if batch is None and self._in_loop is None:
                self._retry_now = True
                cond.notify()
        if batch is not None:
            assert loop is not None
            self._drive(batch, loop)
        return shared

    def _drive(self, batch: list[T], loop: asyncio.AbstractEventLoop) -> None:
        # On the loop: commit *batch* through the committer, or give it
        # back to the thread when only the thread can.
        assert self._start_in_loop is not None
        size = len(batch)

        def done(error: StoreError | None) -> None:
            if error is None:
                self._succeeded(size)
            else:
                self._failed(batch, size, error)
            self._next_in_loop(loop)

        exchange = self._start_in_loop(batch, loop, done)
        if exchange is None:
            with self._cond:
                self._pending.extendleft(reversed(batch))
                self._busy = False
                self._in_loop = None
                self._retry_now = True
                self._cond.notify()
        elif self._in_loop is loop:
            self._exchange = exchange

    def _next_in_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # After the loop's commit: what was queued meanwhile, if a flush
        # waits for it, goes next from the loop too; else the thread has it.
        cond = self._cond
        with cond:
            self._loop_ended_at = time.monotonic()
            batch = None
            if self._pending and self._shared is not None and self._error is None:
                if loop.is_running():
                    batch = self._take()
                    self._in_loop = loop
                else:
                    # Finished for a loop that stopped: the thread goes on.
                    self._retry_now = True
                    cond.notify()
            elif self._parked:
                cond.notify()
        if batch is not None:
            self._drive(batch, loop)

    def _take(self) -> list[T]:
        # Under the lock: the next batch, for the thread or a loop to commit.
        self._retry_now = False
        self._busy = True
        pending = self._pending
        shared = self._shared
        if shared is not None:
            # Every item its flushes waited for is queued now: done once
            # the queue so far is (this batch, if all of it fits).
            self._shared = None
            self._waiters.append((self._submitted, shared))
        if len(pending) <= self.max_batch:
            batch = list(pending)
            pending.clear()
            return batch
        return [pending.popleft() for _ in range(self.max_batch)]

    def flush(self, timeout: float | None = None) -> None:
        """
        Return once every item submitted before the call is durable.

        Raises:
            StoreError: a commit failed (the items are kept and retried), or
                *timeout* seconds passed first.
        """
        future = self.flush_future()
        # An event loop that blocks here cannot read the answer of its own
        # commit, nor can one that stopped: read it now, in this thread.
        while not future.done():
            exchange = self._exchange
            if exchange is None or not exchange.stalled:
                break
            exchange.finish_blocking()
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            msg = (
                f"the {self.name} still had {self.pending} {self.noun} to write "
                f"after {timeout} s"
            )
            raise StoreError(msg) from None

    def close(self, timeout: float | None = None) -> None:
        """
        Refuse new items, write the queued ones, and stop the thread.

        Raises:
            StoreError: the queued items could not be written; they stay
                queued and the thread keeps retrying, so `close` may be
                called again.
        """
        with self._cond:
            self._closed = True
        self.flush(timeout)
        with self._cond:
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the writer thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            size = len(batch)
            try:
                self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - every failure is kept and reported
                self._failed(batch, size, exc)
            else:
                self._succeeded(size)

    def _next_batch(self) -> list[T] | None:
        cond = self._cond
        with cond:
            pending = self._pending
            lingered = not self.linger
            while True:
                if self._busy:
                    # An event loop commits a batch; it wakes us once done.
                    self._parked = True
                    cond.wait()
                    self._parked = False
                    continue
                if pending:
                    if self._retry_now:
                        break
                    if self._error is None:
                        if self._closed or len(pending) >= self.max_batch:
                            break
                        if lingered and (
                            time.monotonic() - self._loop_ended_at >= self.linger
                        ):
                            break
                        # Let more items gather; submit does not wake us
                        # meanwhile, a flush or close does. While event
                        # loops commit batches (their flushes take what is
                        # queued), leave the items to them: a batch taken
                        # here would hold the loops' next one back.
                        lingered = True
                        cond.wait(self.linger)
                        continue
                    delay = self._retry_at - time.monotonic()
                    if delay <= 0:
                        break
                elif self._closed:
                    self._thread = None
                    return None
                else:
                    delay = None
                self._idle = True
                cond.wait(delay)
                self._idle = False
            return self._take()

    def _ended(self) -> None:
        # Under the lock: the batch being committed is done with.
        self._busy = False
        self._in_loop = None
        self._exchange = None

    def _resolve(self) -> list[concurrent.futures.Future[None]]:
        # Under the lock: detach the waiters whose items are all durable.
        done = self._done
        ready = [f for t, f in self._waiters if t <= done]
        if ready:
            self._waiters = [(t, f) for t, f in self._waiters if t > done]
        return ready

    def _succeeded(self, size: int) -> None:
        with self._cond:
            self._done += size
            self._ended()
            recovered = self._error is not None
            self._error = None
            ready = self._resolve()
            left = self.pending
        for future in ready:
            future.set_result(None)
        if recovered:
            self._log.warning(
                "the %s can write again; %d %s still waiting",
                self.name,
                left,
                self.noun,
            )

    def _failed(self, batch: list[T], size: int, exc: Exception) -> None:
        with self._cond:
            self._pending.extendleft(reversed(batch))
            self._done += size - len(batch)
            self._ended()
            first = self._error is None
            error = self._as_store_error(exc, self.pending, kept=True)
            self._error = error
            self._retry_at = time.monotonic() + self.retry_interval
            # The flushes waiting now get this failure as their answer; the
            # next retry waits for the interval or the next flush.
            self._retry_now = False
            ready = self._resolve()
            failed = [f for _, f in self._waiters]
            self._waiters = []
            if self._shared is not None:
                failed.append(self._shared)
                self._shared = None
        for future in ready:
            future.set_result(None)
        for future in failed:
            future.set_exception(_copy(error))
        if first:
            self._log.error("%s", error)

    def _as_store_error(self, exc: Exception, count: int, *, kept: bool) -> StoreError:
        # A foreign store's message may hold a connection string with a
        # password: only our own StoreError messages are repeated.
        detail = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
        if kept:
            fate = (
                f"they are kept and retried every {self.retry_interval:g} s and "
                "on every flush()"
            )
        else:
            fate = "nothing was recorded"
        msg = f"the {self.name} could not write {count} {self.noun} ({detail}); {fate}"
        error = (
            StoreFullError(msg) if isinstance(exc, StoreFullError) else StoreError(msg)
        )
        error.__cause__ = exc
        return error


def _copy(error: StoreError) -> StoreError:
    # Each waiter gets its own exception: one raised in several threads at
    # once would share (and garble) its traceback.
    copy = type(error)(str(error))
    copy.__cause__ = error.__cause__
    return copy


def _close_all() -> None:
    for writer in list(_WRITERS):
        if writer.background and writer.pending:
            try:
                writer.close(_EXIT_TIMEOUT)
            except StoreError as exc:
                writer._log.error("at exit: %s", exc)  # noqa: SLF001


atexit.register(_close_all)

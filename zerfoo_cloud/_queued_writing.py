"""
What the meter and the audit logger share over their writers: opening the
store's writer, flushing (blocking, or awaited without blocking the event
loop), closing and status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud._writer import BatchWriter, choose_linger, in_background
from zerfoo_cloud.errors import StoreError

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

    from zerfoo_cloud.stores.protocols import BatchCommitter

__all__ = ["QueuedWriting", "WriterTuning", "wait_for"]


class WriterTuning(NamedTuple):
    """
    The writer options a `TokenMeter` or an `AuditLogger` takes, as given:
    see `zerfoo_cloud._writer.BatchWriter` (``None`` picks the default).
    """

    background: bool | None
    max_batch: int
    max_pending: int
    retry_interval: float
    linger: float | None


class QueuedWriting(ClosedOnExit):
    """
    What `TokenMeter` and `AuditLogger` share: the flush, close and status
    methods over their writers.

    Subclasses set ``store`` and ``_committer``, the store writer's commit
    when the store gave one (`zerfoo_cloud.stores.protocols.BatchCommitter`),
    then open the store's writer with ``_open_writer``; ``_writers`` holds
    it first, then any other (the usage events').
    """

    store: object
    _writers: tuple[BatchWriter[Any], ...]
    _committer: BatchCommitter | None = None
    #: Whether the store's writer queues checked fields, not records: its
    #: committer makes the records (``takes_fields``).
    _fields: bool = False

    def _open_writer(
        self,
        names: tuple[str, str],
        commit: Callable[[list[Any]], object],
        tuning: WriterTuning,
        logger: logging.Logger,
    ) -> BatchWriter[Any]:
        # The store's writer, over ``self._committer`` when the store gave
        # one, else *commit*; *names* are the writer's name and its noun.
        committer = self._committer
        self._fields = committer is not None and committer.takes_fields
        writer: BatchWriter[Any] = BatchWriter(
            committer or commit,
            name=names[0],
            noun=names[1],
            background=in_background(self.store, tuning.background),
            max_batch=tuning.max_batch,
            max_pending=tuning.max_pending,
            retry_interval=tuning.retry_interval,
            linger=choose_linger(tuning.linger, committer),
            logger=logger,
        )
        self._writers = (writer,)
        return writer

    @property
    def pending(self) -> int:
        """
        How many records (or entries) are not durable yet.
        """
        return self._writers[0].pending

    @property
    def error(self) -> StoreError | None:
        """
        Why the last write to the store failed, or ``None`` if it worked.
        """
        return self._writers[0].error

    def _settle(self) -> None:
        # Read your own writes: wait for the store's queue first. A failing
        # store does not stop a read.
        with contextlib.suppress(StoreError):
            self._writers[0].flush()

    def flush(self, timeout: float | None = None) -> None:
        """
        Return once everything recorded before the call is durable.

        Raises:
            StoreError: the store failed (`StoreFullError`: the disk or map
                is full); what was recorded is kept and retried, so call it
                again later. Also raised when *timeout* seconds pass first.
        """
        for writer in self._writers:
            writer.flush(timeout)

    def flush_futures(self) -> list[concurrent.futures.Future[None]]:
        """
        Futures that all complete once everything recorded before the call
        is durable; one fails with `StoreError` as `flush` raises it.

        Taking them does not wait: a caller that must also wait for
        something else takes them first, so that one commit can serve both.
        """
        return [writer.flush_future() for writer in self._writers]

    async def aflush(self) -> None:
        """
        Like `flush`, but waits without blocking the event loop.

        Raises:
            StoreError: as `flush`.
        """
        for future in self.flush_futures():
            await wait_for(future)

    def close(self, timeout: float | None = None) -> None:
        """
        Flush, then stop the writer threads (and release the store's
        committer: the LMDB writer process); recording afterwards raises.

        The store (and a recorder) stay open: their owner closes them.

        Raises:
            StoreError: as `flush`; everything is still kept, and `close`
                may be called again.
        """
        for writer in self._writers:
            writer.close(timeout)
        if self._committer is not None:
            self._committer.close(timeout)


async def wait_for(future: concurrent.futures.Future[None]) -> None:
    """
    Await a writer's *future* without blocking the event loop.

    A future that is done already costs no wake-up of the loop; the many
    requests of one loop that wait for one batch share one wake-up.
    Cancelling the caller never cancels *future*.

    Raises:
        StoreError: the future failed.
    """
    if future.done():
        future.result()
        return
    loop = asyncio.get_running_loop()
    twin = _TWINS.get(future)
    if twin is None or twin.get_loop() is not loop:
        twin = _TWINS[future] = asyncio.wrap_future(future, loop=loop)
    await asyncio.shield(twin)


#: The event-loop future of each writer future that a loop awaits.
_TWINS: weakref.WeakKeyDictionary[
    concurrent.futures.Future[None], asyncio.Future[None]
] = weakref.WeakKeyDictionary()

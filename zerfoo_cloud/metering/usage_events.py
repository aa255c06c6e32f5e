"""
`UsageEvents`: the one route of usage events to their recorders.

Every usage event, whether a `TokenMeter` made it for its own recorder or
`zerfoo_cloud.CloudServer` (and the billing middleware) for theirs, is
queued on a `UsageEvents`: one `zerfoo_cloud._writer.BatchWriter` whose
thread hands each event to its recipients, in order, then flushes each
recipient that buffers (`Flushable`). Events are never handed to a recorder
from the thread that made them (a request's, or an event loop); a recorder
that raises is reported to its owner with the exception's type only (never
a message that could hold a secret), and never stops the others. A server
whose meter has a route uses that one, so one flush waits for both, and a
recorder given to both is called once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud._writer import DEFAULT_MAX_BATCH, DEFAULT_MAX_PENDING, BatchWriter
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.metering.events import Flushable

if TYPE_CHECKING:
    from zerfoo_cloud.metering.events import UsageEvent, UsageRecorder

__all__ = ["QUEUE_FULL", "Recipient", "UsageEvents"]

#: Why an event never reached a recipient whose queue was full.
QUEUE_FULL = "its queue is full"


@attrs.frozen(eq=False)
class Recipient:
    """
    A recorder and whom to tell when it fails: ``failed(why)``, *why* being
    the exception's type name, or `QUEUE_FULL`.

    .. versionadded:: 0.1.0
    """

    recorder: UsageRecorder
    failed: Callable[[str], object]

    def deliver(self, event: UsageEvent) -> None:
        """Hand *event* to the recorder; a failure goes to `failed`."""
        self._call(self.recorder.record, event)

    def flush(self) -> None:
        """Flush the recorder if it buffers; a failure goes to `failed`."""
        recorder = self.recorder
        if isinstance(recorder, Flushable):
            self._call(recorder.flush)

    def _call(self, method: Callable[..., object], *args: object) -> None:
        try:
            method(*args)
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            self.failed(type(exc).__name__)


_Item = tuple["UsageEvent", tuple[Recipient, ...]]


class UsageEvents:
    """
    Queue usage events for their recipients, handed over by one background
    thread (see the module docstring).

    Args:
        recipients: who gets the events of `publish` by default.
        max_batch: at most this many events per hand-over.
        max_pending: at most this many events queued; past it an event is
            dropped and each of its recipients told `QUEUE_FULL`.
        logger: where the writer logs.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        recipients: tuple[Recipient, ...] = (),
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        logger: logging.Logger | None = None,
    ) -> None:
        self.recipients = recipients
        self.writer: BatchWriter[_Item] = BatchWriter(
            self._deliver,
            name="usage recorder",
            noun="usage events",
            max_batch=max_batch,
            max_pending=max_pending,
            logger=logger,
        )

    def includes(self, recorder: object) -> bool:
        """Whether *recorder* is one of the default recipients' recorders."""
        return any(r.recorder is recorder for r in self.recipients)

    def publish(
        self, event: UsageEvent, recipients: tuple[Recipient, ...] | None = None
    ) -> None:
        """
        Queue *event* for *recipients* (default: `recipients`). Never
        raises for a full queue: each recipient is told instead.
        """
        to = self.recipients if recipients is None else recipients
        try:
            self.writer.submit((event, to))
        except StoreError:
            for recipient in to:
                recipient.failed(QUEUE_FULL)

    def flush(self, timeout: float | None = None) -> bool:
        """
        Wait until every event queued before the call was handed over;
        ``False`` if *timeout* seconds passed first.
        """
        try:
            self.writer.flush(timeout)
        except StoreError:
            return False
        return True

    @staticmethod
    def _deliver(batch: list[_Item]) -> None:
        # In the writer thread; never raises, so never retries.
        seen: dict[int, Recipient] = {}
        for event, recipients in batch:
            for recipient in recipients:
                recipient.deliver(event)
                seen.setdefault(id(recipient), recipient)
        for recipient in seen.values():
            recipient.flush()

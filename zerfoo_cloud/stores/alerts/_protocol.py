"""
`AlertOutbox`: the contract of a durable queue of alert deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from zerfoo_cloud.alert_records import AlertEvent, Attempt, Delivery, OutboxCounts

__all__ = ["OUTCOMES", "AlertOutbox"]

#: What an attempt leads to: the delivery went (it leaves the outbox), is
#: tried again at ``next_at``, or gave up (it becomes a dead letter).
OUTCOMES = ("delivered", "retry", "dead")


@runtime_checkable
class AlertOutbox(Protocol):
    """
    **Protocol**: Where alert deliveries wait (`zerfoo_cloud.alerts.Alerts`).

    One `Delivery` per event and endpoint URL, named by `Delivery.key`.
    Adding is idempotent by event id: an id the outbox has seen (queued,
    delivered or dead) is not queued again.

    .. versionadded:: 0.1.0
    """

    def add(self, event: AlertEvent, urls: Sequence[str], now: float) -> bool:
        """
        Queue *event* for each of *urls*, due at *now*, unless its id was
        seen; return whether it was new (it is remembered even with no
        URL). Atomic: with several processes, one of them gets ``True``.

        Raises:
            StoreFullError: the outbox is full; nothing was queued.
        """
        ...

    def due(self, now: float, limit: int) -> list[Delivery]:
        """
        Up to *limit* pending deliveries whose time has come, oldest first.
        """
        ...

    def next_due(self) -> float | None:
        """
        The earliest ``next_at`` of the pending deliveries (``None``: none).
        """
        ...

    def attempted(
        self, delivery: Delivery, attempt: Attempt, outcome: str, next_at: float
    ) -> None:
        """
        Record *attempt* of *delivery* and its *outcome* (one of
        `OUTCOMES`): delivered (dropped, counted), retry (at *next_at*) or
        dead (moved to the dead letters). A delivery no longer pending
        (retried or delivered by another process) is left alone.
        """
        ...

    def pending(self) -> list[Delivery]:
        """
        Every pending delivery, oldest first.
        """
        ...

    def dead_letters(self) -> list[Delivery]:
        """
        Every dead letter, oldest first.
        """
        ...

    def retry(self, event_id: str | None, now: float) -> int:
        """
        Make the dead letters of *event_id* (``None``: all) pending again,
        due at *now*, their attempts kept; return how many.
        """
        ...

    def counts(self) -> OutboxCounts:
        """
        How many deliveries are pending, dead, and were delivered.
        """
        ...

    def set_endpoints(self, endpoints: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """
        Remember the endpoints a server sends to, as ``(url, patterns)``,
        so that other processes of the host (commands changing keys) queue
        their events for the same endpoints.
        """
        ...

    def endpoints(self) -> list[tuple[str, tuple[str, ...]]]:
        """
        The endpoints last given to `set_endpoints` (none: empty).
        """
        ...

    def sending(self) -> AbstractContextManager[bool]:
        """
        A block in which this process may send: yields whether it holds the
        host's send lock (another process sending now: ``False``), so that
        one process of a host sends at a time.
        """
        ...

    def close(self) -> None:
        """
        Release the outbox; what waits stays (for the next process, where
        durable).
        """
        ...

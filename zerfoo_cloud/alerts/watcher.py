"""
`AlertWatcher`: what is told of alert deliveries as they go
(`zerfoo_cloud.metrics.AlertMetrics` shows them on ``/metrics``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from zerfoo_cloud.alert_records import OutboxCounts

__all__ = ["AlertWatcher"]


class AlertWatcher(Protocol):
    """
    **Protocol**: Told of every delivery outcome of an
    `zerfoo_cloud.alerts.Alerts`, from its threads.

    .. versionadded:: 0.1.0
    """

    def counts_changed(self, counts: OutboxCounts) -> None:
        """
        The outbox's counts as this process last read them.
        """
        ...

    def delivered(self) -> None:
        """
        One delivery went (a 2xx answer).
        """
        ...

    def attempt_failed(self) -> None:
        """
        One attempt failed (not 2xx, a timeout, no connection).
        """
        ...

    def dead_lettered(self) -> None:
        """
        One delivery gave up and became a dead letter.
        """
        ...

    def dropped(self) -> None:
        """
        One event was not queued: the hand-off queue or the outbox was full.
        """
        ...

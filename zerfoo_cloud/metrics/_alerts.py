"""
`AlertMetrics`: the series of ``/metrics`` that show webhook alerts
(`zerfoo_cloud.alerts.Alerts`): what waits, what went, what failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud._extras import needs_extra

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from zerfoo_cloud.alert_records import OutboxCounts

__all__ = ["AlertMetrics"]


class AlertMetrics:
    """
    An `zerfoo_cloud.alerts.AlertWatcher` that shows in *registry*:

    - ``alerts_pending`` gauge: deliveries waiting to be sent or retried,
      as this process last read the host's alert outbox;
    - ``alerts_dead_letters`` gauge: deliveries that gave up, kept until
      retried (``zerfoo-cloud alerts retry``);
    - ``alerts_delivered_total`` counter: deliveries that got a 2xx;
    - ``alerts_failed_attempts_total`` counter: attempts that did not
      (status, timeout, no connection);
    - ``alerts_dead_lettered_total`` counter: deliveries that gave up;
    - ``alerts_dropped_total`` counter: events not queued (the hand-off
      queue or the outbox was full).

    Names start with *namespace* and an underscore. Register it with
    `zerfoo_cloud.alerts.Alerts.watch`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, registry: CollectorRegistry, *, namespace: str = "zerfoo_cloud"
    ) -> None:
        def gauge(name: str, text: str) -> Gauge:
            return Gauge(
                name,
                text,
                namespace=namespace,
                registry=registry,
                multiprocess_mode="livemostrecent",
            )

        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, namespace=namespace, registry=registry)

        self._pending = gauge("alerts_pending", "Alert deliveries waiting to be sent.")
        self._dead = gauge("alerts_dead_letters", "Alert deliveries that gave up.")
        self._delivered = counter(
            "alerts_delivered_total", "Alert deliveries answered with a 2xx."
        )
        self._failed = counter(
            "alerts_failed_attempts_total", "Alert delivery attempts that failed."
        )
        self._dead_lettered = counter(
            "alerts_dead_lettered_total", "Alert deliveries moved to the dead letters."
        )
        self._dropped = counter(
            "alerts_dropped_total",
            "Alert events dropped: the queue or outbox was full.",
        )

    def counts_changed(self, counts: OutboxCounts) -> None:
        """
        Show *counts* in the two gauges.
        """
        self._pending.set(counts.pending)
        self._dead.set(counts.dead)

    def delivered(self) -> None:
        """
        Count one delivery.
        """
        self._delivered.inc()

    def attempt_failed(self) -> None:
        """
        Count one failed attempt.
        """
        self._failed.inc()

    def dead_lettered(self) -> None:
        """
        Count one dead letter.
        """
        self._dead_lettered.inc()

    def dropped(self) -> None:
        """
        Count one dropped event.
        """
        self._dropped.inc()

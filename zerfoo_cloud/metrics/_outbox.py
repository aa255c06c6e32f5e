"""
`OutboxMetrics`: the series of ``/metrics`` that show a local outbox
(`zerfoo_cloud.stores.outbox.Outbox`): how much waits, and how draining goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud._extras import needs_extra

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from zerfoo_cloud.stores.outbox import Outbox, OutboxDepth

__all__ = ["OutboxMetrics"]


class OutboxMetrics:
    """
    Shows the outboxes given to `track` in *registry*:

    - ``outbox_pending{kind}`` gauge: billing records (``kind="billing"``)
      and audit entries (``kind="audit"``) waiting in the outbox, as this
      process last saw it change (with ``PROMETHEUS_MULTIPROC_DIR``, the
      most recent figure of any live process: they share the outbox);
    - ``outbox_drain_failures_total{kind}`` counter: drain rounds that
      failed (the primary store was down or refused); the batches were kept;
    - ``outbox_quarantined_total{kind}`` counter: corrupt batches set aside.

    Names start with *namespace* and an underscore.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, registry: CollectorRegistry, *, namespace: str = "zerfoo_cloud"
    ) -> None:
        label = ("kind",)
        self._pending = Gauge(
            "outbox_pending",
            "Billing records and audit entries waiting in the local outbox.",
            label,
            namespace=namespace,
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self._failures = Counter(
            "outbox_drain_failures_total",
            "Outbox drain rounds that failed; their batches were kept.",
            label,
            namespace=namespace,
            registry=registry,
        )
        self._quarantined = Counter(
            "outbox_quarantined_total",
            "Corrupt outbox batches moved to the quarantine.",
            label,
            namespace=namespace,
            registry=registry,
        )

    def track(self, outbox: Outbox) -> None:
        """
        Follow *outbox* from now on, starting with its depth now.
        """
        outbox.watch(self)

    def depth_changed(self, depth: OutboxDepth) -> None:
        """
        Show *depth* in ``outbox_pending``.
        """
        self._pending.labels("billing").set(depth.billing)
        self._pending.labels("audit").set(depth.audit)

    def drain_failed(self, kind: str) -> None:
        """
        Count one failed drain round of *kind*.
        """
        self._failures.labels(kind).inc()

    def quarantined(self, kind: str) -> None:
        """
        Count one corrupt batch of *kind* set aside.
        """
        self._quarantined.labels(kind).inc()

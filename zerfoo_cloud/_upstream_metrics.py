"""
The per-upstream series of ``/metrics``: `UpstreamMetrics`, what a pool of
replicas (`zerfoo_cloud.http.pooled_proxy.PooledProxy`) reports.

Each series is labelled with the replica's base URL, which the operator
named on the command line, so the label values are as few as the replicas.
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["UPSTREAM_BUCKETS", "UpstreamMetrics"]

#: The upstream latency histogram's upper bounds, in seconds.
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class UpstreamMetrics:
    """
    Counts each replica's requests, errors, ejections and latency in
    *registry*:

    - ``upstream_requests_total{upstream}`` counter: requests sent to it;
    - ``upstream_errors_total{upstream}`` counter: those that failed (no
      answer, a cut answer, or a 5xx status);
    - ``upstream_ejections_total{upstream}`` counter: times it was ejected;
    - ``upstream_request_duration_seconds{upstream}`` histogram: from
      sending the request to the end of its response.

    Names start with *namespace* and an underscore; with
    ``PROMETHEUS_MULTIPROC_DIR`` set, each worker's values are summed like
    the rest of `zerfoo_cloud.metrics`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, registry: CollectorRegistry, *, namespace: str = "zerfoo_cloud"
    ) -> None:
        label = ("upstream",)
        self._requests = Counter(
            "upstream_requests_total",
            "Requests sent to each upstream replica.",
            label,
            namespace=namespace,
            registry=registry,
        )
        self._errors = Counter(
            "upstream_errors_total",
            "Requests to each upstream replica that failed or got a 5xx.",
            label,
            namespace=namespace,
            registry=registry,
        )
        self._ejections = Counter(
            "upstream_ejections_total",
            "Times each upstream replica was ejected for failing to connect.",
            label,
            namespace=namespace,
            registry=registry,
        )
        self._duration = Histogram(
            "upstream_request_duration_seconds",
            "Seconds from sending a request to an upstream replica to its response's end.",
            label,
            namespace=namespace,
            registry=registry,
            buckets=UPSTREAM_BUCKETS,
        )

    def request_done(self, upstream: str, *, error: bool, seconds: float) -> None:
        """
        Count one request to *upstream* that took *seconds*, failed or not.
        """
        self._requests.labels(upstream).inc()
        if error:
            self._errors.labels(upstream).inc()
        self._duration.labels(upstream).observe(max(0.0, seconds))

    def ejected(self, upstream: str) -> None:
        """
        Count one ejection of *upstream*.
        """
        self._ejections.labels(upstream).inc()

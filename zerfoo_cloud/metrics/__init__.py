"""
Prometheus metrics for the service: requests, tokens, limiter rejections,
in-flight requests, latency and GPU memory.

`Metrics` owns the prometheus-client collectors and offers a small call API
for the request path::

    metrics = Metrics()
    metrics.track_resources(resource_manager)

    with metrics.request_started(tenant_id) as flight:  # in-flight + 1
        ...                                              # run the request
        flight.finish(model, "success", prompt_tokens, completion_tokens)
    # in-flight - 1, exactly once, whatever happened in between

    metrics.rejected(tenant_id, "tokens")               # a limiter said no
    metrics.request_finished(tenant_id, model, "rate_limited", 0.002)

Every call costs a few microseconds and is safe from any thread. Label values
are bounded: an empty or missing tenant or model is ``unknown``, values are cut
to `MAX_LABEL_LENGTH` characters, and past a configurable number of distinct
models (or tenants) the rest are counted as ``other``, so hostile model names
cannot grow memory or the scrape without bound.

`metrics_app` serves `Metrics.render` as a bare ASGI app (mount it at
``/metrics``). With ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts,
every worker writes its values to that folder and each scrape sums all of
them; see ``docs/metrics.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from zerfoo_cloud.metrics._alerts import AlertMetrics
from zerfoo_cloud.metrics._app import metrics_app
from zerfoo_cloud.metrics._exposition import (
    CONTENT_TYPE,
    MULTIPROC_DIR_ENV,
    render_multiprocess,
)
from zerfoo_cloud.metrics._in_flight import InFlight
from zerfoo_cloud.metrics._labels import (
    LIMITS,
    MAX_LABEL_LENGTH,
    OTHER,
    RESULTS,
    TENANTS_HIDDEN,
    UNKNOWN,
)
from zerfoo_cloud.metrics._metrics import DEFAULT_BUCKETS, Metrics
from zerfoo_cloud.metrics._outbox import OutboxMetrics
from zerfoo_cloud.metrics._resources import ResourceStats

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "LIMITS",
    "MAX_LABEL_LENGTH",
    "MULTIPROC_DIR_ENV",
    "OTHER",
    "RESULTS",
    "TENANTS_HIDDEN",
    "UNKNOWN",
    "AlertMetrics",
    "InFlight",
    "Metrics",
    "OutboxMetrics",
    "ResourceStats",
    "metrics_app",
    "render_multiprocess",
]

"""
`Metrics`: the service's Prometheus collectors and the calls on the request
path that move them.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from typing import TYPE_CHECKING

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.metrics._exposition import (
    MULTIPROC_DIR_ENV,
    check_multiprocess,
    render_multiprocess,
)
from zerfoo_cloud.metrics._in_flight import InFlight
from zerfoo_cloud.metrics._labels import (
    LIMITS,
    RESULTS,
    TENANTS_HIDDEN,
    LabelCap,
    fixed_label,
)
from zerfoo_cloud.metrics._resources import (
    RESOURCE_GAUGES,
    ResourceCollector,
    ResourceStats,
    sum_stats,
)

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["DEFAULT_BUCKETS", "Metrics"]

#: Latency buckets in seconds, from a cached 5 ms answer to a 5 minute generation.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

#: How often, at most, a worker copies its resource figures into the shared
#: files in multi-process mode (besides on every scrape it serves).
_RESOURCE_REFRESH_S = 1.0

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class Metrics:
    """
    The service's Prometheus metrics and the calls that move them.

    Metric names start with *namespace* and an underscore:

    - ``requests_total{tenant,model,result}`` counter; *result* is one of `RESULTS`;
    - ``tokens_total{tenant,model,direction}`` counter; *direction* is
      ``prompt`` or ``completion``;
    - ``limiter_rejections_total{tenant,limit}`` counter; *limit* is one of `LIMITS`;
    - ``budget_overruns_total{tenant}`` counter: requests that cost more
      than their spend budget hold and left a budget over its amount;
    - ``in_flight_requests{tenant}`` gauge (multi-process mode: ``livesum``);
    - ``request_duration_seconds{result}`` histogram with *buckets*;
    - ``gpu_memory_budget_bytes``, ``gpu_memory_used_bytes`` and
      ``models_loaded`` gauges, summed over the sources given to
      `track_resources` (multi-process mode: ``liveall``, one series per
      worker with a ``pid`` label).

    With the ``PROMETHEUS_MULTIPROC_DIR`` environment variable set, values are
    written to files in that folder and `render` sums the files of every
    process; the variable must be set before prometheus-client is imported
    (that is, before the process starts).

    Args:
        registry: where to register the collectors; a new private one by
            default. `render` exposes this registry in single-process mode.
        namespace: the prefix of every metric name ("" for none).
        buckets: the latency histogram's upper bounds in seconds, increasing.
        max_models: distinct model label values before the rest count as
            ``other``.
        max_tenants: distinct tenant label values before the rest count as
            ``other``.
        tenant_labels: label series with tenant ids; when false, every
            ``tenant`` label is `TENANTS_HIDDEN`, so a scrape names no tenant.

    Raises:
        InvalidConfigError: a bad namespace, buckets or cap, names already
            taken in *registry*, or ``PROMETHEUS_MULTIPROC_DIR`` set after
            prometheus-client was imported or not naming a folder.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "zerfoo_cloud",
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        max_models: int = 100,
        max_tenants: int = 10_000,
        tenant_labels: bool = True,
    ) -> None:
        if namespace and not _NAMESPACE.fullmatch(namespace):
            msg = f"namespace {namespace!r} is not a valid Prometheus name"
            raise InvalidConfigError(msg, field="namespace")
        for field, cap in (("max_models", max_models), ("max_tenants", max_tenants)):
            if cap < 1:
                msg = f"{field} must be at least 1, not {cap}"
                raise InvalidConfigError(msg, field=field)
        if (
            not buckets
            or not all(0 < b < float("inf") for b in buckets)
            or any(a >= b for a, b in itertools.pairwise(buckets))
        ):
            msg = f"buckets must be positive, finite and increasing, not {buckets!r}"
            raise InvalidConfigError(msg, field="buckets")
        self.multiprocess_dir: str | None = os.environ.get(MULTIPROC_DIR_ENV) or None
        if self.multiprocess_dir is not None:
            check_multiprocess(self.multiprocess_dir)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tenant_labels = tenant_labels
        self._prefix = f"{namespace}_" if namespace else ""
        self._models = LabelCap(max_models)
        self._tenants = LabelCap(max_tenants)
        self._lock = threading.Lock()
        # Label children by raw arguments, only for arguments that are
        # already their own label (so the caches stay as bounded as the labels).
        self._finished: dict[
            tuple[str | None, str | None, str],
            tuple[Counter, Counter, Counter, Histogram],
        ] = {}
        self._in_flight: dict[str | None, Gauge] = {}
        self._rejections: dict[tuple[str | None, str], Counter] = {}
        self._resources_mp: tuple[Gauge, ...] | None = None
        self._sources: tuple[ResourceStats, ...] = ()
        self._next_refresh = 0.0
        # Built unregistered, then registered one by one, so a name clash
        # leaves the given registry exactly as it was.
        self._requests = Counter(
            "requests_total",
            "Requests by tenant, model and result.",
            ("tenant", "model", "result"),
            namespace=namespace,
            registry=None,
        )
        self._tokens = Counter(
            "tokens_total",
            "Tokens by tenant, model and direction (prompt or completion).",
            ("tenant", "model", "direction"),
            namespace=namespace,
            registry=None,
        )
        self._limiter = Counter(
            "limiter_rejections_total",
            "Requests refused by a limit, by tenant and limit.",
            ("tenant", "limit"),
            namespace=namespace,
            registry=None,
        )
        self._overruns = Counter(
            "budget_overruns_total",
            "Requests that overran a spend budget, by tenant.",
            ("tenant",),
            namespace=namespace,
            registry=None,
        )
        self._gauge = Gauge(
            "in_flight_requests",
            "Requests being served now, by tenant.",
            ("tenant",),
            namespace=namespace,
            registry=None,
            multiprocess_mode="livesum",
        )
        self._duration = Histogram(
            "request_duration_seconds",
            "Request latency in seconds, by result.",
            ("result",),
            namespace=namespace,
            registry=None,
            buckets=buckets,
        )
        self._collector = ResourceCollector(self._prefix)
        collectors: list[Collector] = [
            self._requests,
            self._tokens,
            self._limiter,
            self._overruns,
            self._gauge,
            self._duration,
        ]
        if self.multiprocess_dir is None:
            collectors.append(self._collector)
        _register_all(self.registry, collectors)

    def request_started(self, tenant: str | None) -> InFlight:
        """
        Count a request as in flight until the returned token lets it go.

        Args:
            tenant: the tenant's id (``None`` or empty: ``unknown``).

        Returns:
            A token whose `InFlight.finish` counts the request; use it as a
            context manager so the gauge always comes back down.
        """
        if not self.tenant_labels:
            tenant = TENANTS_HIDDEN
        gauge = self._in_flight.get(tenant)
        if gauge is None:
            label = self._tenants(tenant)
            gauge = self._gauge.labels(label)
            if label == tenant:
                self._in_flight[tenant] = gauge
        gauge.inc()
        return InFlight(self, tenant, gauge)

    def request_finished(  # noqa: PLR0917  # the request path passes them in order
        self,
        tenant: str | None,
        model: str | None,
        result: str,
        duration_s: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        *,
        in_flight: InFlight | None = None,
    ) -> None:
        """
        Count one finished (or refused) request, its tokens and its latency.

        Requests refused before they started need no `request_started`: call
        this alone. With *in_flight*, the token is released too, and a token
        finished before is neither released nor counted again.

        Args:
            tenant: the tenant's id (``None`` or empty: ``unknown``).
            model: the model asked for (``None`` or empty: ``unknown``). For an
                ``unauthorized`` request only models seen before keep their
                name; the rest count as ``other``.
            result: one of `RESULTS` (an `zerfoo_cloud.AuditResult` works).
            duration_s: the latency in seconds.
            prompt_tokens: tokens read.
            completion_tokens: tokens written.
            in_flight: the token `request_started` returned for this request.

        Raises:
            InvalidConfigError: an unknown *result*, or a negative or NaN
                figure; nothing is counted or released.
        """
        if not (duration_s >= 0 and prompt_tokens >= 0 and completion_tokens >= 0):
            _negative(duration_s, prompt_tokens, completion_tokens)
        if not self.tenant_labels:
            tenant = TENANTS_HIDDEN
        key = (tenant, model, result)
        children = self._finished.get(key)
        if children is None:
            children = self._children(tenant, model, result)
        if in_flight is not None:
            if not in_flight._claim():  # noqa: SLF001  # the token's own protocol
                return
            in_flight.release()
        requests, prompt, completion, duration = children
        requests.inc()
        if prompt_tokens:
            prompt.inc(prompt_tokens)
        if completion_tokens:
            completion.inc(completion_tokens)
        duration.observe(duration_s)
        if self._resources_mp is not None and time.monotonic() >= self._next_refresh:
            self._refresh_resources()

    def _children(
        self, tenant: str | None, model: str | None, result: str
    ) -> tuple[Counter, Counter, Counter, Histogram]:
        result_label = fixed_label(result, RESULTS, "result")
        tenant_label = self._tenants(tenant)
        model_label = self._models(model, admit=result_label != "unauthorized")
        children = (
            self._requests.labels(tenant_label, model_label, result_label),
            self._tokens.labels(tenant_label, model_label, "prompt"),
            self._tokens.labels(tenant_label, model_label, "completion"),
            self._duration.labels(result_label),
        )
        if (tenant_label, model_label) == (tenant, model):
            self._finished[tenant, model, result] = children
        return children

    def budget_overrun(self, tenant: str | None) -> None:
        """
        Count a request that overran a spend budget in
        ``budget_overruns_total``.

        Args:
            tenant: the tenant's id (``None`` or empty: ``unknown``).
        """
        if not self.tenant_labels:
            tenant = TENANTS_HIDDEN
        self._overruns.labels(self._tenants(tenant)).inc()

    def rejected(self, tenant: str | None, limit: str) -> None:
        """
        Count a request refused by *limit* in ``limiter_rejections_total``.

        This does not count the request in ``requests_total``: call
        `request_finished` for that too (``rate_limited`` for ``requests``,
        ``tokens`` and ``concurrency``; ``denied`` for ``model`` and
        ``body_size``).

        Args:
            tenant: the tenant's id (``None`` or empty: ``unknown``).
            limit: one of `LIMITS`.

        Raises:
            InvalidConfigError: an unknown *limit*; nothing is counted.
        """
        if not self.tenant_labels:
            tenant = TENANTS_HIDDEN
        counter = self._rejections.get((tenant, limit))
        if counter is None:
            limit_label = fixed_label(limit, LIMITS, "limit")
            tenant_label = self._tenants(tenant)
            counter = self._limiter.labels(tenant_label, limit_label)
            if tenant_label == tenant:
                self._rejections[tenant, limit] = counter
        counter.inc()

    def track_resources(self, source: ResourceStats) -> None:
        """
        Report *source*'s GPU memory in the resource gauges.

        Several sources (one manager per GPU) are summed. In single-process
        mode the figures are read at each scrape; in multi-process mode each
        worker writes its own at most once a second while it serves requests,
        and whenever it renders.

        Args:
            source: a `zerfoo_cloud.ResourceManager`, or anything with its
                ``stats()``.

        Raises:
            InvalidConfigError: *source* has no ``stats()``.
        """
        if not isinstance(source, ResourceStats):
            msg = f"{type(source).__name__} has no stats() method"
            raise InvalidConfigError(msg, field="source")
        with self._lock:
            gauges = self._resources_mp
            if self.multiprocess_dir is not None and gauges is None:
                # Made on first use, so a worker without a GPU shows no zeros.
                gauges = tuple(
                    Gauge(
                        self._prefix + name,
                        text,
                        registry=None,
                        multiprocess_mode="liveall",
                    )
                    for name, text in RESOURCE_GAUGES
                )
                _register_all(self.registry, list(gauges))
            self._sources = (*self._sources, source)
            self._collector.sources = self._sources
            self._resources_mp = gauges
        if self._resources_mp is not None:
            self._refresh_resources()

    def _refresh_resources(self) -> None:
        self._next_refresh = time.monotonic() + _RESOURCE_REFRESH_S
        gauges = self._resources_mp
        if gauges is not None:
            for gauge, figure in zip(gauges, sum_stats(self._sources), strict=True):
                gauge.set(figure)

    def render(self) -> bytes:
        """
        Return every metric in the Prometheus text format (`CONTENT_TYPE`).

        In multi-process mode this is the sum over every process that wrote
        to ``PROMETHEUS_MULTIPROC_DIR``, see `render_multiprocess`.
        """
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        self._refresh_resources()
        return render_multiprocess(self.multiprocess_dir)


def _register_all(registry: CollectorRegistry, collectors: list[Collector]) -> None:
    """
    Register every collector in *registry*, or none of them.

    Raises:
        InvalidConfigError: a name is already taken in *registry*.
    """
    done: list[Collector] = []
    try:
        for collector in collectors:
            registry.register(collector)
            done.append(collector)
    except ValueError as exc:
        for collector in done:
            registry.unregister(collector)
        raise InvalidConfigError(str(exc), field="registry") from exc


def _negative(duration_s: float, prompt_tokens: int, completion_tokens: int) -> None:
    for field, value in (
        ("duration_s", duration_s),
        ("prompt_tokens", prompt_tokens),
        ("completion_tokens", completion_tokens),
    ):
        if not value >= 0:
            msg = f"{field} must be zero or more, not {value!r}"
            raise InvalidConfigError(msg, field=field)

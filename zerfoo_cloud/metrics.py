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

import itertools
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zerfoo_cloud._asgi import acknowledge_lifespan
from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
        values,
    )
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from types import TracebackType

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

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
    "InFlight",
    "Metrics",
    "ResourceStats",
    "metrics_app",
    "render_multiprocess",
]

#: The ``result`` label values of ``requests_total`` and ``request_duration_seconds``.
RESULTS: frozenset[str] = frozenset(
    {"success", "denied", "rate_limited", "error", "unauthorized"}
)

#: The ``limit`` label values of ``limiter_rejections_total``.
LIMITS: frozenset[str] = frozenset(
    {"requests", "tokens", "concurrency", "model", "body_size"}
)

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

#: The label value of a missing or empty tenant or model.
UNKNOWN = "unknown"

#: The label value that stands for every model (or tenant) past the cap.
OTHER = "other"

#: The ``tenant`` label value of every request when tenant labels are off.
TENANTS_HIDDEN = "all"

#: Longer label values are cut to this many characters.
MAX_LABEL_LENGTH = 64

#: The environment variable that switches on multi-process mode.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The content type of `Metrics.render`'s output (Prometheus text format).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

#: How often, at most, a worker copies its resource figures into the shared
#: files in multi-process mode (besides on every scrape it serves).
_RESOURCE_REFRESH_S = 1.0

#: The resource gauges, in the order of ``stats()``: (name, help).
_RESOURCE_GAUGES = (
    ("gpu_memory_used_bytes", "GPU memory booked by loaded models."),
    ("gpu_memory_budget_bytes", "GPU memory budget of the resource managers."),
    ("models_loaded", "Models loaded now."),
)

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# The few ASGI types used here, kept local so no framework is needed.
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@runtime_checkable
class ResourceStats(Protocol):
    """
    **Protocol**: Anything that reports GPU memory the way
    `zerfoo_cloud.ResourceManager.stats` does.

    .. versionadded:: 0.1.0
    """

    def stats(self) -> tuple[int, int, int]:
        """
        Return ``(used_bytes, budget_bytes, models_loaded)``.
        """
        ...


class _LabelCap:
    """
    Maps raw label values to bounded ones: at most *limit* distinct values,
    each at most `MAX_LABEL_LENGTH` characters and valid UTF-8.
    """

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None, *, admit: bool = True) -> str:
        """
        Return the label for *value*; a new value takes a free place only
        when *admit* is true.
        """
        if not value:
            return UNKNOWN
        value = str.__str__(value)[:MAX_LABEL_LENGTH]
        if not value.isascii():
            # Lone surrogates (JSON allows "\ud800") would make every later
            # scrape fail to encode; replace them once, here.
            value = value.encode("utf-8", "replace").decode("utf-8")
        if value in self._seen:
            return value
        if not admit:
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


def _fixed(value: str, allowed: frozenset[str], field: str) -> str:
    """
    Return *value* as a plain ``str`` if it is one of *allowed*.

    Raises:
        InvalidConfigError: *value* is not allowed.
    """
    if value not in allowed:
        msg = f"{field} must be one of {', '.join(sorted(allowed))}, not {value!r}"
        raise InvalidConfigError(msg, field=field)
    return str.__str__(value)


class _ResourceCollector:
    """
    Reads the tracked resource managers at scrape time (single-process mode).
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.sources: tuple[ResourceStats, ...] = ()

    def _families(self, figures: tuple[int, int, int]) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(self._prefix + name, text, figure)
            for (name, text), figure in zip(_RESOURCE_GAUGES, figures, strict=True)
        ]

    def describe(self) -> list[GaugeMetricFamily]:
        """
        Name the families for the registry's duplicate check.
        """
        return self._families((0, 0, 0))

    def collect(self) -> Iterator[Metric]:
        """
        Yield the three gauges, summed over every source, once one is tracked.
        """
        sources = self.sources
        if sources:
            yield from self._families(_sum_stats(sources))


def _sum_stats(sources: tuple[ResourceStats, ...]) -> tuple[int, int, int]:
    used = budget = loaded = 0
    for source in sources:
        u, b, n = source.stats()
        used += u
        budget += b
        loaded += n
    return used, budget, loaded


class InFlight:
    """
    One request counted in ``in_flight_requests``, as returned by
    `Metrics.request_started`.

    The gauge goes back down exactly once, by `release`, `finish`,
    `Metrics.request_finished` with ``in_flight=`` this token, or leaving the
    ``with`` block, whichever comes first; later calls change nothing. The
    request is counted exactly once too: leaving the ``with`` block before
    `finish` counts it as an ``error`` of `model` (``unknown`` unless set).

    Attributes:
        tenant: the tenant given to `Metrics.request_started`.
        started: `time.perf_counter` when the request started.
        model: the model to report if the request ends without `finish`;
            set it once known.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_gauge",
        "_metrics",
        "_open",
        "_unfinished",
        "model",
        "started",
        "tenant",
    )

    def __init__(self, metrics: Metrics, tenant: str | None, gauge: Gauge) -> None:
        self._metrics = metrics
        self._gauge = gauge
        # list.pop is atomic, so exactly one caller wins each flag, in any
        # thread, without a lock per request.
        self._open = [True]
        self._unfinished = [True]
        self.tenant = tenant
        self.model: str | None = None
        self.started = time.perf_counter()

    @property
    def active(self) -> bool:
        """
        Whether the request still counts as in flight.
        """
        return bool(self._open)

    def release(self) -> bool:
        """
        Take the request out of ``in_flight_requests`` without counting it.

        Returns:
            ``True`` the first time, ``False`` once released already.
        """
        try:
            self._open.pop()
        except IndexError:
            return False
        self._gauge.dec()
        return True

    def _claim(self) -> bool:
        try:
            self._unfinished.pop()
        except IndexError:
            return False
        return True

    def finish(
        self,
        model: str | None,
        result: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        *,
        duration_s: float | None = None,
    ) -> None:
        """
        Count the request and release it; see `Metrics.request_finished`.

        Args:
            model: the model asked for.
            result: one of `RESULTS`.
            prompt_tokens: tokens read.
            completion_tokens: tokens written.
            duration_s: the latency; by default the time since
                `Metrics.request_started`.

        Raises:
            InvalidConfigError: an unknown *result* or a negative figure;
                nothing is counted and the request stays in flight.
        """
        if duration_s is None:
            duration_s = time.perf_counter() - self.started
        self._metrics.request_finished(
            self.tenant,
            model,
            result,
            duration_s,
            prompt_tokens,
            completion_tokens,
            in_flight=self,
        )

    def __enter__(self) -> InFlight:  # noqa: PYI034  # the class is final in practice
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._unfinished:
            self.finish(self.model, "error")
        else:
            self.release()


class Metrics:
    """
    The service's Prometheus metrics and the calls that move them.

    Metric names start with *namespace* and an underscore:

    - ``requests_total{tenant,model,result}`` counter; *result* is one of `RESULTS`;
    - ``tokens_total{tenant,model,direction}`` counter; *direction* is
      ``prompt`` or ``completion``;
    - ``limiter_rejections_total{tenant,limit}`` counter; *limit* is one of `LIMITS`;
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
            _check_multiprocess(self.multiprocess_dir)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tenant_labels = tenant_labels
        self._prefix = f"{namespace}_" if namespace else ""
        self._models = _LabelCap(max_models)
        self._tenants = _LabelCap(max_tenants)
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
        self._collector = _ResourceCollector(self._prefix)
        collectors: list[Collector] = [
            self._requests,
            self._tokens,
            self._limiter,
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
        result_label = _fixed(result, RESULTS, "result")
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
            limit_label = _fixed(limit, LIMITS, "limit")
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
                    for name, text in _RESOURCE_GAUGES
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
            for gauge, figure in zip(gauges, _sum_stats(self._sources), strict=True):
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


def _check_multiprocess(path: str) -> None:
    if not os.path.isdir(path):  # noqa: PTH112  # a str path from the environment
        msg = f"{MULTIPROC_DIR_ENV}={path!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)
    if values.ValueClass is values.MutexValue:
        msg = (
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "this process would write nothing to it: set it before the process starts"
        )
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)


def render_multiprocess(path: str | os.PathLike[str]) -> bytes:
    """
    Return the sum of every process's metrics in the multi-process folder *path*.

    Any process can serve this, including one that records nothing itself
    (a supervisor or a sidecar).

    Raises:
        InvalidConfigError: *path* is not a folder.

    .. versionadded:: 0.1.0
    """
    registry = CollectorRegistry()
    try:
        MultiProcessCollector(registry, path=os.fspath(path))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        msg = f"{os.fspath(path)!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV) from exc
    return generate_latest(registry)


def metrics_app(metrics: Metrics) -> _ASGIApp:
    """
    Return an ASGI app that serves *metrics* to Prometheus.

    It answers ``GET`` (and ``HEAD``) on any path with `Metrics.render` and
    `CONTENT_TYPE`, and 405 with an ``Allow`` header to other methods; route
    ``/metrics`` to it. Lifespan events are acknowledged.

    .. versionadded:: 0.1.0
    """

    async def app(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if scope["type"] != "http":
            msg = f"metrics_app serves HTTP only, not {scope['type']!r}"
            raise TypeError(msg)
        method = scope["method"]
        if method in {"GET", "HEAD"}:
            status = 200
            body = metrics.render()
            headers = [(b"content-type", CONTENT_TYPE.encode("latin-1"))]
        else:
            status = 405
            body = b"Method Not Allowed\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"allow", b"GET, HEAD"),
            ]
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else body}
        )

    return app

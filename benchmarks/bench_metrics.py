"""
Cost of the metrics calls on the request path against a bare prometheus-client
counter increment.

The baseline is ``Counter.labels(tenant, model, result).inc()`` on a counter
with the same three labels, measured in the same run. Ours is one request's
bookkeeping: `Metrics.request_started` plus `InFlight.finish` (in-flight gauge
up and down, request counter, two token counters, latency histogram). Both are
measured again in a spawned process in multi-process mode, where every value
is written to a memory-mapped file.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile

from prometheus_client import CollectorRegistry, Counter

from benchmarks._timing import rate
from zerfoo_cloud.metrics import MULTIPROC_DIR_ENV, Metrics


def _figures() -> dict[str, float]:
    """
    Calls per second of the baseline and of each of our calls, in this process.
    """
    counter = Counter(
        "baseline_total",
        "Baseline.",
        ("tenant", "model", "result"),
        registry=CollectorRegistry(),
    )
    metrics = Metrics()

    def pair() -> None:
        metrics.request_started("acme").finish(
            "llama", "success", 10, 20, duration_s=0.1
        )

    def pair_with() -> None:
        with metrics.request_started("acme") as flight:
            flight.finish("llama", "success", 10, 20, duration_s=0.1)

    return {
        "baseline": rate(lambda: counter.labels("acme", "llama", "success").inc()),
        "pair": rate(pair),
        "pair_with": rate(pair_with),
        "rejected": rate(lambda: metrics.rejected("acme", "tokens")),
    }


def _child(out: multiprocessing.Queue[dict[str, float]]) -> None:
    out.put(_figures())


def _multiprocess_figures() -> dict[str, float]:
    """
    `_figures` in a spawned process whose environment names a multi-process folder.
    """
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[dict[str, float]] = context.Queue()
    with tempfile.TemporaryDirectory() as folder:
        # The child reads the variable as it starts; this process never uses it.
        previous = os.environ.get(MULTIPROC_DIR_ENV)
        os.environ[MULTIPROC_DIR_ENV] = folder
        try:
            child = context.Process(target=_child, args=(out,))
            child.start()
        finally:
            if previous is None:
                del os.environ[MULTIPROC_DIR_ENV]
            else:
                os.environ[MULTIPROC_DIR_ENV] = previous
        figures = out.get(timeout=60)
        child.join(60)
    return figures


def _print(title: str, figures: dict[str, float]) -> None:
    base_us = 1e6 / figures["baseline"]
    print(f"   {title}")
    print(f"   {'bare Counter.labels(...).inc() (baseline)':<52} {base_us:>8.2f} us")
    for key, name in (
        ("pair", "request_started + finish"),
        ("pair_with", "request_started + finish in a with block"),
        ("rejected", "rejected"),
    ):
        us = 1e6 / figures[key]
        print(f"   {name:<52} {us:>8.2f} us   x{us / base_us:.2f} of baseline")


def main() -> None:
    """
    Print microseconds per call for the baseline and ours, and the ratios.
    """
    _print("single process", _figures())
    _print("multi-process mode (PROMETHEUS_MULTIPROC_DIR)", _multiprocess_figures())


if __name__ == "__main__":
    main()

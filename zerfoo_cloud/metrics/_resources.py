"""
The GPU memory gauges: what a source of figures offers (`ResourceStats`),
and the collector that reads the sources at scrape time in single-process
mode (`ResourceCollector`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from zerfoo_cloud._extras import needs_extra

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["RESOURCE_GAUGES", "ResourceCollector", "ResourceStats", "sum_stats"]

#: The resource gauges, in the order of ``stats()``: (name, help).
RESOURCE_GAUGES = (
    ("gpu_memory_used_bytes", "GPU memory booked by loaded models."),
    ("gpu_memory_budget_bytes", "GPU memory budget of the resource managers."),
    ("models_loaded", "Models loaded now."),
)


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


class ResourceCollector:
    """
    Reads the tracked resource managers at scrape time (single-process mode).
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.sources: tuple[ResourceStats, ...] = ()

    def _families(self, figures: tuple[int, int, int]) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(self._prefix + name, text, figure)
            for (name, text), figure in zip(RESOURCE_GAUGES, figures, strict=True)
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
            yield from self._families(sum_stats(sources))


def sum_stats(sources: tuple[ResourceStats, ...]) -> tuple[int, int, int]:
    """
    Return ``(used_bytes, budget_bytes, models_loaded)`` summed over *sources*.
    """
    used = budget = loaded = 0
    for source in sources:
        u, b, n = source.stats()
        used += u
        budget += b
        loaded += n
    return used, budget, loaded

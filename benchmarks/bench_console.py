"""
What the console's Usage page costs to build: the report of 30 days of a
busy tenant (100,000 billing records on LMDB) split by model (the store's
summary) and by key (the records read and totalled), and the SVG chart of
30 and 366 days.

The baseline, measured in the same run, is reading the same records with
`TokenMeter.query` alone: the split by key costs that plus the totalling.
Reports are timed in milliseconds (best of three), charts in calls per
second.
"""

from __future__ import annotations

import functools
import random
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from benchmarks._timing import rate, row
from zerfoo_cloud import BillingRecord, TokenMeter
from zerfoo_cloud.http.console._chart import render_usage_chart
from zerfoo_cloud.http.console._usage_data import DayRange, build_usage_report
from zerfoo_cloud.stores.lmdb import LMDBStores

RECORDS = 100_000
DAYS = 30
LAST = date(2026, 12, 6)
MODELS = [f"model-{n}" for n in range(6)]
KEYS = [f"k-{n:04x}" for n in range(20)]


def _records() -> list[BillingRecord]:
    rnd = random.Random(7)
    first = datetime(2026, 11, 7, tzinfo=timezone.utc)
    return [
        BillingRecord(
            "acme",
            rnd.randint(10, 4000),
            rnd.randint(10, 1000),
            first + timedelta(seconds=rnd.randrange(DAYS * 86_400)),
            rnd.choice(MODELS),
            cost=rnd.randint(0, 9000),
            currency="USD",
            key_id=rnd.choice(KEYS),
        )
        for _ in range(RECORDS)
    ]


def _chart_days(days: int, series: int) -> list[tuple[date, dict[str, int]]]:
    names = [f"model-{n}" for n in range(series)]
    return [
        (
            LAST - timedelta(days=days - 1 - d),
            {n: 1_000 * (d + i) for i, n in enumerate(names)},
        )
        for d in range(days)
    ]


def _best_ms(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _ms_row(name: str, ms: float, baseline: float | None = None) -> str:
    text = f"   {name:<52} {ms:>11,.1f} ms"
    if baseline:
        text += f"   x{ms / baseline:.2f}"
    return text


def main() -> None:
    """Print the time of each report (best of three) and charts per second."""
    days = DayRange(LAST - timedelta(days=DAYS - 1), LAST)
    with tempfile.TemporaryDirectory() as folder:
        stores = LMDBStores.open(folder)
        try:
            stores.billing.add(_records())
            meter = TokenMeter(stores.billing)
            start, end = days.start(), days.end()
            baseline = _best_ms(lambda: meter.query("acme", start, end))
            print(_ms_row(f"baseline: query {RECORDS:,} records", baseline))
            for split in ("model", "key"):
                ms = _best_ms(
                    functools.partial(build_usage_report, "acme", days, split, meter)
                )
                print(
                    _ms_row(
                        f"usage report of {DAYS} days split by {split}", ms, baseline
                    )
                )
            meter.close()
        finally:
            stores.close()
    for count, series in ((30, 3), (366, 9)):
        data = _chart_days(count, series)
        names = [f"model-{n}" for n in range(series)]

        def draw(
            d: list[tuple[date, dict[str, int]]] = data, n: list[str] = names
        ) -> str:
            return render_usage_chart(d, n, "model")

        print(row(f"SVG chart, {count} days x {series} series", rate(draw, batch=10)))


if __name__ == "__main__":
    main()

"""
What pricing a request costs: `PriceTable.cost_of` calls per second.

The baseline, measured in the same run, is the naive computation: a dict
lookup of the model's prices as floats (units per token) and one float
expression, with no effective dates, no checks and no exact rounding. Then
`ModelPrice.cost` alone (exact integers, the counts checked, rounded up), and
`PriceTable.cost_of` on a table of 100 models with 12 prices each (a price a
month: the date lookup is a bisection).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from benchmarks._timing import rate, row
from zerfoo_cloud.pricing import ModelPrice, PriceTable

MODELS = 100
PRICES_PER_MODEL = 12
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
WHEN = START + timedelta(days=200)


def _table() -> PriceTable:
    return PriceTable(
        "USD",
        {
            f"model-{m}": [
                ModelPrice(
                    START + timedelta(days=30 * p),
                    150_000 + p,
                    600_000 + p,
                    75_000 + p,
                )
                for p in range(PRICES_PER_MODEL)
            ]
            for m in range(MODELS)
        },
    )


def main() -> None:
    """Print calls per second of each way to price one request."""
    floats = {f"model-{m}": (0.15e-6, 0.6e-6, 0.075e-6) for m in range(MODELS)}

    def naive() -> float:
        p_in, p_out, p_cached = floats["model-42"]
        return math.ceil(((1000 - 200) * p_in + 200 * p_cached + 500 * p_out) * 1e6)

    table = _table()
    price = table.price_at("model-42", WHEN)
    baseline = rate(naive)
    print(row("baseline: floats from a dict, no dates, no checks", baseline))
    print(
        row(
            "ModelPrice.cost (exact ints, checked, rounded up)",
            rate(lambda: price.cost(1000, 500, 200)),
            baseline,
        )
    )
    print(
        row(
            "PriceTable.cost_of (100 models x 12 prices)",
            rate(lambda: table.cost_of("model-42", 1000, 500, 200, when=WHEN)),
            baseline,
        )
    )


if __name__ == "__main__":
    main()

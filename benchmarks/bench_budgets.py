"""
What spend budgets add to a request: the time a request spends in the
gateway (wrapped minus bare app), with budgets off and on, side by side in
the same run, rounds alternating.

With budgets on, the tenant has a monthly budget and its key a daily one:
each request prices its worst case, holds it in two more buckets of the
same atomic admission, and settles four more buckets (hold and spent
counter of each) in the same settlement. Both gateways price every request
(the same price table), so the difference is the money reservation alone.
Target: the reservation costs at most 10 % of the added time.
"""

from __future__ import annotations

import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.bench_http import KEY, REQUEST, _asgi_per_request, asgi_app
from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.budget_records import MAX_BUDGET_MICROS, SpendBudget
from zerfoo_cloud.pricing import ModelPrice, PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore
from zerfoo_cloud.stores.protocols import LimiterStore, TenantStore

PRICES = PriceTable(
    "USD",
    {
        "toy-1": [
            ModelPrice(
                datetime(2020, 1, 1, tzinfo=timezone.utc), 150_000, 600_000, 75_000
            )
        ]
    },
)
ROUNDS = 7
REQUESTS = 3000


def _gateway(
    store: TenantStore | None, limits: LimiterStore | None, *, budgets: bool
) -> CloudServer:
    # The stack, its tenant with budgets (a monthly one, and a daily one on
    # its key) or without.
    tenants = TenantManager(store, limits=limits)
    tenants.create(TenantConfig("bench", KEY, rate_limit=10**12, token_budget=10**15))
    if budgets:
        tenants.set_budgets(
            "bench", [SpendBudget("month", MAX_BUDGET_MICROS, "USD", "Europe/Paris")]
        )
        first = tenants.get("bench").record.key_id
        tenants.set_budgets(
            "bench", [SpendBudget("day", MAX_BUDGET_MICROS, "USD")], key_id=first
        )
    meter = TokenMeter(MemoryBillingStore(), prices=PRICES)
    return CloudServer(
        asgi_app, tenants, meter, audit=AuditLogger(MemoryAuditStore()), durable=False
    )


def _measure(off: CloudServer, on: CloudServer) -> list[tuple[float, float, float]]:
    # µs per request of each round: bare app, budgets off, budgets on.
    return [
        (
            _asgi_per_request(asgi_app, REQUEST, REQUESTS, lambda: None) * 1e6,
            _asgi_per_request(off.handler(), REQUEST, REQUESTS, off.close) * 1e6,
            _asgi_per_request(on.handler(), REQUEST, REQUESTS, on.close) * 1e6,
        )
        for _ in range(ROUNDS)
    ]


def _line(name: str, bare: float, plain: float, budgeted: float) -> str:
    added_off, added_on = plain - bare, budgeted - bare
    extra = added_on - added_off
    return (
        f"  {name:24}{bare:9.1f}{plain:9.1f}{budgeted:9.1f}"
        f"{added_off:14.1f}{added_on:13.1f}{extra:12.1f}{extra / added_off:7.3f}"
    )


def main() -> None:
    """Print the added time per request with budgets off and on, and their ratio."""
    print(
        "Added time per JSON request through the gateway, budgets off vs on, "
        "alternating rounds:"
    )
    print(
        f"{'':26}{'bare µs':>9}{'off µs':>9}{'on µs':>9}{'added off µs':>14}"
        f"{'added on µs':>13}{'budgets µs':>12}{'ratio':>7}"
    )
    with tempfile.TemporaryDirectory() as folder:
        plain = LMDBStores.open(Path(folder) / "off")
        budgeted = LMDBStores.open(Path(folder) / "on")
        try:
            for name, off, on in (
                (
                    "memory stores",
                    _gateway(None, None, budgets=False),
                    _gateway(None, None, budgets=True),
                ),
                (
                    "LMDB stores",
                    _gateway(plain.tenants, plain.limits, budgets=False),
                    _gateway(budgeted.tenants, budgeted.limits, budgets=True),
                ),
            ):
                rounds = _measure(off, on)
                best = [min(r[i] for r in rounds) for i in range(3)]
                middle = [statistics.median(r[i] for r in rounds) for i in range(3)]
                print(_line(name + ", best", *best))
                print(_line(name + ", median", *middle))
        finally:
            plain.close()
            budgeted.close()
    print(
        "  target: ratio (budgets µs over added off µs) at most 0.10; budgets µs "
        "is on minus off"
    )


if __name__ == "__main__":
    main()

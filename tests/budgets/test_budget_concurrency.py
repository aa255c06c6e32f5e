"""
Spend budgets under concurrency: 50 requests at once against a budget of
three requests' worst case, through a real uvicorn server and the official
openai client, in one process (memory limits) and in three worker processes
sharing one LMDB folder. No more than the budget is ever billed, and a
refused request never reaches the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import openai
import pytest

from tests.budgets._support import KEY, PRICES, UsageApp, worst
from tests.http._support import serve_asgi, uvicorn_workers
from zerfoo_cloud import CloudServer, TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets import BudgetEvent
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryBillingStore

ONE = worst(10)
#: A little more than three requests' worst case.
BUDGET = SpendBudget("month", 3 * ONE + ONE // 2, "USD")
CONCURRENT = 50
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


async def _fire(base: str) -> list[int]:
    # CONCURRENT chat requests at once; the status of each.
    client = openai.AsyncOpenAI(api_key=KEY, base_url=base + "/v1", max_retries=0)

    async def one() -> int:
        try:
            await client.chat.completions.create(
                model="toy-1",
                messages=[{"role": "user", "content": "one two three"}],
                max_tokens=10,
            )
        except openai.RateLimitError as exc:
            body = exc.body
            assert isinstance(body, dict)
            assert body["code"] == "insufficient_quota"
            return 429
        return 200

    try:
        return list(await asyncio.gather(*(one() for _ in range(CONCURRENT))))
    finally:
        await client.close()


def test_fifty_at_once_in_one_process() -> None:
    tenants = TenantManager()
    tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    tenants.set_budgets("acme", [BUDGET])
    billing = MemoryBillingStore()
    meter = TokenMeter(billing, prices=PRICES)
    app = UsageApp(delay=0.05)
    events: list[BudgetEvent] = []
    server = CloudServer(app, tenants, meter, budget_events=events.append)
    with serve_asgi(server.handler()) as base:
        statuses = asyncio.run(_fire(base))
    assert server.close(10)
    billed = sum(r.cost for r in billing.all())
    assert statuses.count(200) == app.calls == len(billing.all()) == 3
    assert billed <= BUDGET.amount
    (status,) = tenants.spend("acme")
    assert (status.spent, status.held) == (billed, 0)
    # 50 % and 80 % of 1085 are reached by the second and third request.
    assert [e.threshold for e in events] == [50, 80]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """uvicorn with three workers on one LMDB folder: (base URL, folder, calls file)."""
    db = tmp_path / "db"
    calls = tmp_path / "calls"
    calls.touch()
    with LMDBStores.open(db) as stores:
        tenants = TenantManager(stores.tenants, limits=stores.limits)
        tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
        tenants.set_budgets("acme", [BUDGET])
    env = {"ZC_TEST_DB": str(db), "ZC_TEST_CALLS": str(calls)}
    with uvicorn_workers("tests.budgets._workers_app:app", 3, env) as base:
        yield base, db, calls


@pytest.mark.slow
def test_fifty_at_once_across_three_worker_processes(
    workers: tuple[str, Path, Path],
) -> None:
    base, db, calls = workers
    statuses = asyncio.run(_fire(base))
    served = calls.read_text(encoding="utf-8").split()
    assert statuses.count(200) == len(served) == 3
    with LMDBStores.open(db) as stores:
        records = stores.billing.query("acme", *EVER)
        tenants = TenantManager(stores.tenants, limits=stores.limits)
        (status,) = tenants.spend("acme")
    billed = sum(r.cost for r in records)
    assert len(records) == 3
    assert billed <= BUDGET.amount
    assert (status.spent, status.held) == (billed, 0)

"""
Spend budgets through the HTTP layer: worst-case costs held at admission in
the same atomic step as the other limits, actual costs settled, refusals as
OpenAI's ``insufficient_quota``, thresholds reported once, overruns charged.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.budgets._support import (
    AUTH,
    CHAT,
    KEY,
    PRICES,
    PROMPT,
    UsageApp,
    chat,
    worst,
)
from tests.pricing._support import Clock
from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets import BudgetEvent
from zerfoo_cloud.pricing import ModelPrice, PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryBillingStore,
    MemoryLimiterStore,
    MemoryTenantStore,
)
from zerfoo_cloud.stores.protocols import LimiterStore
from zerfoo_cloud.stores.redis import RedisLimiterStore

NOON = datetime(2026, 11, 12, 12, tzinfo=timezone.utc)
ONE = worst(10)  # 310 micro-units


class Gateway:
    """A tenant with budgets behind a CloudServer, on a settable clock."""

    def __init__(
        self,
        app: Any,
        budgets: list[SpendBudget],
        *,
        when: datetime = NOON,
        prices: PriceTable | None = PRICES,
        limits: LimiterStore | None = None,
    ) -> None:
        self.clock = Clock(when)
        self.tenants = TenantManager(
            MemoryTenantStore(),
            limits=MemoryLimiterStore() if limits is None else limits,
            clock=self.clock,
        )
        self.tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
        self.tenants.set_budgets("acme", budgets)
        self.billing = MemoryBillingStore()
        self.audit_store = MemoryAuditStore()
        self.meter = TokenMeter(self.billing, prices=prices, clock=self.clock)
        self.audit = AuditLogger(self.audit_store)
        self.events: list[BudgetEvent] = []
        self.app = app
        self.server = CloudServer(
            app,
            self.tenants,
            self.meter,
            audit=self.audit,
            budget_events=self.events.append,
        )

    async def post(self, headers: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(
            self.server.handler(), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            return await client.post(CHAT, json=chat(), headers=headers or AUTH)

    def billed(self) -> int:
        assert self.server.close(10)
        return sum(r.cost for r in self.billing.all())

    def spent(self) -> int:
        (status,) = self.tenants.spend("acme")
        return status.spent


def _monthly(amount: int, **kw: Any) -> SpendBudget:
    return SpendBudget("month", amount, "USD", **kw)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_requests_pass_until_the_budget_cannot_hold_the_next() -> None:
    gateway = Gateway(UsageApp(), [_monthly(3 * ONE)])
    statuses = [_run(gateway.post()).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert gateway.app.calls == 3
    assert gateway.spent() == gateway.billed() == 3 * ONE


def test_the_refusal_is_openais_insufficient_quota() -> None:
    gateway = Gateway(UsageApp(), [_monthly(ONE - 1, timezone="Europe/Paris")])
    response = _run(gateway.post())
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == error["code"] == "insufficient_quota"
    assert "could cost more than your month spend budget" in error["message"]
    assert "retry-after" not in response.headers
    assert gateway.app.calls == 0


def test_at_the_limit_and_just_past_it() -> None:
    exact = Gateway(UsageApp(), [_monthly(2 * ONE)])
    assert [_run(exact.post()).status_code for _ in range(3)] == [200, 200, 429]
    short = Gateway(UsageApp(), [_monthly(2 * ONE - 1)])
    assert [_run(short.post()).status_code for _ in range(2)] == [200, 429]


def test_unused_completion_is_given_back() -> None:
    gateway = Gateway(UsageApp(completion=0), [_monthly(ONE + PROMPT * 10)])
    # Each costs 110 of its 310 worst case: the rest of the hold is given
    # back, so two pass where two worst cases (620) would not fit in 420.
    assert [_run(gateway.post()).status_code for _ in range(3)] == [200, 200, 429]
    assert gateway.spent() == gateway.billed() == 2 * PROMPT * 10


def test_a_refusal_says_when_the_period_resets() -> None:
    # 23:59:59 on 30 November in Paris is 22:59:59 UTC.
    last = datetime(2026, 11, 30, 22, 59, 59, tzinfo=timezone.utc)
    gateway = Gateway(UsageApp(), [_monthly(ONE, timezone="Europe/Paris")], when=last)
    assert _run(gateway.post()).status_code == 200
    refused = _run(gateway.post())
    assert refused.status_code == 429
    assert "resets at 2026-12-01T00:00:00+01:00" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    gateway.clock.set(last + timedelta(seconds=1))
    assert _run(gateway.post()).status_code == 200
    (status,) = gateway.tenants.spend("acme")
    assert status.spent == ONE
    assert status.period_start is not None
    assert status.period_start.isoformat() == "2026-12-01T00:00:00+01:00"
    assert gateway.billed() == 2 * ONE


def test_a_utc_budget_is_still_in_november_then() -> None:
    last = datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)
    gateway = Gateway(UsageApp(), [_monthly(ONE)], when=last)
    assert _run(gateway.post()).status_code == 200
    gateway.clock.set(last + timedelta(minutes=59, seconds=59))
    assert _run(gateway.post()).status_code == 429
    gateway.clock.set(datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert _run(gateway.post()).status_code == 200


def test_a_price_change_mid_period_is_charged_as_billed() -> None:
    change = NOON + timedelta(days=1)
    prices = PRICES.with_price(
        "toy-1", ModelPrice(change, input=20_000_000, output=40_000_000, cached_input=0)
    )
    gateway = Gateway(UsageApp(), [_monthly(10 * ONE)], prices=prices)
    assert _run(gateway.post()).status_code == 200
    gateway.clock.set(change)
    assert _run(gateway.post()).status_code == 200
    assert gateway.spent() == gateway.billed() == ONE + 2 * ONE


def test_a_price_table_swapped_at_run_time_is_used() -> None:
    gateway = Gateway(UsageApp(), [_monthly(3 * ONE)])
    double = PriceTable(
        "USD",
        {
            "toy-1": [
                ModelPrice(
                    datetime(2020, 1, 1, tzinfo=timezone.utc), 20_000_000, 40_000_000, 0
                )
            ]
        },
    )
    gateway.server.policy.prices = double
    gateway.meter.prices = double
    assert [_run(gateway.post()).status_code for _ in range(2)] == [200, 429]
    assert gateway.spent() == gateway.billed() == 2 * ONE


def test_thresholds_are_reported_once() -> None:
    gateway = Gateway(UsageApp(), [_monthly(4 * ONE, alert_at=(25, 50, 75, 100))])
    for _ in range(5):
        _run(gateway.post())
    assert [(e.threshold, e.spent, e.exhausted, e.overrun) for e in gateway.events] == [
        (25, ONE, False, 0),
        (50, 2 * ONE, False, 0),
        (75, 3 * ONE, False, 0),
        (100, 4 * ONE, True, 0),
    ]
    event = gateway.events[0]
    assert (event.tenant_id, event.key_id, event.period, event.currency) == (
        "acme",
        None,
        "month",
        "USD",
    )
    assert event.period_start == datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()


def test_an_overrun_is_charged_recorded_and_then_refused() -> None:
    app = UsageApp(completion=100)  # 10 were allowed
    gateway = Gateway(app, [_monthly(2 * ONE)])
    assert _run(gateway.post()).status_code == 200
    cost = PROMPT * 10 + 100 * 20  # 2110
    assert gateway.spent() == gateway.billed() == cost
    (status,) = gateway.tenants.spend("acme")
    assert status.remaining == 2 * ONE - cost < 0
    assert _run(gateway.post()).status_code == 429
    assert app.calls == 1
    # One request reached every threshold at once: one event each.
    assert [(e.threshold, e.spent, e.overrun, e.exhausted) for e in gateway.events] == [
        (percent, cost, cost - 2 * ONE, True) for percent in (50, 80, 100)
    ]
    entries = gateway.audit_store.all()
    assert [e.result.value for e in entries] == ["budget_overrun", "rate_limited"]


def test_an_overrun_past_every_threshold_is_still_reported() -> None:
    app = UsageApp()
    gateway = Gateway(app, [_monthly(1000, alert_at=(10,))])
    assert _run(gateway.post()).status_code == 200  # 310: reaches 10 %
    app.completion = 100
    assert _run(gateway.post()).status_code == 200  # 2110 more, 310 held
    spent = 310 + 2110
    assert [(e.threshold, e.spent, e.overrun) for e in gateway.events] == [
        (10, 310, 0),
        (10, spent, spent - 1000),
    ]
    assert _run(gateway.post()).status_code == 429


def test_a_raised_budget_lets_requests_pass_and_a_lowered_one_refuses() -> None:
    gateway = Gateway(UsageApp(), [_monthly(ONE)])
    assert [_run(gateway.post()).status_code for _ in range(2)] == [200, 429]
    gateway.tenants.set_budgets("acme", [_monthly(3 * ONE)])
    assert [_run(gateway.post()).status_code for _ in range(3)] == [200, 200, 429]
    assert gateway.spent() == 3 * ONE
    gateway.tenants.set_budgets("acme", [_monthly(2 * ONE)])
    (status,) = gateway.tenants.spend("acme")
    assert (status.spent, status.remaining) == (3 * ONE, -ONE)
    assert _run(gateway.post()).status_code == 429
    assert gateway.billed() == 3 * ONE


def test_a_key_budget_applies_to_that_key_only() -> None:
    gateway = Gateway(UsageApp(), [])
    other, record = gateway.tenants.create_key("acme", name="ci")
    gateway.tenants.set_budgets("acme", [_monthly(ONE)], key_id=record.id)
    ci = {"authorization": f"Bearer {other}"}
    assert [_run(gateway.post(ci)).status_code for _ in range(2)] == [200, 429]
    assert [_run(gateway.post()).status_code for _ in range(2)] == [200, 200]
    (status,) = gateway.tenants.spend("acme", key_id=record.id)
    assert status.spent == ONE
    refused = _run(gateway.post(ci)).json()["error"]
    assert "this API key's month spend budget" in refused["message"]


def test_tenant_and_key_budgets_both_hold() -> None:
    gateway = Gateway(UsageApp(), [_monthly(2 * ONE)])
    other, record = gateway.tenants.create_key("acme", name="ci")
    gateway.tenants.set_budgets(
        "acme", [SpendBudget("day", 10 * ONE, "USD")], key_id=record.id
    )
    ci = {"authorization": f"Bearer {other}"}
    assert [_run(gateway.post(ci)).status_code for _ in range(3)] == [200, 200, 429]
    (key_status,) = gateway.tenants.spend("acme", key_id=record.id)
    assert key_status.spent == 2 * ONE


@pytest.mark.parametrize(
    ("prices", "says"),
    [
        (None, "the server has no prices"),
        (
            PriceTable("EUR", {"toy-1": list(PRICES.models["toy-1"])}),
            "is in USD, prices are in EUR",
        ),
    ],
)
def test_budgets_the_server_cannot_price_fail_closed(
    prices: PriceTable | None, says: str
) -> None:
    gateway = Gateway(UsageApp(), [_monthly(10 * ONE)], prices=prices)
    response = _run(gateway.post())
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "budget_not_enforceable"
    assert says in error["message"]
    assert gateway.app.calls == 0


def test_requests_without_a_model_are_not_charged() -> None:
    gateway = Gateway(UsageApp(), [_monthly(1)])

    async def models() -> httpx.Response:
        transport = httpx.ASGITransport(gateway.server.handler())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            return await client.get("/v1/models", headers=AUTH)

    assert _run(models()).status_code == 200
    assert gateway.spent() == 0


async def _at_once(gateway: Gateway, count: int) -> list[int]:
    try:
        responses = await asyncio.gather(*(gateway.post() for _ in range(count)))
    finally:
        connection = getattr(gateway.tenants.limits, "async_connection", None)
        if connection is not None:
            await connection.aclose()  # inside the loop that opened it
    return [r.status_code for r in responses]


def _concurrent_on(limits: LimiterStore) -> None:
    app = UsageApp(delay=0.02)
    gateway = Gateway(app, [_monthly(3 * ONE + ONE // 2)], limits=limits)
    statuses = _run(_at_once(gateway, 30))
    assert statuses.count(200) == app.calls == 3
    assert statuses.count(429) == 27
    assert gateway.spent() == gateway.billed() == 3 * ONE


@pytest.mark.redis
def test_at_once_on_redis(redis_url: str, redis_prefix: str) -> None:
    """Admission through Redis's asyncio script holds the budget too."""
    store = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    try:
        _concurrent_on(store)
    finally:
        store.clear("")
        store.close()


def test_at_once_on_lmdb(lmdb_stores: LMDBStores) -> None:
    _concurrent_on(lmdb_stores.limits)


def test_a_failing_event_callback_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: BudgetEvent) -> None:
        raise RuntimeError(event.period)

    gateway = Gateway(UsageApp(), [_monthly(2 * ONE)])
    gateway.server.policy.budget_events = broken
    assert [_run(gateway.post()).status_code for _ in range(3)] == [200, 200, 429]
    assert gateway.spent() == gateway.billed() == 2 * ONE
    assert "the budget event callback failed" in caplog.text


def test_wsgi_apps_are_held_to_budgets() -> None:
    calls: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(1)
        environ["wsgi.input"].read()
        body = (
            b'{"usage": {"prompt_tokens": 11, "completion_tokens": 10, '
            b'"total_tokens": 21}}'
        )
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    gateway = Gateway(app, [_monthly(2 * ONE)])
    with httpx.Client(
        transport=httpx.WSGITransport(gateway.server.handler()), base_url="http://t"
    ) as client:
        statuses = [client.post(CHAT, json=chat(), headers=AUTH) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["code"] == "insufficient_quota"
    assert len(calls) == 2
    assert gateway.spent() == gateway.billed() == 2 * ONE

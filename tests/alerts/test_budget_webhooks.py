"""
Budget alerts end to end: requests through a `CloudServer` cross a spend
budget's thresholds, and a real receiver gets one signed webhook per
crossing (the real `zerfoo_cloud.budgets.BudgetEvent` through the adapter).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone

import httpx

from tests.alerts._receiver import Receiver
from tests.budgets._support import AUTH, CHAT, KEY, PRICES, UsageApp, chat, worst
from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.alerts import Alerts, WebhookEndpoint, WebhookSecret, verify
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.stores.alerts import MemoryAlertOutbox
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore


def test_each_threshold_crossing_is_one_signed_webhook(
    secret: WebhookSecret, receiver: Receiver
) -> None:
    """Four requests over a four-request budget: 50, 75 and 100 % each arrive once."""
    one = worst(10)
    tenants = TenantManager()
    tenants.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    tenants.set_budgets(
        "acme", [SpendBudget("month", 4 * one, "USD", alert_at=(50, 75, 100))]
    )
    audit_store = MemoryAuditStore()
    audit = AuditLogger(audit_store)
    outbox = MemoryAlertOutbox()
    alerts = Alerts(
        outbox,
        [WebhookEndpoint(receiver.url, ("budget.*",))],
        [secret],
        audit=audit,
        poll=0.05,
    )
    alerts.start()
    meter = TokenMeter(MemoryBillingStore(), prices=PRICES)
    server = CloudServer(
        UsageApp(), tenants, meter, audit=audit, budget_events=alerts.budget_event
    )

    async def post_all() -> list[int]:
        transport = httpx.ASGITransport(server.handler())
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            return [
                (await client.post(CHAT, json=chat(), headers=AUTH)).status_code
                for _ in range(5)
            ]

    try:
        assert asyncio.run(post_all()) == [200, 200, 200, 200, 429]
        deadline = time.monotonic() + 10
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        alerts.close()
        server.close(10)
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [(b["type"], b["data"]["threshold"]) for b in bodies] == [
        ("budget.threshold", 50),
        ("budget.threshold", 75),
        ("budget.exhausted", 100),
    ]
    assert bodies[2]["data"]["spent"] == 4 * one
    assert bodies[2]["data"]["currency"] == "USD"
    start = datetime.fromisoformat(bodies[0]["data"]["period_start"])
    assert start.day == 1
    assert start.tzinfo == timezone.utc
    for got in receiver.received:
        assert verify(got.body, got.headers, secret) == json.loads(got.body)["id"]
    assert len({b["id"] for b in bodies}) == 3
    alerted = [e for e in audit_store.all() if e.action.value == "alert"]
    assert len(alerted) == 3

"""
The Overview page's data: today and the month to date, limits, requests in
flight and budgets, on real LMDB stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest

from tests.conftest import FakeClock
from zerfoo_cloud import AuditEntry, AuditLogger, BillingRecord, TokenMeter
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.errors import TenantNotFoundError
from zerfoo_cloud.http.console._overview_data import build_overview
from zerfoo_cloud.http.console._usage_data import DayRange
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import TenantConfig, TenantManager

NOW = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)


@pytest.fixture
def parts(
    lmdb_stores: LMDBStores,
) -> Iterator[tuple[TenantManager, TokenMeter, AuditLogger]]:
    """
    A manager with tenant acme, a meter and an audit logger on one LMDB folder.
    """
    manager = TenantManager(
        lmdb_stores.tenants,
        limits=lmdb_stores.limits,
        clock=FakeClock(NOW.timestamp()),
    )
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 60, 1000, 4, ("m1",)))
    meter = TokenMeter(lmdb_stores.billing)
    audit = AuditLogger(lmdb_stores.audit)
    yield manager, meter, audit
    meter.close()
    audit.close()


def test_today_and_month_to_date(
    parts: tuple[TenantManager, TokenMeter, AuditLogger],
) -> None:
    """Today's figures count today only; the month's count from the 1st (UTC)."""
    manager, meter, audit = parts
    earlier = NOW - timedelta(days=3)
    last_month = NOW - timedelta(days=10)
    meter.store.add(
        [
            BillingRecord("acme", 10, 5, NOW, "m1", cost=100, currency="USD"),
            BillingRecord("acme", 1, 1, earlier, "m1", cost=7, currency="USD"),
            BillingRecord("acme", 50, 50, last_month, "m1", cost=9, currency="USD"),
        ]
    )
    for when, status in ((NOW, 429), (NOW, 500), (earlier, 429), (NOW, 200)):
        audit.log(
            AuditEntry(
                when,
                "acme",
                AuditAction.INFERENCE,
                AuditResult.SUCCESS,
                status_code=status,
            )
        )
    audit.flush()
    overview = build_overview("acme", NOW, manager, meter, audit)
    assert overview.month == DayRange(date(2026, 12, 1), date(2026, 12, 6))
    day, month = overview.day_figures, overview.month_figures
    assert (day.requests, day.tokens, day.spend) == (1, 15, (("USD", 100),))
    assert (day.errors, day.rate_limited, day.attempts) == (1, 1, 3)
    assert (month.requests, month.tokens, month.spend) == (2, 17, (("USD", 107),))
    assert (month.errors, month.rate_limited, month.attempts) == (1, 2, 4)
    assert overview.tenant.rate_limit == 60
    assert overview.tenant.max_concurrent_requests == 4
    assert overview.in_flight == 0
    assert not overview.idle


def test_idle_tenant_and_budgets(
    parts: tuple[TenantManager, TokenMeter, AuditLogger],
) -> None:
    """A tenant without traffic this month is idle; its budgets are listed."""
    manager, meter, _ = parts
    manager.set_budgets("acme", [SpendBudget("month", 5_000_000, "USD")])
    overview = build_overview("acme", NOW, manager, meter)
    assert overview.idle
    assert overview.day_figures.errors is None
    assert [(s.budget.period, s.spent, s.remaining) for s in overview.budgets] == [
        ("month", 0, 5_000_000)
    ]


def test_unknown_tenant(parts: tuple[TenantManager, TokenMeter, AuditLogger]) -> None:
    """An unknown tenant is TenantNotFoundError."""
    manager, meter, _ = parts
    with pytest.raises(TenantNotFoundError):
        build_overview("nobody", NOW, manager, meter)


def test_refused_traffic_is_not_idle(
    parts: tuple[TenantManager, TokenMeter, AuditLogger],
) -> None:
    """A tenant whose every request was refused has traffic: 0 billed, its 429s counted."""
    manager, meter, audit = parts
    audit.log(
        AuditEntry(
            NOW,
            "acme",
            AuditAction.INFERENCE,
            AuditResult.RATE_LIMITED,
            status_code=429,
        )
    )
    audit.flush()
    overview = build_overview("acme", NOW, manager, meter, audit)
    assert overview.month_figures.requests == 0
    assert overview.month_figures.rate_limited == 1
    assert not overview.idle

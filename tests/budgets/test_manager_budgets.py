"""
TenantManager.set_budgets and TenantManager.spend.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.conftest import FakeClock
from zerfoo_cloud.audit import AuditLogger
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets import BudgetAccount, BudgetStatus
from zerfoo_cloud.errors import InvalidConfigError, KeyNotFoundError
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryLimiterStore,
    MemoryTenantStore,
)
from zerfoo_cloud.tenants import TenantConfig, TenantManager

# 2026-12-06 12:00:00 UTC
NOON = datetime(2026, 12, 6, 12, tzinfo=timezone.utc).timestamp()
MONTHLY = SpendBudget("month", 10_000_000, "USD")


@pytest.fixture
def manager() -> TenantManager:
    manager = TenantManager(
        MemoryTenantStore(), limits=MemoryLimiterStore(), clock=FakeClock(NOON)
    )
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 0, 0))
    return manager


def _spend(manager: TenantManager, budget: SpendBudget, actual: int) -> None:
    # What a settled request of *actual* micro-units leaves in the buckets.
    account = BudgetAccount.at("acme", None, budget, manager.clock())
    manager.limits.admit(None, (account.hold(actual),), manager.clock())
    manager.limits.settle(None, account.settlement(actual, actual), manager.clock())


def test_a_new_budget_is_unspent(manager: TenantManager) -> None:
    record = manager.set_budgets("acme", [MONTHLY])
    assert record.spend_budgets == (MONTHLY,)
    assert manager.get("acme").record.spend_budgets == (MONTHLY,)
    (status,) = manager.spend("acme")
    assert status == BudgetStatus(
        MONTHLY,
        None,
        datetime(2026, 12, 1, tzinfo=status.period_start.tzinfo),  # type: ignore[union-attr]
        datetime(2027, 1, 1, tzinfo=status.period_start.tzinfo),  # type: ignore[union-attr]
        0,
        0,
        10_000_000,
    )


def test_spent_and_held(manager: TenantManager) -> None:
    manager.set_budgets("acme", [MONTHLY])
    _spend(manager, MONTHLY, 3_000_000)
    account = BudgetAccount.at("acme", None, MONTHLY, NOON)
    manager.limits.admit(None, (account.hold(1_000_000),), NOON)
    (status,) = manager.spend("acme")
    assert (status.spent, status.held, status.remaining) == (
        3_000_000,
        1_000_000,
        6_000_000,
    )


@pytest.mark.parametrize(
    ("amount", "remaining"), [(20_000_000, 17_000_000), (2_000_000, -1_000_000)]
)
def test_a_changed_amount_keeps_what_was_spent(
    manager: TenantManager, amount: int, remaining: int
) -> None:
    manager.set_budgets("acme", [MONTHLY])
    _spend(manager, MONTHLY, 3_000_000)
    manager.set_budgets("acme", [SpendBudget("month", amount, "USD")])
    (status,) = manager.spend("acme")
    assert (status.spent, status.held, status.remaining) == (3_000_000, 0, remaining)


def test_a_changed_amount_of_an_unused_budget(manager: TenantManager) -> None:
    manager.set_budgets("acme", [MONTHLY])
    manager.set_budgets("acme", [SpendBudget("month", 4_000_000, "USD")])
    (status,) = manager.spend("acme")
    assert (status.spent, status.remaining) == (0, 4_000_000)


def test_key_budgets(manager: TenantManager) -> None:
    _, key = manager.create_key("acme", name="ci")
    daily = SpendBudget("day", 1_000_000, "USD", "America/New_York")
    manager.set_budgets("acme", [daily], key_id=key.id)
    assert manager.get("acme").record.key_by_id(key.id).spend_budgets == (daily,)  # type: ignore[union-attr]
    assert manager.get("acme").record.spend_budgets == ()
    (status,) = manager.spend("acme", key_id=key.id)
    assert status.key_id == key.id
    assert status.period_start is not None
    assert status.period_start.isoformat() == "2026-12-06T00:00:00-05:00"
    with pytest.raises(KeyNotFoundError):
        manager.set_budgets("acme", [daily], key_id="k-0000000000000000")


def test_bad_budget_sets_change_nothing(manager: TenantManager) -> None:
    manager.set_budgets("acme", [MONTHLY])
    for bad in ([MONTHLY, MONTHLY], ["month"], "month"):
        with pytest.raises(InvalidConfigError):
            manager.set_budgets("acme", bad)  # type: ignore[arg-type]
    assert manager.get("acme").record.spend_budgets == (MONTHLY,)


def test_changes_are_audited() -> None:
    audit = AuditLogger(MemoryAuditStore(), background=False)
    manager = TenantManager(clock=FakeClock(NOON), audit=audit)
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 0, 0))
    manager.set_budgets("acme", [MONTHLY], actor="alice")
    audit.flush()
    entries = audit.query(
        "acme",
        datetime(2000, 1, 1, tzinfo=timezone.utc),
        datetime(2100, 1, 1, tzinfo=timezone.utc),
    )
    assert [e.resource for e in entries] == ["spend_budgets by alice"]


def test_a_rotated_key_keeps_its_budgets_and_what_they_spent(
    manager: TenantManager,
) -> None:
    key_id = manager.get("acme").record.keys[0].id
    manager.set_budgets("acme", [MONTHLY], key_id=key_id)
    account = BudgetAccount.at("acme", key_id, MONTHLY, manager.clock())
    now = manager.clock()
    manager.limits.admit(None, (account.hold(3_000_000),), now)
    manager.limits.settle(None, account.settlement(3_000_000, 2_500_000), now)
    manager.limits.admit(None, (account.hold(1_000_000),), now)  # in flight
    _, new, _ = manager.rotate_api_key("acme", key_id)
    assert new.spend_budgets == (MONTHLY,)
    (status,) = manager.spend("acme", key_id=new.id)
    # What the old key spent is spent; what it held counts as held.
    assert (status.spent, status.remaining) == (2_500_000, 6_500_000)
    assert status.spent + status.held + status.remaining == MONTHLY.amount


def test_a_new_secret_for_the_first_key_keeps_its_limits_and_budgets(
    manager: TenantManager,
) -> None:
    first = manager.get("acme").record.keys[0]
    manager.update_key("acme", first.id, model_scope=["m1"], rate_limit=0)
    manager.set_budgets("acme", [MONTHLY], key_id=first.id)
    account = BudgetAccount.at("acme", first.id, MONTHLY, manager.clock())
    now = manager.clock()
    manager.limits.admit(None, (account.hold(2_000_000),), now)
    manager.limits.settle(None, account.settlement(2_000_000, 2_000_000), now)
    manager.rotate_key("acme")
    new = manager.get("acme").record.keys[0]
    assert new.id != first.id
    assert (new.model_scope, new.spend_budgets) == (("m1",), (MONTHLY,))
    (status,) = manager.spend("acme", key_id=new.id)
    assert (status.spent, status.remaining) == (2_000_000, 8_000_000)

"""
Spend budgets: money a tenant, or one of its keys, may spend per period.

A budget (`zerfoo_cloud.budget_records.SpendBudget`) is enforced by
reserving each request's worst-case cost in the same atomic limiter step as
the tenant's other limits, and settling its actual cost when it finishes
(see ``docs/billing.md``). Its modules:

- `zerfoo_cloud.budgets.periods`: the calendar period containing an instant
  (`period_at`, `BudgetPeriod`);
- `zerfoo_cloud.budgets.accounts`: the limiter buckets of one budget's
  period (`BudgetAccount`);
- `zerfoo_cloud.budgets.holds`: `BudgetHold`, what one request holds, and
  its worst-case and actual costs;
- `zerfoo_cloud.budgets.events`: `BudgetEvent`, sent when a threshold is
  reached;
- `zerfoo_cloud.budgets.event_log`: `log_budget_event`, one log line per
  event (what ``zerfoo-cloud serve`` does with them);
- `zerfoo_cloud.budgets.status`: `BudgetStatus`, what `TenantManager.spend`
  reports.
"""

from __future__ import annotations

from zerfoo_cloud.budget_records import BUDGET_PERIODS, SpendBudget
from zerfoo_cloud.budgets.accounts import SPENT_CAPACITY, BudgetAccount, accounts_at
from zerfoo_cloud.budgets.event_log import log_budget_event
from zerfoo_cloud.budgets.events import BudgetEvent, crossed_thresholds
from zerfoo_cloud.budgets.holds import BudgetHold, actual_cost, worst_cost
from zerfoo_cloud.budgets.periods import LIFETIME_ID, BudgetPeriod, period_at
from zerfoo_cloud.budgets.status import BudgetStatus

__all__ = [
    "BUDGET_PERIODS",
    "LIFETIME_ID",
    "SPENT_CAPACITY",
    "BudgetAccount",
    "BudgetEvent",
    "BudgetHold",
    "BudgetPeriod",
    "BudgetStatus",
    "SpendBudget",
    "accounts_at",
    "actual_cost",
    "crossed_thresholds",
    "log_budget_event",
    "period_at",
    "worst_cost",
]

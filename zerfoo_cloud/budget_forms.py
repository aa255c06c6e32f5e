"""
Spend budgets as the command line and the admin API write and change them.

A tenant's (or one key's) budgets are a set with at most one budget per
period; the interfaces change one period at a time (`with_budget`,
`without_period`) and show each budget's current period with its money as
decimal text, never a float (`status_to_dict`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.budget_records import BUDGET_PERIODS
from zerfoo_cloud.errors import InvalidConfigError, KeyNotFoundError
from zerfoo_cloud.pricing import format_micros

if TYPE_CHECKING:
    from collections.abc import Iterable

    from zerfoo_cloud.budget_records import SpendBudget
    from zerfoo_cloud.budgets import BudgetStatus
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = ["budgets_of", "status_to_dict", "with_budget", "without_period"]


def budgets_of(record: TenantRecord, key_id: str | None) -> tuple[SpendBudget, ...]:
    """
    The spend budgets of *record*, or of its key *key_id*.

    Raises:
        KeyNotFoundError: the tenant has no key *key_id*.
    """
    if key_id is None:
        return record.spend_budgets
    key = record.key_by_id(key_id)
    if key is None:
        raise KeyNotFoundError(record.id, key_id)
    return key.spend_budgets


def with_budget(
    budgets: Iterable[SpendBudget], budget: SpendBudget
) -> tuple[SpendBudget, ...]:
    """
    *budgets* with *budget* in place of the one of its period (added when
    there is none), in the order of `zerfoo_cloud.budgets.BUDGET_PERIODS`.
    """
    kept = [b for b in budgets if b.period != budget.period]
    return _ordered([*kept, budget])


def without_period(
    budgets: Iterable[SpendBudget], period: str | None
) -> tuple[SpendBudget, ...]:
    """
    *budgets* without the one of *period* (``None``: without any).

    Raises:
        InvalidConfigError: there is no budget of *period* to remove.
    """
    found = tuple(budgets)
    if period is None:
        return ()
    if all(b.period != period for b in found):
        msg = f"period: no {period} budget to clear"
        raise InvalidConfigError(msg, field="period")
    return tuple(b for b in found if b.period != period)


def _ordered(budgets: list[SpendBudget]) -> tuple[SpendBudget, ...]:
    return tuple(sorted(budgets, key=lambda b: BUDGET_PERIODS.index(b.period)))


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def status_to_dict(status: BudgetStatus) -> dict[str, Any]:
    """
    *status* as JSON: the budget (`SpendBudget.to_dict`), whose key
    (``None``: the tenant's), the period's bounds in UTC (``None`` for a
    lifetime budget) and ``spent``, ``held`` and ``remaining`` as decimal
    text in the budget's currency (``remaining`` is negative after an
    overrun).
    """
    return {
        **status.budget.to_dict(),
        "key_id": status.key_id,
        "period_start": _iso(status.period_start),
        "period_end": _iso(status.period_end),
        "spent": format_micros(status.spent),
        "held": format_micros(status.held),
        "remaining": format_micros(status.remaining),
    }

"""
BudgetStatus: how much of one spend budget's current period is spent.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from zerfoo_cloud.budget_records import SpendBudget

__all__ = ["BudgetStatus"]


@attrs.frozen
class BudgetStatus:
    """
    One budget's current period, as `TenantManager.spend` reports it.

    Attributes:
        budget: the budget.
        key_id: the key the budget belongs to, ``None`` for the tenant's.
        period_start: the period's first instant (in the budget's zone),
            ``None`` for a lifetime budget.
        period_end: the first instant after the period, ``None`` for a
            lifetime budget.
        spent: micro-units settled in the period (exact: what was billed).
        held: micro-units reserved by requests in flight (their worst
            case, until they finish).
        remaining: ``amount - spent - held``; negative after an overrun.

    .. versionadded:: 0.1.0
    """

    budget: SpendBudget
    key_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    spent: int
    held: int
    remaining: int

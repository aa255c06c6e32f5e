"""
BudgetEvent: a spend budget's period reached one of its thresholds.
"""

from __future__ import annotations

import attrs

from zerfoo_cloud.budget_records import SpendBudget

__all__ = ["BudgetEvent", "crossed_thresholds"]


@attrs.frozen
class BudgetEvent:
    """
    Sent once, on one host, when the spending of a budget's period reaches
    one of its ``alert_at`` percents (and once more for each request that
    overruns an exhausted budget: ``overrun`` then says by how much).

    Attributes:
        tenant_id: the tenant.
        key_id: the key whose budget it is, ``None`` for the tenant's.
        period: ``"day"``, ``"week"``, ``"month"`` or ``"lifetime"``.
        period_start: the period's first instant in Unix seconds, ``None``
            for a lifetime budget.
        threshold: the percent reached (for an overrun, the highest
            threshold, or 100).
        spent: micro-units spent in the period once the request settled.
        amount: the budget's amount, micro-units.
        currency: its ISO 4217 code.
        exhausted: ``spent >= amount``.
        overrun: ``spent - amount`` when positive, else 0.

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    key_id: str | None
    period: str
    period_start: float | None
    threshold: int
    spent: int
    amount: int
    currency: str
    exhausted: bool
    overrun: int


def crossed_thresholds(
    budget: SpendBudget, spent_before: int, spent_after: int
) -> list[int]:
    """
    The ``alert_at`` percents of *budget* that a charge taking the period's
    spending from *spent_before* to *spent_after* reached: those whose
    amount (`SpendBudget.threshold_amount`) lies in ``(spent_before,
    spent_after]``. Each charge is settled atomically on a counter, so every
    threshold is reached by exactly one charge.
    """
    percents = budget.alert_at
    # Threshold amounts rise with the percents: most charges reach none,
    # being below the first or past the last (two amounts, not each).
    if (
        not percents
        or spent_after < budget.threshold_amount(percents[0])
        or spent_before >= budget.threshold_amount(percents[-1])
    ):
        return []
    return [
        percent
        for percent in percents
        if spent_before < budget.threshold_amount(percent) <= spent_after
    ]

"""
log_budget_event: the default receiver of budget events, one log line each.
"""

from __future__ import annotations

import logging

from zerfoo_cloud.budgets.events import BudgetEvent
from zerfoo_cloud.pricing.money import format_cost

__all__ = ["log_budget_event"]

_log = logging.getLogger("zerfoo_cloud.budgets")


def log_budget_event(event: BudgetEvent) -> None:
    """
    Log *event* as one line on the ``zerfoo_cloud.budgets`` logger: a
    warning when the budget is exhausted or overrun, else an info line.
    What ``zerfoo-cloud serve`` does with budget events.
    """
    owner = (
        event.tenant_id if event.key_id is None else f"{event.tenant_id}/{event.key_id}"
    )
    level = logging.WARNING if event.exhausted or event.overrun else logging.INFO
    _log.log(
        level,
        "spend budget %s (%s) reached %d%%: %s of %s spent%s",
        owner,
        event.period,
        event.threshold,
        format_cost(event.spent, event.currency),
        format_cost(event.amount, event.currency),
        f", overrun {format_cost(event.overrun, event.currency)}"
        if event.overrun
        else "",
    )

"""
Alerts about spend budgets: `budget_alert` turns a budget event (anything
with the attributes of `zerfoo_cloud.budgets.BudgetEvent`) into an
`AlertEvent` (``budget.threshold``, ``budget.exhausted``, ``budget.overrun``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

from zerfoo_cloud.alert_records import AlertEvent, deterministic_event_id

__all__ = ["BudgetEventLike", "budget_alert"]


class BudgetEventLike(Protocol):
    """
    **Protocol**: A spend budget's threshold crossing, as
    `zerfoo_cloud.budgets.BudgetEvent` holds it (money in micro-units).

    .. versionadded:: 0.1.0
    """

    @property
    def tenant_id(self) -> str: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def period(self) -> str: ...
    @property
    def period_start(self) -> float | None: ...
    @property
    def threshold(self) -> int: ...
    @property
    def spent(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def exhausted(self) -> bool: ...
    @property
    def overrun(self) -> int: ...


def budget_alert(event: BudgetEventLike, now: float) -> AlertEvent:
    """
    The alert of *event*, made at *now*: ``budget.overrun`` when more than
    the budget was spent, else ``budget.exhausted`` when all of it was,
    else ``budget.threshold``.

    Its id is made of the type, tenant, key, period, period start and
    threshold: the same crossing always has the same id (every host, every
    retry), and the next period's crossing another. *data* holds
    ``key_id``, ``period``, ``period_start`` (ISO 8601 or ``null`` for a
    lifetime budget), ``threshold`` (percent), ``spent``, ``amount`` and
    ``overrun`` (integers of micro-units), and ``currency``.
    """
    if event.overrun > 0:
        kind = "budget.overrun"
    elif event.exhausted:
        kind = "budget.exhausted"
    else:
        kind = "budget.threshold"
    start = event.period_start
    event_id = deterministic_event_id(
        kind,
        event.tenant_id,
        event.key_id,
        event.period,
        None if start is None else repr(float(start)),
        event.threshold,
    )
    data = {
        "key_id": event.key_id,
        "period": event.period,
        "period_start": None
        if start is None
        else datetime.fromtimestamp(start, timezone.utc).isoformat(timespec="seconds"),
        "threshold": event.threshold,
        "spent": event.spent,
        "amount": event.amount,
        "overrun": event.overrun,
        "currency": event.currency,
    }
    return AlertEvent(event_id, kind, now, event.tenant_id, data)

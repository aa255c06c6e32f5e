"""
What the console's Overview page shows of a tenant: requests, tokens,
spend, errors and 429s today and this month (UTC), its limits, the
requests in flight now, and its spend budgets' current periods.

The figures come from one usage report over the month to date (see
`zerfoo_cloud.http.console._usage_data` for the sources); limits and
budgets from the tenant manager. Building it waits on the stores: callers
on the event loop run `build_overview` in a worker thread.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.http.console._usage_data import (
    AuditSource,
    DayRange,
    UsageReport,
    UsageSource,
    build_usage_report,
)

if TYPE_CHECKING:
    from zerfoo_cloud.budgets import BudgetStatus
    from zerfoo_cloud.tenant_records import TenantRecord
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["Figures", "Overview", "build_overview", "figures_of"]


@attrs.frozen
class Figures:
    """
    A tenant's traffic over some days: billed *requests* and *tokens*,
    *spend* per currency (``[(currency, micros)]``), and *errors* and
    *rate_limited* (429s) from the audit log (``None`` without one), out
    of *attempts* (every request the audit log saw, ``None`` without one).

    .. versionadded:: 0.1.0
    """

    requests: int
    tokens: int
    spend: tuple[tuple[str, int], ...]
    errors: int | None
    rate_limited: int | None
    attempts: int | None


def figures_of(report: UsageReport, day: date | None = None) -> Figures:
    """
    The `Figures` of *report*, or of its one *day*.

    .. versionadded:: 0.1.0
    """
    rows = [r for r in report.rows if day is None or r.day == day]
    spend: dict[str, int] = {}
    for r in rows:
        if r.currency:
            spend[r.currency] = spend.get(r.currency, 0) + r.cost
    outcomes = report.outcomes
    picked = (
        None
        if outcomes is None
        else [o for d, o in outcomes.items() if day is None or d == day]
    )
    return Figures(
        requests=sum(r.requests for r in rows),
        tokens=sum(r.tokens for r in rows),
        spend=tuple(sorted(spend.items())),
        errors=None if picked is None else sum(o.errors for o in picked),
        rate_limited=None if picked is None else sum(o.rate_limited for o in picked),
        attempts=None if picked is None else sum(o.attempts for o in picked),
    )


@attrs.frozen
class Overview:
    """
    The Overview page's data of one tenant on *today* (a UTC day).

    .. versionadded:: 0.1.0
    """

    tenant: TenantRecord
    today: date
    month: DayRange
    day_figures: Figures
    month_figures: Figures
    in_flight: int
    budgets: tuple[BudgetStatus, ...]

    @property
    def idle(self) -> bool:
        """
        Whether the tenant sent no request this month (none billed, none
        refused).
        """
        figures = self.month_figures
        return figures.requests == 0 and not figures.attempts


def build_overview(
    tenant_id: str,
    now: datetime,
    tenants: TenantManager,
    meter: UsageSource,
    audit: AuditSource | None = None,
) -> Overview:
    """
    The Overview of *tenant_id* at *now* (aware): today and the month to
    date, in UTC.

    Raises:
        TenantNotFoundError: no tenant has id *tenant_id*.

    .. versionadded:: 0.1.0
    """
    tenant = tenants.get(tenant_id)
    today = now.date()
    month = DayRange(today.replace(day=1), today)
    report = build_usage_report(tenant_id, month, "model", meter, audit)
    return Overview(
        tenant=tenant.record,
        today=today,
        month=month,
        day_figures=figures_of(report, today),
        month_figures=figures_of(report),
        in_flight=tenant.in_flight(),
        budgets=tenants.spend(tenant_id),
    )

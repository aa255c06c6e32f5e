"""
``zerfoo-cloud budget``: set, show and clear the spend budgets of a tenant
or of one of its keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.budget_forms import (
    budgets_of,
    status_to_dict,
    with_budget,
    without_period,
)
from zerfoo_cloud.budget_records import BUDGET_PERIODS, DEFAULT_ALERT_AT, SpendBudget
from zerfoo_cloud.cli._audit_commands import _audit_logger
from zerfoo_cloud.cli._context import F, _Context, _handle_errors
from zerfoo_cloud.cli._output import _emit, _json_option, render_table
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.tenants import TenantManager

with needs_extra("cli", "the zerfoo-cloud command"):
    import click

#: Who the audit log says changed a budget from the command line.
_ACTOR = "cli"


@click.group()
def budget() -> None:
    """
    Set, show and clear spend budgets (money per day, week, month or lifetime).
    """


@contextmanager
def _audited_manager(obj: _Context) -> Iterator[TenantManager]:
    # A manager that writes each budget change to the audit log; with Redis
    # counters, each change is announced to every host.
    with obj.stores() as stores:
        audit = _audit_logger(stores)
        manager = TenantManager(
            stores.tenants,
            limits=stores.limits,
            revocations=stores.revocations,
            audit=audit,
        )
        try:
            yield manager
        finally:
            manager.close()
            audit.close()


def _key_option(fn: F) -> F:
    return click.option(
        "--key",
        "key_id",
        metavar="KEY_ID",
        help="A budget of this API key of the tenant (default: the tenant's own).",
    )(fn)


def _alerts(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if not all(part.isdigit() and len(part) <= 3 for part in parts):  # noqa: PLR2004
        msg = f"--alert-at: percents separated by commas such as 50,80,100, not {text[:40]!r}"
        raise InvalidConfigError(msg, field="alert_at")
    return tuple(int(part) for part in parts)


def _rows(statuses: list[dict[str, Any]]) -> str:
    return render_table(
        ["PERIOD", "AMOUNT", "SPENT", "HELD", "REMAINING", "FROM", "UNTIL", "ALERTS"],
        [
            [
                s["period"],
                f"{s['amount']} {s['currency']}",
                s["spent"],
                s["held"],
                s["remaining"],
                s["period_start"] or "-",
                s["period_end"] or "-",
                ",".join(map(str, s["alert_at"])) or "-",
            ]
            for s in statuses
        ],
    )


@budget.command("set")
@click.argument("tenant_id")
@_key_option
@click.option(
    "--period", required=True, type=click.Choice(BUDGET_PERIODS), help="The period."
)
@click.option(
    "--amount",
    required=True,
    help="The most money spent per period, as decimal text (25.00).",
)
@click.option(
    "--currency", required=True, help="ISO 4217 code; the price table's currency."
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="IANA time zone whose calendar the period follows (Europe/Paris).",
)
@click.option(
    "--alert-at",
    default=",".join(map(str, DEFAULT_ALERT_AT)),
    show_default=True,
    help="Percents of the amount at which an event is sent, increasing.",
)
@_json_option
@click.pass_obj
@_handle_errors
def budget_set(
    obj: _Context,
    tenant_id: str,
    key_id: str | None,
    period: str,
    amount: str,
    currency: str,
    timezone: str,
    alert_at: str,
    as_json: bool,
) -> None:
    """
    Set the budget of one period of TENANT (or of its key --key), keeping
    its budgets of other periods. What the period has spent stays spent.
    """
    new = SpendBudget.from_dict(
        {
            "period": period,
            "amount": amount,
            "currency": currency,
            "timezone": timezone,
            "alert_at": list(_alerts(alert_at)),
        }
    )
    with _audited_manager(obj) as manager:
        current = budgets_of(manager.get(tenant_id).record, key_id)
        record = manager.set_budgets(
            tenant_id, with_budget(current, new), key_id=key_id, actor=_ACTOR
        )
        budgets = budgets_of(record, key_id)
    _emit(
        as_json,
        {
            "tenant_id": tenant_id,
            "key_id": key_id,
            "budgets": [b.to_dict() for b in budgets],
        },
        f"{period} budget of {tenant_id}{'' if key_id is None else ' key ' + key_id} "
        f"set to {new.to_dict()['amount']} {new.currency}",
    )


@budget.command("show")
@click.argument("tenant_id")
@_key_option
@_json_option
@click.pass_obj
@_handle_errors
def budget_show(
    obj: _Context, tenant_id: str, key_id: str | None, as_json: bool
) -> None:
    """
    Show each budget of TENANT (or of its key --key) with its current
    period: spent, held by requests in flight, and remaining.
    """
    with obj.manager() as manager:
        statuses = [status_to_dict(s) for s in manager.spend(tenant_id, key_id=key_id)]
    text = _rows(statuses) if statuses else f"no spend budgets for {tenant_id}"
    _emit(as_json, {"tenant_id": tenant_id, "key_id": key_id, "data": statuses}, text)


@budget.command("clear")
@click.argument("tenant_id")
@_key_option
@click.option(
    "--period",
    type=click.Choice(BUDGET_PERIODS),
    help="Clear only the budget of this period (default: every budget).",
)
@click.pass_obj
@_handle_errors
def budget_clear(
    obj: _Context, tenant_id: str, key_id: str | None, period: str | None
) -> None:
    """
    Remove the budgets of TENANT (or of its key --key): all, or one --period.
    """
    with _audited_manager(obj) as manager:
        current = budgets_of(manager.get(tenant_id).record, key_id)
        manager.set_budgets(
            tenant_id, without_period(current, period), key_id=key_id, actor=_ACTOR
        )
    which = "every budget" if period is None else f"the {period} budget"
    click.echo(
        f"cleared {which} of {tenant_id}{'' if key_id is None else ' key ' + key_id}"
    )

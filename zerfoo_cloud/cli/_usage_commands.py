"""
``zerfoo-cloud usage``: report and export token usage from the billing records.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import _Context, _handle_errors
from zerfoo_cloud.cli._export_output import _export_options, _export_target, _format
from zerfoo_cloud.cli._output import render_table
from zerfoo_cloud.cli._window import _window, _window_options
from zerfoo_cloud.csv_cells import write_csv_row
from zerfoo_cloud.export import export_billing
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.pricing import format_cost, format_micros
from zerfoo_cloud.stores.open import Stores

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import TenantListingBillingStore

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group()
def usage() -> None:
    """
    Report and export token usage (billing records).
    """


_tenants_option = click.option(
    "--tenant",
    "tenants",
    multiple=True,
    metavar="ID",
    help="A tenant (repeat; default: all).",
)


def _tenant_ids(stores: Stores, chosen: tuple[str, ...]) -> list[str]:
    """
    The tenants chosen, or every tenant: the current ones and the deleted
    ones whose billing records are kept, so no usage is left out.
    """
    if chosen:
        return list(chosen)
    current = {r.id for r in stores.tenants.list()}
    billing = cast("TenantListingBillingStore", stores.billing)
    return sorted(current.union(billing.tenant_ids()))


def _deleted(stores: Stores, ids: Sequence[str]) -> set[str]:
    """
    Which of *ids* name no current tenant.
    """
    current = {r.id for r in stores.tenants.list()}
    return {i for i in ids if i not in current}


def _progress(items: Sequence[str], label: str) -> Any:
    """
    A progress bar on standard error when it is a terminal, else the items.
    """
    return (
        click.progressbar(items, label=label, file=sys.stderr, show_pos=True)
        if sys.stderr.isatty() and len(items) > 1
        else _NoProgress(items)
    )


class _NoProgress:
    def __init__(self, items: Sequence[str]) -> None:
        self.items = items

    def __enter__(self) -> Sequence[str]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


@usage.command("report")
@_tenants_option
@_window_options
@click.option(
    "--by",
    type=click.Choice(["model,day", "model", "day", "total"]),
    default="model,day",
    show_default=True,
    help="How to group the totals.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
@_handle_errors
def usage_report(
    obj: _Context,
    tenants: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    by: str,
    fmt: str,
) -> None:
    """
    Total input and output tokens, requests and cost per tenant, model and UTC day.

    Costs are the sums of the costs stored in the billing records (priced
    when each was made); rows are split by currency, and records made
    without a price show as "unpriced".

    Every tenant with usage is reported, deleted ones too (marked in the
    DELETED column / "deleted" field), so invoices miss nothing.
    """
    start, end = _window(since, until)
    keys = () if by == "total" else tuple(by.split(","))
    rows: list[dict[str, Any]] = []
    with obj.stores() as stores:
        meter = TokenMeter(stores.billing, background=False)
        ids = _tenant_ids(stores, tenants)
        deleted = _deleted(stores, ids)
        with _progress(ids, "summing usage") as progress:
            for tenant_id in progress:
                rows.extend(
                    {
                        "tenant": tenant_id,
                        "deleted": tenant_id in deleted,
                        "model": row.model,
                        "day": None if row.day is None else row.day.isoformat(),
                        "requests": row.requests,
                        "input_tokens": row.input_tokens,
                        "output_tokens": row.output_tokens,
                        "total_tokens": row.total_tokens,
                        "cost": format_micros(row.cost),
                        "cost_micros": row.cost,
                        "currency": row.currency,
                    }
                    for row in meter.summary(tenant_id, start, end, by=keys)
                )
        meter.close()
    columns = [
        "tenant",
        *(k for k in ("model", "day") if k in keys),
        "requests",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "cost_micros",
        "currency",
        "deleted",
    ]
    if fmt == "json":
        click.echo(json.dumps([{c: r[c] for c in columns} for r in rows], indent=2))
    elif fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in rows:
            write_csv_row(
                writer,
                (str(r[c]).lower() if c == "deleted" else r[c] for c in columns),
            )
        click.echo(buf.getvalue(), nl=False)
    elif not rows:
        click.echo(f"no usage between {start.isoformat()} and {end.isoformat()}")
    else:
        # The table shows the cost once, with its currency ("unpriced" for
        # records made without a price).
        shown = [c for c in columns if c not in {"cost_micros", "currency"}]
        click.echo(
            render_table(
                [c.upper() for c in shown],
                [
                    [
                        format_cost(r["cost_micros"], r["currency"])
                        if c == "cost"
                        else _cell(r[c])
                        for c in shown
                    ]
                    for r in rows
                ],
            )
        )


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


@usage.command("export")
@_tenants_option
@_window_options
@_export_options
@click.pass_obj
@_handle_errors
def usage_export(
    obj: _Context,
    tenants: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    output: str | None,
) -> None:
    """
    Export billing records as NDJSON or CSV, oldest first per tenant.

    Deleted tenants' records are exported too; standard error names them.
    """
    start, end = _window(since, until)
    count = 0
    with obj.stores() as stores:
        ids = _tenant_ids(stores, tenants)
        deleted = sorted(_deleted(stores, ids))
        with (
            _export_target(output) as out,
            _progress(ids, "exporting billing records") as progress,
        ):
            for i, tenant_id in enumerate(progress):
                records = stores.billing.query(tenant_id, start, end)
                if fmt == "csv" and i:
                    # One header for the whole file.
                    count += _export_rows_without_header(records, out)
                else:
                    count += export_billing(records, out, fmt=_format(fmt))
    click.echo(f"exported {count} billing records", err=True)
    if deleted:
        click.echo(f"deleted tenants included: {', '.join(deleted)}", err=True)


def _export_rows_without_header(records: Sequence[Any], out: Any) -> int:
    import io

    buf = io.StringIO()
    n = export_billing(records, buf, fmt="csv")
    out.write(buf.getvalue().split("\n", 1)[1] if n else "")
    return n

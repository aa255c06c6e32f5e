"""
``zerfoo-cloud invoice``: a tenant's invoice for one month, from its billing
records.
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import _Context, _handle_errors
from zerfoo_cloud.cli._export_output import _export_target
from zerfoo_cloud.invoices import build_invoice, parse_month
from zerfoo_cloud.pricing import PriceTable, parse_instant

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.command()
@click.argument("tenant_id", metavar="TENANT")
@click.option(
    "--month",
    required=True,
    metavar="YYYY-MM",
    help="The calendar month, in UTC (2026-11: from 2026-11-01T00:00:00Z up "
    "to 2026-12-01T00:00:00Z).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
)
@click.option(
    "--prices",
    metavar="FILE",
    help="The price file the records were priced with: each line then lists "
    "the prices in force for it (amounts always come from the records). "
    "Default: the price table stored with the records, if any.",
)
@click.option(
    "--generated-at",
    metavar="DATETIME",
    help="Write this generation time (ISO 8601 with an offset) into the "
    "invoice; without it the same records always give the same bytes.",
)
@click.option(
    "--output", "-o", metavar="FILE", help="Write here instead of standard output."
)
@click.pass_obj
@_handle_errors
def invoice(
    obj: _Context,
    /,
    tenant_id: str,
    month: str,
    fmt: str,
    prices: str | None,
    generated_at: str | None,
    output: str | None,
) -> None:
    """
    Write TENANT's invoice for --month as JSON or CSV.

    One line per model and API key (and currency), with its tokens,
    requests, the prices in force and its cost; the total is the sum of the
    costs stored in the billing records, to the micro-unit. Records made
    without a price are shown as unpriced lines. Deleted tenants' records
    are invoiced too.
    """
    start, end = parse_month(month)
    table = None if prices is None else PriceTable.from_file(prices)
    when = (
        None
        if generated_at is None
        else parse_instant(generated_at, field="--generated-at")
    )
    with obj.stores() as stores:
        records = stores.billing.query(tenant_id, start, end)
        if table is None:
            # Prices in force never change, so a past month's lines list
            # the same prices whenever the invoice is made.
            table = stores.prices.read().table
    result = build_invoice(tenant_id, month, records, prices=table, generated_at=when)
    text = result.to_csv() if fmt == "csv" else result.to_json()
    with _export_target(output) as out:
        out.write(text)

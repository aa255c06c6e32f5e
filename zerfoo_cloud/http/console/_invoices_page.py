"""
The tenant's invoices, ``/console/t/{tenant}/invoices``: one row per UTC
calendar month of the last `INVOICE_MONTHS` that has usage, with its
totals, and each month's invoice to download at
``/console/t/{tenant}/invoices/{YYYY-MM}.csv`` or ``.json``: the same bytes
``zerfoo-cloud invoice`` writes for the meter's price table.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from zerfoo_cloud.http.console._pages import Page, PageProblem
from zerfoo_cloud.invoices import Invoice, build_invoice, parse_month

if TYPE_CHECKING:
    from zerfoo_cloud.billing_records import BillingRecord
    from zerfoo_cloud.http.console._pages import PageRequest

__all__ = ["INVOICE_MONTHS", "PAGES"]

#: How many months (this one included) the page lists.
INVOICE_MONTHS = 12
_MONTHS_A_YEAR = 12
_FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _query(request: PageRequest) -> Any:
    query = getattr(request.services.meter, "query", None)
    if query is None:
        raise PageProblem(
            404, "No usage store is configured, so there are no invoices."
        )
    return query


def _first_month(now: float) -> datetime:
    today = datetime.fromtimestamp(now, timezone.utc)
    index = today.year * _MONTHS_A_YEAR + today.month - 1 - (INVOICE_MONTHS - 1)
    year, month = divmod(index, _MONTHS_A_YEAR)
    return datetime(year, month + 1, 1, tzinfo=timezone.utc)


def invoices(request: PageRequest) -> Response:
    """
    ``GET``: the months with usage, newest first, with their totals.
    """
    assert request.tenant_id is not None
    request.services.tenants.get(request.tenant_id)  # 404 for no such tenant
    if getattr(request.services.meter, "query", None) is None:
        return request.render(
            "invoices.html", configured=False, months=[], window=INVOICE_MONTHS
        )
    records: list[BillingRecord] = _query(request)(
        request.tenant_id,
        _first_month(request.now),
        datetime.fromtimestamp(request.now, timezone.utc),
    )
    by_month: dict[str, list[BillingRecord]] = {}
    for record in records:
        by_month.setdefault(record.timestamp.strftime("%Y-%m"), []).append(record)
    prices = getattr(request.services.meter, "prices", None)
    months: list[Invoice] = [
        build_invoice(request.tenant_id, month, by_month[month], prices=prices)
        for month in sorted(by_month, reverse=True)
    ]
    return request.render(
        "invoices.html", configured=True, months=months, window=INVOICE_MONTHS
    )


def _download(request: PageRequest, fmt: str) -> Response:
    assert request.tenant_id is not None
    month = request.params["month"]
    try:
        start, end = parse_month(month)
    except Exception as exc:
        raise PageProblem(404, "There is no such month; use YYYY-MM.") from exc
    request.services.tenants.get(request.tenant_id)
    records = _query(request)(request.tenant_id, start, end)
    result = build_invoice(
        request.tenant_id,
        month,
        records,
        prices=getattr(request.services.meter, "prices", None),
    )
    text = result.to_csv() if fmt == "csv" else result.to_json()
    name = f"invoice-{request.tenant_id}-{month}.{fmt}"
    return Response(
        text.encode("utf-8"),
        200,
        headers={"content-disposition": f'attachment; filename="{name}"'},
        media_type=_FORMATS[fmt],
    )


def invoice_csv(request: PageRequest) -> Response:
    """
    ``GET``: the month's invoice as CSV.
    """
    return _download(request, "csv")


def invoice_json(request: PageRequest) -> Response:
    """
    ``GET``: the month's invoice as JSON.
    """
    return _download(request, "json")


#: The invoices page and its downloads.
PAGES = (
    Page("/invoices", "Invoices", get=invoices, nav="Invoices"),
    Page("/invoices/{month}.csv", "Invoice (CSV)", get=invoice_csv),
    Page("/invoices/{month}.json", "Invoice (JSON)", get=invoice_json),
)

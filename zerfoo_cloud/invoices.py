"""
Invoices: what a tenant owes for one calendar month, from its billing
records.

`build_invoice` groups a tenant's records of one month into one line per
model, API key and currency (tokens, requests, the sum of the records'
stored costs, and the prices that were in force for them when a price table
is given) and totals them. Every amount is the sum of the costs stored in
the records when they were made: an invoice never prices a record again, so
a price changed since does not change a past invoice, and its total equals
the sum of its records' costs to the micro-unit. Records made without a
price (cost 0, no currency) have lines of their own, marked unpriced.

The same records give the same bytes (`Invoice.to_json`, `Invoice.to_csv`):
lines are sorted, and nothing depends on the time the invoice is made
unless a generation time is given.

Months are calendar months in UTC (`parse_month`): ``2026-11`` is every
record from 2026-11-01T00:00:00Z up to, not including,
2026-12-01T00:00:00Z. See ``docs/billing.md``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.csv_cells import write_csv_row
from zerfoo_cloud.errors import InvalidConfigError, UnpricedModelError
from zerfoo_cloud.pricing import UNPRICED, ModelPrice, format_micros

if TYPE_CHECKING:
    from zerfoo_cloud.pricing import PriceTable

__all__ = [
    "INVOICE_CSV_COLUMNS",
    "Invoice",
    "InvoiceLine",
    "build_invoice",
    "parse_month",
]

#: A month as invoices name it: four digits, a hyphen, two digits.
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})", re.ASCII)
_ONE_MICROSECOND = timedelta(microseconds=1)
#: The columns of `Invoice.to_csv`, in order.
INVOICE_CSV_COLUMNS = (
    "tenant_id",
    "month",
    "row",
    "model",
    "key_id",
    "currency",
    "requests",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_micros",
    "prices",
)


def parse_month(text: object) -> tuple[datetime, datetime]:
    """
    Return the first and last instants (UTC, both included, to the
    microsecond) of the calendar month *text* names: strictly ``YYYY-MM``
    (``2026-11``), years 0001 to 9999, months 01 to 12.

    Months are UTC calendar months: the invoice of ``2026-11`` holds the
    records stamped from 2026-11-01T00:00:00Z up to 2026-12-01T00:00:00Z,
    that instant excluded.

    Raises:
        InvalidConfigError: anything else (``field`` ``"month"``); one line.

    .. versionadded:: 0.1.0
    """
    match = _MONTH.fullmatch(text) if type(text) is str else None
    year, month = (int(match[1]), int(match[2])) if match else (0, 0)
    if not (year >= 1 and 1 <= month <= 12):  # noqa: PLR2004 - months of a year
        shown = repr(text)[:40] if type(text) is str else type(text).__name__
        msg = f"month: a calendar month as YYYY-MM such as '2026-11', not {shown}"
        raise InvalidConfigError(msg, field="month")
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    if (year, month) == (9999, 12):
        return start, datetime.max.replace(tzinfo=timezone.utc)
    after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, after - _ONE_MICROSECOND


def _price_json(price: ModelPrice) -> dict[str, Any]:
    return price.to_mapping()


def _price_text(price: ModelPrice) -> str:
    data = price.to_mapping()
    return (
        f"from {data['effective_from']}: input {data['input']}, output "
        f"{data['output']}, cached_input {data['cached_input']} per 1M tokens"
    )


@attrs.frozen
class InvoiceLine:
    """
    One line of an invoice: the records of one model, API key and currency.

    Attributes:
        model: the model the records name.
        key_id: the API key that made the requests (``""``: unknown).
        currency: the ISO 4217 code of *cost*; ``""`` for records made
            without a price (the line is unpriced: its cost is unknown, not
            zero).
        requests: how many records.
        input_tokens, output_tokens: their token sums.
        cost: the sum of their stored costs, in micro-units.
        prices: the distinct prices in force for them (oldest first), when
            the invoice was given a price table that prices them; else ``()``.

    .. versionadded:: 0.1.0
    """

    model: str
    key_id: str
    currency: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: int
    prices: tuple[ModelPrice, ...] = ()

    @property
    def priced(self) -> bool:
        """Whether the line's records were priced when they were made."""
        return bool(self.currency)

    def to_dict(self) -> dict[str, Any]:
        """
        The line as `Invoice.to_json` writes it: the cost as decimal text
        (``cost``) and as micro-units (``cost_micros``).
        """
        return {
            "model": self.model,
            "key_id": self.key_id,
            "currency": self.currency,
            "priced": self.priced,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": format_micros(self.cost) if self.priced else UNPRICED,
            "cost_micros": self.cost,
            "prices": [_price_json(p) for p in self.prices],
        }


@attrs.frozen
class Invoice:
    """
    A tenant's invoice for one UTC calendar month (see `build_invoice`).

    Attributes:
        tenant_id: whose invoice.
        month: ``YYYY-MM``.
        start, end: the first and last instants it covers (UTC, both
            included; its JSON form gives ``period_end`` as the first
            instant after the month).
        lines: sorted by model, key id and currency.
        generated_at: when it was made, if the caller said (``None`` keeps
            the output the same for the same records).

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    month: str
    start: datetime
    end: datetime
    lines: tuple[InvoiceLine, ...]
    generated_at: datetime | None = None

    @property
    def totals(self) -> dict[str, int]:
        """
        The cost of the priced lines per currency, in micro-units, sorted by
        currency: each the exact sum of its records' stored costs.
        """
        found: dict[str, int] = {}
        for line in self.lines:
            if line.priced:
                found[line.currency] = found.get(line.currency, 0) + line.cost
        return dict(sorted(found.items()))

    @property
    def currency(self) -> str | None:
        """
        The one currency of the invoice's priced lines, ``""`` when none is
        priced, ``None`` when they are in several currencies (then `total`
        is ``None`` too; `totals` has each).
        """
        codes = list(self.totals)
        if len(codes) > 1:
            return None
        return codes[0] if codes else ""

    @property
    def total(self) -> int | None:
        """
        The sum of every record's stored cost, in micro-units of `currency`
        (0 for an invoice without priced records); ``None`` when the records
        are in several currencies.
        """
        if self.currency is None:
            return None
        return sum(line.cost for line in self.lines)

    @property
    def unpriced_requests(self) -> int:
        """How many records were made without a price."""
        return sum(line.requests for line in self.lines if not line.priced)

    def to_dict(self) -> dict[str, Any]:
        """
        The invoice as JSON-ready data (`to_json`).
        """
        total = self.total
        data: dict[str, Any] = {
            "object": "invoice",
            "tenant_id": self.tenant_id,
            "month": self.month,
            "period_start": _iso(self.start),
            "period_end": _after(self.end),
            "currency": self.currency,
            "lines": [line.to_dict() for line in self.lines],
            "requests": sum(line.requests for line in self.lines),
            "input_tokens": sum(line.input_tokens for line in self.lines),
            "output_tokens": sum(line.output_tokens for line in self.lines),
            "unpriced_requests": self.unpriced_requests,
            "total": None if total is None else format_micros(total),
            "total_micros": total,
            "totals": [
                {"currency": code, "cost": format_micros(micros), "cost_micros": micros}
                for code, micros in self.totals.items()
            ],
        }
        if self.generated_at is not None:
            data["generated_at"] = _iso(self.generated_at)
        return data

    def to_json(self) -> str:
        """
        The invoice as JSON text (ASCII, keys in a fixed order, ending in a
        newline): the same records give the same text.
        """
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """
        The invoice as CSV text (`INVOICE_CSV_COLUMNS`): one ``line`` row per
        line, then one ``total`` row per currency of its priced lines (a
        ``total`` row of 0 with no currency when it has none). Cells are
        spreadsheet-safe (`zerfoo_cloud.csv_cells`); the same records give
        the same text.
        """
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(INVOICE_CSV_COLUMNS)
        for line in self.lines:
            write_csv_row(
                writer,
                (
                    self.tenant_id,
                    self.month,
                    "line",
                    line.model,
                    line.key_id,
                    line.currency,
                    line.requests,
                    line.input_tokens,
                    line.output_tokens,
                    format_micros(line.cost) if line.priced else UNPRICED,
                    line.cost,
                    "; ".join(_price_text(p) for p in line.prices),
                ),
            )
        totals = self.totals or {"": 0}
        for code, micros in totals.items():
            lines = [line for line in self.lines if line.currency == code]
            write_csv_row(
                writer,
                (
                    self.tenant_id,
                    self.month,
                    "total",
                    "",
                    "",
                    code,
                    sum(line.requests for line in lines),
                    sum(line.input_tokens for line in lines),
                    sum(line.output_tokens for line in lines),
                    format_micros(micros),
                    micros,
                    "",
                ),
            )
        return out.getvalue()


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _after(end: datetime) -> str:
    # The first instant after a month (its exclusive end), as text: the
    # month after December 9999 has no datetime.
    if end.year == 9999 and end.month == 12:  # noqa: PLR2004 - the last month
        return "10000-01-01T00:00:00Z"
    return _iso(end + _ONE_MICROSECOND)


def _prices_of(prices: PriceTable | None, record: BillingRecord) -> ModelPrice | None:
    # The price in force for *record*, if the table has it in the record's
    # currency (a table in another currency did not price it).
    if prices is None or not record.currency or prices.currency != record.currency:
        return None
    try:
        return prices.price_at(record.model, record.timestamp)
    except UnpricedModelError:
        return None


def build_invoice(
    tenant_id: str,
    month: str,
    records: Iterable[BillingRecord],
    *,
    prices: PriceTable | None = None,
    generated_at: datetime | None = None,
) -> Invoice:
    """
    Return the invoice of *tenant_id* for *month* (``YYYY-MM``, a UTC
    calendar month) from *records*: those of the tenant stamped within the
    month count, others are left out.

    Lines group the records by model, key id and currency; each line's cost
    is the sum of its records' stored costs (never computed again), so the
    invoice's total is the sum of the records' costs to the micro-unit.
    With *prices* (the table the records were priced with), each priced line
    lists the distinct prices in force at its records' times; a record the
    table cannot price lists none.

    Raises:
        InvalidConfigError: *month* is not ``YYYY-MM``, or *generated_at* is
            not an aware datetime.

    .. versionadded:: 0.1.0
    """
    start, end = parse_month(month)
    if generated_at is not None and (
        not isinstance(generated_at, datetime) or generated_at.utcoffset() is None
    ):
        msg = "generated_at: an aware datetime"
        raise InvalidConfigError(msg, field="generated_at")
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for record in records:
        if record.tenant_id != tenant_id or not start <= record.timestamp <= end:
            continue
        key = (record.model, record.key_id, record.currency)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0, 0, 0, 0, {}]
        group[0] += 1
        group[1] += record.input_tokens
        group[2] += record.output_tokens
        group[3] += record.cost
        price = _prices_of(prices, record)
        if price is not None:
            group[4][price.effective_from] = price
    lines = tuple(
        InvoiceLine(
            model,
            key_id,
            currency,
            group[0],
            group[1],
            group[2],
            group[3],
            tuple(group[4][when] for when in sorted(group[4])),
        )
        for (model, key_id, currency), group in sorted(groups.items())
    )
    return Invoice(
        tenant_id,
        month,
        start,
        end,
        lines,
        None if generated_at is None else generated_at.astimezone(timezone.utc),
    )

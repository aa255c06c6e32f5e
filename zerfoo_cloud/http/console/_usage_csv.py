"""
The usage table of the console, as the rows the page shows and as the CSV
file it offers for download: the same cells, one source.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from zerfoo_cloud.csv_cells import write_csv_row
from zerfoo_cloud.pricing import format_micros

if TYPE_CHECKING:
    from zerfoo_cloud.http.console._usage_data import UsageReport

__all__ = ["usage_csv", "usage_csv_filename", "usage_header", "usage_table"]


def usage_header(split: str) -> list[str]:
    """
    The column names of the usage table split by *split* (``"model"`` or
    ``"key"``).

    .. versionadded:: 0.1.0
    """
    return [
        "day",
        "model" if split == "model" else "key_id",
        "requests",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "currency",
    ]


def usage_table(report: UsageReport) -> list[list[object]]:
    """
    The rows of *report*'s table: the day (``YYYY-MM-DD``), the model or key
    id as recorded, counts as `int`, the cost as decimal text (``"0.15"``;
    empty for requests made without a price) and its currency.

    .. versionadded:: 0.1.0
    """
    return [
        [
            row.day.isoformat(),
            row.name,
            row.requests,
            row.input_tokens,
            row.output_tokens,
            row.tokens,
            format_micros(row.cost) if row.currency else "",
            row.currency,
        ]
        for row in report.rows
    ]


def usage_csv(report: UsageReport) -> str:
    """
    *report*'s table as CSV text: `usage_header`, then `usage_table`, each
    cell made safe for spreadsheets (`zerfoo_cloud.csv_cells`).

    .. versionadded:: 0.1.0
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    write_csv_row(writer, usage_header(report.split))
    for row in usage_table(report):
        write_csv_row(writer, row)
    return out.getvalue()


def usage_csv_filename(report: UsageReport) -> str:
    """
    The download name of *report*'s CSV: ``usage-<from>-<to>-<split>.csv``
    (ASCII only).

    .. versionadded:: 0.1.0
    """
    days = report.days
    return f"usage-{days.first}-{days.last}-{report.split}.csv"

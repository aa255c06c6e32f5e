"""
The usage table as CSV: the same cells as the table, money as decimal
text, and formula-shaped names defused.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from zerfoo_cloud.http.console._usage_csv import (
    usage_csv,
    usage_csv_filename,
    usage_header,
    usage_table,
)
from zerfoo_cloud.http.console._usage_data import DayRange, UsageReport, UsageRow

DAY = date(2026, 3, 1)


def _report(*rows: UsageRow, split: str = "model") -> UsageReport:
    return UsageReport(DayRange(DAY, DAY), split, rows)


def test_csv_equals_the_table() -> None:
    """Parsed back, the CSV is the header and the table's rows, numbers as digits."""
    report = _report(
        UsageRow(DAY, "m1", 2, 10, 5, 1_500_000, "USD"),
        UsageRow(DAY, "m2", 1, 1, 1, 0, ""),
    )
    rows = list(csv.reader(io.StringIO(usage_csv(report))))
    assert rows[0] == usage_header("model")
    assert rows[1:] == [[str(cell) for cell in row] for row in usage_table(report)]
    assert rows[1] == ["2026-03-01", "m1", "2", "10", "5", "15", "1.5", "USD"]
    assert rows[2][6:] == ["", ""]


def test_formula_names_are_defused() -> None:
    """A model or key id a spreadsheet would run is written with a leading quote."""
    report = _report(UsageRow(DAY, "=HYPERLINK(1)", 1, 1, 1, 1, "USD"), split="key")
    rows = list(csv.reader(io.StringIO(usage_csv(report))))
    assert rows[0][1] == "key_id"
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_money_is_exact_decimal_text() -> None:
    """Costs of any size are written exactly, never as floats."""
    report = _report(UsageRow(DAY, "m", 1, 0, 0, 2**63 - 1, "USD"))
    rows = list(csv.reader(io.StringIO(usage_csv(report))))
    assert rows[1][6] == "9223372036854.775807"


def test_empty_report_is_the_header_only() -> None:
    """No rows: the CSV is its header line."""
    assert usage_csv(_report()) == ",".join(usage_header("model")) + "\r\n"


def test_filename_names_the_range_and_split() -> None:
    """The download is named after the range and split."""
    assert (
        usage_csv_filename(_report(split="key"))
        == "usage-2026-03-01-2026-03-01-key.csv"
    )

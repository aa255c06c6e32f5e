"""
No cell of any CSV the project writes can start a spreadsheet formula,
whatever the model, tenant, request id, path or resource text.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from zerfoo_cloud import AuditEntry, BillingRecord, TokenMeter
from zerfoo_cloud.cli import cli
from zerfoo_cloud.csv_cells import FORMULA_TRIGGERS, csv_cell
from zerfoo_cloud.export import export_audit, export_billing
from zerfoo_cloud.stores.lmdb import LMDBStores

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
_BLANKS = ["", " ", "  ", "\t", "\n", "\r", "\r\n", "\xa0", "\u3000", " \t "]


def formula_like() -> st.SearchStrategy[str]:
    """
    Text that often starts (after blanks, or not) with a formula trigger.
    """
    plain = st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        max_size=30,
    )
    trigger = st.builds(
        lambda blank, start, rest: blank + start + rest,
        st.sampled_from(_BLANKS),
        st.sampled_from([*FORMULA_TRIGGERS, "=HYPERLINK(", "@SUM(", "+1+1", "-1"]),
        plain,
    )
    return st.one_of(trigger, plain)


def inert(cell: str) -> bool:
    """
    Whether a spreadsheet shows *cell* as text (never runs it).
    """
    return cell.startswith("'") or not (
        cell.startswith(FORMULA_TRIGGERS)
        or cell.lstrip().startswith(("=", "+", "-", "@"))
    )


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def cells(text: str) -> list[str]:
    """
    Every cell of the CSV *text*.
    """
    return [c for row in csv.reader(io.StringIO(text, newline="")) for c in row]


@pytest.mark.parametrize(
    "text",
    [
        "=1+1",
        '=HYPERLINK("http://x","y")',
        "@SUM(A1:A2)",
        "+1+1",
        "-1",
        "\t=1",
        "\r=1",
        "\n=1",
        "   =1",
        "\t",
        "\n",
        "\u3000=1",
    ],
)
def test_formula_text_gets_one_leading_quote(text: str) -> None:
    """Every trigger, first or after blanks, is escaped with exactly one quote."""
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["", "llama", "a=1", "1", "1-2", "'=1", " x", "é=1"])
def test_other_text_is_left_alone(text: str) -> None:
    """Text a spreadsheet shows as text is written unchanged."""
    assert csv_cell(text) == text


def test_numbers_stay_numbers() -> None:
    """Counts are numbers, written as digits, negative ones too; None is empty."""
    assert csv_cell(0) == 0
    assert csv_cell(-1) == -1
    assert csv_cell(1.5) == 1.5
    assert csv_cell(None) == ""


@given(model=formula_like(), tenant=formula_like(), request_id=formula_like())
def test_billing_export_cells_are_inert(
    model: str, tenant: str, request_id: str
) -> None:
    """export_billing: every cell is inert; escaped text is the original plus one quote."""
    tenant = tenant or "t"
    request_id = (
        "".join(c for c in request_id if c.isascii() and c.isprintable() and c != " ")
        or "r"
    )
    record = BillingRecord(tenant, 1, 2, T0, model[:256], request_id[:128])
    out = io.StringIO(newline="")
    export_billing([record], out, fmt="csv")
    written = cells(out.getvalue())
    assert all(inert(c) for c in written)
    row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))[1]
    assert row[1] == csv_cell(tenant)
    assert row[3] == csv_cell(model[:256])


@given(resource=formula_like(), path=formula_like(), method=formula_like())
def test_audit_export_cells_are_inert(resource: str, path: str, method: str) -> None:
    """export_audit: resource, path, method and every other cell are inert."""
    entry = AuditEntry(
        timestamp=T0,
        tenant_id="acme",
        resource=resource,
        path=path,
        method=method,
        status_code=200,
    )
    out = io.StringIO(newline="")
    export_audit([entry], out, fmt="csv")
    assert all(inert(c) for c in cells(out.getvalue()))


@settings(max_examples=25, deadline=None)
@given(model=formula_like(), tenant=formula_like())
def test_cli_usage_report_and_export_cells_are_inert(model: str, tenant: str) -> None:
    """usage report --format csv and usage export --format csv write only inert cells."""
    tenant = (tenant or "t")[:64]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db"
        with LMDBStores.open(db) as stores:
            meter = TokenMeter(stores.billing, background=False)
            meter.record(tenant, 3, 4, model=model[:256])
            meter.close()
        for command in (
            ["usage", "report", "--by", "model,day"],
            ["usage", "export"],
        ):
            result = CliRunner().invoke(
                cli,
                [
                    "--db",
                    str(db),
                    *command,
                    "--format",
                    "csv",
                    f"--tenant={tenant}",
                    "--since",
                    "2000-01-01",
                ],
            )
            assert result.exit_code == 0, result.output
            written = cells(result.stdout)
            assert len(written) > 5
            assert all(inert(c) for c in written), written
            # The terminal may turn \r\n into \n: compare modulo line ends.
            expected = _lines(str(csv_cell(model[:256])))
            assert expected in {_lines(c) for c in written}

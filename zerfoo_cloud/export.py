"""
Export billing records and audit entries as NDJSON or CSV.

Both functions stream: they take any iterable (a query's result, a generator
over many queries) and write one line per record as they go, to a text or a
binary stream. The ``zerfoo-cloud`` command uses them; so can an invoicing
job::

    with open("acme-2025-01.csv", "w", newline="") as out:
        export_billing(meter.query("acme", start, end), out, fmt="csv")

NDJSON lines are the records' ``to_dict()`` forms (timestamps in ISO 8601,
UTC, to the microsecond). CSV files have a header row with the same field
names; every cell goes through `zerfoo_cloud.csv_cells.csv_cell`, so text a
spreadsheet could run as a formula gets a leading ``'`` and numbers stay
numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, Literal

from zerfoo_cloud.audit import AuditEntry
from zerfoo_cloud.csv_cells import write_csv_row
from zerfoo_cloud.errors import InvalidConfigError

if TYPE_CHECKING:
    from zerfoo_cloud.metering import BillingRecord

__all__ = [
    "AUDIT_FIELDS",
    "BILLING_FIELDS",
    "ExportFormat",
    "export_audit",
    "export_billing",
]

#: The fields (NDJSON keys, CSV columns) of an exported billing record.
BILLING_FIELDS = (
    "timestamp",
    "tenant_id",
    "request_id",
    "model",
    "input_tokens",
    "output_tokens",
    "cost",
    "currency",
    "key_id",
)
#: The fields (NDJSON keys, CSV columns) of an exported audit entry.
AUDIT_FIELDS = tuple(AuditEntry().to_dict())
#: The formats `export_billing` and `export_audit` write.
ExportFormat = Literal["ndjson", "csv"]


def _sink(out: IO[str] | IO[bytes]) -> Callable[[str], object]:
    stream: IO[Any] = out
    try:
        stream.write("")
    except TypeError:
        return lambda text: stream.write(text.encode())
    return stream.write


class _Lines:
    # What csv.writer writes to.
    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write


def _export(
    rows: Iterable[dict[str, Any]],
    fields: tuple[str, ...],
    out: IO[str] | IO[bytes],
    fmt: str,
) -> int:
    if fmt not in ("ndjson", "csv"):
        msg = f"fmt must be 'ndjson' or 'csv', not {fmt!r}"
        raise InvalidConfigError(msg, field="fmt")
    write = _sink(out)
    count = 0
    if fmt == "ndjson":
        for row in rows:
            write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(_Lines(write))
    writer.writerow(fields)
    for row in rows:
        write_csv_row(writer, (row[f] for f in fields))
        count += 1
    return count


def export_billing(
    records: Iterable[BillingRecord],
    out: IO[str] | IO[bytes],
    *,
    fmt: ExportFormat = "ndjson",
) -> int:
    """
    Write *records* to *out* as NDJSON (one object per line) or CSV.

    Args:
        records: billing records, written in the order given.
        out: a text stream (open CSV files with ``newline=""``) or a binary one.
        fmt: ``"ndjson"`` or ``"csv"``.

    Returns:
        How many records were written.

    Raises:
        InvalidConfigError: another *fmt*.

    .. versionadded:: 0.1.0
    """
    return _export((r.to_dict() for r in records), BILLING_FIELDS, out, fmt)


def export_audit(
    entries: Iterable[AuditEntry],
    out: IO[str] | IO[bytes],
    *,
    fmt: ExportFormat = "ndjson",
) -> int:
    """
    Write *entries* (with their chain fields) to *out* as NDJSON or CSV.

    Args:
        entries: audit entries, written in the order given.
        out: a text stream (open CSV files with ``newline=""``) or a binary one.
        fmt: ``"ndjson"`` or ``"csv"``.

    Returns:
        How many entries were written.

    Raises:
        InvalidConfigError: another *fmt*.

    .. versionadded:: 0.1.0
    """
    return _export((e.to_dict() for e in entries), AUDIT_FIELDS, out, fmt)

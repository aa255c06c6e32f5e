"""
Export of billing records and audit entries as NDJSON and CSV.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from zerfoo_cloud.audit import AuditEntry, AuditLogger
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.export import (
    AUDIT_FIELDS,
    BILLING_FIELDS,
    export_audit,
    export_billing,
)
from zerfoo_cloud.metering import BillingRecord
from zerfoo_cloud.stores.memory import MemoryAuditStore

T0 = datetime(2025, 3, 1, 12, 30, 0, 123456, tzinfo=timezone.utc)
RECORDS = [
    BillingRecord("acme", 10, 20, T0, "llama", "r1"),
    BillingRecord("acme", 1, 2, T0, '=HYPERLINK("x")', "r2"),
    BillingRecord("acme", 0, 0, T0, '模型,"quoted"\nline', "r3"),
]


def test_billing_ndjson_text_and_binary() -> None:
    """Each record becomes one JSON line, to text and binary streams alike."""
    text, binary = io.StringIO(), io.BytesIO()
    assert export_billing(RECORDS, text) == 3
    assert export_billing(RECORDS, binary, fmt="ndjson") == 3
    assert binary.getvalue().decode() == text.getvalue()
    rows = [json.loads(line) for line in text.getvalue().splitlines()]
    assert rows == [r.to_dict() for r in RECORDS]
    assert rows[0] == {
        "timestamp": "2025-03-01T12:30:00.123456+00:00",
        "tenant_id": "acme",
        "request_id": "r1",
        "model": "llama",
        "input_tokens": 10,
        "output_tokens": 20,
        "cost": 0,
        "currency": "",
        "key_id": "",
    }


def test_billing_csv_has_a_header_and_safe_cells() -> None:
    """CSV export writes the header, one row per record, quotes what needs it and defuses formulas."""
    out = io.StringIO(newline="")
    assert export_billing(RECORDS, out, fmt="csv") == 3
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(rows[0]) == BILLING_FIELDS
    assert rows[1] == [
        "2025-03-01T12:30:00.123456+00:00",
        "acme",
        "r1",
        "llama",
        "10",
        "20",
        "0",
        "",
        "",
    ]
    assert rows[2][3] == '\'=HYPERLINK("x")'
    assert rows[3][3] == '模型,"quoted"\nline'
    assert len(rows) == 4


def test_audit_export_keeps_the_chain_fields() -> None:
    """Audit entries export with every field, chain fields included, in both formats."""
    logger = AuditLogger(MemoryAuditStore())
    for i in range(3):
        logger.log(AuditEntry(T0, "acme", path=f"/{i}", remote_addr="10.0.0.1"))
    entries = logger.query("acme", T0, T0)
    ndjson = io.StringIO()
    assert export_audit(entries, ndjson) == 3
    assert [
        AuditEntry.from_dict(json.loads(x)) for x in ndjson.getvalue().splitlines()
    ] == entries
    out = io.BytesIO()
    assert export_audit(entries, out, fmt="csv") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode(), newline="")))
    assert tuple(rows[0]) == AUDIT_FIELDS
    assert [int(r["seq"]) for r in rows] == [1, 2, 3]
    assert rows[2]["hash"] == entries[2].hash


def test_export_streams_as_it_reads() -> None:
    """Lines are written while the records are produced, not after."""
    out = io.StringIO()
    seen: list[int] = []

    def produce() -> Iterator[BillingRecord]:
        for i, r in enumerate(RECORDS):
            seen.append(len(out.getvalue().splitlines()))
            yield r
            assert len(out.getvalue().splitlines()) == i + 1

    export_billing(produce(), out)
    assert seen == [0, 1, 2]


def test_unknown_format_is_refused() -> None:
    """A format other than ndjson or csv raises InvalidConfigError and writes nothing."""
    out = io.StringIO()
    with pytest.raises(InvalidConfigError) as info:
        export_billing(RECORDS, out, fmt="xml")  # type: ignore[arg-type]
    assert info.value.field == "fmt"
    assert out.getvalue() == ""


def test_empty_exports() -> None:
    """No records give an empty NDJSON file and a header-only CSV file."""
    assert export_billing([], io.StringIO()) == 0
    out = io.StringIO()
    assert export_audit([], out, fmt="csv") == 0
    assert out.getvalue().strip() == ",".join(AUDIT_FIELDS)

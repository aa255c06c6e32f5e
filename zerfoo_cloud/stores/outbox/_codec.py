"""
How the outbox stores a batch: a header (format, item count) and the items
as JSON, and how it reads one back, raising `CorruptRecordError` for
anything it cannot.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.billing_records import BillingRecord
from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError

__all__ = [
    "HEADER",
    "check_entries",
    "decode_audit",
    "decode_billing",
    "encode_audit",
    "encode_billing",
    "item_count",
]

#: Every stored batch starts with its format version and its item count.
HEADER = struct.Struct(">BI")
_FORMAT = 1


def _pack(count: int, payload: object) -> bytes:
    return HEADER.pack(_FORMAT, count) + json.dumps(
        payload, separators=(",", ":")
    ).encode("ascii")


def item_count(raw: bytes) -> int | None:
    """
    The item count in the header of *raw*, or ``None`` if it cannot be read.
    """
    if len(raw) < HEADER.size:
        return None
    version, count = HEADER.unpack_from(raw)
    return count if version == _FORMAT else None


def _payload(store: str, name: str, raw: bytes) -> tuple[int, Any]:
    count = item_count(raw)
    if count is None:
        raise CorruptRecordError(store, name, "unreadable header")
    try:
        return count, json.loads(raw[HEADER.size :])
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptRecordError(store, name, f"not JSON ({exc})") from exc


def encode_billing(records: Sequence[BillingRecord]) -> bytes:
    """
    The stored form of a batch of billing records: each a list of six
    fields (tenant, tokens, time, model, request id), and three more (cost,
    currency, key id) when any of them is set.
    """
    rows: list[list[Any]] = []
    for r in records:
        row: list[Any] = [
            r.tenant_id,
            r.input_tokens,
            r.output_tokens,
            r.timestamp.isoformat(timespec="microseconds"),
            r.model,
            r.request_id,
        ]
        # A record without a cost or key id keeps the six fields of old.
        if r.cost or r.currency or r.key_id:
            row += (r.cost, r.currency, r.key_id)
        rows.append(row)
    return _pack(len(records), rows)


def decode_billing(number: int, raw: bytes) -> list[BillingRecord]:
    """
    The billing records of stored batch *number*.

    Raises:
        CorruptRecordError: it cannot be read back (``outbox:billing``,
            ``batch N``).
    """
    store, name = "outbox:billing", f"batch {number}"
    count, rows = _payload(store, name, raw)
    try:
        if not isinstance(rows, list) or len(rows) != count:
            msg = f"holds {len(rows) if isinstance(rows, list) else 'no'} records, header says {count}"
            raise ValueError(msg)  # noqa: TRY301 - one handler for every shape error
        records = []
        for row in rows:
            # Batches kept before costs were recorded have six fields.
            tenant, input_tokens, output_tokens, ts, model, request_id, *money = row
            cost, currency, key_id = money or (0, "", "")
            for value in (input_tokens, output_tokens, cost):
                if type(value) is not int:
                    msg = f"count {value!r} is not an integer"
                    raise TypeError(msg)  # noqa: TRY301
            records.append(
                BillingRecord(
                    tenant,
                    input_tokens,
                    output_tokens,
                    datetime.fromisoformat(ts),
                    model,
                    request_id,
                    cost,
                    currency,
                    key_id,
                )
            )
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(store, name, str(exc)) from exc
    return records


def check_entries(entries: Sequence[AuditEntry]) -> None:
    """
    Refuse entries that no audit store takes, before they are kept.

    Raises:
        InvalidConfigError: an entry has no timestamp, or a tenant id longer
            than `MAX_TENANT_ID_BYTES` bytes of UTF-8; nothing was kept.
    """
    for entry in entries:
        if entry.timestamp is None or (
            len(entry.tenant_id.encode("utf-8", "surrogatepass")) > MAX_TENANT_ID_BYTES
        ):
            msg = (
                "audit entries need a timestamp and a tenant id of at most "
                f"{MAX_TENANT_ID_BYTES} bytes"
            )
            raise InvalidConfigError(msg, field="entry")


def encode_audit(key: str, entries: Sequence[AuditEntry]) -> bytes:
    """
    The stored form of a batch of unlinked audit entries and its batch key
    (``""`` for none).
    """
    return _pack(
        len(entries),
        {"key": key, "entries": [e.unchained().to_dict() for e in entries]},
    )


def decode_audit(number: int, raw: bytes) -> tuple[str, list[AuditEntry]]:
    """
    The batch key and the unlinked entries of stored batch *number*.

    Raises:
        CorruptRecordError: it cannot be read back (``outbox:audit``,
            ``batch N``).
    """
    store, name = "outbox:audit", f"batch {number}"
    count, data = _payload(store, name, raw)
    try:
        if not isinstance(data, dict) or set(data) != {"key", "entries"}:
            msg = "not an audit batch (wrong fields)"
            raise ValueError(msg)  # noqa: TRY301
        key, rows = data["key"], data["entries"]
        if not isinstance(key, str) or not isinstance(rows, list):
            msg = "not an audit batch (wrong types)"
            raise TypeError(msg)  # noqa: TRY301
        if len(rows) != count:
            msg = f"holds {len(rows)} entries, header says {count}"
            raise ValueError(msg)  # noqa: TRY301
        entries = [AuditEntry.from_dict(row) for row in rows]
        check_entries(entries)
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(store, name, str(exc)) from exc
    return key, entries

"""`zerfoo_cloud.audit_records.entry` under its former name (see `zerfoo_cloud.audit`)."""

from __future__ import annotations

from zerfoo_cloud.audit_records.entry import (
    _MAX_STATUS,
    AuditEntry,
    _with_chain,
    make_entry,
)

__all__ = ["_MAX_STATUS", "AuditEntry", "_with_chain", "make_entry"]

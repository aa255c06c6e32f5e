"""`zerfoo_cloud.audit_records.chain` under its former name (see `zerfoo_cloud.audit`)."""

from __future__ import annotations

from zerfoo_cloud.audit_records.chain import (
    GENESIS,
    ChainLink,
    _Linker,
    entry_hash,
    entry_json,
    link_entry,
)

__all__ = ["GENESIS", "ChainLink", "_Linker", "entry_hash", "entry_json", "link_entry"]

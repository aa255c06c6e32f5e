"""`zerfoo_cloud.audit_records.cleaning` under its former name (see `zerfoo_cloud.audit`)."""

from __future__ import annotations

from zerfoo_cloud.audit_records.cleaning import (
    INVALID,
    MAX_PATH_LENGTH,
    MAX_RESOURCE_LENGTH,
    _optional_utc,
    strip_query,
)

__all__ = [
    "INVALID",
    "MAX_PATH_LENGTH",
    "MAX_RESOURCE_LENGTH",
    "_optional_utc",
    "strip_query",
]

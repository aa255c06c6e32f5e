"""
`zerfoo_cloud.audit_records.cleaning` under its former name: the audit records
moved below the store protocols, and the writer modules still import them
from here. New code imports `zerfoo_cloud.audit` or
`zerfoo_cloud.audit_records`.
"""

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

"""
`zerfoo_cloud.audit_records.actions` under its former name: the audit records
moved below the store protocols, and the writer modules still import them
from here. New code imports `zerfoo_cloud.audit` or
`zerfoo_cloud.audit_records`.
"""

from __future__ import annotations

from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult

__all__ = ["AuditAction", "AuditResult"]

"""`zerfoo_cloud.audit_records.actions` under its former name (see `zerfoo_cloud.audit`)."""

from __future__ import annotations

from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult

__all__ = ["AuditAction", "AuditResult"]

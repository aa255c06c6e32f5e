"""
What the console tests read of the audit log.
"""

from __future__ import annotations

from datetime import datetime, timezone

from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.http.admin import AdminAPI

_START = datetime(2000, 1, 1, tzinfo=timezone.utc)
_END = datetime(2100, 1, 1, tzinfo=timezone.utc)


def audit_entries(
    api: AdminAPI, tenant: str, action: AuditAction | None = None
) -> list[tuple[AuditResult, str]]:
    """
    The result and resource of each of *tenant*'s entries (of *action*).
    """
    assert api.audit is not None
    return [
        (e.result, e.resource)
        for e in api.audit.query(tenant, _START, _END)
        if action is None or e.action is action
    ]

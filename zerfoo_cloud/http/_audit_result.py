"""
The one mapping from an HTTP status to the audit result it is logged with.

The inference path, the admin API and the SSO endpoints all use it, so a
status means the same outcome in every audit entry.
"""

from __future__ import annotations

from zerfoo_cloud.audit import AuditResult

__all__ = ["audit_result"]

_FIRST_ERROR_STATUS = 400
#: Statuses that are refusals by policy, not failures: 401 (no valid
#: credentials), 403 (not allowed), 413 (body over the limit) and 429 (over
#: a rate, budget or concurrency limit).
_REFUSALS = {
    401: AuditResult.UNAUTHORIZED,
    403: AuditResult.DENIED,
    413: AuditResult.DENIED,
    429: AuditResult.RATE_LIMITED,
}


def audit_result(status: int) -> AuditResult:
    """
    The audit result of a response with HTTP *status*.

    Below 400: `AuditResult.SUCCESS`; 401: ``UNAUTHORIZED``; 403 and 413:
    ``DENIED``; 429: ``RATE_LIMITED``; any other status: ``ERROR``.

    .. versionadded:: 0.1.0
    """
    if status < _FIRST_ERROR_STATUS:
        return AuditResult.SUCCESS
    return _REFUSALS.get(status, AuditResult.ERROR)

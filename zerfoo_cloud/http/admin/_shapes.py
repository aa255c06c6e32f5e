"""
The JSON shapes of the admin API: a tenant, a usage row, an audit entry.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerfoo_cloud.audit import AuditEntry
    from zerfoo_cloud.tenants import TenantRecord

__all__ = ["entry_json", "row_json", "tenant_json", "when"]


def when(ts: float) -> datetime:
    """
    The UTC time of Unix seconds *ts*.
    """
    return datetime.fromtimestamp(ts, timezone.utc)


def tenant_json(record: TenantRecord) -> dict[str, Any]:
    """
    A tenant as the API shows it (never its key, only the key id).
    """
    return {
        "object": "tenant",
        "id": record.id,
        "rate_limit": record.rate_limit,
        "token_budget": record.token_budget,
        "max_concurrent_requests": record.max_concurrent_requests,
        "model_allow_list": list(record.model_allow_list),
        "key_id": record.key_id,
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
    }


def row_json(
    model: str | None, day: date | None, input_tokens: int, output_tokens: int, n: int
) -> dict[str, Any]:
    """
    One row of a usage report.
    """
    return {
        "model": model,
        "day": None if day is None else day.isoformat(),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "requests": n,
    }


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """
    An audit entry as the API shows it.
    """
    data: dict[str, Any] = {
        "timestamp": entry.timestamp,
        "tenant_id": entry.tenant_id,
        "action": entry.action.value,
        "result": entry.result.value,
        "resource": entry.resource,
        "status_code": entry.status_code,
        "method": entry.method,
        "path": entry.path,
        "remote_addr": entry.remote_addr,
    }
    # Stores that chain entries also give their place in the chain.
    for name in ("seq", "prev_hash", "hash"):
        value = getattr(entry, name, None)
        if value is not None:
            data[name] = value
    return data

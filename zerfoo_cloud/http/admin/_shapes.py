"""
The JSON shapes of the admin API: a tenant, a usage row, an audit entry.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.pricing import format_micros

if TYPE_CHECKING:
    from collections.abc import Sequence

    from zerfoo_cloud.audit import AuditEntry
    from zerfoo_cloud.billing_records import UsageSummary
    from zerfoo_cloud.tenants import TenantRecord

__all__ = ["entry_json", "row_json", "tenant_json", "totals_json", "when"]


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


def row_json(row: UsageSummary) -> dict[str, Any]:
    """
    One row of a usage report: its tokens, requests and cost (decimal text
    and micro-units, with its currency; ``""`` for records made without a
    price).
    """
    return {
        "model": row.model,
        "day": None if row.day is None else row.day.isoformat(),
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "total_tokens": row.total_tokens,
        "requests": row.requests,
        "cost": format_micros(row.cost),
        "cost_micros": row.cost,
        "currency": row.currency,
    }


def totals_json(rows: Sequence[UsageSummary]) -> dict[str, Any]:
    """
    The totals of a usage report: tokens and requests, and the cost in each
    currency of its priced rows (sorted by currency).
    """
    costs: dict[str, int] = {}
    for row in rows:
        if row.currency:
            costs[row.currency] = costs.get(row.currency, 0) + row.cost
    input_tokens = sum(r.input_tokens for r in rows)
    output_tokens = sum(r.output_tokens for r in rows)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "requests": sum(r.requests for r in rows),
        "costs": [
            {"currency": code, "cost": format_micros(micros), "cost_micros": micros}
            for code, micros in sorted(costs.items())
        ],
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

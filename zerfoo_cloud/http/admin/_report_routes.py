"""
The report operations of the admin API: a tenant's usage totals and audit
log over a time range, of deleted tenants too (each runs in a worker thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from zerfoo_cloud.errors import TenantNotFoundError
from zerfoo_cloud.http.admin._inputs import query_fields
from zerfoo_cloud.http.admin._params import audit_limit, group_by, time_range
from zerfoo_cloud.http.admin._responses import HTTPProblem, json_response
from zerfoo_cloud.http.admin._shapes import entry_json, row_json, when
from zerfoo_cloud.stores.protocols import TenantListingBillingStore

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.http.admin._access import Op
    from zerfoo_cloud.http.admin._audit_trail import CallRecord
    from zerfoo_cloud.metering import UsageSummary
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["ReportOperations", "UsageMeter"]


@runtime_checkable
class UsageMeter(Protocol):
    """
    **Protocol**: What the admin API needs of a `zerfoo_cloud.TokenMeter`.

    .. versionadded:: 0.1.0
    """

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> Sequence[UsageSummary]:
        """
        Total the tenant's tokens and requests in ``[start, end]``, grouped
        by the keys in *by* (``"model"``, ``"day"``).
        """


class ReportOperations:
    """
    ``/admin/tenants/{id}/usage`` and ``/admin/tenants/{id}/audit``.
    """

    def __init__(
        self,
        tenants: TenantManager,
        meter: UsageMeter | None,
        audit: AuditLogger | None,
        clock: Clock,
    ) -> None:
        self.tenants = tenants
        self.meter = meter
        self.audit = audit
        self.clock = clock

    def _range(
        self, op: Op, request: Request, extra: str, store: object, missing: str
    ) -> tuple[str, dict[str, str], datetime, datetime, bool]:
        """
        The tenant, query parameters, time range and whether the tenant was
        deleted, of a usage or audit query; 404 when *store* is not
        configured or the tenant is unknown (neither current nor billed).
        """
        assert op.tenant is not None
        params = query_fields(request, ("since", "until", extra))
        since, until = time_range(params, when(self.clock()))
        if store is None:
            raise HTTPProblem(
                404, f"{missing}_not_configured", f"no {missing} store is configured"
            )
        deleted = self.tenants.store.get(op.tenant) is None
        if deleted and op.tenant not in self._billed_tenants():
            raise TenantNotFoundError(op.tenant)
        return op.tenant, params, since, until, deleted

    def _billed_tenants(self) -> list[str]:
        """
        Every tenant the meter's store holds records of (deleted ones too),
        when the store can name them.
        """
        billing = getattr(self.meter, "store", None)
        if isinstance(billing, TenantListingBillingStore):
            return billing.tenant_ids()
        return []

    def usage(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}/usage``: token and request totals.
        """
        tenant_id, params, since, until, deleted = self._range(
            op, request, "by", self.meter, "usage"
        )
        by = group_by(params)
        if since > until:
            rows = []
        else:
            assert self.meter is not None
            rows = [
                row_json(r.model, r.day, r.input_tokens, r.output_tokens, r.requests)
                for r in self.meter.summary(tenant_id, since, until, by)
            ]
        totals = row_json(
            None,
            None,
            sum(r["input_tokens"] for r in rows),
            sum(r["output_tokens"] for r in rows),
            sum(r["requests"] for r in rows),
        )
        del totals["model"], totals["day"]
        return json_response(
            200,
            {
                "object": "usage",
                "tenant_id": tenant_id,
                "deleted": deleted,
                "since": since,
                "until": until,
                "by": list(by),
                "data": rows,
                "totals": totals,
            },
        )

    def audit_log(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}/audit``: the newest entries of the range.
        """
        tenant_id, params, since, until, deleted = self._range(
            op, request, "limit", self.audit, "audit"
        )
        limit = audit_limit(params)
        assert self.audit is not None
        entries = self.audit.query(tenant_id, since, until) if since <= until else []
        return json_response(
            200,
            {
                "object": "list",
                "tenant_id": tenant_id,
                "deleted": deleted,
                "since": since,
                "until": until,
                "data": [entry_json(e) for e in entries[-limit:]],
                "truncated": len(entries) > limit,
            },
        )

"""
The report operations of the admin API: a tenant's usage totals and audit
log over a time range, and its invoice for a month, of deleted tenants too
(each runs in a worker thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from zerfoo_cloud.errors import TenantNotFoundError
from zerfoo_cloud.http.admin._inputs import query_fields, segments_of
from zerfoo_cloud.http.admin._params import audit_limit, group_by, time_range
from zerfoo_cloud.http.admin._responses import (
    HTTPProblem,
    bytes_response,
    json_response,
)
from zerfoo_cloud.http.admin._shapes import entry_json, row_json, totals_json, when
from zerfoo_cloud.invoices import build_invoice, parse_month
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
    ``/admin/tenants/{id}/usage``, ``/admin/tenants/{id}/audit`` and
    ``/admin/tenants/{id}/invoices/{YYYY-MM}``.
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
        rows: Sequence[UsageSummary] = []
        if since <= until:
            assert self.meter is not None
            rows = self.meter.summary(tenant_id, since, until, by)
        return json_response(
            200,
            {
                "object": "usage",
                "tenant_id": tenant_id,
                "deleted": deleted,
                "since": since,
                "until": until,
                "by": list(by),
                "data": [row_json(r) for r in rows],
                "totals": totals_json(rows),
            },
        )

    def invoice(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}/invoices/{YYYY-MM}``: the tenant's invoice
        for a UTC calendar month, as JSON or (``?format=csv``) CSV, priced
        lines listing the meter's prices in force.
        """
        assert op.tenant is not None
        params = query_fields(request, ("format",))
        fmt = params.get("format", "json")
        if fmt not in {"json", "csv"}:
            msg = f"format must be json or csv, not {fmt[:40]!r}"
            raise HTTPProblem(400, "invalid_format", msg, param="format")
        month = segments_of(request)[4]
        start, end = parse_month(month)
        query = getattr(self.meter, "query", None)
        if query is None:
            raise HTTPProblem(
                404, "usage_not_configured", "no usage store is configured"
            )
        tenant_id = op.tenant
        if self.tenants.store.get(tenant_id) is None and (
            tenant_id not in self._billed_tenants()
        ):
            raise TenantNotFoundError(tenant_id)
        result = build_invoice(
            tenant_id,
            month,
            query(tenant_id, start, end),
            prices=getattr(self.meter, "prices", None),
        )
        if fmt == "csv":
            return bytes_response(200, result.to_csv().encode(), "text/csv")
        return bytes_response(200, result.to_json().encode(), "application/json")

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

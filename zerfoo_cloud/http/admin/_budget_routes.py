"""
The spend budget operations of the admin API: read and replace the budgets
of a tenant or of one of its keys, and read what their current periods
have spent (each runs in a worker thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zerfoo_cloud.budget_forms import budgets_of, status_to_dict
from zerfoo_cloud.budget_records import SpendBudget, check_budget_set
from zerfoo_cloud.http.admin._inputs import json_object, segments_of
from zerfoo_cloud.http.admin._params import check_fields
from zerfoo_cloud.http.admin._responses import HTTPProblem, json_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._access import Op
    from zerfoo_cloud.http.admin._audit_trail import CallRecord
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["BudgetOperations"]

#: The most budgets one request may name (one per period, and room to say
#: so in an error).
_MAX_LISTED = 16


def _budgets_json(
    tenant_id: str, key_id: str | None, budgets: tuple[SpendBudget, ...]
) -> dict[str, Any]:
    return {
        "object": "spend_budgets",
        "tenant_id": tenant_id,
        "key_id": key_id,
        "data": [b.to_dict() for b in budgets],
    }


def _read_budgets(body: bytes) -> tuple[SpendBudget, ...]:
    data = json_object(body)
    check_fields(data, ("budgets",), ("budgets",))
    listed = data["budgets"]
    if not isinstance(listed, list) or len(listed) > _MAX_LISTED:
        msg = f"budgets must be a list of at most {_MAX_LISTED} budgets ([] for none)"
        raise HTTPProblem(400, "invalid_field", msg, param="budgets")
    return check_budget_set(SpendBudget.from_dict(item) for item in listed)


class BudgetOperations:
    """
    ``/admin/tenants/{id}/budgets``, ``/admin/tenants/{id}/keys/{key_id}/budgets``
    and ``/admin/tenants/{id}/spend`` on *tenants*.
    """

    def __init__(self, tenants: TenantManager) -> None:
        self.tenants = tenants

    @staticmethod
    def _key_id(op: Op, request: Request) -> str | None:
        return (
            segments_of(request)[4]
            if op.name in {"key_budgets", "set_key_budgets"}
            else None
        )

    def show(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET .../budgets``: the budgets of the tenant or key.
        """
        assert op.tenant is not None
        key_id = self._key_id(op, request)
        budgets = budgets_of(self.tenants.get(op.tenant).record, key_id)
        return json_response(200, _budgets_json(op.tenant, key_id, budgets))

    def replace(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``PUT .../budgets``: ``{"budgets": [...]}`` replaces the whole set
        (at most one per period; ``[]``: none). Amounts are decimal text.
        """
        assert op.tenant is not None
        key_id = self._key_id(op, request)
        budgets = _read_budgets(body)
        actor = "admin" if record.principal is None else record.principal.actor
        changed = self.tenants.set_budgets(
            op.tenant, budgets, key_id=key_id, actor=actor
        )
        return json_response(
            200, _budgets_json(op.tenant, key_id, budgets_of(changed, key_id))
        )

    def spend(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}/spend``: each budget of the tenant and of
        its keys, with its current period's spent, held and remaining.
        """
        assert op.tenant is not None
        tenant = self.tenants.get(op.tenant).record
        statuses = list(self.tenants.spend(op.tenant))
        for key in tenant.keys:
            if key.spend_budgets:
                statuses.extend(self.tenants.spend(op.tenant, key_id=key.id))
        return json_response(
            200,
            {
                "object": "list",
                "tenant_id": op.tenant,
                "data": [status_to_dict(s) for s in statuses],
            },
        )

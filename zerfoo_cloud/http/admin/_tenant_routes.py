"""
The tenant operations of the admin API: list, create, read, update, delete
and rotate a key (each runs in a worker thread).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.http.admin._audit_trail import CallRecord, valid_tenant
from zerfoo_cloud.http.admin._inputs import json_object
from zerfoo_cloud.http.admin._params import check_fields, int_field, models_field
from zerfoo_cloud.http.admin._responses import (
    HTTPProblem,
    empty_response,
    json_response,
)
from zerfoo_cloud.http.admin._shapes import tenant_json
from zerfoo_cloud.tenants import TenantConfig, generate_api_key, hash_api_key

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._access import Op
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["TenantOperations"]

#: API keys an admin chooses: long enough to guess, short enough to store.
_API_KEY = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
_TENANT_FIELDS = ("rate_limit", "token_budget", "max_concurrent_requests")


class TenantOperations:
    """
    ``/admin/tenants`` and ``/admin/tenants/{id}[/rotate-key]`` on *tenants*.
    """

    def __init__(self, tenants: TenantManager) -> None:
        self.tenants = tenants

    def list(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants``: every tenant.
        """
        data = [tenant_json(r) for r in self.tenants.records()]
        return json_response(200, {"object": "list", "data": data})

    def get(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}``: one tenant.
        """
        assert op.tenant is not None
        return json_response(200, tenant_json(self.tenants.get(op.tenant).record))

    def create(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/tenants``: a new tenant (201), with its key shown once.
        """
        data = json_object(body)
        check_fields(
            data,
            ("id", "api_key", *_TENANT_FIELDS, "model_allow_list"),
            ("id", "rate_limit", "token_budget"),
        )
        tenant_id = valid_tenant(data["id"])
        if tenant_id is None:
            msg = (
                "id must be 1 to 128 letters, digits and . _ - : @, starting with "
                "a letter or digit"
            )
            raise HTTPProblem(400, "invalid_field", msg, param="id")
        record.tenant = tenant_id
        api_key = data.get("api_key")
        if "api_key" not in data:
            api_key = generate_api_key(self.tenants.key_prefix)
        elif not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
            msg = (
                "api_key must be 16 to 256 letters, digits and . _ ~ + / = -; "
                "leave it out to have one generated"
            )
            raise HTTPProblem(400, "invalid_field", msg, param="api_key")
        config = TenantConfig(
            id=tenant_id,
            api_key=api_key,
            rate_limit=int_field(data, "rate_limit"),
            token_budget=int_field(data, "token_budget"),
            max_concurrent_requests=int_field(data, "max_concurrent_requests")
            if "max_concurrent_requests" in data
            else 0,
            model_allow_list=models_field(data) if "model_allow_list" in data else (),
        )
        tenant = self.tenants.create(config)
        return json_response(
            201,
            {**tenant_json(tenant.record), "api_key": api_key},
            headers=[("location", f"/admin/tenants/{tenant_id}")],
        )

    def update(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``PATCH /admin/tenants/{id}``: change limits or the model list.
        """
        assert op.tenant is not None
        data = json_object(body)
        check_fields(data, (*_TENANT_FIELDS, "model_allow_list"))
        if not data:
            msg = f"nothing to change: send any of {', '.join(_TENANT_FIELDS)}, model_allow_list"
            raise HTTPProblem(400, "missing_field", msg)
        changes: dict[str, Any] = {
            n: int_field(data, n) for n in _TENANT_FIELDS if n in data
        }
        if "model_allow_list" in data:
            changes["model_allow_list"] = models_field(data)
        tenant = self.tenants.update(op.tenant, **changes)
        return json_response(200, tenant_json(tenant.record))

    def delete(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``DELETE /admin/tenants/{id}`` (204).
        """
        assert op.tenant is not None
        self.tenants.delete(op.tenant)
        return empty_response(204)

    def sign_out(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/tenants/{id}/sessions/revoke``: end the tenant's
        sessions issued until now, or (body ``{"subject": ...}``) one
        person's.
        """
        assert op.tenant is not None
        data = json_object(body) if body.strip() else {}
        check_fields(data, ("subject",))
        subject = data.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise HTTPProblem(
                400, "invalid_field", "subject must be a string", param="subject"
            )
        actor = "admin" if record.principal is None else record.principal.actor
        done = self.tenants.sign_out(op.tenant, subject=subject, actor=actor)
        return json_response(
            200,
            {
                "object": "tenant.sessions_revoked",
                "id": op.tenant,
                "subject": subject,
                "not_before": done.sessions_valid_from(subject or ""),
            },
        )

    def rotate(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/tenants/{id}/rotate-key``: a new key, shown once.
        """
        assert op.tenant is not None
        principal = record.principal
        # A session re-keys only the incarnation it was issued for, checked in
        # the store's transaction: never a tenant created again meanwhile.
        incarnation = (
            principal.incarnation
            if principal is not None and principal.tenant_id is not None
            else None
        )
        key = self.tenants.rotate_key(op.tenant, incarnation=incarnation)
        return json_response(
            200,
            {
                "object": "tenant.key",
                "id": op.tenant,
                "api_key": key,
                "key_id": hash_api_key(key)[:8],
            },
        )

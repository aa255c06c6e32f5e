"""
The key operations of the admin API: list, create, revoke and rotate a
tenant's API keys (each runs in a worker thread, each audited by the call
trail like every admin call).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.http.admin._inputs import json_object, segments_of
from zerfoo_cloud.http.admin._params import check_fields
from zerfoo_cloud.http.admin._responses import HTTPProblem, json_response
from zerfoo_cloud.tenants.key_checks import MAX_KEY_LIFETIME

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._access import Op
    from zerfoo_cloud.http.admin._audit_trail import CallRecord
    from zerfoo_cloud.key_records import KeyRecord
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["KeyOperations"]


def _seconds(data: dict[str, Any], name: str) -> float:
    value = data[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    ):
        msg = f"{name} must be a number of seconds"
        raise HTTPProblem(400, "invalid_field", msg, param=name)
    return float(value)


def _scope(data: dict[str, Any]) -> list[str]:
    value = data["model_scope"]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        msg = "model_scope must be a list of model names"
        raise HTTPProblem(400, "invalid_field", msg, param="model_scope")
    return value


def _key_json(key: KeyRecord, now: float) -> dict[str, Any]:
    return {"object": "tenant.api_key", **key.view(now)}


class KeyOperations:
    """
    ``/admin/tenants/{id}/keys[/{key_id}[/rotate]]`` on *tenants*.
    """

    def __init__(self, tenants: TenantManager) -> None:
        self.tenants = tenants

    def list(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``GET /admin/tenants/{id}/keys``: the tenant's keys (never a key).
        """
        assert op.tenant is not None
        now = self.tenants.clock()
        data = [_key_json(k, now) for k in self.tenants.list_keys(op.tenant)]
        return json_response(200, {"object": "list", "data": data})

    def create(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/tenants/{id}/keys``: a new key (201), shown once.
        """
        assert op.tenant is not None
        data = json_object(body)
        check_fields(data, ("name", "expires_in", "model_scope"), ("name",))
        now = self.tenants.clock()
        expires_at = None
        if "expires_in" in data:
            seconds = _seconds(data, "expires_in")
            if not 1 <= seconds <= MAX_KEY_LIFETIME:
                msg = f"expires_in must be 1 to {int(MAX_KEY_LIFETIME)} seconds"
                raise HTTPProblem(400, "invalid_field", msg, param="expires_in")
            expires_at = now + seconds
        secret, made = self.tenants.create_key(
            op.tenant,
            name=data["name"],
            expires_at=expires_at,
            model_scope=_scope(data) if "model_scope" in data else (),
        )
        return json_response(
            201,
            {**_key_json(made, now), "api_key": secret},
            headers=[("location", f"/admin/tenants/{op.tenant}/keys/{made.id}")],
        )

    def revoke(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``DELETE /admin/tenants/{id}/keys/{key_id}``: the key stops working.
        """
        assert op.tenant is not None
        revoked = self.tenants.revoke_key(op.tenant, segments_of(request)[4])
        return json_response(200, _key_json(revoked, self.tenants.clock()))

    def rotate(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``POST /admin/tenants/{id}/keys/{key_id}/rotate``: a new key, shown
        once; the old one works for ``grace`` seconds more (default 0).
        """
        assert op.tenant is not None
        data = json_object(body) if body.strip() else {}
        check_fields(data, ("grace",))
        grace = _seconds(data, "grace") if "grace" in data else 0.0
        secret, new, old = self.tenants.rotate_api_key(
            op.tenant, segments_of(request)[4], grace=grace
        )
        now = self.tenants.clock()
        return json_response(
            200,
            {**_key_json(new, now), "api_key": secret, "old_key": _key_json(old, now)},
        )

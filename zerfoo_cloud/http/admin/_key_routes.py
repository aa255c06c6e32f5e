"""
The key operations of the admin API: list, create, update, revoke and
rotate a tenant's API keys (each runs in a worker thread, each audited by the call
trail like every admin call).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.http.admin._inputs import json_object, segments_of
from zerfoo_cloud.http.admin._params import check_fields, int_field
from zerfoo_cloud.http.admin._responses import HTTPProblem, json_response
from zerfoo_cloud.key_records import KEY_LIMITS
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


def _expiry(data: dict[str, Any], now: float) -> float | None:
    # ``expires_in`` seconds from *now*; null: never.
    if data["expires_in"] is None:
        return None
    seconds = _seconds(data, "expires_in")
    if not 1 <= seconds <= MAX_KEY_LIFETIME:
        msg = f"expires_in must be 1 to {int(MAX_KEY_LIFETIME)} seconds"
        raise HTTPProblem(400, "invalid_field", msg, param="expires_in")
    return now + seconds


def _limit(data: dict[str, Any], name: str) -> int | None:
    # A key's own limit the body names, or None.
    return int_field(data, name) if name in data else None


#: The fields of ``PATCH /admin/tenants/{id}/keys/{key_id}``.
_UPDATE_FIELDS = ("name", "expires_in", "model_scope", *KEY_LIMITS)


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
        check_fields(
            data, ("name", "expires_in", "model_scope", *KEY_LIMITS), ("name",)
        )
        now = self.tenants.clock()
        expires_at = _expiry(data, now) if "expires_in" in data else None
        secret, made = self.tenants.create_key(
            op.tenant,
            name=data["name"],
            expires_at=expires_at,
            model_scope=_scope(data) if "model_scope" in data else (),
            rate_limit=_limit(data, "rate_limit") or 0,
            token_budget=_limit(data, "token_budget") or 0,
            max_concurrent_requests=_limit(data, "max_concurrent_requests") or 0,
        )
        return json_response(
            201,
            {**_key_json(made, now), "api_key": secret},
            headers=[("location", f"/admin/tenants/{op.tenant}/keys/{made.id}")],
        )

    def update(
        self, op: Op, request: Request, body: bytes, record: CallRecord
    ) -> Response:
        """
        ``PATCH /admin/tenants/{id}/keys/{key_id}``: change a key that
        still works (its name, expiry, scope or own limits); fields absent
        stay as they are.
        """
        assert op.tenant is not None
        data = json_object(body)
        check_fields(data, _UPDATE_FIELDS)
        if not data:
            msg = f"nothing to change: send any of {', '.join(_UPDATE_FIELDS)}"
            raise HTTPProblem(400, "missing_field", msg)
        now = self.tenants.clock()
        updated = self.tenants.update_key(
            op.tenant,
            segments_of(request)[4],
            name=data.get("name"),
            expires_at=_expiry(data, now) if "expires_in" in data else ...,
            model_scope=_scope(data) if "model_scope" in data else None,
            rate_limit=_limit(data, "rate_limit"),
            token_budget=_limit(data, "token_budget"),
            max_concurrent_requests=_limit(data, "max_concurrent_requests"),
        )
        return json_response(200, _key_json(updated, now))

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

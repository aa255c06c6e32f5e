"""
The audit entries of admin calls: one per call, saying who did what to
which tenant and how it ended, never a key, token or body.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http.admin._inputs import client_of, path_of, segments_of
from zerfoo_cloud.http.admin._responses import error_response
from zerfoo_cloud.tenants import TENANT_ID_PATTERN, hash_api_key

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.http.admin._access import Access, Op, Principal
    from zerfoo_cloud.stores.protocols import TenantStore

__all__ = ["AuditTrail", "CallRecord", "valid_tenant"]

_log = logging.getLogger("zerfoo_cloud.http.admin")

_MAX_AUDIT_SEGMENTS = 8
_ROUTE_WORDS = frozenset(
    {
        "",
        "admin",
        "tenants",
        "rotate-key",
        "usage",
        "audit",
        "prices",
        "budgets",
        "spend",
    }
)
_RESOURCE_SUFFIX = {
    "rotate": "/key",
    "usage": "/usage",
    "audit": "/audit",
    # The key's id, when there is one, is in the entry's path.
    "keys": "/keys",
    "create_key": "/keys",
    "revoke_key": "/keys",
    "rotate_key": "/keys",
    "budgets": "/budgets",
    "set_budgets": "/budgets",
    "key_budgets": "/keys",
    "set_key_budgets": "/keys",
    "spend": "/spend",
}
#: The resource of the service-wide operations (not of one tenant).
_SERVICE_RESOURCE = {"prices": "prices", "set_prices": "prices", "add_price": "prices"}
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._:@~-]{1,512}")
# API keys of this library and OpenAI-style services, as the audit module
# recognises them: never written to an audit entry.
_KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:zc|sk)-[A-Za-z0-9_\-]{16,}", re.IGNORECASE
)


def valid_tenant(value: object) -> str | None:
    """
    *value* if it is a well-formed tenant id, else ``None``.
    """
    if isinstance(value, str) and TENANT_ID_PATTERN.fullmatch(value):
        return value
    return None


@attrs.define
class CallRecord:
    """
    What the audit entry of one admin call will say (filled in as it runs).
    """

    op: Op
    principal: Principal | None = None
    tenant: str | None = None
    #: What the call changed, when not a tenant (``prices/v3``).
    resource: str | None = None


class AuditTrail:
    """
    Writes the audit entry of each admin call to *audit* (none without it).
    """

    def __init__(
        self, audit: AuditLogger | None, access: Access, store: TenantStore
    ) -> None:
        self.audit = audit
        self._access = access
        self._store = store

    def log(self, entry: AuditEntry) -> None:
        """
        Write *entry*; a failure is logged (never the entry), not raised:
        the operation is done, and a new key must still reach its caller.
        """
        if self.audit is None:
            return
        try:
            self.audit.log(entry)
        except CloudError as exc:
            _log.error("audit entry not written: %s", exc)

    def record(self, request: Request, record: CallRecord, response: Response) -> None:
        """
        Audit one admin call that ended with *response* (a worker thread).
        """
        status = response.status_code
        action = AuditAction.AUTH if status == 401 else record.op.action  # noqa: PLR2004
        tenant = valid_tenant(record.tenant or record.op.tenant)
        if tenant is not None and self.secret(tenant):
            tenant = None
        if record.resource is not None:
            resource = record.resource
        elif record.op.name in _SERVICE_RESOURCE:
            resource = _SERVICE_RESOURCE[record.op.name]
        elif tenant is None:
            resource = "tenants"
        else:
            resource = f"tenant/{tenant}" + _RESOURCE_SUFFIX.get(
                record.op.name or "", ""
            )
        if record.principal is not None:
            resource += f" by {record.principal.actor}"
        self._write(request, tenant, action, resource, status)

    def refuse_repeated(self, request: Request, what: str) -> Response:
        """
        Answer 400 to a request that sends credential *what* more than
        once, and audit it as an ``auth`` error (a worker thread).
        """
        response = error_response(
            400,
            "duplicate_credentials",
            f"the request sends {what} more than once; send it exactly once",
            param=what,
        )
        segments = segments_of(request)
        tenant = valid_tenant(segments[2]) if len(segments) > 2 else None  # noqa: PLR2004
        if tenant is not None and self.secret(tenant):
            tenant = None
        self._write(request, tenant, AuditAction.AUTH, "credentials", 400)
        return response

    def _write(
        self,
        request: Request,
        tenant: str | None,
        action: AuditAction,
        resource: str,
        status: int,
    ) -> None:
        self.log(
            AuditEntry(
                tenant_id=tenant or "",
                action=action,
                result=audit_result(status),
                resource=resource,
                status_code=status,
                method=request.method.upper(),
                path=self.audit_path(request),
                remote_addr=client_of(request),
            )
        )

    def audit_path(self, request: Request) -> str:
        """
        The request path, with every segment that is or looks like a
        secret replaced; long or odd paths are cut to their first segment.
        """
        segments = segments_of(request)
        if len(segments) > _MAX_AUDIT_SEGMENTS or not _SAFE_PATH.fullmatch(
            path_of(request)
        ):
            return "/" + segments[0] + "/…"
        return "/" + "/".join(
            s if s in _ROUTE_WORDS or not self.secret(s) else REDACTED for s in segments
        )

    def secret(self, text: str) -> bool:
        """
        Whether *text* is, or has the shape of, a key or session token: it
        must never be written to the audit log.
        """
        if _KEY_SHAPED.search(text) or (
            text.startswith("v1.") and text.count(".") == 2  # noqa: PLR2004
        ):
            return True
        digest_hex = hash_api_key(text)
        if self._access.is_admin_hash(bytes.fromhex(digest_hex)):
            return True
        try:
            return self._store.get_by_key_hash(digest_hex) is not None
        except CloudError:
            return True

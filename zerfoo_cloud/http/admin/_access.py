"""
Who may call the admin API, and what each route lets them do.

An admin key (only its SHA-256 hash is configured) may do everything; a
tenant-admin session may read only its own tenant, its usage and its audit
log, and rotate its own key (a viewer's session only reads them), and only while the tenant it signed in to still
exists (the same *incarnation*, not merely the same id).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.errors import SessionError
from zerfoo_cloud.http.admin._inputs import cookie
from zerfoo_cloud.http.admin._responses import HTTPProblem
from zerfoo_cloud.http.admin._sso import SESSION_COOKIE
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.tenants import hash_api_key

if TYPE_CHECKING:
    from starlette.requests import Request

    from zerfoo_cloud.http.admin._sessions import SessionSigner
    from zerfoo_cloud.stores.protocols import TenantStore

__all__ = [
    "CHALLENGE",
    "PRICES_PATH",
    "ROUTES",
    "SERVICE_ROUTES",
    "Access",
    "Op",
    "Principal",
    "op_for",
]


#: The challenge of every 401.
CHALLENGE = ("www-authenticate", 'Bearer realm="zerfoo-cloud admin"')

#: Route suffix under ``/admin/tenants`` -> method -> (operation, audit
#: action, allowed to the tenant's own session, reads a body).
ROUTES: dict[str, dict[str, tuple[str, AuditAction, bool, bool]]] = {
    "": {
        "GET": ("list", AuditAction.LIST, False, False),
        "POST": ("create", AuditAction.CREATE, False, True),
    },
    "/": {
        "GET": ("get", AuditAction.LIST, True, False),
        "PATCH": ("update", AuditAction.UPDATE, False, True),
        "DELETE": ("delete", AuditAction.DELETE, False, False),
    },
    "/rotate-key": {"POST": ("rotate", AuditAction.UPDATE, True, False)},
    "/sessions/revoke": {"POST": ("sign_out", AuditAction.UPDATE, False, True)},
    "/keys": {
        "GET": ("keys", AuditAction.LIST, True, False),
        "POST": ("create_key", AuditAction.CREATE, False, True),
    },
    "/keys/{key_id}": {
        "PATCH": ("update_key", AuditAction.UPDATE, False, True),
        "DELETE": ("revoke_key", AuditAction.DELETE, False, False),
    },
    "/keys/{key_id}/rotate": {"POST": ("rotate_key", AuditAction.UPDATE, False, True)},
    "/usage": {"GET": ("usage", AuditAction.LIST, True, False)},
    "/audit": {"GET": ("audit", AuditAction.LIST, True, False)},
    "/invoices/{month}": {"GET": ("invoice", AuditAction.LIST, True, False)},
    "/budgets": {
        "GET": ("budgets", AuditAction.LIST, True, False),
        "PUT": ("set_budgets", AuditAction.UPDATE, False, True),
    },
    "/keys/{key_id}/budgets": {
        "GET": ("key_budgets", AuditAction.LIST, True, False),
        "PUT": ("set_key_budgets", AuditAction.UPDATE, False, True),
    },
    "/spend": {"GET": ("spend", AuditAction.LIST, True, False)},
}
#: The path of the price table.
PRICES_PATH = "/admin/prices"
#: Routes of the whole service, outside ``/admin/tenants``: path -> method
#: -> as `ROUTES` (never allowed to a tenant's session).
SERVICE_ROUTES: dict[str, dict[str, tuple[str, AuditAction, bool, bool]]] = {
    PRICES_PATH: {
        "GET": ("prices", AuditAction.LIST, False, False),
        "PUT": ("set_prices", AuditAction.UPDATE, False, True),
        "POST": ("add_price", AuditAction.CREATE, False, True),
    },
}
_METHOD_ACTIONS = {
    "POST": AuditAction.CREATE,
    "PUT": AuditAction.UPDATE,
    "PATCH": AuditAction.UPDATE,
    "DELETE": AuditAction.DELETE,
}


@attrs.frozen
class Principal:
    """
    Who is calling: an admin key (*tenant_id* ``None``) or a tenant session
    bound to one *incarnation* of its tenant.
    """

    tenant_id: str | None
    actor: str
    incarnation: str = ""
    role: str = "admin"
    subject: str = ""
    issued_at: float = 0.0


@attrs.frozen
class Op:
    """
    A matched admin route: what it does, on which tenant, and who may
    (*name* ``None``: no such route, or *allow* lists the methods it has).
    """

    name: str | None
    action: AuditAction
    tenant: str | None = None
    own: bool = False
    body: bool = False
    allow: tuple[str, ...] = ()


def op_for(suffix: str | None, method: str, tenant: str | None) -> Op:
    """
    The operation of *method* on the route *suffix* (a key of `ROUTES` or
    of `SERVICE_ROUTES`; ``None``: no route).
    """
    fallback = _METHOD_ACTIONS.get(method, AuditAction.LIST)
    methods = None if suffix is None else ROUTES.get(suffix) or SERVICE_ROUTES[suffix]
    if methods is None:
        return Op(None, fallback)
    found = methods.get(method)
    if found is None:
        return Op(None, fallback, tenant, allow=tuple(methods))
    name, action, own, body = found
    return Op(name, action, tenant, own, body, tuple(methods))


def invalid_credentials() -> HTTPProblem:
    """
    The 401 for an admin key or session token that is not valid.
    """
    return HTTPProblem(
        401,
        "invalid_credentials",
        "the admin key or session token is not valid",
        headers=[CHALLENGE],
    )


class Access:
    """
    Authenticates admin calls and decides what each caller may do.
    """

    def __init__(
        self,
        admin_hashes: tuple[bytes, ...],
        sessions: SessionSigner | None,
        store: TenantStore,
    ) -> None:
        self.admin_hashes = admin_hashes
        self.sessions = sessions
        self._store = store

    def is_admin_hash(self, digest: bytes) -> bool:
        """
        Whether *digest* is an admin key's SHA-256 (every hash is compared,
        so the time taken says nothing about which).
        """
        found = False
        for known in self.admin_hashes:
            found |= hmac.compare_digest(known, digest)
        return found

    def authenticate(self, request: Request) -> Principal:
        """
        The caller of *request*: the bearer admin key or session token, or
        the session cookie.

        Raises:
            HTTPProblem: 401 for missing, malformed or invalid credentials.
        """
        header = request.headers.get("authorization")
        if header is None:
            token = cookie(request, SESSION_COOKIE)
            if token and self.sessions is not None:
                return self._session(token)
            msg = (
                "no credentials: send Authorization: Bearer <admin key>, or sign "
                "in at /sso/saml/<tenant>/login"
            )
            raise HTTPProblem(401, "missing_credentials", msg, headers=[CHALLENGE])
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            msg = "use Authorization: Bearer <admin key or session token>"
            raise HTTPProblem(401, "invalid_authorization", msg, headers=[CHALLENGE])
        digest = bytes.fromhex(hash_api_key(token))
        if self.is_admin_hash(digest):
            return Principal(None, "admin:" + digest.hex()[:8])
        if self.sessions is not None:
            return self._session(token)
        raise invalid_credentials()

    def _session(self, token: str) -> Principal:
        assert self.sessions is not None
        try:
            session = self.sessions.verify(token)
        except SessionError as exc:
            if exc.reason == "expired":
                raise HTTPProblem(
                    401, "session_expired", str(exc), headers=[CHALLENGE]
                ) from exc
            raise invalid_credentials() from exc
        if session.role == Role.OPERATOR.value:
            # An operator's console session is no API credential: the API
            # takes the admin key itself.
            msg = (
                "an operator's console session does not call the admin API; "
                "send the admin key"
            )
            raise HTTPProblem(403, "forbidden", msg)
        return Principal(
            session.tenant_id,
            "sso:" + session.subject,
            session.incarnation,
            session.role,
            session.subject,
            session.issued_at,
        )

    @staticmethod
    def authorize(principal: Principal, op: Op) -> None:
        """
        Refuse what *principal* may not do: 404 for no route, 405 for a
        method the route lacks, 403 for a session outside its tenant.
        """
        if op.name is None:
            if op.allow:
                msg = f"use {', '.join(op.allow)} here"
                raise HTTPProblem(
                    405,
                    "method_not_allowed",
                    msg,
                    headers=[("allow", ", ".join(op.allow))],
                )
            raise HTTPProblem(404, "not_found", "no such admin route")
        if principal.tenant_id is None:
            return
        if op.own and op.tenant == principal.tenant_id:
            if principal.role == "viewer" and op.action is not AuditAction.LIST:
                msg = "a viewer's session may read its tenant but change nothing"
                raise HTTPProblem(403, "forbidden", msg)
            return
        msg = (
            f"a session for tenant {principal.tenant_id!r} may only read that "
            "tenant, its usage and audit log, and rotate its key"
        )
        raise HTTPProblem(403, "forbidden", msg)

    def check_incarnation(self, principal: Principal | None) -> None:
        """
        Refuse (401) a session whose tenant was deleted since it was issued,
        whether or not a tenant of the same id was created again, or whose
        tenant's people (or whose subject) were signed out since (runs in a
        worker thread).
        """
        if principal is None or principal.tenant_id is None:
            return
        current = self._store.get(principal.tenant_id)
        if (
            current is None
            or not principal.incarnation
            or not hmac.compare_digest(
                current.incarnation.encode(), principal.incarnation.encode()
            )
        ):
            msg = "the session's tenant was deleted since it signed in; sign in again"
            raise HTTPProblem(401, "session_revoked", msg, headers=[CHALLENGE])
        if principal.issued_at < current.sessions_valid_from(principal.subject):
            msg = "the session was signed out by an operator; sign in again"
            raise HTTPProblem(401, "session_revoked", msg, headers=[CHALLENGE])

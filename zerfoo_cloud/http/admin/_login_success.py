"""
Where every single sign-on ends: the console session of a user an IdP
vouched for (`start_console_session`), the page of a refused login
(`login_refused`) and the audit entry of either (`audit_login`).

SAML's ACS and OpenID Connect's callback both end here, so a session is
made one way whatever the protocol.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal, Protocol

from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http.admin._inputs import client_of
from zerfoo_cloud.http.admin._responses import (
    HTTPProblem,
    bytes_response,
    json_response,
)
from zerfoo_cloud.sso.roles import Role

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.http.admin._sessions import SessionSigner
    from zerfoo_cloud.sso.identity import SSOIdentity

__all__ = [
    "SESSION_COOKIE",
    "ConsoleLogins",
    "audit_login",
    "console_home",
    "login_refused",
    "set_cookie",
    "start_console_session",
]

#: The cookie holding a console user's session token.
SESSION_COOKIE = "zc_session"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in refused</title></head>
<body><main>
<h1 data-testid="login-error-title">Sign-in refused</h1>
<p data-testid="login-error" data-code="{code}">{message}</p>
<p><a data-testid="login-again" href="/console/login">Sign in again</a></p>
</main></body></html>
"""
_PAGE_HEADERS = (
    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; form-action 'none'"
)


class ConsoleLogins(Protocol):
    """
    **Protocol**: what `start_console_session` needs of the app serving the
    request (``request.scope["app"]``).
    """

    sessions: SessionSigner | None

    def incarnation_of(self, tenant_id: str) -> str | None:
        """
        The tenant's current incarnation, ``None`` if there is no such
        tenant (a store read: call it in a worker thread).
        """


def console_home(tenant_id: str, role: Role) -> str:
    """
    The console page a user lands on after signing in.
    """
    if role is Role.OPERATOR:
        return "/console/operator/"
    return f"/console/t/{tenant_id}/"


def start_console_session(
    request: Request,
    identity: SSOIdentity,
    role: Role,
    via: str,
    *,
    next_path: str = "",
) -> Response:
    """
    Sign *identity* in with *role*: issue a session (bound to the tenant as
    it is now; an operator's to no tenant), set it as the ``zc_session``
    cookie and redirect (303) to *next_path*, else to the console home
    (`console_home`). The body is the session as JSON (``token``,
    ``tenant_id``, ``subject``, ``email``, ``role``, ``via``,
    ``expires_at``, ``expires_in``). Runs in a worker thread.

    Raises:
        HTTPProblem: 404 when the tenant no longer exists, 403 for a
            subject the session cannot carry.
    """
    app: ConsoleLogins = request.scope["app"]
    sessions = app.sessions
    assert sessions is not None, "SSO is only routed with sessions"
    tenant_id = "" if role is Role.OPERATOR else identity.tenant_id
    incarnation = ""
    if role is not Role.OPERATOR:
        current = app.incarnation_of(tenant_id)
        if current is None:
            msg = f"tenant {tenant_id!r} does not exist; no session is issued"
            raise HTTPProblem(404, "tenant_not_found", msg)
        incarnation = current
    try:
        token = sessions.issue(
            tenant_id,
            identity.subject,
            incarnation=incarnation,
            expires_at=identity.session_expires_at,
            role=role.value,
            via=via,
            email=identity.email,
        )
    except InvalidConfigError as exc:
        raise HTTPProblem(403, "invalid_subject", str(exc)) from exc
    session = sessions.verify(token)
    # The cookie lasts to the absolute end; the token's idle end is
    # renewed by each console page.
    max_age = max(1, math.ceil(session.absolute_expires_at - sessions.clock()))
    body = {
        "object": "session",
        "token": token,
        "token_type": "bearer",
        "tenant_id": tenant_id,
        "subject": identity.subject,
        "email": identity.email,
        "role": role.value,
        "via": via,
        "expires_at": datetime.fromtimestamp(session.expires_at, timezone.utc),
        "expires_in": max_age,
    }
    target = next_path or console_home(tenant_id, role)
    response = json_response(303, body, headers=[("location", target)])
    set_cookie(
        response, SESSION_COOKIE, token, max_age=max_age, path="/", same_site="lax"
    )
    return response


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def login_refused(request: Request, problem: HTTPProblem) -> Response:
    """
    The answer to a refused sign-in: for a browser (``Accept: text/html``)
    a small page with the message and a link back to the console's login,
    else the error as JSON.
    """
    if not _wants_html(request):
        return problem.response()
    page = _PAGE.format(
        code=html.escape(problem.code), message=html.escape(problem.message)
    )
    response = bytes_response(problem.status, page.encode(), "text/html")
    response.headers["content-security-policy"] = _PAGE_HEADERS
    return response


def audit_login(
    audit: Callable[[AuditEntry], None],
    request: Request,
    response: Response,
    *,
    tenant_id: str,
    path: str,
    subject: str = "",
    reason: str = "",
) -> Response:
    """
    Audit a sign-in as an ``auth`` event of *tenant_id* (``""`` for an
    operator's): its result, who (*subject*) and why it was refused
    (*reason*, an error code); never a token. Return *response*.
    """
    who = f" by sso:{subject}" if subject else ""
    why = f" ({reason})" if reason else ""
    audit(
        AuditEntry(
            tenant_id=tenant_id,
            action=AuditAction.AUTH,
            result=audit_result(response.status_code),
            resource=f"session/{tenant_id}{who}{why}",
            status_code=response.status_code,
            method=request.method.upper(),
            path=path,
            remote_addr=client_of(request),
        )
    )
    return response


def set_cookie(
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str,
    same_site: Literal["lax", "none"],
) -> None:
    """
    Add a cookie to *response*: always ``HttpOnly`` and ``Secure``.
    """
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=True,
        httponly=True,
        samesite=same_site,
    )

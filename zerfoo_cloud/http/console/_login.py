"""
Signing in and out of the console: ``/console/login`` (each tenant's
single sign-on links, and the operators' admin-key form) and
``/console/logout``.

The admin-key form carries a CSRF token bound to a short-lived cookie of
its own (nobody has a session yet); each client address may try
`LOGIN_ATTEMPTS` keys per `LOGIN_WINDOW` seconds; the key is hashed and
compared in constant time with the admin key hashes the admin API has.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, RedirectResponse, Response

from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.errors import SessionError
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http.admin._inputs import (
    client_of,
    cookie,
    form_fields,
    query_fields,
    read_body,
)
from zerfoo_cloud.http.admin._responses import HTTPProblem
from zerfoo_cloud.http.admin._sessions import state_codec
from zerfoo_cloud.http.console._cookies import (
    clear_session,
    insecure_refused,
    set_session,
)
from zerfoo_cloud.http.console._login_limiter import LoginLimiter
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.tenants import TENANT_ID_PATTERN, hash_api_key

if TYPE_CHECKING:
    from starlette.requests import Request

    from zerfoo_cloud.http.admin._sessions import Session
    from zerfoo_cloud.http.console._services import ConsoleServices
    from zerfoo_cloud.http.console._templates import Templates

__all__ = ["LOGIN_COOKIE", "LOGIN_FORM_TTL", "Login"]

#: The cookie the admin-key form's CSRF token is bound to.
LOGIN_COOKIE = "zc_console_login"
#: Seconds the admin-key form stays valid.
LOGIN_FORM_TTL = 900
_LOGIN_PATH = "/console/login"
_MAX_KEY_CHARS = 512


class Login:
    """
    The sign-in and sign-out endpoints of the console.
    """

    def __init__(
        self,
        services: ConsoleServices,
        templates: Templates,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.services = services
        self.templates = templates
        self.limiter = limiter or LoginLimiter(services.clock)
        self._forms = state_codec(services.sessions, "console-login")

    # -- pages -------------------------------------------------------------

    def _page(
        self,
        request: Request,
        *,
        status: int = 200,
        error: str = "",
        tenant: str = "",
        ended: bool = False,
    ) -> Response:
        nonce = secrets.token_urlsafe(16)
        form_token = self._forms.dumps(
            {"n": nonce, "e": self.services.clock() + LOGIN_FORM_TTL}
        )
        links = self.services.sign_in(tenant) if tenant else ()
        context = {
            "session": None,
            "tenant_id": None,
            "nav": (),
            "title": "Sign in",
            "is_operator": False,
            "now": self.services.clock(),
            "csrf": form_token,
            "error": error,
            "tenant": tenant,
            "links": links,
            "operator_links": self.services.sign_in(""),
            "ended": ended,
            "insecure": insecure_refused(self.services, request),
        }
        response = HTMLResponse(self.templates.render("login.html", context), status)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=LOGIN_FORM_TTL,
            path=_LOGIN_PATH,
            secure=self.services.secure_cookies,
            httponly=True,
            samesite="strict",
        )
        return response

    async def page(self, request: Request) -> Response:
        """
        ``GET /console/login[?tenant=<id>]``: the sign-in page; with a
        tenant, the links to its single sign-on.
        """
        try:
            params = query_fields(request, ("tenant", "ended"))
        except HTTPProblem as problem:
            return self._page(request, status=400, error=problem.message)
        tenant = params.get("tenant", "").strip()
        if tenant and not TENANT_ID_PATTERN.fullmatch(tenant):
            return self._page(
                request, status=400, error="That is not a tenant id.", tenant=""
            )
        return self._page(request, tenant=tenant, ended="ended" in params)

    # -- the operators' admin-key form ---------------------------------------

    def _form_valid(self, request: Request, token: str) -> bool:
        nonce = cookie(request, LOGIN_COOKIE) or ""
        try:
            state = self._forms.loads(token)
        except SessionError:
            return False
        return bool(nonce) and hmac.compare_digest(
            str(state.get("n", "")).encode(), nonce.encode()
        )

    def _audit(
        self, request: Request, status: int, resource: str, tenant: str = ""
    ) -> None:
        self.services.log(
            AuditEntry(
                tenant_id=tenant,
                action=AuditAction.AUTH,
                result=audit_result(status),
                resource=resource,
                status_code=status,
                method="POST",
                path=request.url.path,
                remote_addr=client_of(request),
            )
        )

    async def _refused(
        self,
        request: Request,
        status: int,
        error: str,
        resource: str,
        tenant: str = "",
    ) -> Response:
        await asyncio.to_thread(self._audit, request, status, resource, tenant)
        return self._page(request, status=status, error=error)

    async def sign_in(self, request: Request) -> Response:
        """
        ``POST /console/login``: an admin key -> an operator session.
        """
        if insecure_refused(self.services, request):
            msg = "Cookies without Secure are only sent to http://127.0.0.1."
            return self._page(request, status=400, error=msg)
        wait = self.limiter.allow(client_of(request))
        if wait:
            response = await self._refused(
                request,
                429,
                "Too many sign-in attempts from this address; wait a minute.",
                "session/operator",
            )
            response.headers["retry-after"] = str(max(1, round(wait)))
            return response
        try:
            body = await read_body(request, self.services.max_body)
            form = await form_fields(request, body)
        except HTTPProblem as problem:
            return await self._refused(
                request, problem.status, problem.message, "session/operator"
            )
        if not self._form_valid(request, form.get("csrf", "")):
            return await self._refused(
                request,
                403,
                "The form has expired or was not sent by this page; try again.",
                "session/operator csrf",
            )
        key = form.get("admin_key", "").strip()[:_MAX_KEY_CHARS]
        if not key or not self.services.is_admin_key(key):
            return await self._refused(
                request, 401, "That admin key is not valid.", "session/operator"
            )
        subject = "admin:" + hash_api_key(key)[:8]
        token = self.services.sessions.issue(
            "", subject, incarnation="", role=Role.OPERATOR, via="admin-key"
        )
        session = self.services.sessions.verify(token)
        await asyncio.to_thread(
            self._audit, request, 303, f"session/operator by {session.actor}"
        )
        response = RedirectResponse("/console/operator/", 303)
        set_session(self.services, response, token, session)
        response.delete_cookie(LOGIN_COOKIE, path=_LOGIN_PATH)
        return response

    async def sign_out(self, request: Request, session: Session | None) -> Response:
        """
        ``POST /console/logout``: clear the session cookie (the form's
        CSRF token must match a live session, so no other site can sign
        anyone out).
        """
        response: Response = RedirectResponse(_LOGIN_PATH, 303)
        if session is not None:
            try:
                body = await read_body(request, self.services.max_body)
                form = await form_fields(request, body)
            except HTTPProblem:
                form = {}
            if not self.services.sessions.check_csrf(session, form.get("csrf")):
                return await self._refused(
                    request,
                    403,
                    "The sign-out form was not sent by this console.",
                    f"session csrf by {session.actor}",
                    session.tenant_id,
                )
            await asyncio.to_thread(
                self._audit,
                request,
                303,
                f"session ended by {session.actor}",
                session.tenant_id,
            )
        clear_session(self.services, response)
        return response

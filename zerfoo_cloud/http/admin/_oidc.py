"""
OpenID Connect login for the console: ``/sso/oidc/<name>/login`` and
``/sso/oidc/<name>/callback``, *name* being a tenant id or ``_operators``.

The pending login (the state, the nonce, the PKCE verifier and where to go
afterwards) lives in a signed cookie that lasts `OIDC_REQUEST_TTL`
seconds, scoped to the provider's ``/sso/oidc/<name>/`` path, so any worker
process can finish a login another one started and no other browser can.
The provider redirects back with a top-level GET, so the cookie is
``SameSite=Lax``. The cookie is cleared by the callback whatever its
outcome: a state is used once. Every call to the provider (discovery, the
JWK set, the token endpoint) runs in a worker thread. The module needs no
``oidc`` extra: only the providers given to it do.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import InvalidConfigError, OIDCError
from zerfoo_cloud.http.admin._inputs import query_fields
from zerfoo_cloud.http.admin._login_success import (
    audit_login,
    login_refused,
    set_cookie,
    start_console_session,
)
from zerfoo_cloud.http.admin._responses import HTTPProblem, empty_response
from zerfoo_cloud.http.admin._sessions import SessionSigner, state_codec
from zerfoo_cloud.http.admin._sso import (
    find_provider,
    next_target,
    no_role,
    read_pending,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.audit import AuditEntry
    from zerfoo_cloud.sso.oidc.provider import OIDCProvider

__all__ = [
    "OIDC_ENDPOINTS",
    "OIDC_REQUEST_COOKIE",
    "OIDC_REQUEST_TTL",
    "OIDCLogin",
    "check_oidc_providers",
]

#: The cookie holding a pending OpenID Connect login.
OIDC_REQUEST_COOKIE = "zc_oidc_request"
#: Seconds a user has to sign in at the provider.
OIDC_REQUEST_TTL = 600
#: Each OpenID Connect endpoint and the one method it answers.
OIDC_ENDPOINTS = {"login": "GET", "callback": "GET"}
#: The query parameters a callback may carry (providers add some of their own).
_CALLBACK_FIELDS = (
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
    "scope",
    "authuser",
    "hd",
    "prompt",
)
#: Errors of the provider's own calls, answered 502: not the user's fault.
_UPSTREAM_CODES = frozenset(
    {
        "oidc_discovery",
        "oidc_network",
        "oidc_timeout",
        "oidc_too_large",
    }
)
_MAX_SHOWN_ERROR = 64


def check_oidc_providers(
    providers: Iterable[OIDCProvider], sessions: SessionSigner | None
) -> dict[str, OIDCProvider]:
    """
    The providers by name, checked when the app is made.

    Raises:
        InvalidConfigError: providers without *sessions*, or two of one name.
    """
    checked: dict[str, OIDCProvider] = {}
    for provider in providers:
        if sessions is None:
            msg = "SSO login issues sessions: pass sessions=SessionSigner(secret)"
            raise InvalidConfigError(msg, field="sessions")
        if provider.name in checked:
            msg = f"more than one OpenID provider for {provider.name!r}"
            raise InvalidConfigError(msg, field="oidc")
        checked[provider.name] = provider
    return checked


def _problem(exc: OIDCError) -> HTTPProblem:
    status = 502 if exc.code in _UPSTREAM_CODES else 401
    return HTTPProblem(status, exc.code, f"sign-in failed: {exc}")


class OIDCLogin:
    """
    The ``/sso/oidc/<name>/{login,callback}`` endpoints.
    """

    def __init__(
        self,
        providers: dict[str, OIDCProvider],
        sessions: SessionSigner,
        *,
        audit: Callable[[AuditEntry], None],
    ) -> None:
        self.providers = providers
        self._audit = audit
        self._state = state_codec(sessions, "oidc-request")

    async def answer(self, request: Request, name: str, endpoint: str) -> Response:
        """
        Answer a request to *endpoint* of the provider called *name*: 404
        for a name without one, 405 for a wrong method.
        """
        try:
            provider = find_provider(
                self.providers, name, OIDC_ENDPOINTS, endpoint, request.method.upper()
            )
        except HTTPProblem as problem:
            return problem.response()
        if endpoint == "login":
            return await self.login(request, provider)
        return await self.callback(request, provider)

    async def login(self, request: Request, provider: OIDCProvider) -> Response:
        """
        Redirect to the provider's authorization endpoint; remember the
        state, nonce and PKCE verifier in a cookie.
        """
        return await asyncio.to_thread(self._login, request, provider)

    async def callback(self, request: Request, provider: OIDCProvider) -> Response:
        """
        Finish the login: check the state, trade the code, check the ID
        token, map the user's groups to a role and start the session;
        audit the outcome.
        """
        return await asyncio.to_thread(self._answer, request, provider)

    def _audited(
        self,
        request: Request,
        provider: OIDCProvider,
        response: Response,
        *,
        endpoint: str,
        **who: str,
    ) -> Response:
        tenant_id = provider.config.tenant_id or ""
        path = f"/sso/oidc/{provider.name}/{endpoint}"
        return audit_login(
            self._audit, request, response, tenant_id=tenant_id, path=path, **who
        )

    def _login(self, request: Request, provider: OIDCProvider) -> Response:
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        # A PKCE verifier of 43 URL-safe characters (RFC 7636, 4.1).
        verifier = secrets.token_urlsafe(32)
        try:
            target = next_target(request)
            url = provider.authorization_url(
                state=state, nonce=nonce, code_verifier=verifier
            )
        except HTTPProblem as problem:
            return problem.response()
        except OIDCError as exc:
            response = login_refused(request, _problem(exc))
            return self._audited(
                request, provider, response, endpoint="login", reason=exc.code
            )
        pending = self._state.dumps(
            {
                "t": provider.name,
                "s": state,
                "o": nonce,
                "v": verifier,
                "n": target,
                "e": self._state.clock() + OIDC_REQUEST_TTL,
            }
        )
        response = empty_response(302, headers=[("location", url)])
        set_cookie(
            response,
            OIDC_REQUEST_COOKIE,
            pending,
            max_age=OIDC_REQUEST_TTL,
            path=_cookie_path(provider.name),
            same_site="lax",
        )
        return response

    def _answer(self, request: Request, provider: OIDCProvider) -> Response:
        seen: list[str] = []
        reason = ""
        try:
            response = self._accept(request, provider, seen)
        except HTTPProblem as problem:
            response = login_refused(request, problem)
            reason = problem.code
        set_cookie(
            response,
            OIDC_REQUEST_COOKIE,
            "",
            max_age=0,
            path=_cookie_path(provider.name),
            same_site="lax",
        )
        return self._audited(
            request,
            provider,
            response,
            endpoint="callback",
            subject=seen[0] if seen else "",
            reason=reason,
        )

    def _accept(
        self, request: Request, provider: OIDCProvider, seen: list[str]
    ) -> Response:
        name = provider.name
        params = query_fields(request, _CALLBACK_FIELDS)
        error = params.get("error")
        if error is not None:
            shown = error[:_MAX_SHOWN_ERROR] if error.isascii() else "error"
            msg = f"the identity provider refused the sign-in ({shown!r})"
            raise HTTPProblem(401, "oidc_provider_error", msg)
        pending = read_pending(
            request, self._state, OIDC_REQUEST_COOKIE, name, f"/sso/oidc/{name}/login"
        )
        expected = str(pending.get("s", ""))
        if not hmac.compare_digest(params.get("state", "").encode(), expected.encode()):
            msg = "the state does not belong to the sign-in pending in this browser"
            raise HTTPProblem(403, "state_mismatch", msg, param="state")
        issuer = params.get("iss")
        if issuer is not None and issuer != provider.config.issuer:
            msg = "the answer names another issuer than this tenant's provider"
            raise HTTPProblem(401, "oidc_issuer", msg, param="iss")
        code = params.get("code", "")
        if not code:
            msg = "the provider's answer has no code"
            raise HTTPProblem(400, "invalid_request", msg, param="code")
        try:
            identity = provider.login(
                code,
                code_verifier=str(pending.get("v", "")),
                nonce=str(pending.get("o", "")),
            )
        except OIDCError as exc:
            raise _problem(exc) from exc
        seen.append(identity.subject)
        role = provider.role_for(identity)
        if role is None:
            raise no_role()
        return start_console_session(
            request, identity, role, "oidc", next_path=str(pending.get("n", ""))
        )


def _cookie_path(name: str) -> str:
    return f"/sso/oidc/{name}/"

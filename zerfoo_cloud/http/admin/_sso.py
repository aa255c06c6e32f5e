"""
SAML login for tenant admins: the login redirect, the ACS and SP metadata.

The pending login (the AuthnRequest id, a RelayState nonce and where to go
afterwards) lives in a signed cookie that lasts `SSO_REQUEST_TTL` seconds,
so any worker process can finish a login another one started. The IdP posts
its answer cross-site, so that cookie is ``SameSite=None`` and scoped to the
tenant's ``/sso/saml/<tenant>/`` path; the session cookie it leads to is
``SameSite=Lax``.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from zerfoo_cloud.audit import AuditEntry
from zerfoo_cloud.errors import InvalidConfigError, SAMLError, SessionError
from zerfoo_cloud.http.admin._inputs import (
    cookie,
    form_fields,
    query_fields,
    read_body,
)
from zerfoo_cloud.http.admin._login_success import (
    SESSION_COOKIE,
    audit_login,
    login_refused,
    set_cookie,
    start_console_session,
)
from zerfoo_cloud.http.admin._responses import (
    HTTPProblem,
    bytes_response,
    empty_response,
)
from zerfoo_cloud.http.admin._sessions import SessionSigner, TokenCodec, state_codec
from zerfoo_cloud.sso import SAMLInResponseToError, SAMLReplayError
from zerfoo_cloud.sso.roles import Role

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from zerfoo_cloud.sso import SAMLProvider

__all__ = [
    "ENDPOINTS",
    "REQUEST_COOKIE",
    "SESSION_COOKIE",
    "SSO_REQUEST_TTL",
    "SAMLLogin",
    "check_providers",
    "find_provider",
    "next_target",
    "no_role",
    "read_pending",
    "set_cookie",
]

#: The cookie holding a pending SAML login.
REQUEST_COOKIE = "zc_saml_request"
#: Seconds a user has to sign in at the IdP.
SSO_REQUEST_TTL = 600
#: The longest ``next`` target kept for after the login.
MAX_NEXT_LENGTH = 512

#: Each SSO endpoint and the one method it answers.
ENDPOINTS = {"login": "GET", "acs": "POST", "metadata": "GET"}
_REFUSED = (SAMLReplayError, SAMLInResponseToError)
_NEXT = re.compile(r"/(?:[\x21-\x2e\x30-\x5b\x5d-\x7e][\x21-\x7e]*)?")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def check_providers(
    providers: Mapping[str, SAMLProvider], sessions: SessionSigner | None
) -> dict[str, SAMLProvider]:
    """
    Check the SSO settings when the app is made, not on the first login.

    Raises:
        InvalidConfigError: no *sessions*, a provider filed under another
            tenant than its own, or one that cannot build AuthnRequests.
    """
    if providers and sessions is None:
        msg = "SSO login issues sessions: pass sessions=SessionSigner(secret)"
        raise InvalidConfigError(msg, field="sessions")
    checked: dict[str, SAMLProvider] = {}
    for tenant_id, provider in providers.items():
        if provider.tenant_id != tenant_id:
            msg = (
                f"the SSO provider under {tenant_id!r} is for tenant "
                f"{provider.tenant_id!r}"
            )
            raise InvalidConfigError(msg, field="sso")
        if provider.role_map is not None and Role.OPERATOR in set(
            provider.role_map.roles.values()
        ):
            msg = (
                f"the SSO provider of tenant {tenant_id!r} may not give the "
                "operator role; operators sign in through their own provider"
            )
            raise InvalidConfigError(msg, field="sso")
        # Raises InvalidConfigError for a missing SP entity id or ACS URL,
        # or for an IdP that wants signed requests without an SP key.
        provider.authn_request()
        checked[tenant_id] = provider
    return checked


def _error_code(exc: SAMLError) -> str:
    name = type(exc).__name__.removeprefix("SAML").removesuffix("Error")
    return "saml_" + _CAMEL.sub("_", name).lower() if name else "saml"


class SAMLLogin:
    """
    The ``/sso/saml/<tenant>/{login,acs,metadata}`` endpoints.
    """

    def __init__(
        self,
        providers: Mapping[str, SAMLProvider],
        sessions: SessionSigner,
        *,
        audit: Callable[[AuditEntry], None],
        max_body: int,
    ) -> None:
        self.providers = providers
        self.sessions = sessions
        self.max_body = max_body
        self._audit = audit
        self._state = state_codec(sessions, "saml-request")

    async def answer(self, request: Request, tenant_id: str, endpoint: str) -> Response:
        """
        Answer a request to *endpoint* of *tenant_id*'s provider: 404 for a
        tenant without SSO, 405 for a wrong method.
        """
        try:
            provider = find_provider(
                self.providers,
                tenant_id,
                ENDPOINTS,
                endpoint,
                request.method.upper(),
            )
            if endpoint == "metadata":
                return self.metadata(provider)
            if endpoint == "login":
                return self.login(request, provider)
        except HTTPProblem as problem:
            return problem.response()
        return await self.acs(request, provider, self.max_body)

    def metadata(self, provider: SAMLProvider) -> Response:
        """
        The SP metadata XML to give to the IdP.
        """
        return bytes_response(
            200, provider.sp_metadata(), "application/samlmetadata+xml"
        )

    def login(self, request: Request, provider: SAMLProvider) -> Response:
        """
        Redirect to the IdP with an AuthnRequest; remember it in a cookie.

        Raises:
            HTTPProblem: 400 for a bad ``next``.
        """
        target = next_target(request)
        nonce = secrets.token_urlsafe(16)
        redirect = provider.authn_request(relay_state=nonce)
        state = self._state.dumps(
            {
                "t": provider.tenant_id,
                "r": redirect.id,
                "s": nonce,
                "n": target,
                "e": self._state.clock() + SSO_REQUEST_TTL,
            }
        )
        response = empty_response(302, headers=[("location", redirect.url)])
        set_cookie(
            response,
            REQUEST_COOKIE,
            state,
            max_age=SSO_REQUEST_TTL,
            path=_cookie_path(provider.tenant_id),
            same_site="none",
        )
        return response

    async def acs(
        self, request: Request, provider: SAMLProvider, max_body: int
    ) -> Response:
        """
        Read the IdP's answer (at most *max_body* bytes), check it and issue
        a session; audit the outcome. The checks run in a worker thread.
        """
        try:
            form = await form_fields(request, await read_body(request, max_body))
        except HTTPProblem as problem:
            return await asyncio.to_thread(
                self.audited, request, provider, problem.response()
            )
        return await asyncio.to_thread(self._answer, request, provider, form)

    def _answer(
        self, request: Request, provider: SAMLProvider, form: Mapping[str, str]
    ) -> Response:
        seen: list[str] = []
        reason = ""
        try:
            response = self._accept(request, provider, form, seen)
        except HTTPProblem as problem:
            response = login_refused(request, problem)
            reason = problem.code
        subject = seen[0] if seen else ""
        return self.audited(request, provider, response, subject=subject, reason=reason)

    def audited(
        self, request: Request, provider: SAMLProvider, response: Response, **who: str
    ) -> Response:
        """
        Audit an ACS *response* as an ``auth`` event of the tenant (*who*:
        the ``subject`` and the ``reason`` of a refusal); return it.
        """
        path = f"/sso/saml/{provider.tenant_id}/acs"
        return audit_login(
            self._audit,
            request,
            response,
            tenant_id=provider.tenant_id,
            path=path,
            **who,
        )

    def _pending(self, request: Request, tenant_id: str) -> dict[str, object]:
        return read_pending(
            request,
            self._state,
            REQUEST_COOKIE,
            tenant_id,
            f"/sso/saml/{tenant_id}/login",
        )

    def _accept(
        self,
        request: Request,
        provider: SAMLProvider,
        form: Mapping[str, str],
        seen: list[str],
    ) -> Response:
        tenant_id = provider.tenant_id
        saml_response = form.get("SAMLResponse", "")
        if not saml_response:
            msg = "the form has no SAMLResponse"
            raise HTTPProblem(400, "invalid_request", msg, param="SAMLResponse")
        state = self._pending(request, tenant_id)
        nonce = str(state.get("s", ""))
        if not hmac.compare_digest(form.get("RelayState", "").encode(), nonce.encode()):
            msg = (
                "the RelayState does not belong to the sign-in pending in this browser"
            )
            raise HTTPProblem(403, "relay_state_mismatch", msg, param="RelayState")
        try:
            identity = provider.validate_assertion(
                saml_response, request_id=str(state.get("r", ""))
            )
        except SAMLError as exc:
            status = 403 if isinstance(exc, _REFUSED) else 401
            raise HTTPProblem(status, _error_code(exc), str(exc)) from exc
        seen.append(identity.subject)
        role = Role.ADMIN
        if provider.role_map is not None:
            found = provider.role_map.role_for(identity.groups)
            if found is None:
                raise no_role()
            role = found
        response = start_console_session(
            request, identity, role, "saml", next_path=str(state.get("n", ""))
        )
        set_cookie(
            response,
            REQUEST_COOKIE,
            "",
            max_age=0,
            path=_cookie_path(tenant_id),
            same_site="none",
        )
        return response


_Provider = TypeVar("_Provider")


def find_provider(
    providers: Mapping[str, _Provider],
    name: str,
    endpoints: Mapping[str, str],
    endpoint: str,
    method: str,
) -> _Provider:
    """
    The provider called *name* (a tenant id), for a *method* request to
    *endpoint* (one of *endpoints*, each with the one method it answers).

    Raises:
        HTTPProblem: 404 for a name without a provider, 405 for a wrong
            method.
    """
    provider = providers.get(name)
    if provider is None:
        msg = "single sign-on is not set up for this tenant"
        raise HTTPProblem(404, "sso_not_configured", msg)
    allowed = endpoints[endpoint]
    if method != allowed:
        msg = f"use {allowed} for this endpoint"
        raise HTTPProblem(405, "method_not_allowed", msg, headers=[("allow", allowed)])
    return provider


def next_target(request: Request) -> str:
    """
    The ``next`` query parameter of a login (where to go once signed in),
    or ``""``; the only parameter a login takes.

    Raises:
        HTTPProblem: 400 for another parameter, or a ``next`` that is not a
            path on this server of at most `MAX_NEXT_LENGTH` characters.
    """
    target = query_fields(request, ("next",)).get("next", "")
    if target and (len(target) > MAX_NEXT_LENGTH or not _NEXT.fullmatch(target)):
        msg = (
            f"next must be a path on this server (starting with one '/', "
            f"at most {MAX_NEXT_LENGTH} characters)"
        )
        raise HTTPProblem(400, "invalid_parameter", msg, param="next")
    return target


def read_pending(
    request: Request, codec: TokenCodec, name: str, tenant_id: str, start_path: str
) -> dict[str, object]:
    """
    The pending login held in cookie *name*, signed by *codec*, for
    *tenant_id* (the provider's name).

    Raises:
        HTTPProblem: 401 when there is none, it is not valid or it expired;
            403 when it is another tenant's. Each message says to start
            again at *start_path*.
    """
    start = f"start again at {start_path}"
    pending = cookie(request, name)
    if not pending:
        msg = f"no sign-in is pending in this browser; {start}"
        raise HTTPProblem(401, "no_pending_login", msg)
    try:
        state = codec.loads(pending)
    except SessionError as exc:
        if exc.reason == "expired":
            msg = f"the sign-in took too long; {start}"
        else:
            msg = f"the pending sign-in is not valid; {start}"
        raise HTTPProblem(401, "no_pending_login", msg) from exc
    if state.get("t") != tenant_id:
        msg = f"the pending sign-in is for another tenant; {start}"
        raise HTTPProblem(403, "wrong_tenant", msg)
    return state


def no_role() -> HTTPProblem:
    """
    The 403 of a user whose groups give no console role.
    """
    msg = (
        "you signed in, but none of your groups gives access to this console; "
        "ask your administrator to add you to one"
    )
    return HTTPProblem(403, "no_role", msg)


def _cookie_path(tenant_id: str) -> str:
    return f"/sso/saml/{tenant_id}/"

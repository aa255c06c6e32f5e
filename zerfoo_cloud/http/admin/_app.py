"""
The admin API and SAML login as one ASGI app, routed by Starlette.

Each admin call is authenticated, authorized, read (bounded by
``max_body``), run in a worker thread (store calls and SAML checks never
block the event loop) and audited once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute, Route, Router

from zerfoo_cloud._asgi import acknowledge_lifespan
from zerfoo_cloud._openai_error import SERVER_ERROR_MESSAGE
from zerfoo_cloud.errors import (
    CloudError,
    InvalidConfigError,
    KeyNotFoundError,
    PricesReadOnlyError,
    PriceTableChangedError,
    StoreError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.http.admin._access import (
    ROUTES,
    SERVICE_ROUTES,
    Access,
    Op,
    op_for,
)
from zerfoo_cloud.http.admin._audit_trail import AuditTrail, CallRecord
from zerfoo_cloud.http.admin._budget_routes import BudgetOperations
from zerfoo_cloud.http.admin._endpoint import Endpoint
from zerfoo_cloud.http.admin._inputs import (
    read_body,
    repeated_credential,
    routing_scope,
    segments_of,
)
from zerfoo_cloud.http.admin._key_routes import KeyOperations
from zerfoo_cloud.http.admin._oidc import (
    OIDC_ENDPOINTS,
    OIDC_REQUEST_COOKIE,
    OIDCLogin,
    check_oidc_providers,
)
from zerfoo_cloud.http.admin._params import clip
from zerfoo_cloud.http.admin._price_routes import PriceOperations
from zerfoo_cloud.http.admin._report_routes import ReportOperations, UsageMeter
from zerfoo_cloud.http.admin._responses import HTTPProblem, error_response
from zerfoo_cloud.http.admin._sso import (
    ENDPOINTS,
    REQUEST_COOKIE,
    SESSION_COOKIE,
    SAMLLogin,
    check_providers,
)
from zerfoo_cloud.http.admin._tenant_routes import TenantOperations
from zerfoo_cloud.tenants import hash_api_key

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditEntry, AuditLogger
    from zerfoo_cloud.http.admin._sessions import SessionSigner
    from zerfoo_cloud.price_book import PriceBook
    from zerfoo_cloud.sso import SAMLProvider
    from zerfoo_cloud.sso.oidc import OIDCProvider
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["DEFAULT_MAX_BODY", "MAX_MAX_BODY", "AdminAPI"]

_log = logging.getLogger("zerfoo_cloud.http.admin")

#: Request bodies larger than this (1 MiB) are refused with 413 by default.
DEFAULT_MAX_BODY = 1 << 20
#: The largest ``max_body`` accepted (64 MiB).
MAX_MAX_BODY = 64 << 20

_HEX64 = re.compile(r"[0-9a-f]{64}")
_Operation = Callable[[Op, Request, bytes, CallRecord], "Response"]

#: Status and error code of each library error an operation may raise,
#: looked up along the exception's MRO.
_ERROR_STATUS: dict[type[CloudError], tuple[int, str]] = {
    InvalidConfigError: (400, "invalid_field"),
    TenantNotFoundError: (404, "tenant_not_found"),
    KeyNotFoundError: (404, "key_not_found"),
    TenantExistsError: (409, "tenant_exists"),
    PriceTableChangedError: (412, "price_table_changed"),
    PricesReadOnlyError: (409, "prices_read_only"),
    StoreError: (503, "store_unavailable"),
}


def _problem_for(exc: CloudError) -> HTTPProblem:
    for cls in type(exc).__mro__:
        found = _ERROR_STATUS.get(cls)
        if found is not None:
            param = getattr(exc, "field", None)
            return HTTPProblem(*found, clip(str(exc)), param=param)
    raise exc


def _route_label(segments: tuple[str, ...]) -> str:
    """
    The route of a request with its tenant segment left out (for logs).
    """
    shown = list(segments)
    if len(shown) > 2:  # noqa: PLR2004 - /admin/tenants/{id}, /sso/saml/{id}
        shown[2] = "{tenant}"
    return "/" + "/".join(shown[:4])


def _admin_hashes(admin_key_hashes: Iterable[str]) -> tuple[bytes, ...]:
    if isinstance(admin_key_hashes, str):
        admin_key_hashes = (admin_key_hashes,)
    hashes: list[bytes] = []
    for digest in admin_key_hashes:
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
            # The value is left out of the message: it may be a raw key.
            msg = (
                "admin_key_hashes holds SHA-256 hex digests of the admin "
                "keys (zerfoo_cloud.hash_api_key(key)), not the keys"
            )
            raise InvalidConfigError(msg, field="admin_key_hashes")
        hashes.append(bytes.fromhex(digest))
    return tuple(hashes)


class AdminAPI:
    """
    The admin API and SAML login, as an ASGI app routed by Starlette.

    Routes (JSON in and out; errors as ``{"error": {"message", "type",
    "param", "code"}}``):

    - ``GET /admin/tenants`` and ``POST /admin/tenants`` (201, with the new
      ``api_key``, shown only this once);
    - ``GET|PATCH|DELETE /admin/tenants/{id}``;
    - ``POST /admin/tenants/{id}/rotate-key`` (the new ``api_key``, once);
    - ``GET|POST /admin/tenants/{id}/keys``, ``PATCH|DELETE
      /admin/tenants/{id}/keys/{key_id}`` and ``POST
      /admin/tenants/{id}/keys/{key_id}/rotate``: the tenant's API keys
      (a new key shown once; `KeyOperations`);
    - ``GET /admin/tenants/{id}/usage?since=&until=&by=model,day``;
    - ``GET /admin/tenants/{id}/audit?since=&until=&limit=``;
    - ``GET /admin/tenants/{id}/invoices/{YYYY-MM}?format=json|csv``: the
      tenant's invoice for one UTC calendar month
      (`zerfoo_cloud.invoices.build_invoice`, with the meter's price table);
    - ``GET|PUT /admin/tenants/{id}/budgets`` and ``GET|PUT
      /admin/tenants/{id}/keys/{key_id}/budgets``: spend budgets
      (``{"budgets": [...]}``, amounts as decimal text), and ``GET
      /admin/tenants/{id}/spend``: each budget's current period (spent,
      held, remaining; `BudgetOperations`);
    - ``GET /admin/prices`` (the price table, its version as ``ETag``),
      ``PUT /admin/prices`` (a whole table, ``If-Match`` the version it is
      based on: 412 if it changed since, 409 if prices come from a file)
      and ``POST /admin/prices`` (one price for one model), on *prices*;
    - ``GET /sso/saml/{tenant}/login``, ``POST /sso/saml/{tenant}/acs`` and
      ``GET /sso/saml/{tenant}/metadata``;
    - ``GET /sso/oidc/{name}/login`` and ``GET /sso/oidc/{name}/callback``
      (*name*: a tenant id, or ``_operators``).

    Both SAML's ACS and OpenID Connect's callback end by mapping the
    user's groups to a role (none: 403) and redirecting to the console
    with a session cookie.

    ``Authorization: Bearer <admin key>`` may do everything. A tenant-admin
    session (the ``zc_session`` cookie, or its token as the bearer) may only
    read its own tenant, usage and audit, and rotate its own key; anything
    else is 403. Missing or wrong credentials are 401. Every ``/admin`` call
    is audited (``create``/``update``/``delete``/``list``, or ``auth`` for a
    401) with its result; keys, tokens and bodies never are. Store calls and
    SAML checks run in worker threads, so the event loop never waits on a
    disk.

    Args:
        tenants: the tenant manager the API changes.
        meter: where usage totals and invoices come from (a
            `zerfoo_cloud.TokenMeter`); without it the usage and invoice
            routes answer 404.
        audit: where calls are audited; without it nothing is audited and
            the audit route answers 404.
        admin_key_hashes: SHA-256 hex digests of the admin keys
            (`zerfoo_cloud.hash_api_key`); the keys themselves are never
            given to the API.
        sessions: signs and checks tenant-admin sessions; without it only
            admin keys are accepted. Required with *sso*.
        sso: tenant id -> that tenant's `zerfoo_cloud.SAMLProvider` (with
            ``sp_entity_id`` and ``acs_url`` set, the ACS URL ending in
            ``/sso/saml/<tenant>/acs``).
        oidc: OpenID providers (`zerfoo_cloud.sso.oidc.OIDCProvider`), at
            most one per tenant and one for the operators.
        clock: the time source, Unix seconds (default times of queries).
        max_body: the largest request body, in bytes (413 past it).
        prices: the service's price table (a `zerfoo_cloud.price_book.PriceBook`);
            without it the price routes answer 404.

    `zerfoo_cloud.http.console.mount_console` adds the web console's
    routes (``/console/...``) to this app.

    Raises:
        InvalidConfigError: an admin key hash that is not a SHA-256 hex
            digest, *max_body* out of range, *sso* without *sessions*, or a
            provider that cannot build AuthnRequests or is filed under
            another tenant.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        tenants: TenantManager,
        *,
        meter: UsageMeter | None = None,
        audit: AuditLogger | None = None,
        admin_key_hashes: Iterable[str] = (),
        sessions: SessionSigner | None = None,
        sso: Mapping[str, SAMLProvider] | None = None,
        oidc: Iterable[OIDCProvider] | None = None,
        clock: Clock = time.time,
        max_body: int = DEFAULT_MAX_BODY,
        prices: PriceBook | None = None,
    ) -> None:
        hashes = _admin_hashes(admin_key_hashes)
        if (
            isinstance(max_body, bool)
            or not isinstance(max_body, int)
            or not 1 <= max_body <= MAX_MAX_BODY
        ):
            msg = f"max_body must be from 1 to {MAX_MAX_BODY} bytes, not {max_body!r}"
            raise InvalidConfigError(msg, field="max_body")
        self.tenants = tenants
        self.meter = meter
        self.audit = audit
        self.sessions = sessions
        self.clock = clock
        self.max_body = max_body
        self._access = Access(hashes, sessions, tenants.store)
        self._trail = AuditTrail(audit, self._access, tenants.store)
        providers = check_providers(sso or {}, sessions)
        self._sso = (
            SAMLLogin(
                providers,
                sessions,
                audit=self._trail.log,
                max_body=max_body,
            )
            if providers and sessions is not None
            else None
        )
        openid = check_oidc_providers(oidc or (), sessions)
        self._oidc = (
            OIDCLogin(openid, sessions, audit=self._trail.log)
            if openid and sessions is not None
            else None
        )
        crud = TenantOperations(tenants)
        keys = KeyOperations(tenants)
        reports = ReportOperations(tenants, meter, audit, clock)
        self.prices = prices
        price_ops = PriceOperations(prices)
        budgets = BudgetOperations(tenants)
        self._ops: dict[str, _Operation] = {
            "list": crud.list,
            "create": crud.create,
            "get": crud.get,
            "update": crud.update,
            "delete": crud.delete,
            "rotate": crud.rotate,
            "sign_out": crud.sign_out,
            "keys": keys.list,
            "create_key": keys.create,
            "update_key": keys.update,
            "revoke_key": keys.revoke,
            "rotate_key": keys.rotate,
            "usage": reports.usage,
            "audit": reports.audit_log,
            "invoice": reports.invoice,
            "budgets": budgets.show,
            "set_budgets": budgets.replace,
            "key_budgets": budgets.show,
            "set_key_budgets": budgets.replace,
            "spend": budgets.spend,
            "prices": price_ops.show,
            "set_prices": price_ops.replace,
            "add_price": price_ops.add,
        }
        self._router = Router(
            [*self._admin_routes(), *self._sso_routes()],
            redirect_slashes=False,
            default=Endpoint(self._unrouted),
        )

    def __repr__(self) -> str:
        return (
            f"<AdminAPI admin_keys={len(self._access.admin_hashes)} "
            f"sessions={self.sessions is not None} "
            f"sso={sorted(self._sso.providers) if self._sso else []} "
            f"oidc={sorted(self._oidc.providers) if self._oidc else []}>"
        )

    @staticmethod
    def handles(path: str) -> bool:
        """
        Whether *path* belongs to this app (``/admin/...``, ``/sso/...`` or
        ``/console/...``).
        """
        return path.startswith(("/admin/", "/sso/", "/console/")) or path in {
            "/admin",
            "/console",
        }

    @property
    def saml_tenants(self) -> frozenset[str]:
        """
        The tenants whose people sign in through SAML here.
        """
        return frozenset(self._sso.providers) if self._sso is not None else frozenset()

    @property
    def oidc_names(self) -> frozenset[str]:
        """
        The names (tenant ids, and ``_operators``) of the OpenID providers
        people sign in through here.
        """
        return (
            frozenset(self._oidc.providers) if self._oidc is not None else frozenset()
        )

    def is_admin_key(self, key: str) -> bool:
        """
        Whether *key* is one of the admin keys (its SHA-256 compared with
        every configured hash in constant time).
        """
        return self._access.is_admin_hash(bytes.fromhex(hash_api_key(key)))

    def log_audit(self, entry: AuditEntry) -> None:
        """
        Write *entry* to the audit log, if there is one; a failure is
        logged, never raised (call it from a worker thread).
        """
        self._trail.log(entry)

    def mount(self, routes: Iterable[BaseRoute]) -> None:
        """
        Serve *routes* too, after the admin and SSO routes (the web
        console's: `zerfoo_cloud.http.console.mount_console`).
        """
        self._router.routes.extend(routes)

    # -- ASGI -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI connection (``http``; ``lifespan`` is acknowledged,
        ``websocket`` refused).
        """
        kind = scope["type"]
        if kind == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        routed = routing_scope(scope)
        # start_console_session finds the sessions and tenants through it.
        routed["app"] = self
        try:
            await self._router(routed, receive, send)
        except ClientDisconnect:
            return
        except Exception:
            _log.exception(
                "admin API failed on %s %s",
                str(scope.get("method", "GET")).upper(),
                _route_label(segments_of(Request(routed))),
            )
            response = error_response(500, "internal_error", SERVER_ERROR_MESSAGE)
            await response(routed, receive, send)
            # Re-raised so the server logs it too; the client has its answer.
            raise

    def _admin_routes(self) -> list[Route]:
        def serve(suffix: str) -> Callable[[Request], Awaitable[Response]]:
            async def respond(request: Request) -> Response:
                # The tenant as decoded, not as Starlette's routing path has it.
                tenant = segments_of(request)[2] if suffix else None
                return await self._admin(request, suffix, tenant)

            return respond

        def serve_service(path: str) -> Callable[[Request], Awaitable[Response]]:
            async def respond(request: Request) -> Response:
                return await self._admin(request, path, None)

            return respond

        paths = {
            "": ["/admin/tenants"],
            # /admin/tenants/{tenant}/ is the tenant too.
            "/": ["/admin/tenants/{tenant}", "/admin/tenants/{tenant}/"],
        }
        return [
            *(
                Route(path, Endpoint(serve(suffix)))
                for suffix in ROUTES
                for path in paths.get(suffix, ["/admin/tenants/{tenant}" + suffix])
            ),
            *(Route(path, Endpoint(serve_service(path))) for path in SERVICE_ROUTES),
        ]

    def _sso_routes(self) -> list[Route]:
        routes: list[Route] = []
        logins: tuple[tuple[str, SAMLLogin | OIDCLogin | None, Iterable[str]], ...] = (
            ("saml", self._sso, ENDPOINTS),
            ("oidc", self._oidc, OIDC_ENDPOINTS),
        )
        for protocol, login, endpoints in logins:
            if login is None:
                continue
            routes += [
                Route(
                    f"/sso/{protocol}/{{tenant}}/{endpoint}",
                    Endpoint(self._login_endpoint(login, endpoint)),
                )
                for endpoint in endpoints
            ]
        return routes

    def _login_endpoint(
        self, login: SAMLLogin | OIDCLogin, endpoint: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def respond(request: Request) -> Response:
            refused = await self._refuse_repeated(request)
            if refused is not None:
                return refused
            return await login.answer(request, segments_of(request)[2], endpoint)

        return respond

    async def _refuse_repeated(self, request: Request) -> Response | None:
        """
        The 400 answer (audited) to a request that sends a credential more
        than once, if it does.
        """
        what = repeated_credential(
            request, (SESSION_COOKIE, REQUEST_COOKIE, OIDC_REQUEST_COOKIE)
        )
        if what is None:
            return None
        return await asyncio.to_thread(self._trail.refuse_repeated, request, what)

    async def _unrouted(self, request: Request) -> Response:
        """
        A path no route matched: an admin call without an operation (404
        once authenticated), an unknown SSO endpoint, or no route at all.
        """
        segments = segments_of(request)
        if segments[:1] == ("admin",):
            return await self._admin(request, None, None)
        if segments[:1] == ("sso",):
            refused = await self._refuse_repeated(request)
            if refused is not None:
                return refused
            return self._unrouted_sso(segments)
        return error_response(404, "not_found", "no such route")

    def _unrouted_sso(self, segments: tuple[str, ...]) -> Response:
        """
        The 404 of an SSO path no route matched.
        """
        endpoints = {
            "saml": ENDPOINTS if self._sso is not None else None,
            "oidc": OIDC_ENDPOINTS if self._oidc is not None else None,
        }.get(segments[1] if len(segments) > 1 else "")
        if endpoints is not None and len(segments) == 4 and segments[3] in endpoints:  # noqa: PLR2004
            # /sso/saml//login: an empty tenant has no SSO.
            msg = "single sign-on is not set up for this tenant"
            return error_response(404, "sso_not_configured", msg)
        if endpoints is not None:
            return error_response(404, "not_found", "no such SSO endpoint")
        return error_response(404, "not_found", "no such route")

    async def _admin(
        self, request: Request, suffix: str | None, tenant: str | None
    ) -> Response:
        refused = await self._refuse_repeated(request)
        if refused is not None:
            return refused
        op = op_for(suffix, request.method.upper(), tenant)
        record = CallRecord(op)
        try:
            record.principal = self._access.authenticate(request)
            self._access.authorize(record.principal, op)
            body = await read_body(request, self.max_body) if op.body else b""
        except HTTPProblem as problem:
            response = problem.response()
            await asyncio.to_thread(self._trail.record, request, record, response)
            return response
        return await asyncio.to_thread(self._execute, request, op, body, record)

    # -- in a worker thread -------------------------------------------------

    def _execute(
        self, request: Request, op: Op, body: bytes, record: CallRecord
    ) -> Response:
        assert op.name is not None
        try:
            self._access.check_incarnation(record.principal)
            response = self._ops[op.name](op, request, body, record)
        except HTTPProblem as problem:
            response = problem.response()
        except CloudError as exc:
            if isinstance(exc, StoreError):
                _log.error("admin API store failure: %s", exc)
            response = _problem_for(exc).response()
        self._trail.record(request, record, response)
        return response

    def incarnation_of(self, tenant_id: str) -> str | None:
        """
        The current incarnation of *tenant_id*, ``None`` if there is no such
        tenant.
        """
        try:
            record = self.tenants.store.get(tenant_id)
        except StoreError as exc:
            _log.error("admin API store failure: %s", exc)
            raise _problem_for(exc) from exc
        return None if record is None else record.incarnation

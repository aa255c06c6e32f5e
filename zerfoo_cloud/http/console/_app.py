"""
The console's routes on the admin API's Starlette router, and the checks
every page passes before its handler runs: a live session, its tenant (a
tenant's people see only their tenant; operators see every one), its role
(viewers never POST; only operators see operator pages), the CSRF token
of every POST, and a tenant that still exists as it was at sign-in.
Refusals are audited. Every response carries the console's security
headers (`secure`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import mimetypes
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.errors import (
    CloudError,
    InvalidConfigError,
    KeyNotFoundError,
    SessionError,
    StoreError,
    TenantNotFoundError,
)
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http.admin._endpoint import Endpoint
from zerfoo_cloud.http.admin._inputs import (
    client_of,
    cookie,
    form_fields,
    read_body,
    repeated_credential,
    segments_of,
)
from zerfoo_cloud.http.admin._responses import HTTPProblem
from zerfoo_cloud.http.admin._sso import SESSION_COOKIE
from zerfoo_cloud.http.console._cookies import clear_session, set_session
from zerfoo_cloud.http.console._login import Login
from zerfoo_cloud.http.console._pages import (
    AREAS,
    NavLink,
    Page,
    PageProblem,
    PageRequest,
)
from zerfoo_cloud.http.console._registry import PAGES
from zerfoo_cloud.http.console._security_headers import STATIC_CACHE, secure
from zerfoo_cloud.http.console._templates import Templates
from zerfoo_cloud.sso.roles import Role

if TYPE_CHECKING:
    from zerfoo_cloud.http.admin._sessions import Session
    from zerfoo_cloud.http.console._services import ConsoleServices

__all__ = ["STATIC_DIR", "Console"]

_log = logging.getLogger("zerfoo_cloud.http.console")

#: The console's CSS and JavaScript.
STATIC_DIR = Path(__file__).resolve().parent / "static"

_STATUS_OF: dict[type[CloudError], int] = {
    InvalidConfigError: 400,
    TenantNotFoundError: 404,
    KeyNotFoundError: 404,
    StoreError: 503,
}
_TITLES = {
    400: "Bad request",
    401: "Signed out",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    503: "Unavailable",
}
_ACTIONS = {"GET": AuditAction.LIST, "HEAD": AuditAction.LIST}
#: Why a session signed out by an operator (`TenantManager.sign_out`) ends.
SIGNED_OUT = "An operator signed this session out; sign in again."


def _status_of(exc: CloudError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS_OF:
            return _STATUS_OF[cls]
    raise exc


def _static_files(directory: Path) -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            files[path.name] = (path.read_bytes(), kind)
    return files


def _params(page: Page, segments: tuple[str, ...]) -> dict[str, str]:
    """
    The decoded ``{name}`` segments of *page*'s route (a ``{name}.ext``
    segment without its extension).
    """
    found: dict[str, str] = {}
    for i, part in enumerate(page.route().split("/")[1:]):
        head, brace, ext = part.partition("}")
        if head.startswith("{") and brace and i < len(segments):
            found[head[1:]] = segments[i].removesuffix(ext)
    return found


class Console:
    """
    The web console: its pages (`zerfoo_cloud.http.console._registry`),
    sign-in, sign-out and static files, as Starlette routes.
    """

    def __init__(
        self, services: ConsoleServices, pages: Sequence[Page] = PAGES
    ) -> None:
        self.services = services
        self.pages = tuple(pages)
        self.templates = Templates()
        self.login = Login(services, self.templates)
        self._static = _static_files(STATIC_DIR)

    def routes(self) -> list[Route]:
        """
        Every console route.
        """

        def page_endpoint(page: Page) -> Endpoint:
            async def respond(request: Request) -> Response:
                return await self._page(request, page)

            return Endpoint(respond)

        return [
            Route("/console", Endpoint(self._home)),
            Route("/console/", Endpoint(self._home)),
            Route("/console/login", Endpoint(self._login)),
            Route("/console/logout", Endpoint(self._logout)),
            Route("/console/static/{name}", Endpoint(self._static_file)),
            *(Route(page.route(), page_endpoint(page)) for page in self.pages),
            Route("/console/{rest:path}", Endpoint(self._no_page)),
        ]

    # -- sessions ----------------------------------------------------------

    def _session(self, request: Request) -> tuple[Session | None, bool]:
        """
        The live session of *request*, and whether a token was sent that is
        no longer (or never was) valid.
        """
        token = cookie(request, SESSION_COOKIE)
        if not token:
            return None, False
        try:
            session = self.services.sessions.verify(token)
        except SessionError:
            return None, True
        return session, False

    def _ended(self, session: Session) -> str | None:
        """
        Why *session* ended since sign-in, if it did: its tenant was deleted,
        or its people signed out (operators have no tenant); a worker thread.
        """
        if session.role == Role.OPERATOR.value:
            return None
        record = self.services.tenants.store.get(session.tenant_id)
        if record is None or not hmac.compare_digest(
            record.incarnation.encode(), session.incarnation.encode()
        ):
            return (
                "This session's tenant was deleted since you signed in; sign in again."
            )
        if session.issued_at < record.sessions_valid_from(session.subject):
            return SIGNED_OUT
        return None

    # -- answers -------------------------------------------------------------

    def _error(
        self,
        status: int,
        message: str,
        session: Session | None = None,
        nav: tuple[NavLink, ...] = (),
    ) -> Response:
        context = {
            "session": session,
            "tenant_id": None,
            "nav": nav,
            "title": _TITLES.get(status, "Error"),
            "now": self.services.clock(),
            "csrf": ""
            if session is None
            else self.services.sessions.csrf_token(session),
            "status": status,
            "message": message,
            "is_operator": session is not None and session.role == Role.OPERATOR.value,
        }
        return HTMLResponse(self.templates.render("error.html", context), status)

    def _audit_refusal(
        self,
        request: Request,
        tenant: str | None,
        status: int,
        what: str,
        session: Session | None,
    ) -> None:
        who = "" if session is None else f" by {session.actor}"
        method = request.method.upper()
        self.services.log(
            AuditEntry(
                tenant_id=tenant or "",
                action=_ACTIONS.get(method, AuditAction.UPDATE),
                result=audit_result(status),
                resource=f"console {what}{who}",
                status_code=status,
                method=method,
                path=request.url.path,
                remote_addr=client_of(request),
            )
        )

    async def _refuse(
        self,
        request: Request,
        tenant: str | None,
        status: int,
        message: str,
        session: Session | None,
    ) -> Response:
        await asyncio.to_thread(
            self._audit_refusal, request, tenant, status, message, session
        )
        return secure(self._error(status, message, session))

    # -- endpoints -----------------------------------------------------------

    async def _home(self, request: Request) -> Response:
        session, _ = self._session(request)
        if session is None:
            target = "/console/login"
        elif session.role == Role.OPERATOR.value:
            target = "/console/operator/"
        else:
            target = f"/console/t/{session.tenant_id}/"
        return secure(RedirectResponse(target, 303))

    async def _login(self, request: Request) -> Response:
        method = request.method.upper()
        if method in {"GET", "HEAD"}:
            return secure(await self.login.page(request))
        if method == "POST":
            return secure(await self.login.sign_in(request))
        return self._not_allowed("GET, POST")

    async def _logout(self, request: Request) -> Response:
        if request.method.upper() != "POST":
            return self._not_allowed("POST")
        session, _ = self._session(request)
        return secure(await self.login.sign_out(request, session))

    async def _no_page(self, request: Request) -> Response:
        return secure(self._error(404, "There is no such console page."))

    def _not_allowed(self, allow: str) -> Response:
        response = self._error(405, f"Use {allow} here.")
        response.headers["allow"] = allow
        return secure(response)

    async def _static_file(self, request: Request) -> Response:
        name = segments_of(request)[-1]
        found = self._static.get(name)
        if found is None or request.method.upper() not in {"GET", "HEAD"}:
            return secure(Response(b"no such file", 404, media_type="text/plain"))
        body, kind = found
        return secure(Response(body, 200, media_type=kind), cache=STATIC_CACHE)

    def _nav(
        self, session: Session, tenant: str | None, page: Page
    ) -> tuple[NavLink, ...]:
        links: list[NavLink] = []
        for other in self.pages:
            if not other.nav or other.get is None:
                continue
            if other.area == "operator":
                if session.role != Role.OPERATOR.value:
                    continue
                url = AREAS["operator"] + other.path
            elif tenant is None:
                continue
            else:
                quoted = urllib.parse.quote(tenant, safe="")
                url = AREAS["tenant"].format(tenant=quoted) + other.path
            links.append(NavLink(other.nav, url, other is page))
        return tuple(links)

    def _signed_out(self, method: str, stale: bool) -> Response:
        """
        The answer to a request without a live session: GETs go to the
        sign-in page, forms are refused.
        """
        if method == "GET":
            target = "/console/login?ended=1" if stale else "/console/login"
            response: Response = RedirectResponse(target, 303)
        else:
            response = self._error(401, "Sign in first.")
        if stale:
            clear_session(self.services, response)
        return secure(response)

    @staticmethod
    def _refusal(
        page: Page, session: Session, tenant: str | None, method: str
    ) -> str | None:
        """
        Why *session* may not *method* *page* of *tenant*, if it may not.
        """
        operator = session.role == Role.OPERATOR.value
        if page.area == "operator" and not operator:
            return "Only operators see this page."
        if tenant is not None and not operator and tenant != session.tenant_id:
            return "This session may only see its own tenant."
        if method == "POST" and session.role == Role.VIEWER.value:
            return "Viewers may not change anything."
        return None

    async def _page(self, request: Request, page: Page) -> Response:  # noqa: PLR0911 - one return per refusal
        method = request.method.upper()
        handler = page.get if method in {"GET", "HEAD"} else None
        if method == "POST":
            handler = page.post
        if handler is None:
            allow = ", ".join(
                m for m, h in (("GET", page.get), ("POST", page.post)) if h is not None
            )
            return self._not_allowed(allow)
        repeated = repeated_credential(request, (SESSION_COOKIE,))
        if repeated is not None:
            return secure(self._error(400, f"The request sends {repeated} twice."))
        session, stale = self._session(request)
        segments = segments_of(request)
        tenant = segments[2] if page.area == "tenant" else None
        if session is None:
            return self._signed_out(method, stale)
        refused = self._refusal(page, session, tenant, method)
        if refused is not None:
            return await self._refuse(request, session.tenant_id, 403, refused, session)
        form: dict[str, str] = {}
        if method == "POST":
            try:
                form = await form_fields(
                    request, await read_body(request, self.services.max_body)
                )
            except HTTPProblem as problem:
                return secure(self._error(problem.status, problem.message, session))
            if not self.services.sessions.check_csrf(session, form.pop("csrf", None)):
                msg = (
                    "The form was not sent by this console (its CSRF token is "
                    "missing or wrong); reload the page and try again."
                )
                return await self._refuse(request, tenant, 403, msg, session)
        nav = self._nav(session, tenant, page)
        context = PageRequest(
            request=request,
            services=self.services,
            session=session,
            page=page,
            tenant_id=tenant,
            params=_params(page, segments),
            form=form,
            now=self.services.clock(),
            csrf=self.services.sessions.csrf_token(session),
            templates=self.templates,
            nav=nav,
        )
        return await asyncio.to_thread(self._run, handler, context)

    def _run(
        self, handler: Callable[[PageRequest], Response], context: PageRequest
    ) -> Response:
        """
        Check the tenant is still the one signed in to, run *handler*, and
        renew the session's idle time (a worker thread).
        """
        session = context.session
        try:
            ended = self._ended(session)
            if ended is not None:
                if ended == SIGNED_OUT and context.request.method.upper() != "POST":
                    response: Response = RedirectResponse("/console/login?ended=1", 303)
                else:
                    response = self._error(401, ended)
                clear_session(self.services, response)
                return secure(response)
            response = handler(context)
        except PageProblem as problem:
            response = self._error(
                problem.status, problem.message, session, context.nav
            )
        except HTTPProblem as problem:
            response = self._error(
                problem.status, problem.message, session, context.nav
            )
        except CloudError as exc:
            if isinstance(exc, StoreError):
                _log.error("console store failure: %s", exc)
                message = "The store is not answering; try again shortly."
            else:
                message = str(exc)
            response = self._error(_status_of(exc), message, session, context.nav)
        set_session(
            self.services, response, self.services.sessions.refresh(session), session
        )
        return secure(response)

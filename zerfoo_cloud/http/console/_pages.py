"""
How a console page is declared (`Page`) and what its handler is given
(`PageRequest`).

A page is a path under its area (``/console/t/{tenant}`` for a tenant's
pages, ``/console/operator`` for the operators'), a title, an optional
navigation label, and a handler per method. Handlers run in a worker
thread (they may call the stores) after the console has checked the
session, the tenant, the role and, for a POST, the CSRF token; they
return a response, usually ``request.render(template, ...)``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from starlette.responses import HTMLResponse, RedirectResponse, Response

from zerfoo_cloud.audit import AuditAction, AuditEntry
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http.admin._inputs import client_of
from zerfoo_cloud.sso.roles import Role

if TYPE_CHECKING:
    from starlette.requests import Request

    from zerfoo_cloud.http.admin._sessions import Session
    from zerfoo_cloud.http.console._services import ConsoleServices
    from zerfoo_cloud.http.console._templates import Templates

__all__ = ["AREAS", "Handler", "NavLink", "Page", "PageProblem", "PageRequest"]

#: Where each area's pages live.
AREAS = {"tenant": "/console/t/{tenant}", "operator": "/console/operator"}

Handler = Callable[["PageRequest"], Response]


class PageProblem(Exception):  # noqa: N818 - a page to show, not a fault
    """
    Raised by a handler: answer with the error page, *status* and a
    *message* for people (escaped like everything else).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen
class Page:
    """
    One console page.

    Attributes:
        path: the page's path inside its area, ``"/"`` or starting with
            ``/`` (``{name}`` segments become `PageRequest.params`).
        title: the page's title.
        get: answers GET (``None``: the page has no GET).
        post: answers POST, a form; the console refuses it (403, audited)
            without the session's CSRF token or from a viewer.
        nav: the label of its link in the navigation (``""``: none).
        area: ``"tenant"`` or ``"operator"`` (operators only).
    """

    path: str
    title: str
    get: Handler | None = None
    post: Handler | None = None
    nav: str = ""
    area: str = "tenant"

    def route(self) -> str:
        """
        The Starlette route of the page.
        """
        return AREAS[self.area] + ("/" if self.path == "/" else self.path)


@attrs.frozen
class NavLink:
    """
    A link of the navigation: *label*, *url*, and whether it is the page
    shown.
    """

    label: str
    url: str
    current: bool


@attrs.define
class PageRequest:
    """
    What a handler is given: the request, who is asking, and helpers to
    answer.

    Attributes:
        request: the Starlette request (its body already read).
        services: the stores and settings.
        session: the signed-in person.
        page: the page asked for.
        tenant_id: the tenant of a tenant page (``None`` on an operator
            page).
        params: the decoded ``{name}`` segments of the path.
        form: the fields of a POST form (the CSRF token left out).
        now: the time of the request, Unix seconds.
        csrf: the session's CSRF token, for the forms a page shows.
        templates: the console's templates.
        nav: the navigation links of the page.
    """

    request: Request
    services: ConsoleServices
    session: Session
    page: Page
    tenant_id: str | None
    params: Mapping[str, str]
    form: Mapping[str, str]
    now: float
    csrf: str
    templates: Templates
    nav: tuple[NavLink, ...] = ()

    @property
    def can_change(self) -> bool:
        """
        Whether the person may change anything (not a viewer).
        """
        return self.session.role != Role.VIEWER.value

    def url(self, path: str = "/") -> str:
        """
        The URL of *path* in the tenant's area (the operators' on an
        operator page).
        """
        if self.tenant_id is None:
            base = AREAS["operator"]
        else:
            base = AREAS["tenant"].format(
                tenant=urllib.parse.quote(self.tenant_id, safe="")
            )
        return base + path

    def render(self, template: str, *, status: int = 200, **values: Any) -> Response:
        """
        The HTML page of *template*, with *values* and the layout's own
        (``session``, ``tenant_id``, ``nav``, ``csrf``, ``now``, ``title``,
        ``can_change``, ``url``).
        """
        context: dict[str, Any] = {
            "session": self.session,
            "tenant_id": self.tenant_id,
            "nav": self.nav,
            "csrf": self.csrf,
            "now": self.now,
            "title": self.page.title,
            "can_change": self.can_change,
            "url": self.url,
            "is_operator": self.session.role == Role.OPERATOR.value,
        }
        context.update(values)
        return HTMLResponse(self.templates.render(template, context), status)

    def redirect(self, path: str) -> Response:
        """
        A 303 to *path* in the page's area (after a form, so that a reload
        does not send it again).
        """
        return RedirectResponse(self.url(path), 303)

    def audit(self, action: AuditAction, status: int, resource: str) -> None:
        """
        Audit a change made through the console: *resource* (say
        ``tenant/acme/keys/k-…``) by the signed-in person, with the
        outcome of *status*.
        """
        self.services.log(
            AuditEntry(
                tenant_id=self.tenant_id or "",
                action=action,
                result=audit_result(status),
                resource=f"{resource} by {self.session.actor}",
                status_code=status,
                method=self.request.method.upper(),
                path=self.request.url.path,
                remote_addr=client_of(self.request),
            )
        )

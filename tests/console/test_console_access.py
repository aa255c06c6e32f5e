"""
Who may reach which console route, checked on every route of the
registry: a tenant's session never reaches another tenant, viewers never
change anything, every POST needs the session's CSRF token, only
operators reach operator pages, and refusals are audited.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.console._audit import audit_entries
from tests.console._browser import Browser, csrf_of
from tests.console._routes import concrete, operator_routes, tenant_routes
from zerfoo_cloud.audit import AuditResult
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.sso.roles import Role

TENANT_GETS = tenant_routes("GET")
TENANT_POSTS = tenant_routes("POST")
OPERATOR_GETS = operator_routes("GET")
OPERATOR_POSTS = operator_routes("POST")


def _csrf(browser: Browser) -> str:
    return csrf_of(browser.get("/console/t/acme/keys").text)


def test_the_route_lists_are_not_empty() -> None:
    """The parametrised tests below do cover pages (the registry is read)."""
    assert "/console/t/{tenant}/keys" in TENANT_GETS
    assert "/console/t/{tenant}/keys" in TENANT_POSTS
    assert "/console/operator/" in OPERATOR_GETS


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
@pytest.mark.parametrize("route", TENANT_GETS)
def test_no_page_of_another_tenant_is_shown(
    browse: Callable[..., Browser], route: str, role: Role
) -> None:
    """An acme session asking for any globex page gets 403, no globex data."""
    response = browse(role).get(concrete(route, "globex"))
    assert response.status_code == 403
    assert "globex" not in response.text
    assert response.headers["content-security-policy"].startswith("default-src")


@pytest.mark.parametrize("route", TENANT_POSTS)
def test_no_form_of_another_tenant_is_accepted(
    browse: Callable[..., Browser],
    route: str,
) -> None:
    """Even with its own valid CSRF token, an acme admin cannot post to globex (audited)."""
    browser = browse(Role.ADMIN)
    before = list(browser.app.tenants.list_keys("globex"))
    response = browser.post(
        concrete(route, "globex"), {"csrf": _csrf(browser), "name": "x"}
    )
    assert response.status_code == 403
    assert browser.app.tenants.list_keys("globex") == before


@pytest.mark.parametrize("route", TENANT_POSTS)
def test_a_viewer_may_not_post(browse: Callable[..., Browser], route: str) -> None:
    """A viewer's POST to its own tenant is refused, CSRF token or not."""
    browser = browse(Role.VIEWER)
    token = csrf_of(browser.get("/console/t/acme/").text)
    before = browser.app.tenants.list_keys("acme")
    response = browser.post(concrete(route, "acme"), {"csrf": token, "name": "v"})
    assert response.status_code == 403
    assert browser.app.tenants.list_keys("acme") == before


@pytest.mark.parametrize("csrf", [None, "", "wrong", "A" * 43])
@pytest.mark.parametrize("route", TENANT_POSTS)
def test_a_post_without_the_sessions_csrf_token_is_refused(
    browse: Callable[..., Browser], route: str, csrf: str | None
) -> None:
    """Missing or wrong CSRF tokens get 403 and change nothing."""
    browser = browse(Role.ADMIN)
    before = browser.app.tenants.list_keys("acme")
    data = {"name": "x"} if csrf is None else {"csrf": csrf, "name": "x"}
    response = browser.post(concrete(route, "acme"), data)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert browser.app.tenants.list_keys("acme") == before


def test_another_sessions_csrf_token_is_refused(
    browse: Callable[..., Browser],
) -> None:
    """A CSRF token is bound to its session: bob's is no good in alice's."""
    alice, bob = browse(Role.ADMIN), browse(Role.ADMIN)
    bob.cookies["zc_session"] = bob.app.sessions.issue(  # type: ignore[union-attr]
        "acme",
        "bob@example.com",
        incarnation=bob.app.tenants.get("acme").record.incarnation,
    )
    response = alice.post("/console/t/acme/keys", {"csrf": _csrf(bob), "name": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
@pytest.mark.parametrize("route", OPERATOR_GETS)
def test_operator_pages_are_for_operators(
    browse: Callable[..., Browser], route: str, role: Role
) -> None:
    """Tenant admins and viewers get 403 from every operator page."""
    response = browse(role).get(concrete(route, "acme"))
    assert response.status_code == 403


@pytest.mark.parametrize("route", [*TENANT_GETS, *OPERATOR_GETS])
def test_signed_out_gets_are_sent_to_the_login(
    browse: Callable[..., Browser], route: str
) -> None:
    """Without a session every page redirects to /console/login."""
    response = browse(None).get(concrete(route, "acme"))
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


@pytest.mark.parametrize("route", [*TENANT_POSTS, *OPERATOR_POSTS])
def test_signed_out_posts_are_refused(
    browse: Callable[..., Browser], route: str
) -> None:
    """Without a session every form answers 401."""
    response = browse(None).post(concrete(route, "acme"), {"csrf": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize("route", TENANT_GETS)
def test_an_operator_sees_every_tenant(
    browse: Callable[..., Browser], route: str
) -> None:
    """Operators are not held to one tenant."""
    response = browse(Role.OPERATOR).get(concrete(route, "globex"))
    assert response.status_code in {200, 404}, response.text
    assert response.status_code != 403


@pytest.mark.parametrize(
    ("role", "method", "route", "why"),
    [
        (Role.ADMIN, "GET", "/console/t/globex/keys", "its own tenant"),
        (Role.ADMIN, "POST", "/console/t/globex/keys", "its own tenant"),
        (Role.VIEWER, "POST", "/console/t/acme/keys", "Viewers"),
        (Role.ADMIN, "POST-NO-CSRF", "/console/t/acme/keys", "CSRF"),
        (Role.ADMIN, "GET", "/console/operator/", "operators"),
    ],
)
def test_refusals_are_audited_with_the_person(
    browse: Callable[..., Browser],
    api: AdminAPI,
    role: Role,
    method: str,
    route: str,
    why: str,
) -> None:
    """Each refusal leaves a denied entry naming who tried, in the acme log."""
    browser = browse(role)
    if method == "GET":
        browser.get(route)
    elif method == "POST":
        browser.post(route, {"csrf": _csrf(browser), "name": "x"})
    else:
        browser.post(route, {"name": "x"})
    denied = [
        r for result, r in audit_entries(api, "acme") if result is AuditResult.DENIED
    ]
    assert denied, audit_entries(api, "acme")
    assert why in denied[-1]
    assert denied[-1].endswith("by saml:alice@example.com")

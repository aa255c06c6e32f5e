"""
Signing in to the console: single sign-on links per tenant, the
operators' admin-key form (CSRF-protected, rate-limited per address,
audited) and signing out.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.admin.conftest import ADMIN_KEY
from tests.conftest import FakeClock
from tests.console._audit import audit_entries
from tests.console._browser import Browser, csrf_of
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.http.console._login_limiter import LOGIN_ATTEMPTS, LOGIN_WINDOW
from zerfoo_cloud.sso import RoleMap
from zerfoo_cloud.sso.oidc import ClientSecret, OIDCConfig, OIDCProvider
from zerfoo_cloud.sso.roles import Role


def _auth_entries(api: AdminAPI) -> list[tuple[AuditResult, str]]:
    return audit_entries(api, "", AuditAction.AUTH)


def _sign_in(browser: Browser, key: str) -> object:
    page = browser.get("/console/login")
    return browser.post(
        "/console/login", {"csrf": csrf_of(page.text), "admin_key": key}
    )


def test_the_login_page_links_to_a_tenants_saml(browse: Callable[..., Browser]) -> None:
    """Naming a tenant with SAML shows its link, landing in its console."""
    page = browse(None).get("/console/login?tenant=acme")
    assert page.status_code == 200
    assert (
        'href="/sso/saml/acme/login?next=/console/t/acme/" data-testid="login-saml"'
        in page.text
    )


def test_a_tenant_without_sso_is_told_what_to_do(
    browse: Callable[..., Browser],
) -> None:
    """No link, and a sentence saying who sets it up."""
    page = browse(None).get("/console/login?tenant=globex")
    assert 'data-testid="login-no-sso"' in page.text
    assert "login-saml" not in page.text


def test_a_malformed_tenant_id_is_refused(browse: Callable[..., Browser]) -> None:
    """A tenant id that cannot exist gets 400, and is not echoed."""
    page = browse(None).get("/console/login", params={"tenant": "<b>x</b>"})
    assert page.status_code == 400
    assert "<b>x</b>" not in page.text


def test_the_admin_key_signs_an_operator_in(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """The right key -> an operator session, landing on the operators' page."""
    browser = browse(None)
    response = _sign_in(browser, ADMIN_KEY)
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert response.headers["location"] == "/console/operator/"  # type: ignore[attr-defined]
    home = browser.get("/console/operator/")
    assert home.status_code == 200
    assert 'data-testid="tenant-link"' in home.text
    assert api.sessions is not None
    session = api.sessions.verify(browser.cookies["zc_session"])
    assert (session.role, session.via) == ("operator", "admin-key")
    assert ADMIN_KEY not in str(_auth_entries(api))
    assert any(r is AuditResult.SUCCESS for r, _ in _auth_entries(api))


def test_a_wrong_admin_key_is_refused_and_audited(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """401, no session, an unauthorized auth entry."""
    browser = browse(None)
    response = _sign_in(browser, "zca-wrong-key")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "zc_session" not in browser.cookies
    assert (AuditResult.UNAUTHORIZED, "session/operator") in _auth_entries(api)


def test_the_admin_key_form_needs_its_csrf_token(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """Without the page's token (or its cookie) the right key is refused."""
    browser = browse(None)
    assert browser.post("/console/login", {"admin_key": ADMIN_KEY}).status_code == 403
    token = csrf_of(browser.get("/console/login").text)
    other = browse(None)
    response = other.post("/console/login", {"csrf": token, "admin_key": ADMIN_KEY})
    assert response.status_code == 403
    assert "zc_session" not in other.cookies
    assert (AuditResult.DENIED, "session/operator csrf") in _auth_entries(api)


def test_sign_in_tries_are_limited_per_address(
    browse: Callable[..., Browser], api: AdminAPI, clock: FakeClock
) -> None:
    """`LOGIN_ATTEMPTS` tries a window; the next gets 429 even with the right key."""
    browser = browse(None)
    for _ in range(LOGIN_ATTEMPTS):
        assert _sign_in(browser, "wrong").status_code == 401  # type: ignore[attr-defined]
    limited = _sign_in(browser, ADMIN_KEY)
    assert limited.status_code == 429  # type: ignore[attr-defined]
    assert int(limited.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    assert (AuditResult.RATE_LIMITED, "session/operator") in _auth_entries(api)
    other = Browser(api, client=("198.51.100.9", 5000))
    assert _sign_in(other, ADMIN_KEY).status_code == 303  # type: ignore[attr-defined]
    clock.advance(LOGIN_WINDOW)
    assert _sign_in(browser, ADMIN_KEY).status_code == 303  # type: ignore[attr-defined]


def test_sign_out_clears_the_cookie(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """POST /console/logout with the session's token ends it, audited in its tenant."""
    browser = browse(Role.ADMIN)
    response = browser.submit("/console/t/acme/", "/console/logout", {})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert "zc_session" not in browser.cookies
    ended = (AuditResult.SUCCESS, "session ended by saml:alice@example.com")
    assert ended in audit_entries(api, "acme", AuditAction.AUTH)


def test_sign_out_needs_the_csrf_token(browse: Callable[..., Browser]) -> None:
    """Another site cannot sign anyone out."""
    browser = browse(Role.ADMIN)
    response = browser.post("/console/logout", {"csrf": "forged"})
    assert response.status_code == 403
    assert "zc_session" in browser.cookies
    assert browser.get("/console/logout").status_code == 405


def test_the_console_root_sends_each_role_home(browse: Callable[..., Browser]) -> None:
    """/console/ goes to the sign-in page, the tenant's pages or the operators'."""
    assert browse(None).get("/console/").headers["location"] == "/console/login"
    assert browse(Role.ADMIN).get("/console").headers["location"] == "/console/t/acme/"
    operator = browse(Role.OPERATOR).get("/console/")
    assert operator.headers["location"] == "/console/operator/"


def _oidc(name: str) -> OIDCProvider:
    operators = name == "_operators"
    roles = {"zc-ops": "operator"} if operators else {"zc-admins": "admin"}
    return OIDCProvider(
        OIDCConfig(
            "https://idp.example.test",
            "console",
            f"https://admin.test/sso/oidc/{name}/callback",
            RoleMap(roles),
            tenant_id=None if operators else name,
            operators=operators,
            client_secret=ClientSecret("x"),
        )
    )


def test_the_login_page_links_openid_logins(
    make_api: Callable[..., AdminAPI],
) -> None:
    """A tenant's OpenID provider and the operators' get their links."""
    api = make_api(oidc=[_oidc("globex"), _oidc("_operators")])
    mount_console(api)
    browser = Browser(api)
    page = browser.get("/console/login?tenant=globex").text
    assert 'href="/sso/oidc/globex/login" data-testid="login-oidc"' in page
    assert "login-saml" not in page
    assert 'href="/sso/oidc/_operators/login" data-testid="operator-oidc"' in page
    both = browser.get("/console/login?tenant=acme").text
    assert 'data-testid="login-saml"' in both
    assert 'data-testid="login-oidc"' not in both

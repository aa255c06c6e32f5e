"""
Console sessions: what the token carries, idle and absolute expiry on an
injected clock, refresh on use, revocation when the tenant is deleted, and
the cookie's flags.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import FakeClock
from tests.console._browser import Browser
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.errors import InvalidConfigError, SessionError
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.sso.roles import Role

SECRET = b"0123456789abcdef0123456789abcdef"
IDLE = 1800
TTL = 12 * 3600


@pytest.fixture
def signer(clock: FakeClock) -> SessionSigner:
    """A signer with the console's idle and absolute expiry."""
    return SessionSigner(SECRET, ttl=TTL, idle=IDLE, clock=clock)


def test_a_token_carries_role_via_and_email(signer: SessionSigner) -> None:
    """What was signed comes back."""
    token = signer.issue(
        "acme",
        "s-1",
        incarnation="i1",
        role=Role.VIEWER,
        via="oidc",
        email="v@example.com",
    )
    session = signer.verify(token)
    assert (session.role, session.via, session.email) == (
        "viewer",
        "oidc",
        "v@example.com",
    )
    assert session.actor == "oidc:v@example.com"


def test_an_operator_session_has_no_tenant(signer: SessionSigner) -> None:
    """Operators sign in without a tenant; tenant roles need one."""
    token = signer.issue(
        "", "admin:abcd", incarnation="", role=Role.OPERATOR, via="admin-key"
    )
    assert signer.verify(token).tenant_id == ""
    with pytest.raises(InvalidConfigError):
        signer.issue("acme", "x", incarnation="i1", role=Role.OPERATOR)
    with pytest.raises(InvalidConfigError):
        signer.issue("", "x", incarnation="", role=Role.ADMIN)


@pytest.mark.parametrize("via", ["", "password", "SAML"])
def test_an_unknown_sign_in_method_is_refused(signer: SessionSigner, via: str) -> None:
    """``via`` is one of saml, oidc, admin-key."""
    with pytest.raises(InvalidConfigError):
        signer.issue("acme", "x", incarnation="i1", via=via)


def test_idle_expiry_ends_an_unused_session(
    signer: SessionSigner, clock: FakeClock
) -> None:
    """Unused for `idle` seconds, the token is refused; just before, it works."""
    token = signer.issue("acme", "a", incarnation="i1")
    clock.advance(IDLE - 1)
    signer.verify(token)
    clock.advance(1)
    with pytest.raises(SessionError) as info:
        signer.verify(token)
    assert info.value.reason == "expired"


def test_refresh_moves_the_idle_end_but_never_past_the_absolute_end(
    signer: SessionSigner, clock: FakeClock
) -> None:
    """A session used every 20 minutes lives exactly `ttl` seconds."""
    token = signer.issue("acme", "a", incarnation="i1")
    start = clock.now
    while clock.now + 1200 < start + TTL:
        clock.advance(1200)
        token = signer.refresh(signer.verify(token))
    clock.now = start + TTL - 1
    assert signer.verify(token).absolute_expires_at == start + TTL
    clock.now = start + TTL
    with pytest.raises(SessionError):
        signer.verify(token)


def test_idle_longer_than_ttl_is_refused() -> None:
    """An idle expiry past the absolute one means nothing: refused."""
    with pytest.raises(InvalidConfigError):
        SessionSigner(SECRET, ttl=60, idle=61)
    SessionSigner(SECRET, ttl=60, idle=60)


@pytest.fixture
def console_api(
    tenants: TenantManager, signer: SessionSigner, clock: FakeClock
) -> AdminAPI:
    """An admin API with the console and the idle-expiring signer."""
    api = AdminAPI(tenants, sessions=signer, clock=clock)
    mount_console(api)
    return api


def _browser(api: AdminAPI, tenants: TenantManager, tenant_id: str = "acme") -> Browser:
    assert api.sessions is not None
    browser = Browser(api)
    browser.cookies["zc_session"] = api.sessions.issue(
        tenant_id,
        "alice",
        incarnation=tenants.get(tenant_id).record.incarnation,
    )
    return browser


def test_each_page_renews_the_idle_time(
    console_api: AdminAPI, tenants: TenantManager, clock: FakeClock
) -> None:
    """Browsing every 25 minutes keeps the session; 30 idle minutes end it."""
    browser = _browser(console_api, tenants)
    for _ in range(4):
        clock.advance(1500)
        assert browser.get("/console/t/acme/keys").status_code == 200
    clock.advance(IDLE)
    response = browser.get("/console/t/acme/keys")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?ended=1"
    assert "zc_session" not in browser.cookies


def test_the_absolute_expiry_ends_even_a_busy_session(
    console_api: AdminAPI, tenants: TenantManager, clock: FakeClock
) -> None:
    """However often it is used, a session ends `ttl` seconds after sign-in."""
    browser = _browser(console_api, tenants)
    start = clock.now
    while clock.now + 1500 < start + TTL:
        clock.advance(1500)
        assert browser.get("/console/t/acme/").status_code == 200
    clock.now = start + TTL
    assert browser.get("/console/t/acme/").status_code == 303


def test_a_deleted_tenants_session_is_refused_even_if_the_id_returns(
    console_api: AdminAPI, tenants: TenantManager
) -> None:
    """Deleting the tenant ends its sessions, on a new tenant of that id too."""
    browser = _browser(console_api, tenants)
    assert browser.get("/console/t/acme/keys").status_code == 200
    tenants.delete("acme")
    tenants.create(TenantConfig("acme", "zc-acme-again-0123456789abcdefghijklmn", 1, 1))
    response = browser.get("/console/t/acme/keys")
    assert response.status_code == 401
    assert "deleted" in response.text
    assert "zc_session" not in browser.cookies


def test_the_session_cookie_flags(
    console_api: AdminAPI, tenants: TenantManager
) -> None:
    """HttpOnly, Secure, SameSite=Lax, Path=/, and kept to the absolute end."""
    browser = _browser(console_api, tenants)
    response = browser.get("/console/t/acme/")
    header = next(
        h
        for h in response.headers.get_list("set-cookie")
        if h.startswith("zc_session=")
    )
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= flags
    assert "Path=/;" in header or header.endswith("Path=/")
    assert "samesite=lax" in header.lower()
    assert f"Max-Age={TTL}" in header


def test_insecure_cookies_are_only_for_the_loopback_host(
    tenants: TenantManager, signer: SessionSigner, clock: FakeClock
) -> None:
    """secure_cookies=False drops Secure, and signs no one in off 127.0.0.1."""
    api = AdminAPI(tenants, sessions=signer, clock=clock)
    mount_console(api, secure_cookies=False)
    local = _browser(api, tenants)
    local.base_url = "http://127.0.0.1:8000"
    header = local.get("/console/t/acme/").headers["set-cookie"]
    assert "secure" not in header.lower()
    remote = Browser(api, base_url="http://console.example.com")
    page = remote.get("/console/login")
    assert 'data-testid="insecure-host"' in page.text
    refused = remote.post("/console/login", {"admin_key": "x", "csrf": "x"})
    assert refused.status_code == 400


def test_a_viewer_session_reads_but_cannot_rotate_through_the_admin_api(
    make_api: Callable[..., AdminAPI], tenants: TenantManager, sessions: SessionSigner
) -> None:
    """On the JSON API a viewer's session is read-only; an operator's is none."""
    api = make_api()
    incarnation = tenants.get("acme").record.incarnation
    viewer = sessions.issue("acme", "v", incarnation=incarnation, role=Role.VIEWER)
    browser = Browser(api)
    headers = {"Authorization": f"Bearer {viewer}"}
    assert browser.get("/admin/tenants/acme", headers=headers).status_code == 200
    rotate = browser.post("/admin/tenants/acme/rotate-key", headers=headers)
    assert rotate.status_code == 403
    operator = sessions.issue(
        "", "admin:1", incarnation="", role=Role.OPERATOR, via="admin-key"
    )
    listing = browser.get(
        "/admin/tenants", headers={"Authorization": f"Bearer {operator}"}
    )
    assert listing.status_code == 403

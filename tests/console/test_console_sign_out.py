"""
Signing a tenant's people out (`TenantManager.sign_out`): sessions issued
before the stamp are refused on every console route and on the JSON admin
API; sessions issued after work; signing one person out leaves the others.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.admin.conftest import ADMIN_KEY
from tests.conftest import FakeClock
from tests.console._audit import audit_entries
from tests.console._browser import Browser
from tests.console._routes import concrete, tenant_routes
from tests.console.conftest import sign_in
from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.errors import InvalidConfigError, TenantNotFoundError
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.tenants import TenantManager
from zerfoo_cloud.tenants.sign_out import MAX_SUBJECT_LENGTH


def _signed_in(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager, subject: str
) -> Browser:
    return sign_in(Browser(api), sessions, tenants, Role.ADMIN, subject=subject)


@pytest.mark.parametrize("route", tenant_routes("GET"))
def test_a_session_issued_before_the_stamp_is_refused_on_every_page(
    api: AdminAPI,
    sessions: SessionSigner,
    tenants: TenantManager,
    clock: FakeClock,
    route: str,
) -> None:
    """Every tenant page sends a signed-out session to sign in again."""
    browser = _signed_in(api, sessions, tenants, "alice@example.com")
    clock.advance(1)
    tenants.sign_out("acme")
    response = browser.get(concrete(route, "acme"))
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?ended=1"
    assert "zc_session" not in browser.cookies


def test_a_signed_out_session_cannot_post_a_form(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager, clock: FakeClock
) -> None:
    """A form of a signed-out session is refused (401) and changes nothing."""
    browser = _signed_in(api, sessions, tenants, "alice@example.com")
    page = browser.get("/console/t/acme/keys")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    keys_before = tenants.list_keys("acme")
    clock.advance(1)
    tenants.sign_out("acme")
    response = browser.post("/console/t/acme/keys", {"csrf": csrf, "name": "ci"})
    assert response.status_code == 401
    assert "signed this session out" in response.text
    assert tenants.list_keys("acme") == keys_before


def test_a_session_issued_after_the_stamp_works(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager, clock: FakeClock
) -> None:
    """Signing in again after the sign-out gives a working session."""
    tenants.sign_out("acme")
    clock.advance(1)
    browser = _signed_in(api, sessions, tenants, "alice@example.com")
    assert browser.get("/console/t/acme/keys").status_code == 200


def test_signing_one_person_out_leaves_the_others(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager, clock: FakeClock
) -> None:
    """Only the named subject's sessions end."""
    alice = _signed_in(api, sessions, tenants, "alice@example.com")
    bob = _signed_in(api, sessions, tenants, "bob@example.com")
    clock.advance(1)
    tenants.sign_out("acme", subject="alice@example.com")
    assert alice.get("/console/t/acme/").status_code == 303
    assert bob.get("/console/t/acme/").status_code == 200
    clock.advance(1)
    again = _signed_in(api, sessions, tenants, "alice@example.com")
    assert again.get("/console/t/acme/").status_code == 200


def test_the_admin_api_refuses_a_signed_out_session(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
    clock: FakeClock,
) -> None:
    """The JSON API answers 401 session_revoked to a signed-out session,
    and to a token without an issue time once its tenant is signed out."""
    browser = Browser(make_api())
    incarnation = tenants.get("acme").record.incarnation
    token = sessions.issue("acme", "alice", incarnation=incarnation)
    # A token of an earlier version: no issue time.
    legacy = sessions._codec.dumps(
        {"t": "acme", "s": "bob", "i": incarnation, "e": clock.now + 600}
    )
    for bearer in (token, legacy):
        headers = {"Authorization": f"Bearer {bearer}"}
        assert browser.get("/admin/tenants/acme", headers=headers).status_code == 200
    clock.advance(1)
    tenants.sign_out("acme", subject="alice")
    statuses = [
        browser.get("/admin/tenants/acme", headers={"Authorization": f"Bearer {b}"})
        for b in (token, legacy)
    ]
    assert [r.status_code for r in statuses] == [401, 200]
    assert statuses[0].json()["error"]["code"] == "session_revoked"
    tenants.sign_out("acme")
    refused = browser.get(
        "/admin/tenants/acme", headers={"Authorization": f"Bearer {legacy}"}
    )
    assert refused.status_code == 401


def test_the_admin_api_signs_people_out(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
    clock: FakeClock,
) -> None:
    """POST /admin/tenants/{id}/sessions/revoke, with and without a subject."""
    api = make_api()
    mount_console(api)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    alice = _signed_in(api, sessions, tenants, "alice@example.com")
    bob = _signed_in(api, sessions, tenants, "bob@example.com")
    browser = Browser(api)
    clock.advance(1)
    one = browser.post(
        "/admin/tenants/acme/sessions/revoke",
        json={"subject": "alice@example.com"},
        headers=admin,
    )
    assert one.status_code == 200
    assert one.json()["subject"] == "alice@example.com"
    assert one.json()["not_before"] == clock.now
    assert alice.get("/console/t/acme/").status_code == 303
    assert bob.get("/console/t/acme/").status_code == 200
    clock.advance(1)
    everyone = browser.post("/admin/tenants/acme/sessions/revoke", headers=admin)
    assert everyone.status_code == 200
    assert bob.get("/console/t/acme/").status_code == 303


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/admin/tenants/nobody/sessions/revoke", None, 404, "tenant_not_found"),
        (
            "/admin/tenants/acme/sessions/revoke",
            {"subject": "x" * (MAX_SUBJECT_LENGTH + 1)},
            400,
            "invalid_field",
        ),
        ("/admin/tenants/acme/sessions/revoke", {"subject": ""}, 400, "invalid_field"),
        ("/admin/tenants/acme/sessions/revoke", {"subject": 5}, 400, "invalid_field"),
        ("/admin/tenants/acme/sessions/revoke", {"who": "x"}, 400, "unknown_field"),
    ],
)
def test_bad_sign_out_requests_change_nothing(
    make_api: Callable[..., AdminAPI],
    tenants: TenantManager,
    path: str,
    body: object,
    status: int,
    code: str,
) -> None:
    """Unknown tenants and bad subjects get one-line errors; no stamp is set."""
    before = tenants.get("acme").record
    response = Browser(make_api()).post(
        path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "\n" not in error["message"]
    assert tenants.get("acme").record == before


def test_a_tenant_session_may_not_sign_people_out(
    make_api: Callable[..., AdminAPI], sessions: SessionSigner, tenants: TenantManager
) -> None:
    """Only the admin key signs people out through the API."""
    api = make_api()
    incarnation = tenants.get("acme").record.incarnation
    token = sessions.issue("acme", "alice", incarnation=incarnation)
    response = Browser(api).post(
        "/admin/tenants/acme/sessions/revoke",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403


def test_the_subject_limit(tenants: TenantManager, clock: FakeClock) -> None:
    """A subject of the longest length is accepted; one more is refused."""
    tenants.sign_out("acme", subject="x" * MAX_SUBJECT_LENGTH)
    record = tenants.get("acme").record
    assert record.sessions_valid_from("x" * MAX_SUBJECT_LENGTH) == clock.now
    with pytest.raises(InvalidConfigError, match="subject"):
        tenants.sign_out("acme", subject="x" * (MAX_SUBJECT_LENGTH + 1))
    with pytest.raises(TenantNotFoundError):
        tenants.sign_out("nobody")


def test_the_operator_page_signs_people_out(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager, clock: FakeClock
) -> None:
    """The operator's Sign out form ends one person's or everyone's sessions, audited."""
    operator = sign_in(Browser(api), sessions, tenants, Role.OPERATOR)
    alice = _signed_in(api, sessions, tenants, "alice@example.com")
    bob = _signed_in(api, sessions, tenants, "bob@example.com")
    page = "/console/operator/tenants/acme"
    assert 'data-testid="sign-out-form"' in operator.get(page).text
    clock.advance(1)
    one = operator.submit(
        page, page, {"form": "sessions", "subject": "alice@example.com"}
    )
    assert one.status_code == 200
    assert 'data-testid="operator-done"' in one.text
    assert alice.get("/console/t/acme/").status_code == 303
    assert bob.get("/console/t/acme/").status_code == 200
    clock.advance(1)
    assert operator.submit(page, page, {"form": "sessions"}).status_code == 200
    assert bob.get("/console/t/acme/").status_code == 303
    assert operator.get(page).status_code == 200
    resources = [r for _, r in audit_entries(api, "acme", AuditAction.UPDATE)]
    actor = "admin-key:admin:0123abcd"
    assert f"tenant/acme/sessions by {actor}" in resources


def test_the_operator_sign_out_form_refuses_bad_input(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A subject too long gets a one-line error; a form without CSRF is refused."""
    operator = sign_in(Browser(api), sessions, tenants, Role.OPERATOR)
    page = "/console/operator/tenants/acme"
    before = tenants.get("acme").record
    refused = operator.submit(
        page, page, {"form": "sessions", "subject": "x" * (MAX_SUBJECT_LENGTH + 1)}
    )
    assert refused.status_code == 400
    assert f"1 to {MAX_SUBJECT_LENGTH} characters" in refused.text
    forged = operator.post(page, {"form": "sessions"})
    assert forged.status_code == 403
    assert tenants.get("acme").record == before

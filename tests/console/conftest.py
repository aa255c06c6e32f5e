"""
Fixtures of the console tests: the admin API's app and stores, and
signed-in browsers for each role.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.admin import conftest as admin_fixtures
from tests.console._browser import Browser
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.tenants import TenantManager

# The admin API tests' fixtures: the app's stores and signer.
audit_store = admin_fixtures.audit_store
billing_store = admin_fixtures.billing_store
idp_keys = admin_fixtures.idp_keys
make_api = admin_fixtures.make_api
sessions = admin_fixtures.sessions
tenants = admin_fixtures.tenants

#: Every role, and the tenant its session is for ("" for operators).
ROLES = (Role.ADMIN, Role.VIEWER, Role.OPERATOR)


def sign_in(
    browser: Browser,
    sessions: SessionSigner,
    tenants: TenantManager,
    role: Role,
    tenant_id: str = "acme",
    subject: str = "alice@example.com",
) -> Browser:
    """
    Give *browser* a session of *role* (for *tenant_id* unless an operator).
    """
    if role is Role.OPERATOR:
        token = sessions.issue(
            "", "admin:0123abcd", incarnation="", role=role, via="admin-key"
        )
    else:
        incarnation = tenants.get(tenant_id).record.incarnation
        token = sessions.issue(
            tenant_id,
            subject,
            incarnation=incarnation,
            role=role,
            email=subject,
        )
    browser.cookies["zc_session"] = token
    return browser


@pytest.fixture
def api(make_api: Callable[..., AdminAPI]) -> AdminAPI:
    """
    The default test app, with the console.
    """
    made = make_api()
    mount_console(made)
    return made


@pytest.fixture
def browse(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager
) -> Callable[..., Browser]:
    """
    A browser of the test app signed in with a role (``None``: signed out).
    """

    def make(role: Role | None = Role.ADMIN, tenant_id: str = "acme") -> Browser:
        browser = Browser(api)
        if role is None:
            return browser
        return sign_in(browser, sessions, tenants, role, tenant_id)

    return make

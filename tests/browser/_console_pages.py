"""
What the browser tests do on the console again and again: sign in (SAML
through the test IdP, OpenID Connect through the test provider, or an
operator's admin key) and read a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs

from tests.browser._console_server import ADMIN_KEY

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests._oidc_provider import OIDCTestProvider, TestUser
    from tests.browser._console_server import ConsoleServer


@attrs.frozen
class TenantPage:
    """
    One of a tenant's console pages: its path under ``/console/t/{tenant}/``,
    the test id of its link in the navigation, and of what it shows when the
    tenant has data.
    """

    path: str
    nav: str
    content: str


#: A tenant's console pages, by the name of their screenshot.
TENANT_PAGES = {
    "overview": TenantPage("", "nav-overview", "overview-traffic"),
    "usage": TenantPage("usage", "nav-usage", "usage-table"),
    "keys": TenantPage("keys", "nav-keys", "key-table"),
    "audit": TenantPage("audit", "nav-audit-log", "audit-table"),
    "invoices": TenantPage("invoices", "nav-invoices", "invoice-table"),
}


def sign_in(
    page: Page, server: ConsoleServer, tenant_id: str, method: str = "saml"
) -> None:
    """
    Sign in to *tenant_id*'s console as the test IdP's (``saml``) or the
    test OpenID provider's (``oidc``) current user: the login page, the
    tenant, its button, the provider sending the browser back.
    """
    start_sign_in(page, server, tenant_id, method)
    page.wait_for_url(server.console(f"t/{tenant_id}/"))


def start_sign_in(
    page: Page, server: ConsoleServer, tenant_id: str, method: str
) -> None:
    """Choose *tenant_id* on the login page and press its *method* button."""
    page.goto(server.console("login"))
    page.get_by_test_id("login-tenant").fill(tenant_id)
    page.get_by_test_id("login-tenant-submit").click()
    page.get_by_test_id(f"login-{method}").click()


def sign_in_as_operator(page: Page, server: ConsoleServer) -> None:
    """Sign in to the operators' pages with the admin key."""
    page.goto(server.console("login"))
    page.get_by_test_id("operator-key").fill(ADMIN_KEY)
    page.get_by_test_id("operator-submit").click()
    page.wait_for_url(server.console("operator/"))


@contextmanager
def provider_user(provider: OIDCTestProvider, user: TestUser) -> Iterator[None]:
    """The test OpenID provider signs *user* in until the block ends."""
    provider.user = user
    try:
        yield
    finally:
        provider.reset()


def count_of(page: Page, test_id: str) -> int:
    """The number an element shows (``1,234`` reads 1234)."""
    text = page.get_by_test_id(test_id).inner_text()
    assert re.fullmatch(r"[\d,]+", text), f"{test_id} shows {text!r}"
    return int(text.replace(",", ""))

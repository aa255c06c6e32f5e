"""
Signing in in a real Chromium: the SP redirects to the test IdP, whose page
posts a signed answer back to the ACS, and the session cookie then opens the
tenant's pages (and only its own).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser._console_server import ConsoleServer


def test_saml_login_opens_the_tenant_and_no_other(
    page: Page, server: ConsoleServer
) -> None:
    """A SAML sign-in for acme reads acme's record and is refused globex's."""
    page.goto(server.url + "/sso/saml/acme/login?next=/admin/tenants/acme")
    assert page.url == server.url + "/admin/tenants/acme"
    assert json.loads(page.inner_text("pre"))["id"] == "acme"
    refused = page.goto(server.url + "/admin/tenants/globex")
    assert refused is not None
    assert refused.status == 403

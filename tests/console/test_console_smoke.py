"""
The console's pages render for each role.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.console._browser import Browser
from zerfoo_cloud.sso.roles import Role


def test_the_keys_page_renders_for_an_admin(browse: Callable[..., Browser]) -> None:
    """A tenant admin sees the keys page with its create form."""
    response = browse(Role.ADMIN).get("/console/t/acme/keys")
    assert response.status_code == 200, response.text
    assert 'data-testid="create-key"' in response.text

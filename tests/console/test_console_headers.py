"""
The security headers of every console response: a Content Security
Policy without inline code, no framing, no sniffing, same-origin
referrers, and no caching of anything but the static files.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.console._browser import Browser
from tests.console._routes import concrete, operator_routes, tenant_routes
from zerfoo_cloud.http.console import CONTENT_SECURITY_POLICY
from zerfoo_cloud.sso.roles import Role

EXPECTED = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _check(response: httpx.Response, cache: str = "no-store") -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert response.headers["cache-control"] == cache
    assert "unsafe-inline" not in response.headers["content-security-policy"]


def test_the_policy_is_the_documented_one() -> None:
    """The constant is the policy sent."""
    assert EXPECTED["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER, Role.OPERATOR])
@pytest.mark.parametrize("route", tenant_routes("GET") + operator_routes("GET"))
def test_every_page_carries_the_headers(
    browse: Callable[..., Browser], route: str, role: Role
) -> None:
    """Whatever the page answers (200, 403, 404), the headers are there."""
    _check(browse(role).get(concrete(route, "acme")))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/login"),
        ("GET", "/console/"),
        ("GET", "/console/no/such/page"),
        ("POST", "/console/login"),
        ("POST", "/console/logout"),
        ("GET", "/console/logout"),
        ("DELETE", "/console/t/acme/keys"),
        ("POST", "/console/t/acme/keys"),
        ("GET", "/console/static/nope.css"),
    ],
)
def test_sign_in_errors_and_redirects_carry_the_headers(
    browse: Callable[..., Browser], method: str, path: str
) -> None:
    """Answers outside the pages carry them too."""
    _check(browse(None).request(method, path))


@pytest.mark.parametrize("name", ["console.css", "console.js"])
def test_static_files_are_cached_and_typed(
    browse: Callable[..., Browser], name: str
) -> None:
    """The CSS and JS are cached for an hour, with their types and the headers."""
    response = browse(None).get(f"/console/static/{name}")
    assert response.status_code == 200
    _check(response, cache="public, max-age=3600")
    kind = "text/css" if name.endswith(".css") else "javascript"
    assert kind in response.headers["content-type"]


@pytest.mark.parametrize("route", tenant_routes("GET"))
def test_no_page_has_inline_script_or_style(
    browse: Callable[..., Browser], route: str
) -> None:
    """The CSP forbids inline code, so no page may hold any."""
    html = browse(Role.ADMIN).get(concrete(route, "acme")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html
    assert not re.search(r"\s(style|on[a-z]+)=", html)

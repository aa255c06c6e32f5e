"""
Hostile text never becomes markup: tenant ids in the path, key names,
form values and audit entries are HTML-escaped wherever a page shows them.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from tests.console._browser import Browser
from tests.console._routes import concrete, tenant_routes
from zerfoo_cloud.audit import AuditEntry
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.sso.roles import Role

ATTACKS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
]


def _raw_markup(html: str) -> bool:
    lowered = html.lower()
    return any(tag in lowered for tag in ("<script>alert", "<img src=x", "<svg onload"))


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("route", tenant_routes("GET"))
@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPERATOR])
def test_a_hostile_tenant_id_in_the_path_is_escaped(
    browse: Callable[..., Browser], route: str, attack: str, role: Role
) -> None:
    """Refused or not found, the page never echoes the id as markup."""
    path = concrete(route, urllib.parse.quote(attack, safe=""))
    response = browse(role).get(path)
    # An operator may read a gone tenant's audit log: 200, nothing listed.
    assert response.status_code in {200, 403, 404}
    assert not _raw_markup(response.text)


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_key_name_is_escaped(
    browse: Callable[..., Browser], attack: str
) -> None:
    """A key named like markup is listed (and confirmed) as text."""
    browser = browse(Role.ADMIN)
    made = browser.submit(
        "/console/t/acme/keys", "/console/t/acme/keys", {"name": attack}
    )
    assert made.status_code == 201
    assert not _raw_markup(made.text)
    listing = browser.get("/console/t/acme/keys").text
    assert 'data-testid="key-row"' in listing
    assert not _raw_markup(listing)


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_refused_form_shows_its_values_as_text(
    browse: Callable[..., Browser], attack: str
) -> None:
    """The form is shown again with what was typed, escaped."""
    response = browse(Role.ADMIN).submit(
        "/console/t/acme/keys",
        "/console/t/acme/keys",
        {"name": "ok", "expires_days": attack, "scope": attack},
    )
    assert response.status_code == 400
    assert not _raw_markup(response.text)


def test_hostile_audit_entries_are_escaped(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """What an entry holds is shown as text."""
    assert api.audit is not None
    when = datetime(2023, 11, 14, 12, tzinfo=timezone.utc)
    for attack in ATTACKS:
        api.audit.log(
            AuditEntry(
                when,
                "acme",
                resource=attack,
                path="/" + attack,
                method="GET",
                remote_addr=attack,
                status_code=200,
            )
        )
    html = browse(Role.ADMIN).get("/console/t/acme/audit").text
    assert 'data-testid="audit-row"' in html
    assert not _raw_markup(html)


def test_a_hostile_model_scope_is_escaped_in_the_list(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """A key whose scope names odd models lists them as text."""
    record = api.tenants.get("acme").record
    assert record is not None
    browser = browse(Role.ADMIN)
    response = browser.submit(
        "/console/t/acme/keys",
        "/console/t/acme/keys",
        {"name": "odd", "scope": "<b>bold</b>"},
    )
    if response.status_code == 201:
        assert "<b>bold</b>" not in browser.get("/console/t/acme/keys").text
    else:
        assert response.status_code == 400
        assert "<b>bold</b>" not in response.text

"""
The keys page: list, create (the secret shown once), revoke and rotate
with grace, each audited with the person who did it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.conftest import FakeClock
from tests.console._audit import audit_entries
from tests.console._browser import Browser
from zerfoo_cloud import TenantManager
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.errors import TenantNotFoundError
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.http.console._keys_page import MAX_EXPIRY_DAYS
from zerfoo_cloud.sso.roles import Role

KEYS = "/console/t/acme/keys"
_SECRET = re.compile(r'data-testid="new-key-secret">([^<]+)<')


def _new_key(browser: Browser, tenants: TenantManager) -> tuple[str, str]:
    """A new key of acme made through the page: its secret and id."""
    _, html = _create(browser)
    found = _SECRET.search(html)
    assert found is not None
    return found[1], tenants.list_keys("acme")[-1].id


def _create(browser: Browser, **fields: str) -> tuple[int, str]:
    data = {"name": "ci", "expires_days": "", "scope": "", **fields}
    response = browser.submit(KEYS, KEYS, data)
    return response.status_code, response.text


def test_an_admin_creates_a_key_and_sees_its_secret_once(
    browse: Callable[..., Browser], tenants: TenantManager, api: AdminAPI
) -> None:
    """The secret works, is on that answer only, and the list shows the key."""
    browser = browse(Role.ADMIN)
    status, html = _create(browser, name="ci-runner", expires_days="30", scope="m1, m2")
    assert status == 201, html
    found = _SECRET.search(html)
    assert found is not None
    secret = found[1]
    assert 'data-testid="copy-key"' in html
    assert tenants.get_by_api_key(secret).record.id == "acme"
    listing = browser.get(KEYS).text
    assert secret not in listing
    assert "ci-runner" in listing
    assert "m1, m2" in listing
    made = tenants.list_keys("acme")[-1]
    assert made.model_scope == ("m1", "m2")
    assert made.expires_at == pytest.approx(made.created_at + 30 * 86_400)
    assert (
        AuditResult.SUCCESS,
        f"tenant/acme/keys/{made.id} by saml:alice@example.com",
    ) in audit_entries(api, "acme", AuditAction.CREATE)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name"),
        ({"expires_days": "0"}, "days"),
        ({"expires_days": str(MAX_EXPIRY_DAYS + 1)}, "days"),
        ({"expires_days": "1.5"}, "days"),
        ({"expires_days": "-3"}, "days"),
        ({"scope": "x" * 4097}, "scope"),
    ],
)
def test_bad_key_fields_are_refused_and_change_nothing(
    browse: Callable[..., Browser],
    tenants: TenantManager,
    fields: dict[str, str],
    message: str,
) -> None:
    """400 with the form kept and a one-line error naming the field."""
    browser = browse(Role.ADMIN)
    before = tenants.list_keys("acme")
    status, html = _create(browser, **fields)
    assert status == 400
    assert message in html.lower()
    assert 'data-testid="key-error"' in html
    assert tenants.list_keys("acme") == before


def test_the_longest_expiry_is_accepted(
    browse: Callable[..., Browser], tenants: TenantManager
) -> None:
    """At the limit: `MAX_EXPIRY_DAYS` days is taken."""
    status, _ = _create(browse(Role.ADMIN), expires_days=str(MAX_EXPIRY_DAYS))
    assert status == 201


def test_revoke_stops_the_key(
    browse: Callable[..., Browser], tenants: TenantManager, api: AdminAPI
) -> None:
    """Revoked at once; audited as a delete by the person."""
    browser = browse(Role.ADMIN)
    secret, key_id = _new_key(browser, tenants)
    response = browser.submit(KEYS, f"{KEYS}/{key_id}/revoke", {})
    assert response.status_code == 303
    assert response.headers["location"] == KEYS
    with pytest.raises(TenantNotFoundError):
        tenants.get_by_api_key(secret)
    assert (
        AuditResult.SUCCESS,
        f"tenant/acme/keys/{key_id} by saml:alice@example.com",
    ) in audit_entries(api, "acme", AuditAction.DELETE)


def test_revoking_an_unknown_key_is_404(browse: Callable[..., Browser]) -> None:
    """No such key: 404 page."""
    response = browse(Role.ADMIN).submit(KEYS, f"{KEYS}/k-0000000000000000/revoke", {})
    assert response.status_code == 404


def test_rotate_with_grace_keeps_the_old_key_for_a_while(
    browse: Callable[..., Browser], tenants: TenantManager, clock: FakeClock
) -> None:
    """Both work during the grace period; then only the new one."""
    browser = browse(Role.ADMIN)
    old_secret, key_id = _new_key(browser, tenants)
    response = browser.submit(KEYS, f"{KEYS}/{key_id}/rotate", {"grace": "3600"})
    assert response.status_code == 200
    new_secret = _SECRET.search(response.text)[1]  # type: ignore[index]
    assert new_secret != old_secret
    assert tenants.get_by_api_key(old_secret).record.id == "acme"
    clock.advance(3600)
    tenants._cache.clear()  # the lookup cache may hold the old key
    with pytest.raises(TenantNotFoundError):
        tenants.get_by_api_key(old_secret)
    assert tenants.get_by_api_key(new_secret).record.id == "acme"


@pytest.mark.parametrize("grace", ["", "5", "-1", "99999999"])
def test_only_offered_grace_periods_are_taken(
    browse: Callable[..., Browser], tenants: TenantManager, grace: str
) -> None:
    """Any other grace is 400 and changes nothing."""
    browser = browse(Role.ADMIN)
    _create(browser)
    before = tenants.list_keys("acme")
    key_id = before[-1].id
    response = browser.submit(KEYS, f"{KEYS}/{key_id}/rotate", {"grace": grace})
    assert response.status_code == 400
    assert tenants.list_keys("acme") == before


def test_a_viewer_sees_keys_without_forms(browse: Callable[..., Browser]) -> None:
    """The list shows; no create, rotate or revoke form does."""
    html = browse(Role.VIEWER).get(KEYS).text
    assert 'data-testid="key-table"' in html
    assert 'data-testid="create-key"' not in html
    assert 'data-testid="revoke-key"' not in html

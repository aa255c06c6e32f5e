"""
The audit log page: the chain's verification at the top, filters by
action, result and days, and pages of `PAGE_SIZE` entries, newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from tests.console._browser import Browser
from zerfoo_cloud.audit import AuditAction, AuditEntry, AuditResult
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.http.console._audit_page import PAGE_SIZE
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.stores.memory import MemoryAuditStore

AUDIT = "/console/t/acme/audit"
# The test clock's day (1_700_000_000 is 2023-11-14 UTC).
TODAY = datetime(2023, 11, 14, 12, tzinfo=timezone.utc)


def _log(api: AdminAPI, n: int, **fields: object) -> None:
    assert api.audit is not None
    for i in range(n):
        api.audit.log(
            AuditEntry(
                TODAY - timedelta(minutes=i),
                "acme",
                path=f"/e/{i}",
                status_code=200,
                **fields,  # type: ignore[arg-type]
            )
        )


def test_an_intact_chain_is_said_plainly(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """ "Chain verified: N entries, intact" with N the checked count."""
    _log(api, 3)
    assert api.audit is not None
    checked = api.audit.verify().checked
    html = browse(Role.VIEWER).get(AUDIT).text
    assert f"Chain verified: {checked} entries, intact." in html


def test_a_broken_chain_says_where(
    browse: Callable[..., Browser], api: AdminAPI, audit_store: MemoryAuditStore
) -> None:
    """An altered entry: the page names the position it breaks at."""
    _log(api, 3)
    assert api.audit is not None
    api.audit.verify()
    entries = audit_store._entries
    entries[1] = attrs.evolve(entries[1], path="/forged")
    html = browse(Role.ADMIN).get(AUDIT).text
    assert "Chain broken at entry" in html
    assert 'class="ok"' not in html


def test_filters_by_action_and_result(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """Only matching entries are listed."""
    _log(api, 2, action=AuditAction.DELETE, result=AuditResult.SUCCESS)
    _log(api, 3, action=AuditAction.CREATE, result=AuditResult.DENIED)
    browser = browse(Role.ADMIN)
    html = browser.get(AUDIT, params={"action": "create", "result": "denied"}).text
    assert html.count('data-testid="audit-row"') == 3
    html = browser.get(AUDIT, params={"action": "delete", "result": "denied"}).text
    assert 'data-testid="audit-empty"' in html


def test_filters_by_days(browse: Callable[..., Browser], api: AdminAPI) -> None:
    """Entries outside [since, until] (whole UTC days) are left out."""
    _log(api, 1)
    browser = browse(Role.ADMIN)
    inside = browser.get(AUDIT, params={"since": "2023-11-14", "until": "2023-11-14"})
    assert inside.text.count('data-testid="audit-row"') == 1
    before = browser.get(AUDIT, params={"since": "2023-11-01", "until": "2023-11-13"})
    assert 'data-testid="audit-empty"' in before.text


def test_pages_hold_page_size_entries_newest_first(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """A full page, then the rest, each linked to the other."""
    _log(api, PAGE_SIZE + 1)
    browser = browse(Role.ADMIN)
    first = browser.get(AUDIT).text
    assert first.count('data-testid="audit-row"') == PAGE_SIZE
    assert first.index("/e/0<") < first.index("/e/1<")
    assert 'data-testid="page-older"' in first
    second = browser.get(AUDIT, params={"page": "2"}).text
    assert second.count('data-testid="audit-row"') >= 1
    assert "/e/50<" in second
    assert 'data-testid="page-newer"' in second


@pytest.mark.parametrize(
    "params",
    [
        {"action": "explode"},
        {"result": "maybe"},
        {"since": "yesterday"},
        {"until": "2023-02-30"},
        {"page": "0"},
        {"page": "10001"},
        {"page": "x"},
        {"other": "1"},
    ],
)
def test_bad_filters_are_400(
    browse: Callable[..., Browser], params: dict[str, str]
) -> None:
    """Each bad filter gets a 400 page saying what is wrong."""
    response = browse(Role.ADMIN).get(AUDIT, params=params)
    assert response.status_code == 400
    assert 'data-testid="error-message"' in response.text


def test_the_last_page_number_is_accepted(browse: Callable[..., Browser]) -> None:
    """At the limit: page 10000 is an empty page, not an error."""
    response = browse(Role.ADMIN).get(AUDIT, params={"page": "10000"})
    assert response.status_code == 200


def test_another_tenants_entries_are_not_listed(
    browse: Callable[..., Browser], api: AdminAPI
) -> None:
    """globex's entries never show on acme's page."""
    assert api.audit is not None
    api.audit.log(AuditEntry(TODAY, "globex", path="/globex-secret", status_code=200))
    html = browse(Role.ADMIN).get(AUDIT).text
    assert "globex-secret" not in html

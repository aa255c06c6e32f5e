"""
``/admin/tenants/{id}/budgets``, ``.../keys/{key_id}/budgets`` and
``.../spend``: spend budgets through the admin API, amounts as decimal
text, every refusal a one-line 400 that changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin._client import Client
from tests.admin.conftest import admin_headers, issue_session
from tests.admin.test_admin_prices import one_line_error
from zerfoo_cloud import TenantManager
from zerfoo_cloud.budget_records import MAX_BUDGET_MICROS, SpendBudget
from zerfoo_cloud.http.admin import SessionSigner
from zerfoo_cloud.pricing import format_micros
from zerfoo_cloud.stores.memory import MemoryAuditStore

MONTH = {
    "period": "month",
    "amount": "25.00",
    "currency": "USD",
    "timezone": "Europe/Paris",
    "alert_at": [50, 80, 100],
}
PATH = "/admin/tenants/acme/budgets"


def put(client: Client, path: str, budgets: object, **kw: Any) -> Any:
    """PUT ``{"budgets": budgets}`` to *path* with the admin key."""
    return client.request(
        "PUT", path, headers=admin_headers(), json={"budgets": budgets}, **kw
    )


def test_tenant_budgets_are_replaced_and_read_back(
    client: Client, tenants: TenantManager
) -> None:
    """GET: none; PUT a month and a day budget: stored, amounts as decimal text; PUT []: none."""
    empty = client.get(PATH, headers=admin_headers())
    assert empty.json() == {
        "object": "spend_budgets",
        "tenant_id": "acme",
        "key_id": None,
        "data": [],
    }
    day = {"period": "day", "amount": "2.5", "currency": "USD"}
    stored = put(client, PATH, [MONTH, day])
    assert stored.status_code == 200, stored.text
    assert stored.json()["data"] == [
        {**MONTH, "amount": "25"},
        {**day, "timezone": "UTC", "alert_at": [50, 80, 100]},
    ]
    assert tenants.get("acme").record.spend_budgets == (
        SpendBudget("month", 25_000_000, "USD", "Europe/Paris"),
        SpendBudget("day", 2_500_000, "USD"),
    )
    assert client.get(PATH, headers=admin_headers()).json() == stored.json()
    assert put(client, PATH, []).json()["data"] == []
    assert tenants.get("acme").record.spend_budgets == ()


def test_key_budgets_are_the_keys_own(client: Client, tenants: TenantManager) -> None:
    """A key's budgets are stored on the key and leave the tenant's alone; an unknown key or tenant is 404."""
    _, key = tenants.create_key("acme", name="ci")
    path = f"/admin/tenants/acme/keys/{key.id}/budgets"
    stored = put(client, path, [MONTH])
    assert stored.status_code == 200, stored.text
    assert stored.json()["key_id"] == key.id
    record = tenants.get("acme").record
    found = record.key_by_id(key.id)
    assert found is not None
    assert found.spend_budgets == (
        SpendBudget("month", 25_000_000, "USD", "Europe/Paris"),
    )
    assert record.spend_budgets == ()
    assert client.get(path, headers=admin_headers()).json()["data"] == [
        {**MONTH, "amount": "25"}
    ]
    missing = put(client, "/admin/tenants/acme/keys/k-0000000000000000/budgets", [])
    one_line_error(missing, 404, "key_not_found")
    one_line_error(
        put(client, "/admin/tenants/nobody/budgets", []), 404, "tenant_not_found"
    )


def _with(**changes: object) -> list[dict[str, object]]:
    return [{**MONTH, **changes}]


@pytest.mark.parametrize(
    ("budgets", "param"),
    [
        (_with(amount=25.0), "spend_budgets.amount"),
        (_with(amount="-1"), "spend_budgets.amount"),
        (_with(amount="0"), "amount"),
        (_with(amount="0.0000001"), "spend_budgets.amount"),
        (_with(amount=format_micros(MAX_BUDGET_MICROS + 1)), "spend_budgets.amount"),
        (_with(currency="usd"), "spend_budgets.currency"),
        (_with(currency="XAU"), "spend_budgets.currency"),
        (_with(timezone="Mars/Olympus"), "timezone"),
        (_with(period="year"), "period"),
        (_with(alert_at=[80, 50]), "alert_at"),
        (_with(alert_at=[0]), "alert_at"),
        (_with(alert_at=[101]), "alert_at"),
        (_with(colour="red"), "budget"),
        ([{"period": "month", "amount": "1"}], "currency"),
        ([MONTH, MONTH], "period"),
        ("month", "budgets"),
        ([MONTH] * 17, "budgets"),
    ],
)
def test_bad_budgets_are_one_line_400s_and_change_nothing(
    client: Client, tenants: TenantManager, budgets: object, param: str
) -> None:
    """Floats, negative, zero, too many places, past the maximum, unknown currency, zone or period, bad thresholds, unknown keys, two of one period, not a list: 400 naming the field; nothing stored."""
    put(client, PATH, [{"period": "day", "amount": "1", "currency": "USD"}])
    before = tenants.get("acme").record.spend_budgets
    error = one_line_error(put(client, PATH, budgets), 400, "invalid_field")
    assert error["param"] == param
    assert tenants.get("acme").record.spend_budgets == before


def test_the_largest_amount_is_accepted_and_the_smallest_too(
    client: Client, tenants: TenantManager
) -> None:
    """2**53-1 micro-units and one micro-unit are both valid amounts."""
    largest = format_micros(MAX_BUDGET_MICROS)
    stored = put(
        client,
        PATH,
        [
            *_with(amount=largest),
            {"period": "day", "amount": "0.000001", "currency": "USD"},
        ],
    )
    assert stored.status_code == 200, stored.text
    amounts = [b.amount for b in tenants.get("acme").record.spend_budgets]
    assert amounts == [MAX_BUDGET_MICROS, 1]


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"{", b'{"budgets": NaN}', b"null", b'{"budget": []}']
)
def test_malformed_bodies_are_400(client: Client, body: bytes) -> None:
    """Bodies that are not {"budgets": [...]}: one-line 400."""
    response = client.request("PUT", PATH, headers=admin_headers(), content=body)
    assert response.status_code == 400
    assert "\n" not in response.json()["error"]["message"]


def test_spend_lists_the_current_period_of_every_budget(
    client: Client, tenants: TenantManager
) -> None:
    """The tenant's budgets, then each key's: amounts, spent, held and remaining as decimal text, the period's bounds in UTC."""
    _, key = tenants.create_key("acme", name="ci")
    put(
        client,
        PATH,
        [MONTH, {"period": "lifetime", "amount": "100", "currency": "USD"}],
    )
    put(
        client,
        f"/admin/tenants/acme/keys/{key.id}/budgets",
        [{"period": "day", "amount": "1", "currency": "USD"}],
    )
    response = client.get("/admin/tenants/acme/spend", headers=admin_headers())
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert [(r["period"], r["key_id"]) for r in rows] == [
        ("month", None),
        ("lifetime", None),
        ("day", key.id),
    ]
    month = rows[0]
    assert (month["spent"], month["held"], month["remaining"]) == ("0", "0", "25")
    assert month["period_start"].endswith(":00:00Z")
    assert rows[1]["period_start"] is None
    for row in rows:
        for field in ("amount", "spent", "held", "remaining"):
            assert isinstance(row[field], str)
    one_line_error(
        client.get("/admin/tenants/nobody/spend", headers=admin_headers()),
        404,
        "tenant_not_found",
    )


def test_a_session_reads_its_budgets_but_never_changes_them(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A tenant admin may read its own budgets and spend; a change, or another tenant, is 403."""
    headers = {"Authorization": f"Bearer {issue_session(sessions, tenants)}"}
    assert client.get(PATH, headers=headers).status_code == 200
    assert client.get("/admin/tenants/acme/spend", headers=headers).status_code == 200
    changed = client.request("PUT", PATH, headers=headers, json={"budgets": []})
    one_line_error(changed, 403, "forbidden")
    other = client.get("/admin/tenants/globex/budgets", headers=headers)
    one_line_error(other, 403, "forbidden")


def test_budget_calls_are_audited_with_the_actor(
    client: Client, audit_store: MemoryAuditStore
) -> None:
    """Each call is one audit entry: the tenant's budgets, by whom, with the status."""
    put(client, PATH, [MONTH])
    put(client, PATH, _with(amount="x"))
    entries = [
        (e.tenant_id, e.resource.split(" by ")[0], e.status_code)
        for e in audit_store.all()
    ]
    assert entries[-2:] == [
        ("acme", "tenant/acme/budgets", 200),
        ("acme", "tenant/acme/budgets", 400),
    ]
    assert audit_store.all()[-1].resource.split(" by ")[1].startswith("admin:")

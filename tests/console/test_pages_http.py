"""
The Overview, Usage and operator pages over HTTP, for each role: figures,
empty states, the chart and its table, the CSV, cross-tenant refusal, and
operator forms that change records (or refuse bad input, changing nothing),
each audited with the operator's identity.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import FakeClock
from tests.console._browser import Browser, csrf_of
from tests.console.conftest import sign_in
from zerfoo_cloud import AuditEntry, BillingRecord, TokenMeter
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.errors import TenantNotFoundError
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.limits import MAX_LIMIT
from zerfoo_cloud.price_book import PriceBook
from zerfoo_cloud.pricing import ModelPrice, PriceTable
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryBillingStore,
    MemoryPriceStore,
)
from zerfoo_cloud.tenants import TenantManager

Browse = Callable[..., Browser]
TENANT_ROLES = (Role.ADMIN, Role.VIEWER, Role.OPERATOR)
OPERATOR = "/console/operator"


def text_of(page: str, name: str) -> str:
    """
    The text inside the first element marked ``data-testid="name"``, tags
    removed and entities decoded.
    """
    found = re.search(
        rf'data-testid="{re.escape(name)}"[^>]*>(.*?)</(td|span|p|code|section)>',
        page,
        re.DOTALL,
    )
    assert found is not None, f"no element {name!r} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found[1])).strip()


def table_rows(page: str, name: str) -> list[list[str]]:
    """
    The body cells of the table marked ``data-testid="name"``, as text.
    """
    found = re.search(rf'data-testid="{name}".*?<tbody>(.*?)</tbody>', page, re.DOTALL)
    assert found is not None
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found[1], re.DOTALL)
    ]


def _now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock(), timezone.utc)


def _traffic(
    billing: MemoryBillingStore, audit: MemoryAuditStore, clock: FakeClock
) -> None:
    # acme: two requests today, one yesterday, one 429 and one 502 today.
    now = _now(clock)
    billing.add(
        [
            BillingRecord(
                "acme",
                1000,
                234,
                now,
                "m1",
                cost=1_500_000,
                currency="USD",
                key_id="k1",
            ),
            BillingRecord(
                "acme",
                10,
                0,
                now,
                "=cmd|' /C calc'!A0",
                cost=1,
                currency="USD",
                key_id="k2",
            ),
            BillingRecord("acme", 5, 5, now - timedelta(days=1), "m1", key_id="k1"),
            BillingRecord("globex", 7, 7, now, "secret-model", key_id="g1"),
        ]
    )
    for status, result in ((429, AuditResult.RATE_LIMITED), (502, AuditResult.ERROR)):
        audit.append(
            AuditEntry(now, "acme", AuditAction.INFERENCE, result, status_code=status)
        )


# -- Overview -------------------------------------------------------------


@pytest.mark.parametrize("role", TENANT_ROLES)
def test_overview_empty_state(browse: Browse, role: Role) -> None:
    """A tenant without traffic sees zeros, its limits and a first request to send."""
    page = browse(role).get("/console/t/acme/")
    assert page.status_code == 200
    assert text_of(page.text, "overview-requests-today") == "0"
    assert text_of(page.text, "overview-429-today") == "0"
    assert text_of(page.text, "overview-rate-limit") == "60"
    assert text_of(page.text, "overview-token-budget") == "10,000"
    assert "curl https://console.test/v1/chat/completions" in text_of(
        page.text, "overview-first-request"
    )
    assert text_of(page.text, "overview-no-budgets").startswith("No spend budget")


def test_overview_figures(
    browse: Browse,
    billing_store: MemoryBillingStore,
    audit_store: MemoryAuditStore,
    clock: FakeClock,
    tenants: TenantManager,
) -> None:
    """Today and this month show billed requests, tokens, spend, errors, 429s and budgets."""
    _traffic(billing_store, audit_store, clock)
    tenants.set_budgets("acme", [SpendBudget("month", 20_000_000, "USD")])
    page = browse(Role.VIEWER).get("/console/t/acme/").text
    assert text_of(page, "overview-requests-today") == "2"
    assert text_of(page, "overview-tokens-today") == "1,244"
    assert text_of(page, "overview-spend-today") == "1.500001 USD"
    assert text_of(page, "overview-429-today") == "1"
    assert text_of(page, "overview-errors-today") == "1"
    assert 'data-testid="overview-empty"' not in page
    assert text_of(page, "overview-budget-amount") == "20 USD"
    assert "secret-model" not in page


# -- Usage ----------------------------------------------------------------


@pytest.mark.parametrize("role", TENANT_ROLES)
@pytest.mark.parametrize("split", ["model", "key"])
def test_usage_chart_table_and_csv_agree(
    browse: Browse,
    billing_store: MemoryBillingStore,
    audit_store: MemoryAuditStore,
    clock: FakeClock,
    role: Role,
    split: str,
) -> None:
    """The page shows the chart and table; the CSV holds the table's cells, formulas defused."""
    _traffic(billing_store, audit_store, clock)
    browser = browse(role)
    page = browser.get(f"/console/t/acme/usage?split={split}")
    assert page.status_code == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page.text
    assert "<script" not in page.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    rows = table_rows(page.text, "usage-table")
    assert len(rows) == 3
    assert text_of(page.text, "usage-requests") == "3"
    link = html.unescape(
        re.search(r'href="([^"]+)"[^>]*data-testid="usage-csv-link"', page.text)[1]  # type: ignore[index]
    )
    download = browser.get(link)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    cells = list(csv.reader(io.StringIO(download.text)))[1:]
    shown = [[cell.replace(",", "") for cell in row] for row in rows]
    written = [
        [c.removeprefix("'") if c.startswith("'=") else c for c in row] for row in cells
    ]
    assert written == shown
    if split == "model":
        assert any(row[1].startswith("'=cmd") for row in cells)
        assert "&lt;" not in page.text or "<script>" not in page.text


def test_usage_empty_range(browse: Browse) -> None:
    """A range without traffic draws an empty chart and says so."""
    page = browse(Role.ADMIN).get("/console/t/acme/usage").text
    assert 'data-testid="usage-chart-empty"' in page
    assert text_of(page, "usage-empty").startswith("No requests were billed")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2023-01-01&to=2024-01-02", "at most 366 days"),
        ("from=2023-11-14&to=2023-11-13", "must not be before"),
        ("from=%3Cscript%3E", "YYYY-MM-DD"),
        ("split=tenant", "split must be one of model, key"),
    ],
)
@pytest.mark.parametrize("path", ["usage", "usage.csv"])
def test_bad_usage_parameters(
    browse: Browse, query: str, message: str, path: str
) -> None:
    """A bad range or split is a 400 page saying why, never a CSV."""
    response = browse(Role.ADMIN).get(f"/console/t/acme/{path}?{query}")
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert "<script>" not in response.text


def test_usage_range_of_366_days(browse: Browse, clock: FakeClock) -> None:
    """A range of exactly 366 days is shown."""
    last = _now(clock).date()
    first = last - timedelta(days=365)
    page = browse(Role.ADMIN).get(f"/console/t/acme/usage?from={first}&to={last}")
    assert page.status_code == 200
    assert "366 days" in page.text


@pytest.mark.parametrize("path", ["/", "/usage", "/usage.csv"])
@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_other_tenants_pages_are_refused(browse: Browse, path: str, role: Role) -> None:
    """acme's people cannot see globex's overview, usage or CSV."""
    response = browse(role).get(f"/console/t/globex{path}")
    assert response.status_code == 403
    assert "secret-model" not in response.text


# -- Operator -------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
@pytest.mark.parametrize(
    "path", ["/", "/tenants/new", "/tenants/acme", "/tenants/acme/delete", "/prices"]
)
def test_operator_pages_refuse_others(browse: Browse, role: Role, path: str) -> None:
    """Admins and viewers of a tenant get 403 on every operator page."""
    assert browse(role).get(OPERATOR + path).status_code == 403


def test_operator_home_lists_usage(
    browse: Browse,
    billing_store: MemoryBillingStore,
    audit_store: MemoryAuditStore,
    clock: FakeClock,
) -> None:
    """Every tenant is listed with its billed requests and tokens this month."""
    _traffic(billing_store, audit_store, clock)
    page = browse(Role.OPERATOR).get(OPERATOR + "/").text
    rows = {row[0]: row for row in table_rows(page, "tenant-table")}
    assert set(rows) == {"acme", "globex"}
    assert rows["globex"][4:6] == ["1", "14"]


def test_create_tenant_shows_key_once(
    browse: Browse, tenants: TenantManager, audit_store: MemoryAuditStore
) -> None:
    """A new tenant is created with its limits; its key works and is shown once, audited with the operator."""
    browser = browse(Role.OPERATOR)
    form = {
        "id": "initech",
        "rate_limit": "120",
        "token_budget": "5000",
        "max_concurrent_requests": "3",
        "model_allow_list": "m1\nm2",
    }
    made = browser.submit(OPERATOR + "/tenants/new", OPERATOR + "/tenants/new", form)
    assert made.status_code == 201
    key = text_of(made.text, "new-tenant-secret")
    assert tenants.get_by_api_key(key).id == "initech"
    record = tenants.get("initech").record
    assert (record.rate_limit, record.token_budget, record.max_concurrent_requests) == (
        120,
        5000,
        3,
    )
    assert record.model_allow_list == ("m1", "m2")
    assert key not in browser.get(OPERATOR + "/tenants/initech").text
    entries = [e for e in audit_store.all() if e.tenant_id == "initech"]
    assert [(e.action, e.status_code) for e in entries] == [(AuditAction.CREATE, 201)]
    assert entries[0].resource == "tenant/initech by admin-key:admin:0123abcd"
    again = browser.submit(OPERATOR + "/tenants/new", OPERATOR + "/tenants/new", form)
    assert again.status_code == 409
    assert "exists already" in html.unescape(again.text)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "bad id!", "id must be"),
        ("rate_limit", "-1", "whole number"),
        ("token_budget", str(MAX_LIMIT + 1), "between 0"),
    ],
)
def test_create_tenant_refuses_bad_input(
    browse: Browse, tenants: TenantManager, field: str, value: str, message: str
) -> None:
    """A bad field is a 400 naming it; no tenant is created."""
    form = {
        "id": "initech",
        "rate_limit": "1",
        "token_budget": "1",
        "max_concurrent_requests": "0",
    }
    form[field] = value
    before = [r.id for r in tenants.records()]
    response = browse(Role.OPERATOR).submit(
        OPERATOR + "/tenants/new", OPERATOR + "/tenants/new", form
    )
    assert response.status_code == 400
    assert message in text_of(response.text, "operator-error")
    assert [r.id for r in tenants.records()] == before


def test_edit_limits(browse: Browse, tenants: TenantManager) -> None:
    """The limits form changes the record; a bad value changes nothing."""
    browser = browse(Role.OPERATOR)
    page = OPERATOR + "/tenants/acme"
    limits = {
        "form": "limits",
        "rate_limit": str(MAX_LIMIT),
        "token_budget": "0",
        "max_concurrent_requests": "2",
        "model_allow_list": "m9",
    }
    done = browser.submit(page, page, limits)
    assert done.status_code == 200
    assert text_of(done.text, "operator-done") == "Limits saved."
    record = tenants.get("acme").record
    assert (record.rate_limit, record.token_budget, record.max_concurrent_requests) == (
        MAX_LIMIT,
        0,
        2,
    )
    assert record.model_allow_list == ("m9",)
    refused = browser.submit(
        page, page, {**limits, "rate_limit": str(MAX_LIMIT + 1), "token_budget": "7"}
    )
    assert refused.status_code == 400
    assert "rate_limit" in text_of(refused.text, "operator-error")
    assert tenants.get("acme").record == record


def test_edit_budgets(
    browse: Browse, tenants: TenantManager, audit_store: MemoryAuditStore
) -> None:
    """The budgets form replaces the tenant's budgets; a bad one changes nothing."""
    browser = browse(Role.OPERATOR)
    page = OPERATOR + "/tenants/acme"
    done = browser.submit(
        page,
        page,
        {
            "form": "budgets",
            "budget_month_amount": "12.50",
            "budget_month_currency": "USD",
        },
    )
    assert done.status_code == 200
    assert tenants.get("acme").record.spend_budgets == (
        SpendBudget("month", 12_500_000, "USD"),
    )
    assert 'value="12.5"' in done.text
    refused = browser.submit(
        page,
        page,
        {
            "form": "budgets",
            "budget_day_amount": "1",
            "budget_day_currency": "USD",
            "budget_day_timezone": "Mars/Base",
        },
    )
    assert refused.status_code == 400
    assert "day budget" in text_of(refused.text, "operator-error")
    assert tenants.get("acme").record.spend_budgets == (
        SpendBudget("month", 12_500_000, "USD"),
    )
    results = [
        e.status_code
        for e in audit_store.all()
        if e.action is AuditAction.UPDATE
        and e.resource == "tenant/acme/budgets by admin-key:admin:0123abcd"
    ]
    assert 200 in results
    assert 400 in results


def test_delete_needs_confirmation(browse: Browse, tenants: TenantManager) -> None:
    """Deleting asks for the tenant's id; a wrong one deletes nothing."""
    browser = browse(Role.OPERATOR)
    page = OPERATOR + "/tenants/globex/delete"
    wrong = browser.submit(page, page, {"confirm": "acme"})
    assert wrong.status_code == 400
    assert tenants.get("globex").id == "globex"
    done = browser.submit(page, page, {"confirm": "globex"})
    assert done.status_code == 303
    assert done.headers["location"] == OPERATOR + "/"
    with pytest.raises(TenantNotFoundError):
        tenants.get("globex")
    assert browser.get(OPERATOR + "/tenants/globex").status_code == 404


def test_unknown_tenant_settings(browse: Browse) -> None:
    """Settings of a tenant that does not exist are a 404 page."""
    assert browse(Role.OPERATOR).get(OPERATOR + "/tenants/nobody").status_code == 404


def test_viewer_and_admin_cannot_post_operator_forms(
    browse: Browse, tenants: TenantManager
) -> None:
    """Operator forms refuse tenant sessions, changing nothing."""
    for role in (Role.ADMIN, Role.VIEWER):
        response = browse(role).post(
            OPERATOR + "/tenants/acme/delete", {"confirm": "acme"}
        )
        assert response.status_code == 403
    assert tenants.get("acme").id == "acme"


def test_prices_page(
    make_api: Callable[..., object], browse: Browse, clock: FakeClock
) -> None:
    """Without prices the page says so; with a table it lists each model's prices."""
    assert text_of(
        browse(Role.OPERATOR).get(OPERATOR + "/prices").text, "no-prices"
    ).startswith("No price table")


def test_prices_table(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
    clock: FakeClock,
    billing_store: MemoryBillingStore,
) -> None:
    """The price table in force is listed per model, hostile names escaped."""
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    table = PriceTable(
        "USD", {"<b>m1</b>": [ModelPrice(start, 500_000, 1_500_000, 250_000)]}
    )
    api = make_api(meter=TokenMeter(billing_store, clock=clock, prices=table))
    mount_console(api)
    browser = sign_in(Browser(api), sessions, tenants, Role.OPERATOR)
    page = browser.get(OPERATOR + "/prices").text
    assert table_rows(page, "price-table")[0][0] == "<b>m1</b>"
    assert "&lt;b&gt;m1" in page
    assert table_rows(page, "price-table")[0][2] == "0.5 USD"


def _book_browser(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
    book: PriceBook,
) -> Browser:
    api = make_api(prices=book)
    mount_console(api)
    return sign_in(Browser(api), sessions, tenants, Role.OPERATOR)


def test_add_price(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
    clock: FakeClock,
    audit_store: MemoryAuditStore,
) -> None:
    """An operator adds a price from now; a bad amount or a past start changes nothing."""
    store = MemoryPriceStore()
    book = PriceBook(store, clock=clock)
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    store.replace(PriceTable("USD", {"m1": [ModelPrice(start, 1, 1, 1)]}), 0)
    browser = _book_browser(make_api, sessions, tenants, book)
    page = OPERATOR + "/prices"
    done = browser.submit(page, page, {"model": "m2", "input": "0.5", "output": "1.5"})
    assert done.status_code == 200
    assert text_of(done.text, "operator-done") == "Price of m2 added."
    stored = book.current()
    assert stored.version == 2
    assert stored.table is not None
    assert stored.table.models["m2"][0].input == 500_000
    assert stored.table.models["m2"][0].effective_from == _now(clock)
    for bad, message in (
        ({"input": "-1"}, "must not be negative"),
        ({"effective_from": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"model": ""}, "model must be"),
    ):
        form = {"model": "m3", "input": "1", "output": "1", **bad}
        refused = browser.submit(page, page, form)
        assert refused.status_code == 400
        assert message in text_of(refused.text, "operator-error")
        assert book.current() == stored
    entries = [
        (e.resource, e.status_code)
        for e in audit_store.all()
        if e.resource.startswith("prices")
    ]
    assert entries[0] == ("prices/v2 by admin-key:admin:0123abcd", 200)
    assert [status for _, status in entries[1:]] == [400, 400, 400]


def test_prices_from_a_file_are_read_only(
    make_api: Callable[..., AdminAPI],
    sessions: SessionSigner,
    tenants: TenantManager,
) -> None:
    """Prices from a price file are shown without a form, and a POST changes nothing."""
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    fixed = PriceTable("USD", {"m1": [ModelPrice(start, 1, 1, 1)]})
    book = PriceBook(MemoryPriceStore(), fixed=fixed)
    browser = _book_browser(make_api, sessions, tenants, book)
    page = browser.get(OPERATOR + "/prices").text
    assert "price-form" not in page
    assert text_of(page, "prices-read-only").startswith("Prices come from a price file")
    refused = browser.post(
        OPERATOR + "/prices",
        {"csrf": csrf_of(page), "model": "m2", "input": "1", "output": "1"},
    )
    assert refused.status_code == 400
    assert "m2" not in book.current().table.models  # type: ignore[union-attr]


def test_without_a_meter(
    make_api: Callable[..., AdminAPI], sessions: SessionSigner, tenants: TenantManager
) -> None:
    """Without a usage store the pages say so, and the CSV is a 404 page."""
    api = make_api(meter=None)
    mount_console(api)
    admin = sign_in(Browser(api), sessions, tenants, Role.ADMIN)
    assert "overview-no-usage" in admin.get("/console/t/acme/").text
    assert "usage-not-configured" in admin.get("/console/t/acme/usage").text
    assert admin.get("/console/t/acme/usage.csv").status_code == 404
    operator = sign_in(Browser(api), sessions, tenants, Role.OPERATOR)
    assert "no usage store" in operator.get(OPERATOR + "/").text


def test_first_request_names_an_allowed_model(
    browse: Browse, tenants: TenantManager
) -> None:
    """The empty state's curl names the first allowed model, quotes kept out of the shell."""
    tenants.update("acme", model_allow_list=['it\'s "m1"'])
    page = browse(Role.ADMIN).get("/console/t/acme/").text
    command = text_of(page, "overview-first-request")
    assert """-d '{"model": "it\\u0027s \\"m1\\"", """ in command

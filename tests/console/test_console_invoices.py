"""
The invoices page: a row per month with usage, its totals for people, and
downloads byte for byte what ``zerfoo-cloud invoice`` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests import test_invoices
from tests._serving import run_cli
from tests.admin.conftest import SECRET
from tests.console._browser import Browser
from tests.console.conftest import sign_in
from zerfoo_cloud import TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import mount_console
from zerfoo_cloud.sso.roles import Role
from zerfoo_cloud.stores.lmdb import LMDBStores

PRICES = test_invoices.PRICES
billed = test_invoices.billed
DECEMBER = datetime(2026, 12, 20, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def billed_browser(billed: Path) -> Iterator[Browser]:
    """An acme admin's browser on a console over the billed LMDB store."""
    with LMDBStores.open(billed) as stores:
        clock = lambda: DECEMBER  # noqa: E731
        tenants = TenantManager(stores.tenants, limits=stores.limits, clock=clock)
        tenants.create(
            TenantConfig("acme", "zc-acme-0123456789abcdefghijklmnopqr", 5, 5)
        )
        meter = TokenMeter(stores.billing, prices=PRICES, clock=clock, background=False)
        sessions = SessionSigner(SECRET, clock=clock)
        api = AdminAPI(tenants, meter=meter, sessions=sessions, clock=clock)
        mount_console(api)
        yield sign_in(Browser(api), sessions, tenants, Role.ADMIN)
        meter.close()


def test_a_month_with_usage_is_a_row_with_its_total(billed_browser: Browser) -> None:
    """November shows its requests and its total with separators."""
    html = billed_browser.get("/console/t/acme/invoices").text
    assert 'data-month="2026-11"' in html
    assert "2.55 USD" in html
    assert 'data-testid="invoice-requests">4<' in html
    assert "/console/t/acme/invoices/2026-11.csv" in html


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_downloads_are_the_invoice_commands_bytes(
    billed_browser: Browser,
    billed: Path,
    fmt: str,
) -> None:
    """The CSV and JSON equal ``zerfoo-cloud invoice`` with the same prices."""
    prices = str(billed.parent / "prices.json")
    out = billed.parent / f"invoice.{fmt}"
    args = ("--month", "2026-11", "--prices", prices, "--format", fmt, "-o", str(out))
    done = run_cli(billed, "invoice", "acme", *args)
    assert done.returncode == 0, done.stderr
    response = billed_browser.get(f"/console/t/acme/invoices/2026-11.{fmt}")
    assert response.status_code == 200
    assert response.content == out.read_bytes()
    assert response.headers["cache-control"] == "no-store"
    assert "attachment" in response.headers["content-disposition"]


@pytest.mark.parametrize("month", ["2026-13", "26-11", "2026-1", "latest"])
def test_a_bad_month_is_404(billed_browser: Browser, month: str) -> None:
    """Anything but YYYY-MM of a real month: 404."""
    assert (
        billed_browser.get(f"/console/t/acme/invoices/{month}.csv").status_code == 404
    )


def test_no_usage_says_what_to_do(browse: Callable[..., Browser]) -> None:
    """A tenant without usage gets an empty state pointing at the keys."""
    html = browse(Role.VIEWER).get("/console/t/acme/invoices").text
    assert 'data-testid="invoices-empty"' in html
    assert "Keys page" in html


def test_without_a_meter_the_page_says_so(
    tenants: TenantManager, sessions: SessionSigner
) -> None:
    """No usage store: the page explains how to get one."""
    api = AdminAPI(tenants, sessions=sessions)
    mount_console(api)
    browser = sign_in(Browser(api), sessions, tenants, Role.ADMIN)
    html = browser.get("/console/t/acme/invoices").text
    assert 'data-testid="invoices-not-configured"' in html
    assert browser.get("/console/t/acme/invoices/2026-11.csv").status_code == 404

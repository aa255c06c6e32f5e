"""
The web console in a real headless Chromium, against a real server: every
page, a key's life, the usage CSV, a 429 counted, another tenant refused.
Every test fails on any CSP violation or JavaScript error of its pages (the
``page`` fixture).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai
import pytest
from playwright.sync_api import expect

from tests._oidc_provider import OIDCTestProvider, TestUser
from tests.browser._console_pages import (
    TENANT_PAGES,
    count_of,
    provider_user,
    sign_in,
    sign_in_as_operator,
    start_sign_in,
)
from tests.browser._console_server import PROMPTS, say_hello
from tests.browser.conftest import PageProblems

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests._oidc_provider import OIDCTestProvider, TestUser
from tests.browser._console_server import ConsoleServer

pytestmark = pytest.mark.slow

#: Takes a screenshot of a page under a name (see conftest.screenshot).
Screenshot = Callable[["Page", str], None]


@pytest.fixture(scope="module")
def acme_cookies(browser: Browser, server: ConsoleServer) -> list[Any]:
    """The cookies of one SAML sign-in to acme, shared by the module's tests."""
    context = browser.new_context()
    try:
        sign_in(context.new_page(), server, "acme")
        return list(context.cookies())
    finally:
        context.close()


def test_csp_violations_and_script_errors_fail_a_test(
    context: BrowserContext, server: ConsoleServer, acme_cookies: list[Any]
) -> None:
    """
    What the ``page`` fixture fails a test on is seen: an inline script and
    an outside image the console's CSP blocks, and an uncaught error.
    """
    problems = PageProblems()
    page = context.new_page()
    problems.watch(page)
    context.add_cookies(acme_cookies)
    page.goto(server.console("t/acme/"))
    assert problems.lines == []
    blocked = page.expect_console_message(lambda m: "tracker.png" in m.text)
    with blocked, page.expect_event("pageerror"):
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "document.title = 'injected'";
                document.body.append(script);
                const image = document.createElement("img");
                image.src = "https://example.com/tracker.png";
                document.body.append(image);
                setTimeout(() => { throw new Error("boom"); });
            }"""
        )
    assert page.title() != "injected"
    found = "\n".join(problems.lines)
    assert "Executing inline script violates" in found, found
    assert "Loading the image 'https://example.com/tracker.png' violates" in found, (
        found
    )
    assert "uncaught: boom" in found, found


def test_login_page_offers_sso_and_operator_sign_in(
    page: Page, server: ConsoleServer, screenshot: Screenshot
) -> None:
    """A tenant's people get its SAML button; operators get the admin-key form."""
    page.goto(server.console("login?tenant=acme"))
    assert page.get_by_test_id("login-saml").is_visible()
    assert page.get_by_test_id("operator-key").is_visible()
    screenshot(page, "login")


def test_saml_sign_in_lands_on_the_tenants_overview(
    page: Page, server: ConsoleServer
) -> None:
    """The IdP's signed answer opens acme's overview, with acme's traffic."""
    sign_in(page, server, "acme")
    assert page.get_by_test_id("tenant-id").inner_text() == "acme"
    assert (
        page.get_by_test_id("signed-in-as").inner_text().startswith("alice@example.com")
    )
    assert count_of(page, "overview-requests-today") >= len(PROMPTS)


def test_oidc_sign_in_lands_on_the_tenants_overview(
    page: Page, server: ConsoleServer
) -> None:
    """globex's OpenID provider signs its admin in: globex's overview."""
    sign_in(page, server, "globex", "oidc")
    assert page.get_by_test_id("tenant-id").inner_text() == "globex"
    who = page.get_by_test_id("signed-in-as").inner_text()
    assert who == "alice@example.com · admin"


def test_oidc_viewer_reads_keys_but_cannot_change_them(
    page: Page, server: ConsoleServer, oidc_provider: OIDCTestProvider
) -> None:
    """A user of the viewers' group sees globex's keys without a button to change them."""
    bob = TestUser("bob", "bob@example.com", groups=("zc-viewers",))
    with provider_user(oidc_provider, bob):
        sign_in(page, server, "globex", "oidc")
    assert (
        page.get_by_test_id("signed-in-as").inner_text() == "bob@example.com · viewer"
    )
    page.get_by_test_id("nav-keys").click()
    assert page.get_by_test_id("key-table").is_visible()
    assert page.get_by_test_id("create-key").count() == 0
    assert page.get_by_test_id("revoke-key").count() == 0


def test_oidc_user_without_a_role_is_refused(
    page: Page, server: ConsoleServer, oidc_provider: OIDCTestProvider
) -> None:
    """A user none of whose groups is mapped gets a page saying so, and no session."""
    eve = TestUser("eve", "eve@example.com", groups=("everyone",))
    with provider_user(oidc_provider, eve):
        start_sign_in(page, server, "globex", "oidc")
        expect(page.get_by_test_id("login-error")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "zc_session"]
    response = page.goto(server.console("t/globex/"))
    assert response is not None
    assert "/console/login" in page.url


def test_operator_signs_in_with_oidc(
    page: Page, server: ConsoleServer, oidc_provider: OIDCTestProvider
) -> None:
    """The operators' OpenID provider opens the operators' page."""
    olga = TestUser("olga", "olga@example.com", groups=("zc-operators",))
    with provider_user(oidc_provider, olga):
        page.goto(server.console("login"))
        page.get_by_test_id("operator-oidc").click()
        page.wait_for_url(server.console("operator/"))
    assert (
        page.get_by_test_id("signed-in-as").inner_text()
        == "olga@example.com · operator"
    )


def test_a_key_is_created_copied_used_and_revoked(
    page: Page, server: ConsoleServer, acme_cookies: list[Any]
) -> None:
    """
    A new key's secret is shown once and copied by its button; the key works
    through the gateway until it is revoked on the page.
    """
    page.context.add_cookies(acme_cookies)
    page.goto(server.console("t/acme/keys"))
    page.get_by_test_id("key-name-input").fill("ci-runner")
    page.get_by_test_id("create-key-submit").click()
    secret = page.get_by_test_id("new-key-secret").inner_text().strip()
    page.get_by_test_id("copy-key").click()
    expect(page.get_by_test_id("copy-key")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    client = openai.OpenAI(api_key=secret, base_url=server.url + "/v1", max_retries=0)
    assert say_hello(client).usage is not None

    page.goto(server.console("t/acme/keys"))
    assert page.get_by_test_id("new-key-secret").count() == 0
    row = page.get_by_test_id("key-row").filter(has_text="ci-runner")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_test_id("revoke-key").click()
    page.wait_for_url(server.console("t/acme/keys"))
    assert row.get_by_test_id("key-state").inner_text() == "revoked"
    with pytest.raises(openai.AuthenticationError):
        say_hello(client)


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_each_tenant_page_opens(
    page: Page,
    server: ConsoleServer,
    acme_cookies: list[Any],
    screenshot: Screenshot,
    name: str,
) -> None:
    """Each of acme's pages opens from its link in the navigation, with data."""
    shown = TENANT_PAGES[name]
    page.context.add_cookies(acme_cookies)
    page.goto(server.console("t/acme/"))
    page.get_by_test_id(shown.nav).click()
    page.wait_for_url(server.console(f"t/acme/{shown.path}"))
    assert page.get_by_test_id(shown.nav).get_attribute("aria-current") == "page"
    assert page.get_by_test_id("tenant-id").inner_text() == "acme"
    assert page.get_by_test_id(shown.content).is_visible()
    screenshot(page, name)


def test_usage_csv_downloads_what_the_page_shows(
    page: Page, server: ConsoleServer, acme_cookies: list[Any]
) -> None:
    """The CSV link downloads a file whose requests add up to the page's total."""
    page.context.add_cookies(acme_cookies)
    page.goto(server.console("t/acme/usage"))
    shown = count_of(page, "usage-requests")
    assert shown >= len(PROMPTS)
    with page.expect_download() as download:
        page.get_by_test_id("usage-csv-link").click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows
    assert sum(int(row["requests"]) for row in rows) == shown


def test_a_429_is_counted_on_the_overview(page: Page, server: ConsoleServer) -> None:
    """tiny allows one request a minute: its second gets 429, and the overview counts it."""
    sign_in(page, server, "tiny")
    before = count_of(page, "overview-429-today")
    client = server.client("tiny")
    say_hello(client)
    with pytest.raises(openai.RateLimitError):
        say_hello(client)
    deadline = time.monotonic() + 5
    while True:
        page.reload()
        counted = count_of(page, "overview-429-today")
        if counted != before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counted == before + 1


@pytest.mark.parametrize(
    "path",
    [
        "t/globex/",
        "t/globex/usage",
        "t/globex/usage.csv",
        "t/globex/keys",
        "t/globex/audit",
        "t/globex/invoices",
        "operator/",
    ],
)
def test_a_tenant_admin_is_refused_other_tenants_pages(
    page: Page, server: ConsoleServer, acme_cookies: list[Any], path: str
) -> None:
    """acme's admin gets a 403 page, none of the data, on globex's pages and the operators'."""
    page.context.add_cookies(acme_cookies)
    response = page.goto(server.console(path))
    assert response is not None
    assert response.status == 403
    assert page.get_by_test_id("error-message").is_visible()
    data = [shown.content for shown in TENANT_PAGES.values()]
    for test_id in [*data, "tenant-table"]:
        assert page.get_by_test_id(test_id).count() == 0


def test_operator_sees_every_tenant(
    page: Page, server: ConsoleServer, screenshot: Screenshot
) -> None:
    """The admin key opens the operators' page: every tenant, acme's traffic."""
    sign_in_as_operator(page, server)
    rows = page.get_by_test_id("tenant-row")
    ids = {rows.nth(i).get_attribute("data-tenant-id") for i in range(rows.count())}
    assert ids == {"acme", "globex", "tiny"}
    acme = page.locator('[data-testid="tenant-row"][data-tenant-id="acme"]')
    requests = acme.get_by_test_id("tenant-requests-month").inner_text()
    assert int(requests.replace(",", "")) >= len(PROMPTS)
    screenshot(page, "operator")

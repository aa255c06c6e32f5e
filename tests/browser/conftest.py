"""
Fixtures of the browser tests: Debian's Chromium driven by Playwright and a
real server with the console (one of each per module), a
test SAML IdP, and pages that fail their test on any CSP violation or
JavaScript error.

Without Chromium the tests skip with one line saying what to install; under
CI (the ``CI`` variable set) they fail instead, as the Redis and PostgreSQL
tests do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest
from playwright.sync_api import sync_playwright

from tests._oidc_provider import OIDCTestProvider
from tests._serving import ROOT, served_in_thread
from tests.browser._console_server import ConsoleServer, OpenIDClient, console_server
from tests.browser._saml_idp import SignedInUser, idp_app, metadata_xml
from tests.sso._idp import KeyPair, make_keypair

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Response,
        ViewportSize,
    )

#: An environment variable naming the Chromium (or Chrome) to drive.
CHROMIUM_ENV = "ZERFOO_CLOUD_CHROMIUM"
#: Set to 1 to write the console's screenshots into docs/console/.
SCREENSHOTS_ENV = "ZERFOO_CLOUD_SCREENSHOTS"
#: Where the screenshots go.
SCREENSHOTS = ROOT / "docs" / "console"
#: The size of every page (and screenshot).
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: How to get a browser, said by every skipped test.
INSTALL = "Chromium is not installed: apt-get install chromium (or run .ci/run)"


def find_chromium() -> str | None:
    """
    The Chromium to drive: `CHROMIUM_ENV`, else /usr/bin/chromium, else
    ``chromium`` on the PATH; ``None`` when there is none.
    """
    named = os.environ.get(CHROMIUM_ENV)
    candidates = [named] if named else ["/usr/bin/chromium", shutil.which("chromium")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


def missing(what: str) -> NoReturn:
    """Skip the test (fail it when ``CI`` is set): *what* is not available."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: browser tests may not skip)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """
    One headless Chromium for the module (skipped, or failed under CI,
    without Chromium). Not for the session: while Playwright's sync API is
    open, this thread counts as running an event loop, so the tests that
    call ``asyncio.run`` after the browser tests could not.
    """
    chromium = find_chromium()
    if chromium is None:
        named = os.environ.get(CHROMIUM_ENV)
        missing(f"{CHROMIUM_ENV}={named} is not a program" if named else INSTALL)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def idp_keys() -> KeyPair:
    """The test IdP's signing key and certificate."""
    return make_keypair("idp.browser.test")


@pytest.fixture(scope="session")
def idp_user() -> SignedInUser:
    """Who the test IdP signs in (a test may change it, and puts it back)."""
    return SignedInUser()


@pytest.fixture(scope="session")
def idp_url(idp_keys: KeyPair, idp_user: SignedInUser) -> Iterator[str]:
    """The base URL of the test SAML IdP, served in a thread."""
    with served_in_thread(idp_app(idp_keys, idp_user), lifespan="off") as url:
        yield url


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OIDCTestProvider]:
    """The test OpenID provider, served in a thread for the whole session."""
    with OIDCTestProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(
    browser: Browser,
    idp_url: str,
    idp_keys: KeyPair,
    oidc_provider: OIDCTestProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConsoleServer]:
    """
    A running ``zerfoo-cloud serve`` with the console, its tenants signing
    in through the test SAML IdP or the test OpenID provider, and some
    traffic already served (after `browser`, so that a missing Chromium
    skips before a server starts).
    """
    folder = tmp_path_factory.mktemp("console")
    metadata = folder / "idp.xml"
    metadata.write_text(metadata_xml(idp_keys, idp_url + "/sso"))
    assert oidc_provider.client_secret is not None
    client = OpenIDClient(
        oidc_provider.issuer, oidc_provider.client_id, oidc_provider.client_secret
    )
    with console_server(folder, metadata, client) as running:
        yield running


class PageProblems:
    """
    What went wrong in a page, each one line: CSP violations and other
    errors or warnings it logged, uncaught JavaScript errors, and scripts,
    styles, images or fonts that did not load. (A page answered with an
    error status is not one: tests check those themselves.)
    """

    #: The subresources a page needs to look and work right.
    ASSETS = frozenset({"script", "stylesheet", "image", "font"})

    def __init__(self) -> None:
        self.lines: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        """Keep an error or warning the page logged (CSP violations are errors)."""
        if message.type not in {"error", "warning"}:
            return
        if message.text.startswith("Failed to load resource"):
            return  # the page itself, or an asset: `response` judges those
        self.lines.append(f"console {message.type}: {message.text}")

    def page_error(self, error: Exception) -> None:
        """Keep an uncaught JavaScript error."""
        self.lines.append(f"uncaught: {error}")

    def response(self, response: Response) -> None:
        """Keep an asset that failed (the browser's own favicon request aside)."""
        request = response.request
        if response.status < 400 or request.resource_type not in self.ASSETS:
            return
        if request.url.endswith("/favicon.ico"):
            return
        self.lines.append(
            f"{response.status} for {request.resource_type} {request.url}"
        )

    def watch(self, page: Page) -> None:
        """Listen to *page*."""
        page.on("console", self.console)
        page.on("pageerror", self.page_error)
        page.on("response", self.response)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) of 1280x800 that may read the clipboard."""
    made = browser.new_context(
        viewport=VIEWPORT,
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
        timezone_id="UTC",
        locale="en-US",
    )
    made.set_default_timeout(10_000)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """
    A page of *context*; the test fails after its end if any page of the
    context logged an error (a CSP violation included) or threw.
    """
    problems = PageProblems()
    context.on("page", problems.watch)
    opened = context.new_page()
    yield opened
    assert not problems.lines, "\n".join(problems.lines)


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], None]:
    """
    Save a page as docs/console/NAME.png when `SCREENSHOTS_ENV` is 1 (the
    docs change only when asked to).
    """
    wanted = os.environ.get(SCREENSHOTS_ENV) == "1"

    def save(page: Page, name: str) -> None:
        if wanted:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(SCREENSHOTS / f"{name}.png"), animations="disabled"
            )

    return save

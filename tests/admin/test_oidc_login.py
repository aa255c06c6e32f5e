"""
OpenID Connect login through the real routes, against a real provider on
127.0.0.1 (tests/_oidc_provider.py): a browser-like client follows the
redirects and keeps cookies; each attack makes the provider misbehave.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests._oidc_provider import OIDCTestProvider
from zerfoo_cloud import AuditAction, AuditResult, TenantManager
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.sso import RoleMap
from zerfoo_cloud.sso.oidc import ClientSecret, OIDCConfig, OIDCProvider
from zerfoo_cloud.stores.memory import MemoryAuditStore

SERVICE = "https://admin.test"
ROLES = {"zc-admins": "admin", "zc-viewers": "viewer"}


@pytest.fixture(scope="module")
def idp() -> Iterator[OIDCTestProvider]:
    """
    One provider for the module, reset before each test.
    """
    with OIDCTestProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh(idp: OIDCTestProvider) -> None:
    idp.reset()


def config_for(idp: OIDCTestProvider, name: str = "acme", **options: Any) -> OIDCConfig:
    """
    The settings of *idp* for tenant *name* (or the operators).
    """
    operators = name == "_operators"
    settings: dict[str, Any] = {
        "tenant_id": None if operators else name,
        "operators": operators,
        "client_secret": ClientSecret(idp.client_secret or "x"),
        **options,
    }
    roles = settings.pop("roles", {"zc-ops": "operator"} if operators else ROLES)
    return OIDCConfig(
        idp.issuer,
        idp.client_id,
        f"{SERVICE}/sso/oidc/{name}/callback",
        RoleMap(roles),
        **settings,
    )


def _console(url: str) -> bool:
    return urllib.parse.urlsplit(url).path.startswith("/console/")


class Browser:
    """
    Follows redirects between the service (in process) and the provider
    (over the network), keeping cookies as a browser does.
    """

    def __init__(self, app: AdminAPI) -> None:
        self.app = app
        self.cookies = httpx.Cookies()
        self.history: list[httpx.Response] = []

    def go(
        self,
        url: str,
        *,
        until: Callable[[str], bool] | None = None,
        html: bool = False,
    ) -> httpx.Response:
        """
        GET *url* and follow redirects until a non-redirect, or until the
        next location satisfies *until* (by default: the console, which
        this app does not serve; that redirect is returned).
        """
        if until is None:
            until = _console

        async def run() -> httpx.Response:
            mounts = {
                SERVICE: httpx.ASGITransport(
                    app=self.app, client=("203.0.113.9", 5000)
                ),
                "all://127.0.0.1": httpx.AsyncHTTPTransport(),
            }
            headers = {"accept": "text/html"} if html else {}
            async with httpx.AsyncClient(
                mounts=mounts, cookies=self.cookies, headers=headers, timeout=30
            ) as http:
                target = url if "://" in url else SERVICE + url
                for _ in range(10):
                    response = await http.get(target)
                    self.history.append(response)
                    location = response.headers.get("location")
                    if not response.is_redirect or location is None:
                        break
                    target = urllib.parse.urljoin(target, location)
                    if until(target):
                        break
                self.cookies = http.cookies
                return response

        return asyncio.run(run())

    def sign_in(self, name: str = "acme", **options: Any) -> httpx.Response:
        """
        Start at the login route, through the provider, to the callback's
        answer.
        """
        return self.go(f"/sso/oidc/{name}/login", **options)


@pytest.fixture
def make_oidc_api(
    make_api: Callable[..., AdminAPI], idp: OIDCTestProvider
) -> Callable[..., AdminAPI]:
    """
    An app whose tenant acme (and, with *operators*, the operators) signs
    in with the test provider; keyword options go to the acme config.
    """

    def make(*, operators: bool = False, **options: Any) -> AdminAPI:
        providers = [OIDCProvider(config_for(idp, **options))]
        if operators:
            providers.append(OIDCProvider(config_for(idp, "_operators")))
        return make_api(oidc=providers)

    return make


@pytest.fixture
def browser(make_oidc_api: Callable[..., AdminAPI]) -> Browser:
    """
    A browser on the default OpenID app.
    """
    return Browser(make_oidc_api())


def refused(response: httpx.Response, status: int, code: str) -> None:
    """
    Assert a refusal of *status* and error *code*, and no session cookie.
    """
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert "zc_session" not in response.headers.get("set-cookie", "")


def last_entry(audit_store: MemoryAuditStore) -> Any:
    """
    The last audit entry.
    """
    return audit_store.all()[-1]


# -- the happy path -------------------------------------------------------------


def test_login_lands_a_session_for_the_tenant_and_role(
    browser: Browser,
    idp: OIDCTestProvider,
    sessions: SessionSigner,
    audit_store: MemoryAuditStore,
) -> None:
    """The code flow ends in a session of acme with the admin role, redirected to the console."""
    response = browser.sign_in()
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/t/acme/"
    token = browser.cookies.get("zc_session")
    assert token
    session = sessions.verify(token)
    assert (session.tenant_id, session.subject, session.role, session.via) == (
        "acme",
        "alice",
        "admin",
        "oidc",
    )
    assert response.json()["email"] == "alice@example.com"
    # The pending login's cookie is gone: its state is used once.
    assert browser.cookies.get("zc_oidc_request") is None
    assert dict(idp.requests) == {
        "discovery": 1,
        "authorize": 1,
        "token": 1,
        "jwks": 1,
    }
    entry = last_entry(audit_store)
    assert entry.action is AuditAction.AUTH
    assert entry.result is AuditResult.SUCCESS
    assert f"{entry.tenant_id} {entry.status_code} {entry.path}" == (
        "acme 303 /sso/oidc/acme/callback"
    )
    assert entry.resource == "session/acme by sso:alice"
    assert token not in repr(audit_store.all())
    # The session works on the admin API, for acme only.
    cookie = {"Cookie": f"zc_session={token}"}
    again = Browser(browser.app)
    assert again.go("/admin/tenants/globex").status_code == 401
    assert asyncio.run(_get(browser.app, "/admin/tenants/acme", cookie)) == 200
    assert asyncio.run(_get(browser.app, "/admin/tenants/globex", cookie)) == 403


async def _get(app: AdminAPI, path: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=SERVICE) as http:
        return (await http.get(path, headers=headers)).status_code


def test_login_redirect_carries_pkce_state_and_nonce(
    browser: Browser, idp: OIDCTestProvider
) -> None:
    """The authorization request asks for a code with S256 PKCE, a state and a nonce, and sets a scoped cookie."""
    response = browser.go(
        "/sso/oidc/acme/login", until=lambda url: url.startswith(idp.issuer)
    )
    assert response.status_code == 302
    query = urllib.parse.parse_qs(
        urllib.parse.urlsplit(response.headers["location"]).query
    )
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32
    assert len(query["nonce"][0]) >= 32
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == [f"{SERVICE}/sso/oidc/acme/callback"]
    set_cookie = response.headers["set-cookie"].lower()
    assert set_cookie.startswith("zc_oidc_request=")
    for attribute in ("path=/sso/oidc/acme/", "httponly", "secure", "samesite=lax"):
        assert attribute in set_cookie
    assert query["state"][0] not in set_cookie  # the state is signed, not shown


def test_next_is_where_the_session_lands(browser: Browser) -> None:
    """A login started with next= ends there."""
    response = browser.go("/sso/oidc/acme/login?next=/console/t/acme/keys")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/t/acme/keys"


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (("zc-admins",), "admin"),
        (("zc-viewers",), "viewer"),
        (("zc-viewers", "zc-admins"), "admin"),
        (("other", "zc-viewers"), "viewer"),
    ],
)
def test_groups_map_to_roles(
    browser: Browser,
    idp: OIDCTestProvider,
    sessions: SessionSigner,
    groups: tuple[str, ...],
    role: str,
) -> None:
    """Each user gets the strongest role its groups give."""
    idp.user.groups = groups
    response = browser.sign_in()
    assert response.status_code == 303, response.text
    assert sessions.verify(browser.cookies["zc_session"]).role == role


def test_roles_claim_is_read_too(
    browser: Browser, idp: OIDCTestProvider, sessions: SessionSigner
) -> None:
    """Entra ID's app roles arrive in the roles claim, which maps like groups."""
    idp.user.groups = ()
    idp.user.claims = {"roles": ["zc-viewers"]}
    assert browser.sign_in().status_code == 303
    assert sessions.verify(browser.cookies["zc_session"]).role == "viewer"


def test_a_user_without_a_role_is_refused_with_a_page(
    browser: Browser, idp: OIDCTestProvider, audit_store: MemoryAuditStore
) -> None:
    """Groups that map to no role: a 403 page for the browser, and an audit entry naming the user."""
    idp.user.groups = ("zc-nobody",)
    response = browser.sign_in(html=True)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="login-error"' in response.text
    assert 'data-code="no_role"' in response.text
    assert "none of your groups" in response.text
    assert browser.cookies.get("zc_session") is None
    entry = last_entry(audit_store)
    assert (entry.result, entry.status_code) == (AuditResult.DENIED, 403)
    assert entry.resource == "session/acme by sso:alice (no_role)"


def test_operators_sign_in_without_a_tenant(
    make_oidc_api: Callable[..., AdminAPI],
    idp: OIDCTestProvider,
    sessions: SessionSigner,
    audit_store: MemoryAuditStore,
) -> None:
    """The operators' provider gives the operator role, no tenant, and lands on the operator console."""
    browser = Browser(make_oidc_api(operators=True))
    idp.user.groups = ("zc-admins",)
    refused(browser.sign_in("_operators"), 403, "no_role")
    idp.user.groups = ("zc-ops",)
    response = browser.sign_in("_operators")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/operator/"
    session = sessions.verify(browser.cookies["zc_session"])
    assert (session.tenant_id, session.role, session.incarnation) == (
        "",
        "operator",
        "",
    )
    assert last_entry(audit_store).path == "/sso/oidc/_operators/callback"
    # An operator's session is no tenant admin's: the admin API refuses it.
    cookie = {"Cookie": f"zc_session={browser.cookies['zc_session']}"}
    assert asyncio.run(_get(browser.app, "/admin/tenants/acme", cookie)) == 403


def test_a_viewer_may_read_but_not_rotate(
    browser: Browser, idp: OIDCTestProvider
) -> None:
    """A viewer's session reads its tenant and is refused a key rotation."""
    idp.user.groups = ("zc-viewers",)
    browser.sign_in()
    cookie = {"Cookie": f"zc_session={browser.cookies['zc_session']}"}
    assert asyncio.run(_get(browser.app, "/admin/tenants/acme", cookie)) == 200

    async def rotate() -> httpx.Response:
        transport = httpx.ASGITransport(app=browser.app)
        async with httpx.AsyncClient(transport=transport, base_url=SERVICE) as http:
            return await http.post("/admin/tenants/acme/rotate-key", headers=cookie)

    response = asyncio.run(rotate())
    assert response.status_code == 403
    assert "viewer" in response.json()["error"]["message"]


def test_public_client_and_client_secret_post(
    make_api: Callable[..., AdminAPI], sessions: SessionSigner
) -> None:
    """A public client (PKCE only) and client_secret_post both sign in."""
    with OIDCTestProvider(client_secret=None) as public:
        config = config_for(public, client_secret=None, token_auth="none")
        browser = Browser(make_api(oidc=[OIDCProvider(config)]))
        assert browser.sign_in().status_code == 303
    with OIDCTestProvider(client_secret="p@ss word:+") as confidential:
        config = config_for(confidential, token_auth="client_secret_post")
        browser = Browser(make_api(oidc=[OIDCProvider(config)]))
        assert browser.sign_in().status_code == 303
        # Basic auth form-encodes the id and secret first (RFC 6749, 2.3.1).
        config = config_for(confidential)
        browser = Browser(make_api(oidc=[OIDCProvider(config)]))
        assert browser.sign_in().status_code == 303


def test_other_algorithms_of_the_allow_list(
    browser: Browser, idp: OIDCTestProvider
) -> None:
    """ES256 and PS256 tokens are accepted by default."""
    for alg in ("ES256", "PS256"):
        idp.faults.alg = alg
        assert browser.sign_in().status_code == 303, alg


def test_key_rotation_refetches_the_key_set(
    browser: Browser, idp: OIDCTestProvider
) -> None:
    """A token signed by a new key refetches the key set once and is accepted."""
    assert browser.sign_in().status_code == 303
    assert idp.requests["jwks"] == 1
    idp.rotate()
    assert browser.sign_in().status_code == 303
    assert idp.requests["jwks"] == 2
    assert browser.sign_in().status_code == 303
    assert idp.requests["jwks"] == 2
    assert idp.requests["discovery"] == 1


# -- attacks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "value", "status", "code"),
    [
        ("issuer", "https://evil.example", 401, "oidc_issuer"),
        ("audience", "someone-else", 401, "oidc_audience"),
        ("audience", ["zerfoo-console", "someone-else"], 401, "oidc_audience"),
        ("nonce", "wrong", 401, "oidc_nonce"),
        ("nonce", "missing", 401, "oidc_nonce"),
        ("exp", -70, 401, "oidc_expired"),
        ("exp", -3600, 401, "oidc_expired"),
        ("iat", 120, 401, "oidc_not_yet_valid"),
        ("nbf", 120, 401, "oidc_not_yet_valid"),
        ("alg", "none", 401, "oidc_algorithm"),
        ("alg", "HS256-public", 401, "oidc_algorithm"),
        ("kid", "unknown-key", 401, "oidc_unknown_key"),
        ("tamper", True, 401, "oidc_signature"),
        ("at_hash", "wrong", 401, "oidc_at_hash"),
    ],
)
def test_bad_id_tokens_are_refused(
    browser: Browser,
    idp: OIDCTestProvider,
    audit_store: MemoryAuditStore,
    fault: str,
    value: object,
    status: int,
    code: str,
) -> None:
    """Each forged or wrong ID token is refused with the check that failed, audited, no session."""
    setattr(idp.faults, fault, value)
    response = browser.sign_in()
    refused(response, status, code)
    assert browser.cookies.get("zc_session") is None
    entry = last_entry(audit_store)
    assert entry.result in (AuditResult.UNAUTHORIZED, AuditResult.DENIED)
    assert entry.resource == f"session/acme ({code})"


@pytest.mark.parametrize(
    ("fault", "value"),
    [("exp", -50), ("iat", 50), ("nbf", 50), ("at_hash", "missing")],
)
def test_tokens_within_the_clock_skew_are_accepted(
    browser: Browser, idp: OIDCTestProvider, fault: str, value: object
) -> None:
    """60 seconds of skew: just expired or just issued in the future still passes; at_hash is optional."""
    setattr(idp.faults, fault, value)
    assert browser.sign_in().status_code == 303


def test_several_audiences_need_azp(browser: Browser, idp: OIDCTestProvider) -> None:
    """With several audiences, azp must name this client."""
    idp.faults.audience = ["zerfoo-console", "someone-else"]
    idp.faults.azp = "someone-else"
    refused(browser.sign_in(), 401, "oidc_audience")
    idp.faults.azp = "zerfoo-console"
    assert browser.sign_in().status_code == 303


def test_an_algorithm_outside_the_allow_list(
    make_oidc_api: Callable[..., AdminAPI], idp: OIDCTestProvider
) -> None:
    """A provider set to ES256 only refuses an RS256 token."""
    browser = Browser(make_oidc_api(algorithms=("ES256",)))
    refused(browser.sign_in(), 401, "oidc_algorithm")
    idp.faults.alg = "ES256"
    assert browser.sign_in().status_code == 303


def test_unknown_keys_refetch_at_most_once_per_interval(
    browser: Browser, idp: OIDCTestProvider
) -> None:
    """An unknown key id refetches the key set once; another within the interval does not."""
    idp.faults.kid = "unknown-key"
    refused(browser.sign_in(), 401, "oidc_unknown_key")
    assert idp.requests["jwks"] == 2  # the first fetch, and one refetch
    refused(browser.sign_in(), 401, "oidc_unknown_key")
    assert idp.requests["jwks"] == 2


def test_wrong_issuer_in_discovery(browser: Browser, idp: OIDCTestProvider) -> None:
    """A discovery document naming another issuer stops the login before the provider is visited."""
    idp.faults.discovery_issuer = idp.issuer + "/other"
    response = browser.sign_in(html=True)
    assert response.status_code == 502
    assert 'data-code="oidc_discovery"' in response.text
    assert idp.requests["authorize"] == 0


def _callback_url(browser: Browser, name: str = "acme") -> str:
    """
    Sign in up to the provider's redirect back; the callback URL, not followed.
    """
    response = browser.go(
        f"/sso/oidc/{name}/login", until=lambda url: url.startswith(SERVICE)
    )
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{SERVICE}/sso/oidc/{name}/callback?")
    return location


def test_a_replayed_code_is_refused(browser: Browser, idp: OIDCTestProvider) -> None:
    """A callback replayed with its old pending cookie: the code works once only."""
    callback = _callback_url(browser)
    pending = browser.cookies["zc_oidc_request"]
    assert browser.go(callback).status_code == 303
    replay = Browser(browser.app)
    replay.cookies.set("zc_oidc_request", pending, domain="admin.test")
    refused(replay.go(callback), 401, "oidc_token_endpoint")


def test_state_mismatch_and_missing_cookie(
    browser: Browser, audit_store: MemoryAuditStore
) -> None:
    """A callback whose state is not this browser's pending one, or without the cookie, is refused."""
    callback = _callback_url(browser)
    forged = callback.replace("state=", "state=x")
    refused(browser.go(forged), 403, "state_mismatch")
    assert last_entry(audit_store).resource == "session/acme (state_mismatch)"
    stranger = Browser(browser.app)
    refused(stranger.go(callback), 401, "no_pending_login")


def test_an_injected_code_fails_pkce(browser: Browser, idp: OIDCTestProvider) -> None:
    """A code issued to one browser, injected into another's login, fails the PKCE check."""
    victim_callback = _callback_url(browser)
    attacker = Browser(browser.app)
    attacker_callback = _callback_url(attacker)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(victim_callback).query)["code"][
        0
    ]
    mine = urllib.parse.parse_qs(urllib.parse.urlsplit(attacker_callback).query)
    injected = f"{SERVICE}/sso/oidc/acme/callback?" + urllib.parse.urlencode(
        {"code": code, "state": mine["state"][0]}
    )
    refused(attacker.go(injected), 401, "oidc_token_endpoint")


def test_a_hanging_token_endpoint_times_out(
    make_oidc_api: Callable[..., AdminAPI],
    idp: OIDCTestProvider,
    audit_store: MemoryAuditStore,
) -> None:
    """A token endpoint that does not answer within the timeout: 502, audited."""
    browser = Browser(make_oidc_api(timeout=0.5))
    idp.faults.token_delay = 3
    refused(browser.sign_in(), 502, "oidc_timeout")
    assert "did not answer within 0.5 seconds" in browser.history[-1].text
    assert last_entry(audit_store).resource == "session/acme (oidc_timeout)"


def test_oversize_answers_are_refused(
    make_oidc_api: Callable[..., AdminAPI], idp: OIDCTestProvider
) -> None:
    """A token answer or key set over max_response_bytes is refused unread."""
    browser = Browser(make_oidc_api(max_response_bytes=16_384))
    idp.faults.token_padding = 20_000
    refused(browser.sign_in(), 502, "oidc_too_large")
    idp.faults.token_padding = 0
    idp.faults.jwks_padding = 20_000
    refused(browser.sign_in(), 502, "oidc_too_large")


def test_provider_errors_and_foreign_issuers_in_the_callback(browser: Browser) -> None:
    """error= from the provider, or an iss= of another issuer, is refused."""
    callback = _callback_url(browser)
    refused(browser.go(callback + "&error=access_denied"), 401, "oidc_provider_error")
    callback = _callback_url(browser)
    parts = urllib.parse.urlsplit(callback)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query["iss"] = "https://evil.example"
    forged = f"{SERVICE}{parts.path}?{urllib.parse.urlencode(query)}"
    refused(browser.go(forged), 401, "oidc_issuer")


def test_routing(browser: Browser) -> None:
    """Unknown tenants and endpoints are 404, a wrong method 405."""
    refused(browser.go("/sso/oidc/globex/login"), 404, "sso_not_configured")
    refused(browser.go("/sso/oidc/acme/other"), 404, "not_found")
    refused(browser.go("/sso/oidc/acme/login?other=1"), 400, "unknown_parameter")
    refused(
        browser.go("/sso/oidc/acme/login?next=//evil.example"), 400, "invalid_parameter"
    )

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=browser.app)
        async with httpx.AsyncClient(transport=transport, base_url=SERVICE) as http:
            return await http.post("/sso/oidc/acme/callback")

    assert asyncio.run(post()).status_code == 405


def test_a_deleted_tenant_gets_no_session(
    browser: Browser, tenants: TenantManager
) -> None:
    """A tenant deleted while its user signs in gets no session."""
    callback = _callback_url(browser)
    tenants.delete("acme")
    refused(browser.go(callback), 404, "tenant_not_found")


def test_the_pending_login_lasts_ten_minutes(
    browser: Browser, clock: Any, idp: OIDCTestProvider
) -> None:
    """A callback 599 s after the login is accepted; at 600 s it is too late."""
    callback = _callback_url(browser)
    clock.advance(599)
    assert browser.go(callback).status_code == 303
    callback = _callback_url(browser)
    clock.advance(600)
    response = browser.go(callback)
    refused(response, 401, "no_pending_login")
    assert "took too long" in response.json()["error"]["message"]


def test_a_hanging_provider_does_not_hold_the_event_loop(
    make_oidc_api: Callable[..., AdminAPI], idp: OIDCTestProvider
) -> None:
    """While one callback waits on the token endpoint, other requests are answered."""
    browser = Browser(make_oidc_api(timeout=5))
    callback = _callback_url(browser)
    idp.faults.token_delay = 2
    finished: list[str] = []

    async def run() -> None:
        transport = httpx.ASGITransport(app=browser.app)
        async with httpx.AsyncClient(
            transport=transport, base_url=SERVICE, cookies=browser.cookies
        ) as http:

            async def hung() -> None:
                await http.get(callback)
                finished.append("callback")

            async def other() -> None:
                await asyncio.sleep(0.2)
                await http.get("/sso/oidc/acme/other")
                finished.append("other")

            await asyncio.gather(hung(), other())

    asyncio.run(run())
    assert finished == ["other", "callback"]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["soon", True, float("nan"), float("inf")])
def test_time_claims_must_be_numbers(
    browser: Browser, idp: OIDCTestProvider, claim: str, value: object
) -> None:
    """A time claim that is not a finite number is refused, even when signed."""
    idp.user.claims = {claim: value}
    refused(browser.sign_in(), 401, "oidc_claims")

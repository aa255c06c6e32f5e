"""
SAML login for tenant admins: the redirect, the ACS, the session it issues.
"""

from __future__ import annotations

import base64
import urllib.parse
import zlib
from collections.abc import Callable

import attrs
import httpx
import pytest
from lxml import etree

from tests.admin._client import Client
from tests.admin.conftest import SECRET, provider_for
from tests.conftest import FakeClock
from tests.sso._idp import (
    NOW,
    SAML,
    SSO_URL,
    KeyPair,
    assertion_of,
    build_response,
    instant,
    make_keypair,
    q,
    sign,
    to_bytes,
)
from zerfoo_cloud import AuditAction, AuditResult, InvalidConfigError, SAMLProvider
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.memory import MemoryAuditStore


@attrs.frozen
class Pending:
    """
    A login started at /login: what the browser and the IdP were given.
    """

    request_id: str
    relay_state: str
    cookie: str
    set_cookie: str
    location: str


def start(client: Client, tenant: str = "acme", **params: str) -> Pending:
    """
    GET the login route and read the redirect and the cookie.
    """
    response = client.get(f"/sso/saml/{tenant}/login", params=params)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    request_id = etree.fromstring(xml).get("ID")
    assert request_id
    set_cookie = response.headers["set-cookie"]
    name, _, rest = set_cookie.partition("=")
    assert name == "zc_saml_request"
    return Pending(
        request_id, query["RelayState"][0], rest.split(";")[0], set_cookie, location
    )


def idp_answer(
    keys: KeyPair,
    request_id: str | None,
    *,
    subject: str = "alice@example.com",
    session_not_on_or_after: float | None = None,
) -> str:
    """
    The base64 SAMLResponse the IdP posts: one assertion, signed.
    """
    response = build_response(in_response_to=request_id, subject=subject)
    assertion = assertion_of(response)
    if session_not_on_or_after is not None:
        statement = assertion.find(q(SAML, "AuthnStatement"))
        assert statement is not None
        statement.set("SessionNotOnOrAfter", instant(session_not_on_or_after))
    sign(assertion, keys)
    return base64.b64encode(to_bytes(response)).decode()


def post_acs(
    client: Client,
    saml_response: str,
    relay_state: str | None,
    cookie: str | None,
    tenant: str = "acme",
) -> httpx.Response:
    """
    POST the IdP's answer to the ACS as the browser would.
    """
    form = {"SAMLResponse": saml_response}
    if relay_state is not None:
        form["RelayState"] = relay_state
    headers = {} if cookie is None else {"Cookie": f"zc_saml_request={cookie}"}
    return client.post(f"/sso/saml/{tenant}/acs", data=form, headers=headers)


def answer(
    client: Client,
    keys: KeyPair,
    pending: Pending,
    *,
    subject: str = "alice@example.com",
    session_not_on_or_after: float | None = None,
) -> httpx.Response:
    """
    The IdP signs an answer to *pending* and the browser posts it with its cookie.
    """
    saml_response = idp_answer(
        keys,
        pending.request_id,
        subject=subject,
        session_not_on_or_after=session_not_on_or_after,
    )
    return post_acs(client, saml_response, pending.relay_state, pending.cookie)


def attributes_of(set_cookie: str) -> set[str]:
    """
    The attributes of a Set-Cookie header, in any order (their names and
    the SameSite value are case-insensitive).
    """
    return {a.strip().lower() for a in set_cookie.split(";")[1:]}


def cookies(response: httpx.Response) -> dict[str, str]:
    """
    The Set-Cookie headers of *response*, by cookie name.
    """
    return {
        header.partition("=")[0]: header
        for header in response.headers.get_list("set-cookie")
    }


def test_login_redirects_to_the_idp_with_a_remembered_request(client: Client) -> None:
    """Login answers 302 to the IdP with an AuthnRequest and RelayState, remembered in a scoped cookie."""
    pending = start(client)
    assert pending.location.startswith(SSO_URL + "?SAMLRequest=")
    assert 16 <= len(pending.relay_state) <= 80
    assert attributes_of(pending.set_cookie) == {
        "max-age=600",
        "path=/sso/saml/acme/",
        "httponly",
        "secure",
        "samesite=none",
    }
    # Each login is a new request with a new RelayState.
    again = start(client)
    assert again.request_id != pending.request_id
    assert again.relay_state != pending.relay_state


def test_login_end_to_end_issues_a_session_for_that_tenant_only(
    client: Client,
    idp_keys: KeyPair,
    sessions: SessionSigner,
    audit_store: MemoryAuditStore,
    clock: FakeClock,
) -> None:
    """The IdP's signed answer to the issued request yields a session cookie and token for acme only."""
    pending = start(client)
    response = answer(client, idp_keys, pending)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/t/acme/"
    body = response.json()
    assert body["object"] == "session"
    assert (body["role"], body["via"]) == ("admin", "saml")
    assert body["tenant_id"] == "acme"
    assert body["subject"] == "alice@example.com"
    assert body["email"] == "alice@example.com"
    assert body["expires_in"] == 900
    session = sessions.verify(body["token"])
    assert (session.tenant_id, session.subject) == ("acme", "alice@example.com")
    assert session.expires_at == clock.now + 900

    set_cookies = cookies(response)
    assert set_cookies["zc_session"].startswith(f"zc_session={body['token']};")
    assert attributes_of(set_cookies["zc_session"]) == {
        "max-age=900",
        "path=/",
        "httponly",
        "secure",
        "samesite=lax",
    }
    cleared = set_cookies["zc_saml_request"]
    assert cleared.startswith(('zc_saml_request="";', "zc_saml_request=;"))
    assert {"max-age=0", "path=/sso/saml/acme/", "httponly", "secure"} <= (
        attributes_of(cleared)
    )

    entry = audit_store.all()[-1]
    assert (entry.tenant_id, entry.action, entry.result, entry.status_code) == (
        "acme",
        AuditAction.AUTH,
        AuditResult.SUCCESS,
        303,
    )
    assert entry.resource == "session/acme by sso:alice@example.com"
    assert body["token"] not in repr(audit_store.all())

    cookie = {"Cookie": f"zc_session={body['token']}"}
    assert client.get("/admin/tenants/acme", headers=cookie).status_code == 200
    assert client.get("/admin/tenants/globex", headers=cookie).status_code == 403
    assert client.get("/admin/tenants", headers=cookie).status_code == 403
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/admin/tenants/acme/usage", headers=bearer).status_code == 200


def test_replayed_response_is_refused(
    client: Client, idp_keys: KeyPair, audit_store: MemoryAuditStore
) -> None:
    """Posting the same signed answer twice, cookie and all, is refused with 403 the second time, audited as denied."""
    pending = start(client)
    answer = idp_answer(idp_keys, pending.request_id)
    first = post_acs(client, answer, pending.relay_state, pending.cookie)
    assert first.status_code == 303
    replay = post_acs(client, answer, pending.relay_state, pending.cookie)
    assert replay.status_code == 403
    error = replay.json()["error"]
    assert error["code"] == "saml_replay"
    assert "already used" in error["message"]
    assert "zc_session" not in cookies(replay)
    entry = audit_store.all()[-1]
    assert (entry.action, entry.result, entry.status_code) == (
        AuditAction.AUTH,
        AuditResult.DENIED,
        403,
    )


def test_relay_state_must_match_the_pending_login(
    client: Client, idp_keys: KeyPair
) -> None:
    """A RelayState other than the one sent to the IdP, or none, is refused with 403."""
    pending = start(client)
    answer = idp_answer(idp_keys, pending.request_id)
    other = start(client)
    for relay_state in (other.relay_state, "", None, pending.relay_state + "x"):
        response = post_acs(client, answer, relay_state, pending.cookie)
        assert response.status_code == 403, relay_state
        assert response.json()["error"]["code"] == "relay_state_mismatch"
    # The answer was not spent by the refusals.
    assert (
        post_acs(client, answer, pending.relay_state, pending.cookie).status_code == 303
    )


def test_unsolicited_and_foreign_answers_are_refused(
    client: Client, idp_keys: KeyPair, audit_store: MemoryAuditStore
) -> None:
    """Without the request cookie (IdP-initiated or another browser) the ACS refuses with 401."""
    pending = start(client)
    answer = idp_answer(idp_keys, pending.request_id)
    response = post_acs(client, answer, pending.relay_state, None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_pending_login"
    assert "start again at /sso/saml/acme/login" in response.json()["error"]["message"]
    assert audit_store.all()[-1].result == AuditResult.UNAUTHORIZED
    forged = SessionSigner(b"x" * 32)
    from zerfoo_cloud.http.admin._sessions import state_codec

    fake = state_codec(forged, "saml-request").dumps(
        {
            "t": "acme",
            "r": pending.request_id,
            "s": pending.relay_state,
            "n": "",
            "e": NOW + 60,
        }
    )
    assert post_acs(client, answer, pending.relay_state, fake).status_code == 401
    # A session token is not a pending login.
    token = SessionSigner(SECRET).issue("acme", "alice", incarnation="i1")
    assert post_acs(client, answer, pending.relay_state, token).status_code == 401


def test_answer_to_another_request_is_refused(
    client: Client, idp_keys: KeyPair
) -> None:
    """A signed answer whose InResponseTo is not the pending request is refused with 403."""
    pending = start(client)
    other = start(client)
    response = post_acs(
        client,
        idp_answer(idp_keys, other.request_id),
        pending.relay_state,
        pending.cookie,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "saml_in_response_to"
    unsolicited = post_acs(
        client, idp_answer(idp_keys, None), pending.relay_state, pending.cookie
    )
    assert unsolicited.status_code == 403


def test_a_forged_signature_is_401(client: Client) -> None:
    """An answer signed by a key the metadata does not pin is refused with 401 naming the check."""
    attacker = make_keypair("idp.example.test")
    pending = start(client)
    response = answer(client, attacker, pending)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "saml_signature"
    garbage = post_acs(client, "not base64!", pending.relay_state, pending.cookie)
    assert garbage.status_code == 401
    assert garbage.json()["error"]["code"] == "saml_parse"


def test_pending_login_expires_after_ten_minutes(
    client: Client, idp_keys: KeyPair, clock: FakeClock
) -> None:
    """The request cookie is honoured for 600 seconds and refused from then on."""
    pending = start(client)
    clock.advance(600)
    response = answer(client, idp_keys, pending)
    assert response.status_code == 401
    assert "took too long" in response.json()["error"]["message"]


def test_pending_login_of_one_tenant_is_refused_at_another(
    make_api: Callable[..., AdminAPI], idp_keys: KeyPair, clock: FakeClock
) -> None:
    """A login started for acme cannot be finished at globex's ACS."""
    api = make_api(
        sso={
            "acme": provider_for("acme", idp_keys, clock),
            "globex": provider_for("globex", idp_keys, clock),
        }
    )
    client = Client(api)
    pending = start(client, "acme")
    response = post_acs(
        client,
        idp_answer(idp_keys, pending.request_id),
        pending.relay_state,
        pending.cookie,
        tenant="globex",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_tenant"


def test_next_redirects_after_login(client: Client, idp_keys: KeyPair) -> None:
    """With next= at login, the ACS answers 303 to that path, cookie and body included."""
    pending = start(client, next="/admin/tenants/acme")
    response = answer(client, idp_keys, pending)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/tenants/acme"
    assert "zc_session" in cookies(response)
    assert response.json()["tenant_id"] == "acme"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "relative",
        "/a b",
        "/" + "a" * 512,
    ],
)
def test_next_must_be_a_local_path(client: Client, target: str) -> None:
    """next must be a path on this server of at most 512 characters (no open redirect)."""
    response = client.get("/sso/saml/acme/login", params={"next": target})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "next"


def test_next_of_512_characters_is_kept(client: Client) -> None:
    """A next path of exactly 512 characters is accepted."""
    assert start(client, next="/" + "a" * 511).request_id


def test_session_ends_with_the_idps_session(
    client: Client, idp_keys: KeyPair, sessions: SessionSigner
) -> None:
    """An IdP SessionNotOnOrAfter sooner than the ttl ends the session then."""
    pending = start(client)
    response = answer(client, idp_keys, pending, session_not_on_or_after=NOW + 120)
    assert response.json()["expires_in"] == 120
    assert sessions.verify(response.json()["token"]).expires_at == NOW + 120
    assert "Max-Age=120;" in cookies(response)["zc_session"]


def test_overlong_subject_is_refused(client: Client, idp_keys: KeyPair) -> None:
    """A NameID longer than a session can carry is refused with 403."""
    pending = start(client)
    response = answer(client, idp_keys, pending, subject="a" * 600)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_subject"


def test_acs_form_errors(
    make_api: Callable[..., AdminAPI], audit_store: MemoryAuditStore
) -> None:
    """A form without SAMLResponse is 400, a non-ASCII body 400, a body over max_body 413; all audited."""
    client = Client(make_api(max_body=2048))
    pending = start(client)
    headers = {"Cookie": f"zc_saml_request={pending.cookie}"}
    missing = client.post(
        "/sso/saml/acme/acs", data={"RelayState": "x"}, headers=headers
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "SAMLResponse"
    binary = client.post("/sso/saml/acme/acs", content=b"\xff\xfe", headers=headers)
    assert binary.status_code == 400
    twice = client.post(
        "/sso/saml/acme/acs", content=b"SAMLResponse=a&SAMLResponse=b", headers=headers
    )
    assert twice.status_code == 400
    big = client.post(
        "/sso/saml/acme/acs", data={"SAMLResponse": "A" * 2048}, headers=headers
    )
    assert big.status_code == 413
    assert [e.status_code for e in audit_store.all()[-4:]] == [400, 400, 400, 413]
    assert all(e.action == AuditAction.AUTH for e in audit_store.all()[-4:])


def test_metadata_and_routing(client: Client) -> None:
    """Metadata is the SP's XML; unknown tenants and endpoints are 404, wrong methods 405."""
    metadata = client.get("/sso/saml/acme/metadata")
    assert metadata.status_code == 200
    assert metadata.headers["content-type"] == "application/samlmetadata+xml"
    assert b"EntityDescriptor" in metadata.content
    for path in (
        "/sso/saml/globex/login",
        "/sso/saml/nobody/metadata",
        "/sso/saml/acme/logout",
        "/sso/saml/acme",
        "/sso/saml/acme/login/x",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
    wrong = client.get("/sso/saml/acme/acs")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert client.post("/sso/saml/acme/login").headers["allow"] == "GET"
    assert client.get("/sso/saml/acme/login?other=1").status_code == 400


def test_sso_configuration_is_checked_up_front(
    make_api: Callable[..., AdminAPI], idp_keys: KeyPair, clock: FakeClock
) -> None:
    """SSO needs sessions, providers filed under their own tenant, and SP settings."""
    acme = provider_for("acme", idp_keys, clock)
    with pytest.raises(InvalidConfigError, match="sessions") as info:
        make_api(sessions=None, sso={"acme": acme})
    assert info.value.field == "sessions"
    with pytest.raises(InvalidConfigError, match="is for tenant 'acme'"):
        make_api(sso={"globex": acme})
    from tests.sso._idp import metadata_for

    bare = SAMLProvider(metadata_for(idp_keys), "acme")
    with pytest.raises(InvalidConfigError, match="sp_entity_id"):
        make_api(sso={"acme": bare})
    # Without SSO the routes do not exist.
    assert Client(make_api(sso={})).get("/sso/saml/acme/login").status_code == 404

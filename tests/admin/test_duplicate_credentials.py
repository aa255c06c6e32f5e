"""
A request that sends a credential twice (two Authorization headers, two
x-api-key headers, two session cookies) is refused with 400 on /admin and
the SSO endpoints, and audited: readers that take the first and readers that
take the last must never see two different callers.
"""

from __future__ import annotations

import json

import pytest

from tests.admin._client import drive, http_scope
from tests.admin.conftest import ADMIN_KEY, issue_session
from zerfoo_cloud import AuditAction, AuditResult, TenantManager
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.memory import MemoryAuditStore

ADMIN = b"Bearer " + ADMIN_KEY.encode()


def answer(
    api: AdminAPI, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, object]]:
    """
    The status and JSON body *api* answers to a raw request.
    """
    sent = drive(api, http_scope(method, path, headers))
    body = b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )
    return sent[0]["status"], json.loads(body) if body else {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/tenants/acme"),
        ("POST", "/admin/tenants/acme/rotate-key"),
        ("GET", "/admin/tenants"),
        ("GET", "/sso/saml/acme/login"),
        ("POST", "/sso/saml/acme/acs"),
    ],
)
def test_two_authorization_headers_are_400_and_audited(
    api: AdminAPI,
    sessions: SessionSigner,
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
    method: str,
    path: str,
) -> None:
    """The admin key first and a session last, or the other way round: 400, nothing done, one auth entry."""
    session = b"Bearer " + issue_session(sessions, tenants).encode()
    key_before = tenants.get("acme").record.key_hash
    for first, last in ((ADMIN, session), (session, ADMIN)):
        before = len(audit_store.all())
        status, body = answer(
            api, method, path, [(b"authorization", first), (b"Authorization", last)]
        )
        assert status == 400
        error = body["error"]
        assert isinstance(error, dict)
        assert error["code"] == "duplicate_credentials"
        assert error["param"] == "authorization"
        assert set(error) == {"message", "type", "param", "code"}
        entries = audit_store.all()[before:]
        assert len(entries) == 1
        assert (entries[0].action, entries[0].result, entries[0].status_code) == (
            AuditAction.AUTH,
            AuditResult.ERROR,
            400,
        )
        assert ADMIN_KEY not in repr(entries[0])
    assert tenants.get("acme").record.key_hash == key_before


def test_one_authorization_header_still_works(api: AdminAPI) -> None:
    """The limit: exactly one Authorization header is served."""
    status, _ = answer(api, "GET", "/admin/tenants/acme", [(b"authorization", ADMIN)])
    assert status == 200


def test_two_x_api_key_headers_are_400(api: AdminAPI) -> None:
    """x-api-key sent twice is refused too, even beside one good Authorization."""
    status, body = answer(
        api,
        "GET",
        "/admin/tenants/acme",
        [(b"authorization", ADMIN), (b"x-api-key", b"a"), (b"x-api-key", b"b")],
    )
    assert status == 400
    assert body["error"]["param"] == "x-api-key"  # type: ignore[index]


@pytest.mark.parametrize(
    "cookies",
    [
        [b"zc_session=A; zc_session=B"],
        [b"zc_session=A", b"zc_session=B"],
        [b"zc_saml_request=A; other=1", b"zc_saml_request=B"],
    ],
)
def test_a_credential_cookie_sent_twice_is_400(
    api: AdminAPI, audit_store: MemoryAuditStore, cookies: list[bytes]
) -> None:
    """Two session (or pending-login) cookies, in one Cookie header or two, are 400 and audited."""
    headers = [(b"cookie", c) for c in cookies]
    for path in ("/admin/tenants/acme", "/sso/saml/acme/acs"):
        method = "POST" if path.endswith("acs") else "GET"
        status, body = answer(api, method, path, headers)
        assert status == 400
        assert body["error"]["code"] == "duplicate_credentials"  # type: ignore[index]
        assert audit_store.all()[-1].action == AuditAction.AUTH


def test_cookies_split_over_two_headers_are_read(
    api: AdminAPI, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """Other cookies in a second Cookie header (as HTTP/2 sends them) do not hide the session."""
    token = issue_session(sessions, tenants).encode()
    status, _ = answer(
        api,
        "GET",
        "/admin/tenants/acme",
        [(b"cookie", b"theme=dark"), (b"cookie", b"zc_session=" + token)],
    )
    assert status == 200

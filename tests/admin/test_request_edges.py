"""
Hostile and odd requests to the admin API and the ACS, now that Starlette
routes them and python-multipart reads their forms: each gets the answer
the API promises, audited like any other call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import httpx
import pytest

from tests.admin._client import Client
from tests.admin.conftest import SECRET, admin_headers, issue_session
from tests.admin.test_sso_login import start
from tests.conftest import FakeClock
from zerfoo_cloud import AuditAction, SessionError, TenantConfig, TenantManager
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.memory import MemoryAuditStore


def _acs(client: Client, *, content: bytes, content_type: str | None) -> httpx.Response:
    pending = start(client)
    headers = {"Cookie": f"zc_saml_request={pending.cookie}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post("/sso/saml/acme/acs", content=content, headers=headers)


def _fields(count: int) -> bytes:
    return "&".join(f"f{i}=x" for i in range(count)).encode()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        # 32 fields are read (and lack SAMLResponse); 33 are refused unread.
        (_fields(32), "application/x-www-form-urlencoded", 400, "invalid_request"),
        (_fields(33), "application/x-www-form-urlencoded", 400, "invalid_request"),
        # No Content-Type is read as URL-encoded; a bad escape stays as it is.
        (b"SAMLResponse=%ZZ&RelayState", None, 403, "relay_state_mismatch"),
        (b"\xc3\xa9=1", "application/x-www-form-urlencoded", 400, "invalid_request"),
        # A multipart body is read as URL-encoded too: its parts are no fields.
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 400, "invalid_request"),
        (
            (
                b'--x\r\nContent-Disposition: form-data; name="SAMLResponse"; '
                b'filename="a.xml"\r\n\r\n<x/>\r\n--x--\r\n'
            ),
            "multipart/form-data; boundary=x",
            400,
            "invalid_request",
        ),
        (b"SAMLResponse=a;RelayState=b", None, 403, "relay_state_mismatch"),
        (b"SAMLResponse=a&&RelayState=b&RelayState=c", None, 400, "invalid_request"),
    ],
)
def test_malformed_and_oversized_forms_are_refused_and_audited(
    make_api: Callable[..., AdminAPI],
    audit_store: MemoryAuditStore,
    content: bytes,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    """Too many fields, non-ASCII, multipart, files and repeats are refused, audited as auth."""
    client = Client(make_api())
    response = _acs(client, content=content, content_type=content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    entry = audit_store.all()[-1]
    assert (entry.action, entry.status_code) == (AuditAction.AUTH, status)


def test_a_multipart_part_never_becomes_a_field(
    make_api: Callable[..., AdminAPI],
) -> None:
    """The ACS reads URL-encoded forms only (the HTTP-POST binding): a part named SAMLResponse is not one."""
    client = Client(make_api())
    body = (
        b'--x\r\nContent-Disposition: form-data; name="SAMLResponse"\r\n\r\n'
        b"PHNhbWw+\r\n--x--\r\n"
    )
    response = _acs(
        client, content=body, content_type="multipart/form-data; boundary=x"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "SAMLResponse"


def test_a_form_over_max_body_is_413_before_parsing(
    make_api: Callable[..., AdminAPI], audit_store: MemoryAuditStore
) -> None:
    """A body one byte over max_body is 413, at max_body it is read."""
    client = Client(make_api(max_body=200))
    head = b'--x\r\nContent-Disposition: form-data; name="RelayState"\r\n\r\n'
    tail = b"\r\n--x--\r\n"
    filler = b"a" * (200 - len(head) - len(tail))
    kind = "multipart/form-data; boundary=x"
    at_limit = _acs(client, content=head + filler + tail, content_type=kind)
    assert at_limit.status_code == 400  # read: no SAMLResponse
    over = _acs(client, content=head + filler + b"a" + tail, content_type=kind)
    assert over.status_code == 413
    assert audit_store.all()[-1].status_code == 413


def _old_token(payload: dict[str, object], secret: bytes, purpose: str) -> str:
    """A token as the hand-written signer made it before itsdangerous signed them."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    key = hmac.digest(secret, b"zerfoo-cloud/" + purpose.encode(), "sha256")
    head = "v1." + b64(
        json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    )
    return head + "." + b64(hmac.digest(key, head.encode(), hashlib.sha256))


def test_tokens_signed_before_stay_valid_and_are_made_the_same(
    clock: FakeClock,
) -> None:
    """itsdangerous signs byte for byte as the earlier signer did (plus the
    issue time): live sessions survive an upgrade, as issued at time 0."""
    signer = SessionSigner(SECRET, ttl=600, clock=clock)
    payload = {"t": "acme", "s": "alice", "i": "i1", "e": clock.now + 600}
    old = _old_token(payload, SECRET, "session")
    assert signer.verify(old).subject == "alice"
    assert signer.verify(old).issued_at == 0.0
    assert signer.issue("acme", "alice", incarnation="i1") == _old_token(
        {**payload, "a": clock.now}, SECRET, "session"
    )
    with pytest.raises(SessionError) as info:
        signer.verify(_old_token(payload, SECRET, "saml-request"))
    assert info.value.reason == "signature"


def test_a_signature_in_another_base64_spelling_is_malformed(clock: FakeClock) -> None:
    """Flipping the unused low bits of the signature's last character is refused."""
    signer = SessionSigner(SECRET, clock=clock)
    token = signer.issue("acme", "alice", incarnation="i1")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # 32 bytes are 43 characters: the last carries 4 bits and 2 padding bits.
    twin = token[:-1] + alphabet[last ^ 1]
    with pytest.raises(SessionError) as info:
        signer.verify(twin)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/admin/tenants/acme/%75sage", 200, None),  # segments are decoded
        ("/admin/tenants/acme/", 200, None),  # the tenant, as before
        ("/admin/tenants/", 404, "not_found"),
        ("/admin/tenants/ac%2Fme", 404, "tenant_not_found"),  # %2F stays inside
        ("/admin/tenants/acme/usage/extra", 404, "not_found"),
        ("/admin", 404, "not_found"),
    ],
)
def test_paths_route_on_decoded_segments(
    client: Client, path: str, status: int, code: str | None
) -> None:
    """Routing sees decoded segments, an encoded slash stays in its segment, no slash redirects."""
    response = client.get(path, headers=admin_headers())
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("method", ["HEAD", "PUT", "BREW"])
def test_methods_a_route_lacks_are_405_in_json(client: Client, method: str) -> None:
    """HEAD is not GET, and unknown methods get the JSON 405 with Allow."""
    response = client.request(method, "/admin/tenants", headers=admin_headers())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_unauthenticated_unknown_routes_are_401_not_404(
    client: Client, audit_store: MemoryAuditStore
) -> None:
    """Starlette's default route still authenticates first: a stranger learns no routes."""
    response = client.get("/admin/nothing-here")
    assert response.status_code == 401
    assert audit_store.all()[-1].action == AuditAction.AUTH


def test_a_session_of_a_deleted_then_recreated_tenant_is_revoked_by_cookie(
    client: Client,
    sessions: SessionSigner,
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
) -> None:
    """The cookie path checks the incarnation as the bearer path does."""
    token = issue_session(sessions, tenants)
    record = tenants.get("acme").record
    tenants.delete("acme")
    tenants.create(
        TenantConfig(
            "acme", "zc-acme-again-0123456789abcdefghij", record.rate_limit, 10
        )
    )
    response = client.get(
        "/admin/tenants/acme", headers={"Cookie": f"zc_session={token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_revoked"
    assert audit_store.all()[-1].action == AuditAction.AUTH


@pytest.mark.parametrize(
    ("count", "status", "code"),
    [(32, 400, "unknown_parameter"), (33, 400, "invalid_request")],
)
def test_query_strings_over_32_fields_are_refused_unread(
    client: Client, count: int, status: int, code: str
) -> None:
    """32 query fields are read (and checked); the 33rd makes the whole query 400."""
    query = "&".join(f"f{i}=1" for i in range(count))
    response = client.get(f"/admin/tenants/acme/usage?{query}", headers=admin_headers())
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/sso/saml//login", "sso_not_configured"),
        ("/sso/saml/acme/logout", "not_found"),
        ("/sso/other", "not_found"),
    ],
)
def test_unrouted_sso_paths(client: Client, path: str, code: str) -> None:
    """SSO paths no route matches are 404 with the code the old router gave."""
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == code


def test_a_repeated_credential_on_an_unrouted_sso_path_is_400(
    client: Client, audit_store: MemoryAuditStore
) -> None:
    """The duplicate-credential check runs before routing decides there is nothing here."""
    response = client.get(
        "/sso/nothing", headers=[("x-api-key", "a"), ("x-api-key", "b")]
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "duplicate_credentials"
    assert audit_store.all()[-1].action == AuditAction.AUTH

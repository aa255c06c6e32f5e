"""
The key routes of the admin API: create (shown once), list (never a key),
revoke and rotate with a grace; each audited; admin key only but for the
list; bad input a 400 that changes nothing.
"""

from __future__ import annotations

import pytest

from tests.admin._client import Client
from tests.admin.conftest import ACME_KEY, admin_headers, issue_session
from tests.conftest import FakeClock
from zerfoo_cloud import AuditAction, TenantManager, TenantNotFoundError
from zerfoo_cloud.http.admin import SessionSigner
from zerfoo_cloud.stores.memory import MemoryAuditStore

ADMIN = admin_headers()
KEYS = "/admin/tenants/acme/keys"


def _works(tenants: TenantManager, key: str) -> bool:
    try:
        tenants.get_by_api_key(key)
    except TenantNotFoundError:
        return False
    return True


def test_create_list_rotate_revoke(
    client: Client,
    tenants: TenantManager,
    clock: FakeClock,
    audit_store: MemoryAuditStore,
) -> None:
    """The life of a key through the API, each call audited with the key id in its path."""
    made = client.post(
        KEYS,
        json={"name": "ci", "expires_in": 86_400, "model_scope": ["m1"]},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["api_key"]
    assert body["object"] == "tenant.api_key"
    assert body["state"] == "expiring"
    assert body["model_scope"] == ["m1"]
    assert made.headers["location"] == f"{KEYS}/{body['id']}"
    assert tenants.get_by_api_key(secret).key_id == body["id"]
    listed = client.get(KEYS, headers=ADMIN)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["data"]][1:] == [body["id"]]
    assert secret not in listed.text
    assert ACME_KEY not in listed.text
    rotated = client.post(
        f"{KEYS}/{body['id']}/rotate", json={"grace": 60}, headers=ADMIN
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["old_key"]["expires_at"] is not None
    assert _works(tenants, secret)
    assert _works(tenants, new["api_key"])
    clock.advance(60)
    assert not _works(tenants, secret)
    assert _works(tenants, new["api_key"])
    revoked = client.request("DELETE", f"{KEYS}/{new['id']}", headers=ADMIN)
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert not _works(tenants, new["api_key"])
    assert _works(tenants, ACME_KEY)
    entries = [
        e for e in audit_store.all() if e.resource.startswith("tenant/acme/keys")
    ]
    assert [(e.action, e.status_code) for e in entries] == [
        (AuditAction.CREATE, 201),
        (AuditAction.LIST, 200),
        (AuditAction.UPDATE, 200),
        (AuditAction.DELETE, 200),
    ]
    assert entries[2].path == f"{KEYS}/{body['id']}/rotate"
    for entry in audit_store.all():
        assert secret not in repr(entry)
        assert new["api_key"] not in repr(entry)


def test_rotation_without_a_body_revokes_at_once(
    client: Client, tenants: TenantManager
) -> None:
    """No body (grace 0): the old key stops in the same step."""
    first = client.get(KEYS, headers=ADMIN).json()["data"][0]
    rotated = client.post(f"{KEYS}/{first['id']}/rotate", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["old_key"]["state"] == "revoked"
    assert not _works(tenants, ACME_KEY)
    assert _works(tenants, rotated.json()["api_key"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", KEYS, {"name": "bad\u0007"}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x" * 101}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "expires_in": 0}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "expires_in": 1e308}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "expires_in": "1d"}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "model_scope": "m1"}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "secret": "y"}, 400, "unknown_field"),
        ("POST", KEYS, {}, 400, "missing_field"),
        ("POST", KEYS, {"name": "x", "rate_limit": 61}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "token_budget": -1}, 400, "invalid_field"),
        ("POST", KEYS, {"name": "x", "token_budget": 1.5}, 400, "invalid_field"),
        ("PATCH", f"{KEYS}/k-0000000000000000", {"name": "y"}, 404, "key_not_found"),
        ("POST", "/admin/tenants/nobody/keys", {"name": "x"}, 404, "tenant_not_found"),
        ("DELETE", f"{KEYS}/k-0000000000000000", None, 404, "key_not_found"),
        ("POST", f"{KEYS}/k-0000000000000000/rotate", None, 404, "key_not_found"),
        (
            "POST",
            f"{KEYS}/k-0000000000000000/rotate",
            {"grace": -1},
            400,
            "invalid_field",
        ),
        (
            "POST",
            f"{KEYS}/k-0000000000000000/rotate",
            {"grace": 2_592_001},
            400,
            "invalid_field",
        ),
    ],
)
def test_bad_requests_change_nothing(
    client: Client,
    tenants: TenantManager,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    code: str,
) -> None:
    """Each bad request gets its status and code; the keys stay as they were."""
    before = tenants.list_keys("acme")
    response = client.request(method, path, json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert tenants.list_keys("acme") == before


def test_a_session_lists_its_keys_but_changes_none(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A tenant's session may list its keys; creating, revoking and rotating need the admin key."""
    headers = {
        "authorization": f"Bearer {issue_session(sessions, tenants, 'acme', 'alice')}"
    }
    assert client.get(KEYS, headers=headers).status_code == 200
    first = tenants.list_keys("acme")[0].id
    for method, path, body in (
        ("POST", KEYS, {"name": "x"}),
        ("PATCH", f"{KEYS}/{first}", {"name": "x"}),
        ("DELETE", f"{KEYS}/{first}", None),
        ("POST", f"{KEYS}/{first}/rotate", None),
    ):
        assert (
            client.request(method, path, json=body, headers=headers).status_code == 403
        )
    assert len(tenants.list_keys("acme")) == 1
    assert _works(tenants, ACME_KEY)


def test_a_session_cannot_touch_another_tenants_keys(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A session for acme gets 403 on every key route of globex, listing included."""
    headers = {
        "authorization": f"Bearer {issue_session(sessions, tenants, 'acme', 'alice')}"
    }
    other = "/admin/tenants/globex/keys"
    first = tenants.list_keys("globex")[0].id
    for method, path, body in (
        ("GET", other, None),
        ("POST", other, {"name": "x"}),
        ("DELETE", f"{other}/{first}", None),
        ("POST", f"{other}/{first}/rotate", None),
    ):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path)
        assert first not in response.text
    assert len(tenants.list_keys("globex")) == 1


def test_keys_with_their_own_limits(
    client: Client, tenants: TenantManager, audit_store: MemoryAuditStore
) -> None:
    """A key is created with limits within the tenant's, changed by PATCH, and every view shows them; a limit above the tenant's is a 400 naming it, changing nothing."""
    made = client.post(
        KEYS,
        json={"name": "ci", "rate_limit": 60, "max_concurrent_requests": 2},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert (key["rate_limit"], key["token_budget"], key["max_concurrent_requests"]) == (
        60,
        0,
        2,
    )
    path = f"{KEYS}/{key['id']}"
    over = client.request("PATCH", path, json={"token_budget": 10_001}, headers=ADMIN)
    assert over.status_code == 400
    assert over.json()["error"]["param"] == "token_budget"
    assert "10000" in over.json()["error"]["message"]
    assert tenants.list_keys("acme")[-1].token_budget == 0
    changed = client.request(
        "PATCH",
        path,
        json={
            "token_budget": 10_000,
            "rate_limit": 0,
            "name": "deploy",
            "expires_in": 60,
        },
        headers=ADMIN,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["rate_limit"], body["token_budget"]) == (
        "deploy",
        0,
        10_000,
    )
    assert body["state"] == "expiring"
    assert (
        client.request("PATCH", path, json={"expires_in": None}, headers=ADMIN).json()[
            "state"
        ]
        == "active"
    )
    listed = client.get(KEYS, headers=ADMIN).json()["data"][-1]
    assert listed["token_budget"] == 10_000
    assert listed["max_concurrent_requests"] == 2
    assert client.request("PATCH", path, json={}, headers=ADMIN).status_code == 400
    rotated = client.post(f"{path}/rotate", headers=ADMIN).json()
    assert rotated["token_budget"] == 10_000
    gone = client.request("PATCH", path, json={"name": "x"}, headers=ADMIN)
    assert gone.status_code == 404
    updates = [e for e in audit_store.all() if e.path == path]
    assert [(e.action, e.status_code) for e in updates] == [
        (AuditAction.UPDATE, 400),
        (AuditAction.UPDATE, 200),
        (AuditAction.UPDATE, 200),
        (AuditAction.UPDATE, 400),
        (AuditAction.UPDATE, 404),
    ]

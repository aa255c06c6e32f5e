"""
Tenant-admin sessions are bound to one incarnation of their tenant: once the
tenant is deleted, the session is worth nothing, even after a tenant of the
same id is created again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.admin._client import Client
from tests.admin.conftest import ACME_KEY, admin_headers, issue_session
from tests.conftest import FakeClock
from zerfoo_cloud import (
    AuditAction,
    AuditLogger,
    AuditResult,
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
    hash_api_key,
)
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore
from zerfoo_cloud.tenants import TenantRecord

ADMIN = admin_headers()
NEW_ACME_KEY = "zc-acme-second-life-0123456789abcdefghijkl"


def test_a_session_of_a_deleted_tenant_cannot_touch_the_tenant_created_again(
    client: Client,
    sessions: SessionSigner,
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
) -> None:
    """Session for acme, delete acme, create acme again: the old session reads and rotates nothing (401, audited)."""
    old = {"Authorization": f"Bearer {issue_session(sessions, tenants)}"}
    assert client.get("/admin/tenants/acme", headers=old).status_code == 200

    assert (
        client.request("DELETE", "/admin/tenants/acme", headers=ADMIN).status_code
        == 204
    )
    created = client.post(
        "/admin/tenants",
        json={
            "id": "acme",
            "api_key": NEW_ACME_KEY,
            "rate_limit": 5,
            "token_budget": 50,
        },
        headers=ADMIN,
    )
    assert created.status_code == 201

    for method, path in [
        ("GET", "/admin/tenants/acme"),
        ("POST", "/admin/tenants/acme/rotate-key"),
        ("GET", "/admin/tenants/acme/usage"),
        ("GET", "/admin/tenants/acme/audit"),
    ]:
        response = client.request(method, path, headers=old)
        assert response.status_code == 401, (method, path)
        error = response.json()["error"]
        assert error["code"] == "session_revoked"
        assert set(error) == {"message", "type", "param", "code"}
        assert "zc-" not in response.text
        entry = audit_store.all()[-1]
        assert (entry.tenant_id, entry.action, entry.result, entry.status_code) == (
            "acme",
            AuditAction.AUTH,
            AuditResult.UNAUTHORIZED,
            401,
        )
    # The new tenant's key was not rotated: it still works, and is the only one.
    assert tenants.get_by_api_key(NEW_ACME_KEY).id == "acme"
    assert tenants.get("acme").record.key_hash == hash_api_key(NEW_ACME_KEY)
    # A session signed in after the re-creation works.
    fresh = {"Authorization": f"Bearer {issue_session(sessions, tenants)}"}
    assert client.get("/admin/tenants/acme", headers=fresh).status_code == 200


def test_a_session_of_a_deleted_tenant_is_revoked_before_any_re_creation(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """Deleting the tenant ends its sessions at once (401, not 404)."""
    cookie = {"Cookie": f"zc_session={issue_session(sessions, tenants)}"}
    tenants.delete("acme")
    response = client.get("/admin/tenants/acme/usage", headers=cookie)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_revoked"


def test_a_session_without_an_incarnation_is_refused(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A token that names no incarnation (as tokens did before) is refused with 401."""
    codec = sessions._codec
    token = codec.dumps({"t": "acme", "s": "alice", "e": sessions.clock() + 60})
    assert sessions.verify(token).incarnation == ""
    response = client.get(
        "/admin/tenants/acme", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_revoked"


def test_rotate_with_an_incarnation_checks_it_in_the_store_transaction(
    tenants: TenantManager,
) -> None:
    """rotate_key(incarnation=old) on a tenant created again raises and changes nothing."""
    old = tenants.get("acme").record.incarnation
    tenants.delete("acme")
    tenants.create(TenantConfig("acme", NEW_ACME_KEY, 5, 50))
    with pytest.raises(TenantNotFoundError):
        tenants.rotate_key("acme", incarnation=old)
    assert tenants.get_by_api_key(NEW_ACME_KEY).id == "acme"
    current = tenants.get("acme").record.incarnation
    assert current != old
    assert tenants.rotate_key("acme", incarnation=current)
    # Updates keep the incarnation: a tenant's own sessions survive them.
    assert tenants.get("acme").record.incarnation == current


def test_every_tenant_created_gets_its_own_incarnation(tenants: TenantManager) -> None:
    """Two tenants, or one id created twice, never share an incarnation."""
    stamps = {tenants.get(t).record.incarnation for t in ("acme", "globex")}
    tenants.delete("acme")
    tenants.create(TenantConfig("acme", NEW_ACME_KEY, 5, 50))
    stamps.add(tenants.get("acme").record.incarnation)
    assert len(stamps) == 3
    assert all(len(s) == 32 for s in stamps)


def _legacy_bytes(record: TenantRecord) -> bytes:
    data = json.loads(record.to_bytes())
    del data["incarnation"]
    return json.dumps(data).encode()


def test_lmdb_keeps_the_incarnation_and_loads_records_written_before_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The incarnation survives a reopen; a record stored without one loads with a stable stamp sessions bind to."""
    stores = LMDBStores.open(tmp_path / "db")
    manager = TenantManager(stores.tenants, limits=stores.limits, clock=clock)
    created = manager.create(TenantConfig("acme", ACME_KEY, 60, 1000)).record
    manager.create(TenantConfig("globex", "zc-globex-0123456789abcdefghij", 60, 1000))
    globex = manager.get("globex").record
    # globex as a version without incarnations wrote it.
    store = stores.tenants
    store._env.write(
        lambda txn: txn.put(
            b"globex",
            _legacy_bytes(globex),
            db=store._db,
        )
    )
    stores.close()

    stores = LMDBStores.open(tmp_path / "db")
    manager = TenantManager(stores.tenants, limits=stores.limits, clock=clock)
    assert manager.get("acme").record == created
    legacy = manager.get("globex").record
    assert legacy.incarnation
    assert legacy.incarnation == manager.get("globex").record.incarnation
    assert attrs_without_incarnation(legacy) == attrs_without_incarnation(globex)

    sessions = SessionSigner(b"s" * 32, clock=clock)
    api = AdminAPI(
        manager,
        audit=AuditLogger(MemoryAuditStore(), clock=clock),
        admin_key_hashes=[],
        sessions=sessions,
        clock=clock,
    )
    token = issue_session(sessions, manager, "globex")
    headers = {"Authorization": f"Bearer {token}"}
    client = Client(api)
    assert client.get("/admin/tenants/globex", headers=headers).status_code == 200
    # An update writes the record back with the same stamp.
    manager.update("globex", rate_limit=7)
    assert client.get("/admin/tenants/globex", headers=headers).status_code == 200
    manager.delete("globex")
    manager.create(TenantConfig("globex", "zc-globex-0123456789abcdefghij", 60, 1000))
    assert client.get("/admin/tenants/globex", headers=headers).status_code == 401
    stores.close()


def attrs_without_incarnation(record: TenantRecord) -> dict[str, object]:
    """
    The record's fields but its incarnation.
    """
    data = json.loads(record.to_bytes())
    del data["incarnation"]
    return dict(data)


@pytest.mark.parametrize("stored", ["", 5, None])
def test_a_stored_incarnation_of_the_wrong_kind_is_refused(stored: object) -> None:
    """A record whose incarnation is empty or not a string does not load."""
    record = TenantRecord(
        id="acme", key_hash=hash_api_key(ACME_KEY), rate_limit=1, token_budget=1
    )
    data = json.loads(record.to_bytes())
    data["incarnation"] = stored
    with pytest.raises(ValueError, match="incarnation"):
        TenantRecord.from_bytes(json.dumps(data).encode())

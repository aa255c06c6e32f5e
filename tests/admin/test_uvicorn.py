"""
The admin API behind a real uvicorn server on 127.0.0.1, over TCP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._serving import served_in_thread
from tests.admin.conftest import ADMIN_KEY, SECRET, admin_headers
from zerfoo_cloud import AuditLogger, TenantManager, TokenMeter, hash_api_key
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, AdminAPI, MemoryAuditStore]]:
    """
    An AdminAPI on LMDB tenants, served by uvicorn on an ephemeral port.
    """
    stores = LMDBStores.open(tmp_path / "db")
    audit_store = MemoryAuditStore()
    api = AdminAPI(
        TenantManager(stores.tenants, limits=stores.limits),
        meter=TokenMeter(MemoryBillingStore()),
        audit=AuditLogger(audit_store),
        admin_key_hashes=[hash_api_key(ADMIN_KEY)],
        sessions=SessionSigner(SECRET),
        max_body=4096,
    )
    try:
        with served_in_thread(api) as url:
            yield url, api, audit_store
    finally:
        stores.close()


def test_admin_api_over_a_real_server(
    served: tuple[str, AdminAPI, MemoryAuditStore],
) -> None:
    """Over TCP: 401 without a key, CRUD with it, a session limited to its tenant, 413 past the body limit."""
    base, api, audit_store = served
    with httpx.Client(base_url=base, timeout=10) as http:
        unauthorized = http.get("/admin/tenants")
        assert unauthorized.status_code == 401
        assert unauthorized.json()["error"]["code"] == "missing_credentials"

        created = http.post(
            "/admin/tenants",
            json={"id": "acme", "rate_limit": 60, "token_budget": 1000},
            headers=admin_headers(),
        )
        assert created.status_code == 201
        key = created.json()["api_key"]
        assert api.tenants.get_by_api_key(key).id == "acme"
        http.post(
            "/admin/tenants",
            json={"id": "globex", "rate_limit": 1, "token_budget": 1},
            headers=admin_headers(),
        )
        listed = http.get("/admin/tenants", headers=admin_headers()).json()
        assert [t["id"] for t in listed["data"]] == ["acme", "globex"]

        assert api.sessions is not None
        cookie = {
            "Cookie": f"zc_session={api.sessions.issue('acme', 'alice', incarnation=api.tenants.get('acme').record.incarnation)}"
        }
        assert http.get("/admin/tenants/acme", headers=cookie).status_code == 200
        assert http.get("/admin/tenants/globex", headers=cookie).status_code == 403

        too_big = http.post(
            "/admin/tenants", content=b" " * 4097, headers=admin_headers()
        )
        assert too_big.status_code == 413
        assert (
            http.request(
                "DELETE", "/admin/tenants/globex", headers=admin_headers()
            ).status_code
            == 204
        )

    results = [
        (e.action.value, e.result.value, e.status_code) for e in audit_store.all()
    ]
    assert results == [
        ("auth", "unauthorized", 401),
        ("create", "success", 201),
        ("create", "success", 201),
        ("list", "success", 200),
        ("list", "success", 200),
        ("list", "denied", 403),
        ("create", "denied", 413),
        ("delete", "success", 204),
    ]
    assert all(e.remote_addr == "127.0.0.1" for e in audit_store.all())

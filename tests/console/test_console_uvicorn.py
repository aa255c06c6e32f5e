"""
The console behind a real uvicorn server on 127.0.0.1 over plain HTTP
(cookies without ``Secure``, as for development): an operator signs in
with the admin key, creates a key for a tenant on LMDB and signs out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._serving import served_in_thread
from tests.admin.conftest import ADMIN_KEY, SECRET
from tests.console._browser import csrf_of
from zerfoo_cloud import AuditLogger, TenantConfig, TenantManager, hash_api_key
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.http.console import CONTENT_SECURITY_POLICY, mount_console
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, TenantManager]]:
    """A console on LMDB tenants, served by uvicorn on an ephemeral port."""
    stores = LMDBStores.open(tmp_path / "db")
    tenants = TenantManager(stores.tenants, limits=stores.limits)
    tenants.create(TenantConfig("acme", "zc-acme-0123456789abcdefghijklmnopqr", 5, 5))
    api = AdminAPI(
        tenants,
        audit=AuditLogger(MemoryAuditStore()),
        admin_key_hashes=[hash_api_key(ADMIN_KEY)],
        sessions=SessionSigner(SECRET, ttl=3600, idle=600),
    )
    mount_console(api, secure_cookies=False)
    try:
        with served_in_thread(api) as url:
            yield url, tenants
    finally:
        stores.close()


def test_an_operator_signs_in_makes_a_key_and_signs_out(
    served: tuple[str, TenantManager],
) -> None:
    """The whole round trip over TCP, cookies kept by httpx like a browser."""
    url, tenants = served
    with httpx.Client(base_url=url, timeout=10) as http:
        login = http.get("/console/login")
        assert login.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        signed_in = http.post(
            "/console/login",
            data={"csrf": csrf_of(login.text), "admin_key": ADMIN_KEY},
            follow_redirects=True,
        )
        assert signed_in.status_code == 200
        assert 'data-testid="tenant-link"' in signed_in.text
        keys = http.get("/console/t/acme/keys")
        made = http.post(
            "/console/t/acme/keys",
            data={"csrf": csrf_of(keys.text), "name": "over-tcp", "scope": ""},
        )
        assert made.status_code == 201
        secret = re.search(r'data-testid="new-key-secret">([^<]+)<', made.text)
        assert secret is not None
        assert tenants.get_by_api_key(secret[1]).record.id == "acme"
        out = http.post("/console/logout", data={"csrf": csrf_of(made.text)})
        assert out.status_code == 303
        assert http.get("/console/t/acme/keys").status_code == 303

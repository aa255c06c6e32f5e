"""
Fixtures of the admin API tests: stores, an admin key, the app and a client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.admin._client import Client
from tests.conftest import FakeClock
from tests.sso._idp import ACS_URL, SP_ENTITY, KeyPair, make_keypair, metadata_for
from zerfoo_cloud import (
    AuditLogger,
    SAMLProvider,
    TenantConfig,
    TenantManager,
    TokenMeter,
    hash_api_key,
)
from zerfoo_cloud.http.admin import AdminAPI, SessionSigner
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

#: The admin key of every test app; the app is given only its hash.
ADMIN_KEY = "zca-admin-0123456789abcdefghijklmnopqrstuvwxyz"
#: The session secret of every test app.
SECRET = b"0123456789abcdef0123456789abcdef"
#: The API keys of the two tenants every test app starts with.
ACME_KEY = "zc-acme-key-0123456789abcdefghijklmnopqrstuv"
GLOBEX_KEY = "zc-globex-key-0123456789abcdefghijklmnopqrs"


def admin_headers(key: str = ADMIN_KEY) -> dict[str, str]:
    """
    The Authorization header for *key*.
    """
    return {"Authorization": f"Bearer {key}"}


def issue_session(
    sessions: SessionSigner,
    tenants: TenantManager,
    tenant_id: str = "acme",
    subject: str = "alice@example.com",
) -> str:
    """
    A session token for *subject* bound to *tenant_id* as it is now.
    """
    incarnation = tenants.get(tenant_id).record.incarnation
    return sessions.issue(tenant_id, subject, incarnation=incarnation)


@pytest.fixture(scope="session")
def idp_keys() -> KeyPair:
    """
    The test IdP's signing key and certificate.
    """
    return make_keypair("idp.example.test")


@pytest.fixture
def tenants(clock: FakeClock) -> TenantManager:
    """
    A tenant manager in memory holding tenants ``acme`` and ``globex``.
    """
    manager = TenantManager(clock=clock)
    manager.create(TenantConfig("acme", ACME_KEY, 60, 10_000))
    manager.create(TenantConfig("globex", GLOBEX_KEY, 30, 5_000))
    return manager


@pytest.fixture
def audit_store() -> MemoryAuditStore:
    """
    The audit store every test app writes to.
    """
    return MemoryAuditStore()


@pytest.fixture
def billing_store() -> MemoryBillingStore:
    """
    The billing store of every test app's meter.
    """
    return MemoryBillingStore()


@pytest.fixture
def sessions(clock: FakeClock) -> SessionSigner:
    """
    The session signer every test app uses.
    """
    return SessionSigner(SECRET, ttl=900, clock=clock)


def provider_for(tenant_id: str, keys: KeyPair, clock: FakeClock) -> SAMLProvider:
    """
    A SAML provider for *tenant_id* trusting the test IdP.
    """
    return SAMLProvider(
        metadata_for(keys),
        tenant_id,
        sp_entity_id=SP_ENTITY,
        acs_url=ACS_URL,
        clock=clock,
    )


@pytest.fixture
def make_api(
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
    billing_store: MemoryBillingStore,
    sessions: SessionSigner,
    clock: FakeClock,
    idp_keys: KeyPair,
) -> Callable[..., AdminAPI]:
    """
    Build an AdminAPI on the test stores; keyword arguments override.
    """

    def make(**overrides: Any) -> AdminAPI:
        options: dict[str, Any] = {
            "meter": TokenMeter(billing_store, clock=clock),
            "audit": AuditLogger(audit_store, clock=clock),
            "admin_key_hashes": [hash_api_key(ADMIN_KEY)],
            "sessions": sessions,
            "sso": {"acme": provider_for("acme", idp_keys, clock)},
            "clock": clock,
        }
        options.update(overrides)
        return AdminAPI(tenants, **options)

    return make


@pytest.fixture
def api(make_api: Callable[..., AdminAPI]) -> AdminAPI:
    """
    The default test app.
    """
    return make_api()


@pytest.fixture
def client(api: AdminAPI) -> Client:
    """
    A client of the default test app.
    """
    return Client(api)

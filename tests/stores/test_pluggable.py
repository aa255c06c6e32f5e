"""
A store written outside the library plugs in with no base class.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.stores._dict_limiter import DictLimiterStore
from zerfoo_cloud import TenantConfig, TenantManager, TenantNotFoundError
from zerfoo_cloud.stores.protocols import LimiterStore, TenantStore
from zerfoo_cloud.tenants import TenantRecord

pytestmark = pytest.mark.third_party


class DictTenantStore:
    """
    The smallest TenantStore: two dicts and a lock.
    """

    def __init__(self) -> None:
        self.rows: dict[str, TenantRecord] = {}
        self.lock = threading.Lock()

    def create(self, record: TenantRecord) -> None:
        with self.lock:
            self.rows[record.id] = record

    def get(self, tenant_id: str) -> TenantRecord | None:
        return self.rows.get(tenant_id)

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        return next((r for r in self.rows.values() if r.key_hash == key_hash), None)

    def update(
        self, tenant_id: str, change: Callable[[TenantRecord], TenantRecord]
    ) -> TenantRecord:
        with self.lock:
            self.rows[tenant_id] = change(self.rows[tenant_id])
            return self.rows[tenant_id]

    def delete(self, tenant_id: str) -> None:
        with self.lock:
            if self.rows.pop(tenant_id, None) is None:
                raise TenantNotFoundError(tenant_id)

    def list(self) -> list[TenantRecord]:
        return sorted(self.rows.values(), key=lambda r: r.id)

    def close(self) -> None:
        pass


def test_third_party_stores_satisfy_the_protocols() -> None:
    """Plain classes with the right methods are TenantStore and LimiterStore."""
    assert isinstance(DictTenantStore(), TenantStore)
    assert isinstance(DictLimiterStore(), LimiterStore)


def test_manager_runs_on_third_party_stores() -> None:
    """TenantManager creates, finds, limits and deletes tenants through them."""
    manager = TenantManager(DictTenantStore(), limits=DictLimiterStore())
    manager.create(TenantConfig("acme", "the-key", 2, 10, 1))
    tenant = manager.get_by_api_key("the-key")
    assert [tenant.allow_request() for _ in range(3)] == [True, True, False]
    assert tenant.consume_tokens(10)
    assert not tenant.consume_tokens(1)
    assert tenant.allow_concurrent()
    assert not tenant.allow_concurrent()
    manager.delete("acme")
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key("the-key")

"""
A store written outside the library plugs in with no base class.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from zerfoo_cloud import TenantConfig, TenantManager, TenantNotFoundError
from zerfoo_cloud.limits import BucketState
from zerfoo_cloud.stores.protocols import LimiterStore, TenantStore
from zerfoo_cloud.tenants import TenantRecord

T = TypeVar("T")

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


class DictLimiterStore:
    """
    The smallest LimiterStore.
    """

    def __init__(self) -> None:
        self.states: dict[str, BucketState] = {}
        self.slots: dict[str, int] = {}
        self.lock = threading.Lock()

    def update(
        self,
        keys: Sequence[str],
        change: Callable[
            [list[BucketState | None]], tuple[list[BucketState | None] | None, T]
        ],
    ) -> T:
        with self.lock:
            new, result = change([self.states.get(k) for k in keys])
            for k, s in zip(keys, new or [], strict=False):
                if s is not None:
                    self.states[k] = s
            return result

    def get(self, key: str) -> BucketState | None:
        return self.states.get(key)

    def acquire_slot(self, key: str, limit: int) -> bool:
        with self.lock:
            if self.slots.get(key, 0) >= limit:
                return False
            self.slots[key] = self.slots.get(key, 0) + 1
            return True

    def release_slot(self, key: str) -> None:
        with self.lock:
            self.slots[key] = max(0, self.slots.get(key, 0) - 1)

    def slots_in_use(self, key: str) -> int:
        return self.slots.get(key, 0)

    def clear(self, prefix: str) -> None:
        with self.lock:
            for k in [k for k in self.states if k.startswith(prefix)]:
                del self.states[k]

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

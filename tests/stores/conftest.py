"""
Store fixtures: every conformance test runs once per implementation.

To add a backend, add one fixture here and one `pytest.param` to each
parametrized fixture below.
"""

from __future__ import annotations

import pytest

from tests.stores._dict_limiter import DictLimiterStore
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.stores.protocols import LimiterStore, TenantStore


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb", marks=pytest.mark.lmdb, id="lmdb"),
    ]
)
def tenant_store(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores
) -> TenantStore:
    """
    Each implementation of `TenantStore`.
    """
    if request.param == "memory":
        return MemoryTenantStore()
    return lmdb_stores.tenants


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("dict", marks=pytest.mark.third_party, id="dict"),
    ]
)
def limiter_store(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores
) -> LimiterStore:
    """
    Each implementation of `LimiterStore`, and `DictLimiterStore`: the
    smallest one written outside the library.
    """
    if request.param == "memory":
        return MemoryLimiterStore()
    if request.param == "dict":
        return DictLimiterStore()
    return lmdb_stores.limits

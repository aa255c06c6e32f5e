"""
Store fixtures: every conformance test runs once per implementation.

To add a backend, add one fixture here and one `pytest.param` to each
parametrized fixture below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests._redis_servers import REDIS_ASYNC_PARAMS, REDIS_PARAMS, redis_target
from tests.stores._async_driven import AsyncDriven
from tests.stores._dict_limiter import DictLimiterStore
from zerfoo_cloud.stores.failover import FailoverLimiterStore
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import (
    MemoryLimiterStore,
    MemoryPriceStore,
    MemoryTenantStore,
)
from zerfoo_cloud.stores.protocols import LimiterStore, PriceStore, TenantStore
from zerfoo_cloud.stores.redis import RedisLimiterStore

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres import PostgresStores


#: The records backends: each records store role runs on all three.
RECORDS_PARAMS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("lmdb", marks=pytest.mark.lmdb, id="lmdb"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]


def _records_role(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores, role: str, memory: Any
) -> Any:
    # The store of *role* of the records backend named by the parameter.
    if request.param == "memory":
        return memory()
    if request.param == "postgres":
        stores: PostgresStores = request.getfixturevalue("postgres_stores")
        return getattr(stores, role)
    return getattr(lmdb_stores, role)


@pytest.fixture(params=RECORDS_PARAMS)
def tenant_store(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores
) -> TenantStore:
    """
    Each implementation of `TenantStore`.
    """
    store: TenantStore = _records_role(
        request, lmdb_stores, "tenants", MemoryTenantStore
    )
    return store


@pytest.fixture(params=RECORDS_PARAMS)
def price_store(request: pytest.FixtureRequest, lmdb_stores: LMDBStores) -> PriceStore:
    """
    Each implementation of `PriceStore`.
    """
    store: PriceStore = _records_role(request, lmdb_stores, "prices", MemoryPriceStore)
    return store


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("dict", marks=pytest.mark.third_party, id="dict"),
        pytest.param("failover", marks=pytest.mark.memory, id="failover"),
        pytest.param(
            "failover-redis-async", marks=pytest.mark.redis, id="failover-redis-async"
        ),
        *REDIS_PARAMS,
        *REDIS_ASYNC_PARAMS,
    ]
)
def limiter_store(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores, redis_prefix: str
) -> Iterator[LimiterStore]:
    """
    Each implementation of `LimiterStore`, `DictLimiterStore` (the
    smallest one written outside the library), and `FailoverLimiterStore`
    over two memory stores and over Redis (driven through its asyncio
    twins) with a memory fallback.

    The Redis stores trust the caller's clock, as the suite moves time by
    hand; the ``-async`` ones are driven through `admit_async` and
    `settle_async` (`AsyncDriven`).
    """
    if request.param == "memory":
        yield MemoryLimiterStore()
    elif request.param == "dict":
        yield DictLimiterStore()
    elif request.param == "failover":
        yield FailoverLimiterStore(MemoryLimiterStore(), MemoryLimiterStore())
    elif request.param == "failover-redis-async":
        primary = RedisLimiterStore.from_url(
            request.getfixturevalue("redis_url"),
            prefix=redis_prefix,
            trust_caller_clock=True,
        )
        over = AsyncDriven(FailoverLimiterStore(primary, MemoryLimiterStore()))
        yield over
        over.clear("")
        over.close()
    elif request.param == "lmdb":
        yield lmdb_stores.limits
    else:
        url, cluster = redis_target(request)
        store = RedisLimiterStore.from_url(
            url, cluster=cluster, prefix=redis_prefix, trust_caller_clock=True
        )
        if request.param.endswith("-async"):
            driven = AsyncDriven(store)
            yield driven
            driven.clear("")
            driven.close()
            return
        yield store
        store.clear("")
        store.close()
